"""What the app remembers of a visitor's digit across its pages (``st.session_state``).

Streamlit forgets a widget's value once a page that does not draw that widget
has run, so a drawing, an upload or an angle held only by its widget would be
gone after a look at another page.  What must survive is therefore kept here
under keys no widget uses:

* :data:`DIGIT`, :data:`DIGIT_WORDS`: the Draw page's digit ``[1, 28, 28]`` and what it is in words
  ("your drawing"); the Feature maps page starts from them;
* :data:`ANGLE`: the angle the Draw page's turn player was left at (degrees);
* the canvas's strokes and the digit they make, the last upload; simple widgets listed in
  :data:`KEPT_WIDGETS` keep their own keys (:func:`keep_widgets`, Streamlit's documented way).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st
from torch import Tensor

from .preprocess import EmptyImageError, ink_from_array, mnist_preprocess

__all__ = ["DIGIT", "DIGIT_WORDS", "ANGLE", "KEPT_WIDGETS", "keep_widgets", "entered", "Canvas", "canvas",
           "redraw_canvas", "clear_drawing", "drawn_digit", "upload", "forget_removed_upload", "remember_digit",
           "angle", "player_key", "remember_angle"]

DIGIT = "digit"
DIGIT_WORDS = "digit_words"
ANGLE = "draw_angle"
_PLAYER = "turn_player"  # the Draw page's turn player (one per digit): its state holds the angle the visitor settled on
# Widgets whose value should outlive a visit to another page: the Draw page's input and test digit, the Feature
# maps page's model and its "follow the Draw page" switch.
KEPT_WIDGETS = ("source", "mnist_index", "fm_model", "fm_follow")

_STROKES = "draw_strokes"  # the canvas's strokes (Fabric.js JSON), drawn again on coming back
_DRAWN = "draw_digit"  # the digit they make: a canvas given strokes to draw sends no picture until drawn on
_CANVAS = "draw_canvas"  # the canvas shown now: its key and the strokes it was built with
_GENERATION = "canvas_generation"
_REDRAW = "draw_redraw"  # the next run builds a new canvas from the remembered strokes
_UPLOAD = "draw_upload"  # the last upload, (name, bytes)
_PAGE = "page"  # the page the last full run was of


def keep_widgets() -> None:
    """Keep the :data:`KEPT_WIDGETS` values through pages that do not draw them: a value the script assigned is
    not cleaned up with its widget.  Called at the top of every page (:func:`gcnn.app.ui.page_setup`)."""
    for key in KEPT_WIDGETS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def entered(page: str) -> bool:
    """Record that ``page`` runs; whether the run before was of another page (or there was none): the visitor has
    just come to ``page``."""
    previous = st.session_state.get(_PAGE)
    st.session_state[_PAGE] = page
    return previous != page


@dataclass(frozen=True)
class Canvas:
    """The Draw page's canvas: its widget key, and the strokes it starts with (``None``: empty)."""

    key: str
    strokes: dict[str, Any] | None


def canvas() -> Canvas:
    """The canvas to draw now.

    The same key and strokes from run to run, so the browser keeps the canvas
    as it is; after :func:`redraw_canvas` or :func:`clear_drawing` a new key,
    i.e. a new canvas in the browser, built from the remembered strokes (none
    after Clear).  (A canvas the page stopped drawing comes back empty in the
    browser, whatever its key held: only strokes handed to it show.)
    """
    state = st.session_state
    redraw = state.pop(_REDRAW, False)
    if _CANVAS not in state or redraw:
        generation = state.get(_GENERATION, -1) + 1
        state[_GENERATION] = generation
        state[_CANVAS] = Canvas(f"canvas_{generation}", state.get(_STROKES))
    return state[_CANVAS]


def redraw_canvas() -> None:
    """On coming (back) to drawing, from another page or input: the next canvas shows the remembered strokes."""
    st.session_state[_REDRAW] = True


def clear_drawing() -> None:
    """The Clear button: a new, empty canvas, the drawing and its angle forgotten (the next digit starts upright)."""
    for key in (_STROKES, _DRAWN, ANGLE):
        st.session_state.pop(key, None)
    redraw_canvas()


def drawn_digit(image_data: np.ndarray | None, strokes: dict[str, Any] | None) -> Tensor:
    """The digit on the canvas, remembered with its strokes: from the picture the canvas sent, else (a canvas
    rebuilt from remembered strokes sends none) the one remembered.

    Raises:
        EmptyImageError: nothing is drawn (a canvas wiped with its own toolbar forgets the drawing too).
    """
    state = st.session_state
    if image_data is not None:
        try:
            digit = mnist_preprocess(ink_from_array(image_data))
        except EmptyImageError:
            state.pop(_STROKES, None)
            state.pop(_DRAWN, None)
            raise
        state[_STROKES], state[_DRAWN] = strokes, digit
        return digit
    if state.get(_DRAWN) is not None:
        return state[_DRAWN]
    raise EmptyImageError("The canvas is empty: draw a digit to see the predictions.")


def upload(file: Any | None) -> tuple[str, bytes] | None:
    """The uploaded file's ``(name, bytes)``: the one in the uploader, else the last one (the uploader is empty
    again after a visit to another page)."""
    if file is not None:
        st.session_state[_UPLOAD] = (file.name, file.getvalue())
    return st.session_state.get(_UPLOAD)


def forget_removed_upload(key: str) -> None:
    """The uploader's change callback: its ✕ removes the remembered upload as well."""
    if st.session_state.get(key) is None:
        st.session_state.pop(_UPLOAD, None)


def remember_digit(image: Tensor | None, words: str = "") -> None:
    """The Draw page's current digit, for the other pages (``None``: there is none now)."""
    if image is None:
        st.session_state.pop(DIGIT, None)
        st.session_state.pop(DIGIT_WORDS, None)
    else:
        st.session_state[DIGIT], st.session_state[DIGIT_WORDS] = image, words


def angle() -> float:
    """The Draw page's angle (degrees; 0 until the visitor turns a digit)."""
    return st.session_state.get(ANGLE, 0)


def player_key(digit: bytes) -> str:
    """The widget key of the Draw page's turn player for ``digit`` (:func:`gcnn.app.ui.digit_key`).

    One key per digit, not one for the page: a player's state is the angle last settled on, and Streamlit reports
    a change only when a new value differs from it.  With one key, a digit drawn after Clear inherited the earlier
    digit's state (Clear's run ends in ``st.stop()``, which does not always drop it), so turning the new digit to
    that same angle changed nothing on the server: the page went on answering at 0 degrees while the slider showed
    the turn (3 of 6 drawings in a row, each turned to 45 degrees, in Chromium).  A new digit's player starts
    from the page's angle, so a turn away from it is always a change.
    """
    return f"{_PLAYER}_{hashlib.blake2b(digit, digest_size=8).hexdigest()}"


def remember_angle(key: str) -> None:
    """The turn player's change callback (``key``: its :func:`player_key`): keep the angle it was left at under a
    key of our own."""
    st.session_state[ANGLE] = st.session_state[key]["angle"]
