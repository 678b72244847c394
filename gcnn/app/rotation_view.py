"""What the Draw page shows of a precomputed rotation sweep, built without Plotly.

* :func:`turn_frames`: every frame of a full turn (the digit turned by each
  swept angle and every model's answer there), played in the browser by
  :mod:`gcnn.app.turn_player` without asking the server for anything;
  :func:`first_frame`: the one frame shown while the turn is being computed;
* :func:`sweep_table`: the sweep as a table of predicted digits that stays readable on a phone.

No Plotly on that page: its first chart costs a browser about a CPU-second, which eight sessions sharing two
cores with the server cannot afford (``benchmarks/bench_app_load.py``; :mod:`gcnn.app.turn_player` has the figures).
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from pandas.io.formats.style import Styler
from PIL import Image
from torch import Tensor

from ..data import rotate
from .inference import RotationSweep
from .plotting import model_colour

__all__ = ["turn_frames", "at_angle", "first_frame", "sweep_table", "png_data_url", "FRAME_MS", "CHANGED", "SAME"]

FRAME_MS = 70  # one 5-degree step per frame: a full turn in about 5 s
# The colours of "differs from the upright answer" and "the same", in the player's strips and the table alike.
CHANGED, SAME = "#d7301f", "#dfe9e1"
_COLOURS = {"changed": CHANGED, "same": SAME}


def png_data_url(pixels: np.ndarray | Tensor) -> str:
    """A PNG data URL of ``pixels`` (uint8 ``[H, W]`` grey or ``[H, W, 3]`` RGB): an image a page can show without a
    media file (Streamlit's media files expire between reruns, and a browser still fetching one logs an error)."""
    png = io.BytesIO()
    # Pillow's default compression: its `optimize` made a ring picture 8x slower to write for 2% fewer bytes.
    Image.fromarray(np.asarray(pixels)).save(png, format="PNG")
    return "data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii")


def _pixels(images: Tensor) -> Tensor:
    """``images [..., H, W]`` in [0, 1] as 0-255 integers (uint8)."""
    return (images * 255).round().clamp(0, 255).to(torch.uint8)


def _turned(image: Tensor, angles: Sequence[float]) -> list[str]:
    """The digit ``[1, 28, 28]`` turned by each angle, as PNG data URLs (about 0.4 KB a digit)."""
    turned = rotate(image[None].expand(len(angles), -1, -1, -1).contiguous(), torch.tensor(angles, dtype=torch.float))
    return [png_data_url(pixels.numpy()) for pixels in _pixels(turned[:, 0])]


def _identity(image: Tensor, names: Sequence[str]) -> str:
    """Names the frames of one digit's turn, so a player shown again with the same frames keeps its state."""
    digest = hashlib.blake2b(image.to(torch.float32).contiguous().numpy().tobytes(), digest_size=8)
    digest.update("|".join(names).encode())
    return digest.hexdigest()


def turn_frames(image: Tensor, sweeps: Mapping[str, RotationSweep], labels: Mapping[str, str], *,
                truth: int | None = None, title: str | None = None,
                caption: str | None = None, report: bool = True, autoplay: bool = False, loop: bool = False,
                strips: bool = True, frame_ms: int = FRAME_MS, picture_px: int | None = None) -> dict[str, Any]:
    """Every frame of a full turn, JSON-ready, for :func:`gcnn.app.turn_player.turn_player`.

    ``image [1, 28, 28]``; ``sweeps[name]`` share their angles, which start at 0; ``labels[name]`` is the model's
    display name; ``truth``: the true digit, if known (the answers are then marked right or wrong).  The player
    starts upright (:func:`at_angle` starts it elsewhere) and, with ``report``, sends the angle the visitor
    settles on back to the page; ``autoplay`` starts ▶ Play by itself and ``loop`` keeps it turning; ``strips``
    adds the strip per model over the whole turn.  Returns ``{"id", "angles": [A], "digits": [A PNG data URLs of
    the digit turned by each angle], "models": [{"name", "label", "colour", "predicted": [A], "confidence": [A]}],
    "start", "truth", ...}``.
    """
    names = list(sweeps)
    angles = sweeps[names[0]].angles
    return {
        "id": _identity(image, names),
        "title": title,
        "caption": caption,
        "angles": [float(a) if a % 1 else int(a) for a in angles],
        "digits": _turned(image, angles),
        "models": [_answers(name, labels[name], sweeps[name].predicted, sweeps[name].confidence) for name in names],
        "truth": truth,
        "start": 0,
        "frame_ms": frame_ms,
        "report": report,
        "autoplay": autoplay,
        "loop": loop,
        "strips": strips,
        "picture_px": picture_px,
        "colours": _COLOURS,
    }


def at_angle(frames: dict[str, Any], angle: float) -> dict[str, Any]:
    """``frames`` starting at the frame nearest ``angle`` (degrees)."""
    angles = frames["angles"]
    start = min(range(len(angles)), key=lambda i: abs((angles[i] - angle + 180) % 360 - 180))
    return {**frames, "start": start}


def first_frame(image: Tensor, answers: Mapping[str, Tensor], labels: Mapping[str, str], angle: float,
                pending: str, truth: int | None = None, caption: str | None = None) -> dict[str, Any]:
    """The player's one frame while the turn is computed: the digit at ``angle`` and every model's probabilities
    there (``answers[name] [classes]``), with ``pending`` saying what is being computed, in place of the slider."""
    names = list(answers)
    return {
        "id": _identity(image, names) + "-first",
        "caption": caption,
        "angles": [float(angle) if angle % 1 else int(angle)],
        "digits": _turned(image, [angle]),
        "models": [_answers(name, labels[name], [int(p.argmax())], [float(p.max())]) for name, p in answers.items()],
        "truth": truth,
        "start": 0,
        "pending": pending,
        "colours": _COLOURS,
    }


def _answers(name: str, label: str, predicted: Sequence[int], confidence: Sequence[float]) -> dict[str, Any]:
    return {"name": name, "label": label, "colour": model_colour(name), "predicted": list(predicted),
            "confidence": [round(c, 3) for c in confidence]}


def sweep_table(sweeps: Mapping[str, RotationSweep], labels: Mapping[str, str], angles: Sequence[float]) -> Styler:
    """The predicted digit of each model (columns) at each of ``angles`` (rows, ``"15°"``), red where it differs
    from the model's answer upright (as the player's strips: a column that changes shows, whatever the confidence).

    A styled static table (``st.table``) rather than a Plotly heatmap, so the
    page needs no Plotly at all (see the module's docstring).  Angles as rows
    and a few of them (e.g. every 15 degrees) keep the cells large enough to
    read on a phone; every angle in ``angles``, and 0, must be swept.
    """
    index = [f"{a:g}°" for a in angles]
    digits = pd.DataFrame({labels[n]: [s.predicted[s.index(a)] for a in angles] for n, s in sweeps.items()},
                          index=index)
    upright = [s.predicted[s.index(0)] for s in sweeps.values()]

    def cell_styles(table: pd.DataFrame) -> pd.DataFrame:
        changed = table.to_numpy() != np.asarray(upright)[None, :]
        styles = np.where(changed, f"background-color: {CHANGED}; color: white; font-weight: 700",
                          f"background-color: {SAME}; color: black")
        return pd.DataFrame(styles, index=table.index, columns=table.columns)

    return digits.style.apply(cell_styles, axis=None)
