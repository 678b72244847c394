"""Draw (or upload, or pick) a digit, turn it, and see which models change their mind.

One screen: the input on the left, the turn player on the right: the turned
digit, every model's answer flagged where it changed, a strip per model over
the whole turn, and the page's one angle control.  The first answer comes
first: every model's answer at the remembered angle (one small forward pass
each) is on screen before the full turn (every 5 degrees) is computed; the
player then plays in the browser.  All inference runs on the process's one
:class:`~gcnn.app.worker.InferenceWorker`, shared by every session.
"""

from functools import partial

import streamlit as st
from streamlit_drawable_canvas import st_canvas
from torch import Tensor

from gcnn.app import guide, memory, ui
from gcnn.app.preprocess import (
    UPLOAD_TYPES,
    EmptyImageError,
    ImageInputError,
    preprocess_upload,
)
from gcnn.app.rotation_view import at_angle, first_frame, sweep_table, turn_frames
from gcnn.app.turn_player import turn_player
from gcnn.app.worker import InferenceWorker

SWEEP_ANGLES = list(range(0, 360, 5))  # the player's frames
TABLE_ANGLES = list(range(0, 360, 15))  # the table's rows: few enough to read on a phone
SOURCES = ["Draw", "Upload", "MNIST test digit"]
PICTURE = "What the networks see: 28 × 28 pixels, turned"

arrived = ui.page_setup("Draw & rotate", "✏️")
models, problems = ui.shipped_models()
ui.sidebar(models, in_use="all shipped models")
ui.require_models(models, problems)
if arrived:  # back from another page: the canvas is built again from the remembered strokes
    memory.redraw_canvas()


@st.cache_resource(show_spinner="Starting the inference worker ...")
def inference_worker(models_dir: str) -> InferenceWorker:
    """One worker per process (and models folder), shared by every session."""
    return InferenceWorker({name: shipped.model for name, shipped in models.items()})


@st.cache_data(show_spinner=False, max_entries=8)
def cleaned_upload(data: bytes) -> tuple[Tensor, list[str]]:
    """An upload cleaned once (a large photo takes a fifth of a second), not on every run of the page."""
    return preprocess_upload(data)


@st.cache_data(show_spinner=False, max_entries=64)
def frames_for(digit: bytes, truth: int | None, models_dir: str, _image: Tensor) -> dict:
    """The player's frames for one digit (72 small PNGs), built once: the player's fragment reruns on every angle
    the visitor settles on.  The worker's turn for ``_image`` must be cached already."""
    return turn_frames(_image, inference_worker(models_dir).sweep(_image, SWEEP_ANGLES), labels, truth=truth,
                       caption=PICTURE)


worker = inference_worker(str(ui.folders()[1]))
labels = {name: shipped.label for name, shipped in models.items()}


@st.fragment
def turn(image: Tensor, truth: int | None) -> None:
    """The player for a digit whose turn is computed, and the link inside.  A fragment: the angle the visitor
    settles on reruns only this (the player itself plays in the browser)."""
    angle, digit = memory.angle(), ui.digit_key(image)
    frames = frames_for(digit, truth, str(ui.folders()[1]), image)
    key = memory.player_key(digit)
    turn_player(at_angle(frames, angle), key=key, on_angle_change=partial(memory.remember_angle, key))
    maps = ui.PAGES["maps"]
    st.page_link(maps.script, label=f"See inside: this digit's feature maps, turned by {angle:g}°", icon="🔍")


