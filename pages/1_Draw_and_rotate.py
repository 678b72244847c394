"""Draw (or upload, or pick) a digit, rotate it, and compare every model's answer.

The first answer comes first: every model's prediction at the slider's angle
(one small forward pass each) is on screen before the full turn is computed;
the turn (every 5 degrees) then fills in the turn player and the table, and
later slider moves only look answers up.  All inference runs on the process's
one :class:`~gcnn.app.worker.InferenceWorker`, shared by every session.
"""

import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit_drawable_canvas import st_canvas
from torch import Tensor

from gcnn.app import ui
from gcnn.app.inference import RotationSweep
from gcnn.app.preprocess import (
    UPLOAD_TYPES,
    EmptyImageError,
    ImageInputError,
    ink_from_array,
    mnist_preprocess,
    preprocess_upload,
)
from gcnn.app.rotation_view import digit_png, sweep_table, turn_frames
from gcnn.app.turn_player import turn_player
from gcnn.app.worker import InferenceWorker
from gcnn.data import rotate
from gcnn.shipped import SHORT_LABELS

SWEEP_ANGLES = list(range(0, 360, 5))  # the slider's steps and the turn player's frames
TABLE_ANGLES = list(range(0, 360, 15))  # the table's rows: few enough to read on a phone
DIGIT_VIEW_PX = 170  # two side by side, on a phone too
SOURCE_WORDS = {"Draw": "your drawing", "Upload": "the uploaded image", "MNIST test digit": "the test digit"}

ui.page_setup("Draw & rotate", "✏️")
models, problems = ui.shipped_models()
ui.sidebar(models, in_use="all shipped models")
ui.require_models(models, problems)


@st.cache_resource(show_spinner="Starting the inference worker ...")
def inference_worker(models_dir: str) -> InferenceWorker:
    """One worker per process (and models folder), shared by every session."""
    return InferenceWorker({name: shipped.model for name, shipped in models.items()})


worker = inference_worker(str(ui.folders()[1]))
labels = {name: shipped.label for name, shipped in models.items()}


def clear_canvas() -> None:
    """The Clear button and a change of input: the next run draws a canvas with a new key, i.e. a new, empty one
    (a canvas the page stopped drawing comes back empty in the browser, but with its old drawing in the session)."""
    st.session_state["canvas_generation"] = st.session_state.get("canvas_generation", 0) + 1


source = st.radio("Input", list(SOURCE_WORDS), horizontal=True, key="source", on_change=clear_canvas)
left, right = st.columns([1, 1])
image = None
with left:
    try:
        if source == "Draw":
            st.caption("Draw one digit, large, in the middle. The models answer when you lift the mouse or finger.")
            # A new key gives a new, empty canvas: a Clear button that is always visible and works by touch
            # (the canvas's own toolbar appears only on mouse hover).
            generation = st.session_state.setdefault("canvas_generation", 0)
            drawing = st_canvas(stroke_width=20, stroke_color="#FFFFFF", background_color="#000000", height=280,
                                width=280, drawing_mode="freedraw", key=f"canvas_{generation}",
                                update_streamlit=True, return_image_data=True)
            # A callback, not `if st.button(...): ... st.rerun()`: a click costs one run of the page, not two.
            st.button("Clear the canvas", icon="🧽", key="clear", on_click=clear_canvas)
            if drawing.image_data is None:
                raise EmptyImageError("The canvas is empty: draw a digit to see the predictions.")
            image = mnist_preprocess(ink_from_array(drawing.image_data))
        elif source == "Upload":
            upload = st.file_uploader("An image of one digit", type=UPLOAD_TYPES, key="upload")
            if upload is None:
                raise EmptyImageError("Upload an image of a single digit to see the predictions.")
            # Photos and scans are cleaned of lighting, shadows and specks; doubts come back as warnings.
            image, doubts = preprocess_upload(upload.getvalue())
            for doubt in doubts:
                st.warning(doubt)
        else:
            test = ui.mnist_test()
            if isinstance(test, str):
                st.warning(test)
            else:
                index = st.number_input("Test image index", 0, len(test[0]) - 1, 0, key="mnist_index")
                image = test[0][index]
                st.caption(f"Label: {int(test[1][index])}")
    except EmptyImageError as error:
        st.info(str(error).replace("The image is empty: ", ""))
    except ImageInputError as error:
        st.error(str(error))

if image is None:
    # No slider on this page now, so the browser will show the next one at 0°: the session must not keep another.
    st.session_state.pop("angle", None)
    st.stop()
