"""Draw (or upload, or pick) a digit, rotate it, and compare every model's answer."""

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from gcnn.app import ui
from gcnn.app.inference import rotation_sweep
from gcnn.app.plotting import digit_image, probability_bars, sweep_heatmap
from gcnn.app.preprocess import EmptyImageError, ImageInputError, ink_from_array, mnist_preprocess, read_upload
from gcnn.data import rotate

SWEEP_ANGLES = list(range(0, 360, 5))  # the slider's steps: moving it only looks answers up

ui.page_setup("Draw & rotate", "✏️")
models, problems = ui.shipped_models()
ui.sidebar(models, in_use="all shipped models")
ui.require_models(models, problems)


@st.cache_data(show_spinner=False, max_entries=32)
def sweep(digit: bytes, model_names: tuple[str, ...]):
    """Every model's answer at every slider angle, one forward pass per model; cached per drawing."""
    return rotation_sweep({n: models[n].model for n in model_names}, ui.digit_from_key(digit), SWEEP_ANGLES)


source = st.radio("Input", ["Draw", "Upload", "MNIST test digit"], horizontal=True, key="source")
left, right = st.columns([1, 1])
image = None
with left:
    try:
        if source == "Draw":
            st.caption("Draw one digit, large, in the middle. The models update when you release the mouse.")
            drawing = st_canvas(stroke_width=20, stroke_color="#FFFFFF", background_color="#000000", height=280,
                                width=280, drawing_mode="freedraw", key="canvas", update_streamlit=True,
                                return_image_data=True)
            if drawing.image_data is None:
                raise EmptyImageError("The canvas is empty: draw a digit to see the predictions.")
            image = mnist_preprocess(ink_from_array(drawing.image_data))
        elif source == "Upload":
            upload = st.file_uploader("An image of one digit (PNG, JPEG, ...)", key="upload")
            if upload is None:
                raise EmptyImageError("Upload an image of a single digit to see the predictions.")
            image = mnist_preprocess(read_upload(upload.getvalue()))
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
    st.stop()
st.session_state["digit"] = image  # the Feature maps page starts from this digit

angle = st.slider("Rotation (degrees, counter-clockwise)", 0, 360, 0, step=5, key="angle")
rotated = rotate(image[None], float(angle))[0]
with right:
    first, second = st.columns(2)
    first.plotly_chart(digit_image(image, "What the networks see"), width="stretch", key="seen")
    second.plotly_chart(digit_image(rotated, f"Rotated by {angle}°"), width="stretch", key="rotated_view")

names = tuple(models)
sweeps = sweep(ui.digit_key(image), names)
probs = {}
columns = st.columns(len(names))
for column, name in zip(columns, names, strict=True):
    at = sweeps[name].index(angle)
    p = probs[models[name].label] = sweeps[name].probabilities[at].tolist()
    digit = max(range(10), key=p.__getitem__)
    column.metric(models[name].label, f"{digit}", f"{p[digit]:.0%} sure", delta_color="off", delta_arrow="off",
                  border=True)
    turned = sweeps[name].read_rotation[at]
    if turned is not None:
        column.caption(f"Reads the input as turned by **{turned:.0f}°** from your drawing (you chose {angle}°), "
                       "from its group axis.")
st.plotly_chart(probability_bars(probs), width="stretch", key="probabilities")
st.plotly_chart(sweep_heatmap({models[n].label: s for n, s in sweeps.items()}, highlight_angle=angle),
                width="stretch", key="sweep")
st.caption("Each cell is the digit a model predicts with the drawing turned by that angle; darker means more "
           "confident. The red line marks the slider.")