left, right = st.columns([5, 6], gap="medium")
image, truth, words = None, None, ""
with left:
    source = st.radio("Input", SOURCES, horizontal=True, key="source", on_change=memory.redraw_canvas,
                      label_visibility="collapsed")
    try:
        if source == "Draw":
            st.caption("Draw one digit, large, in the middle. The models answer when you lift the mouse or finger.")
            canvas = memory.canvas()
            drawing = st_canvas(stroke_width=20, stroke_color="#FFFFFF", background_color="#000000", height=280,
                                width=280, drawing_mode="freedraw", key=canvas.key, initial_drawing=canvas.strokes,
                                update_streamlit=True, return_image_data=True)
            # A callback, not `if st.button(...): ... st.rerun()`: a click costs one run of the page, not two. Always
            # visible and works by touch (the canvas's own toolbar appears only on mouse hover).
            st.button("Clear the canvas", icon="🧽", key="clear", on_click=memory.clear_drawing)
            image, words = memory.drawn_digit(drawing.image_data, drawing.json_data), "your drawing"
        elif source == "Upload":
            file = st.file_uploader("An image of one digit", type=UPLOAD_TYPES, key="upload",
                                    on_change=memory.forget_removed_upload, args=("upload",))
            kept = memory.upload(file)
            if kept is None:
                raise EmptyImageError("Upload an image of a single digit to see the predictions.")
            if file is None:
                st.caption(f"Showing **{kept[0]}**, uploaded earlier. Upload another image to replace it.")
            # Photos and scans are cleaned of lighting, shadows and specks; doubts come back as warnings.
            image, doubts = cleaned_upload(kept[1])
            words = "the uploaded image"
            for doubt in doubts:
                st.warning(doubt)
        else:
            test = ui.mnist_test()
            if isinstance(test, str):
                st.warning(test)
            else:
                index = st.number_input("Test image index", 0, len(test[0]) - 1, key="mnist_index")
                image, truth = test[0][index], int(test[1][index])
                words = f"test digit {index} (a {truth})"
                st.caption(f"Label: {truth}. Each answer says whether it is right.")
    except EmptyImageError as error:
        st.info(str(error).replace("The image is empty: ", ""))
    except ImageInputError as error:
        st.error(str(error))

memory.remember_digit(image, words)  # the Feature maps page starts from it
with right:
    if image is None:
        guide.show("draw")  # what to try, where the answers will be
        st.stop()
    area = st.empty()
    if worker.cached_sweep(image, SWEEP_ANGLES) is None:  # a new digit: its first answers, then the turn
        angle = memory.angle()
        with area.container():
            turn_player(first_frame(image, worker.answers(image, angle), labels, angle, truth=truth, caption=PICTURE,
                                    pending=f"Computing every model's answer at all {len(SWEEP_ANGLES)} angles ..."))
        worker.sweep(image, SWEEP_ANGLES)
    with area.container():
        turn(image, truth)

guide.show("draw")
with st.expander("Every model's answer, every 15°"):
    st.table(sweep_table(worker.sweep(image, SWEEP_ANGLES), labels, TABLE_ANGLES))
    st.caption("Each cell is the digit a model gives with the input turned by that angle (rows); red where it "
               "differs from the model's answer upright.")

with st.expander("Why can a model that ignores rotation mix up 6 and 9?"):
    st.markdown(
        "A 9 is, roughly, a 6 turned by 180°. A GCNN pools its features over every rotation, so it sees only what "
        "stays the same when the digit turns: it cannot use \"the loop is at the bottom\". It tells the two apart by "
        "handwriting style (a 6 usually has a larger, rounder loop under a curved open stroke, a 9 a smaller loop on "
        "a straighter stem) and by where the ink's mass sits relative to the centre of the picture, i.e. how far the "
        "loop lies from it. Where someone's 6 looks like their 9 upside down, nothing is left to separate them and "
        "a rotation-invariant model can only guess. The plain CNN sees where things are (a loop at the bottom "
        "means 6): that is why it reads an upright digit easily and a turned one badly.\n\n"
        "Measured on 965 MNIST 6s and 9s it never trained on, asked only \"6 or 9?\": the plain CNN is right "
        "99.9% of the time upright; `gcnn_best` 96.1%, and a network of its design trained on nothing but 6s and "
        "9s 96.2%. So most of what `gcnn_best` gets wrong upright is this pair, and it is the price of giving the "
        "same answer at every angle (`benchmarks/bench_six_nine.py`)."
    )