st.session_state["digit"] = image  # the Feature maps page starts from this digit

def read_out(sweep: RotationSweep, angle: int) -> str | None:
    """The caption under a GCNN's card: the turn it reads off its group axis (none for a plain CNN)."""
    turned = sweep.read_rotation[sweep.index(angle)]
    if turned is None:
        return None
    return (f"Reads the input as turned by **{round(turned) % 360}°** from {SOURCE_WORDS[source]} (you chose "
            f"{angle % 360}°), from its group axis.")


@st.fragment
def answers_at_angle(image: Tensor) -> dict[str, DeltaGenerator]:
    """The slider, every model's answer at its angle right under it, and the turned digit.

    A fragment: moving the slider reruns only this, served from the cached turn. On a new digit (no turn
    cached yet) the answers come from one small pass per model, and the read-outs' places are returned for
    the page to fill once the turn is computed.
    """
    angle = st.slider("Rotation (degrees, counter-clockwise)", 0, 360, 0, step=5, key="angle")
    sweeps = worker.cached_sweep(image, SWEEP_ANGLES)
    answers = {n: s.probabilities[s.index(angle)] for n, s in sweeps.items()} if sweeps else \
        worker.answers(image, angle)
    read_outs = {}
    with st.container(horizontal=True, key="answers"):  # wraps to two cards a row on a phone, under the slider
        for name, p in answers.items():
            with st.container(width=170):
                digit = int(p.argmax())
                st.metric(labels[name], f"{digit}", f"{p[digit]:.0%} sure", delta_color="off", delta_arrow="off",
                          border=True, help=labels[name])  # the whole name, where the card cuts it short
                read_outs[name] = st.empty()
                if sweeps and (text := read_out(sweeps[name], angle)):
                    read_outs[name].caption(text)
    with st.container(horizontal=True, key="views"):
        with st.container(width="content", key="seen"):
            st.image(digit_png(image), caption="What the networks see", width=DIGIT_VIEW_PX, output_format="PNG")
        with st.container(width="content", key="rotated_view"):
            st.image(digit_png(rotate(image[None], float(angle))[0]), caption=f"Rotated by {angle}°",
                     width=DIGIT_VIEW_PX, output_format="PNG")  # PNG: Streamlit would make a blurred JPEG of it
    return {} if sweeps else read_outs


with right:
    pending = answers_at_angle(image)  # first answer first

turn_area = st.empty()
if pending:  # a new digit: the turn is computed now, after its first answer is on screen
    with turn_area.container(), st.spinner(f"Computing every model's answer at all {len(SWEEP_ANGLES)} angles ..."):
        sweeps = worker.sweep(image, SWEEP_ANGLES)
    angle = st.session_state["angle"]
    for name, place in pending.items():
        if text := read_out(sweeps[name], angle):
            place.caption(text)
else:
    sweeps = worker.sweep(image, SWEEP_ANGLES)  # cached
with turn_area.container():
    player, table = st.columns(2)
    with player.container(key="turn"):
        turn_player(turn_frames(image, sweeps, labels), key="turn_player")
    player.caption("Press ▶ Play or drag this slider: the turn plays in your browser from answers computed "
                   "once, every 5°.")
    with table.container(key="sweep"):
        st.table(sweep_table(sweeps, {name: SHORT_LABELS.get(name, label) for name, label in labels.items()},
                             TABLE_ANGLES))
    table.caption("Each cell is the digit a model predicts with the input turned by that angle (rows); darker "
                  "means more confident. *rot-aug*: trained on rotated digits; *8-turn*: answers averaged over 8 "
                  "turns of the input.")

with st.expander("Why can a model that ignores rotation mix up 6 and 9?"):
    st.markdown(
        "A 9 is, roughly, a 6 turned by 180°. A GCNN pools its features over every rotation, so it sees only what "
        "stays the same when the digit turns: it cannot use \"the loop is at the bottom\". It tells the two apart by "
        "handwriting style (a 6 usually has a larger, rounder loop under a curved open stroke, a 9 a smaller loop on "
        "a straighter stem) and by where the ink's mass sits relative to the centre of the picture, i.e. how far the "
        "loop lies from it. Where someone's 6 looks like their 9 upside down, nothing is left to separate them and "
        "a rotation-invariant model can only guess. The plain CNN sees where things are (a loop at the bottom "
        "means 6): that is why it reads an upright digit easily and a turned one badly."
    )
