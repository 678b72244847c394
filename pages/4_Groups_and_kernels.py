"""Groups acting on an image, and a shipped model's kernels transformed by every group element."""


import streamlit as st
import torch

from gcnn import CyclicGroup, DihedralGroup, GroupConvolution, LiftingConvolution
from gcnn.app import ui
from gcnn.app.feature_maps import element_label, group_label
from gcnn.app.kernels import SHIPPED_HARMONIC, kernel_energy_kept, turned_kernels
from gcnn.app.plotting import image_grid
from gcnn.app.preprocess import ImageInputError, read_picture, square_thumbnail
from gcnn.app.samples import sample_picture

GROUPS = {"C2": CyclicGroup(2), "C4": CyclicGroup(4), "C8": CyclicGroup(8), "C16": CyclicGroup(16),
          "D1 (mirror)": DihedralGroup(1), "D4": DihedralGroup(4), "D8": DihedralGroup(8)}

ui.page_setup("Groups & kernels", "🔣")
models, problems = ui.shipped_models()


def element_titles(group) -> list[str]:
    return [element_label(group, g) for g in range(group.order)]


st.subheader("A group acting on an image")
pick, source = st.columns(2)
group = GROUPS[pick.selectbox("Group", list(GROUPS), index=2, key="group")]
upload = source.file_uploader("Your own picture (optional)", type=["png", "jpg", "jpeg", "webp", "bmp", "gif"],
                              key="group_upload")
picture, dark_ink = sample_picture(), False
if upload is not None:
    try:
        ink, dark_ink = read_picture(upload.getvalue())
        picture = square_thumbnail(ink)  # the group acts on the ink: padding and corners turned in are background
    except ImageInputError as error:
        st.error(f"{error} Showing the bundled picture instead.")
moved = group.resample_image(picture)
ui.chart(image_grid((1 - moved if dark_ink else moved)[None], element_titles(group), title=group_label(group)),
         "group_action")  # shown the way round it was uploaded: dark ink stays dark
st.caption("Each picture is the original moved by one element of the group: turned about its centre by the angle "
           "above it (mirrored left-right first where it says so). Quarter turns and mirrors move whole pixels; "
           "other angles have to blend neighbouring pixels.")
with st.expander("Matrix representations"):
    st.dataframe([{"element": g, "angle": element_titles(group)[g],
                   "matrix (y up)": str(group.matrix_representation(g).round(decimals=3).tolist())}
                  for g in range(group.order)], hide_index=True)

st.subheader("Turning a kernel: pixels or smooth functions")
both = torch.stack([turned_kernels(group, "pixel"), turned_kernels(group, SHIPPED_HARMONIC)])  # [2, |G|, 5, 5]
ui.chart(image_grid(both, element_titles(group), ["pixel basis", "harmonic basis"],
                    f"One kernel as each element of {group_label(group)} turns it", symmetric=True), "basis_kernels")
kept = kernel_energy_kept(both)
st.caption("Top: a kernel stored pixel by pixel. A turn that is not a quarter turn has to blend neighbouring "
           f"pixels, which blurs it: the most blurred copy keeps {kept[0]:.0%} of the kernel's energy. Bottom: a "
           "kernel made of smooth rings and waves (the harmonic basis), turned exactly as a formula and then "
           f"sampled, so every copy is the same shape ({kept[1]:.0%} of the energy at worst). Networks built "
           "from such kernels keep their answers far better between quarter turns.")

st.subheader("Kernels of a trained GCNN")
equivariant = {n: m for n, m in models.items() if m.is_equivariant}
for message in problems.values():
    st.warning(message)
if not equivariant:
    ui.sidebar(models)
    st.info("No trained GCNN is loaded, so there are no kernels to show.")
    st.stop()
name = st.selectbox("Model", list(equivariant), format_func=lambda n: equivariant[n].label, key="kernel_model")
ui.sidebar(models, in_use=equivariant[name].label)
convs = [m for m in equivariant[name].model.modules() if isinstance(m, (LiftingConvolution, GroupConvolution))]

with torch.no_grad():
    lifting = convs[0]
    bank = lifting.transformed_weight()  # [C_out, |G|, C_in, k, k]
    shown = min(4, bank.shape[0])
    ui.chart(image_grid(bank[:shown, :, 0], element_titles(lifting.group), [f"out {o}" for o in range(shown)],
                        f"Lifting kernels, {group_label(lifting.group)}", symmetric=True, show_scale=True),
             "lifting_kernels")
    st.caption("One transformed copy of each kernel per group element.")

    layer = st.selectbox("Group convolution", range(1, len(convs)), format_func=lambda i: f"layer {i}",
                         key="kernel_layer")
    conv = convs[layer]
    out_col, in_col = st.columns(2)
    o = out_col.number_input("Output channel", 0, conv.out_channels - 1, 0, key="kernel_out")
    i = in_col.number_input("Input channel", 0, conv.in_channels - 1, 0, key="kernel_in")
    bank = conv.transformed_weight()[o, :, i]  # [|G| output element, |G| input element, k, k]
    titles = element_titles(conv.group)
    ui.chart(image_grid(bank, [f"h = {t}" for t in titles], [f"g = {t}" for t in titles],
                        f"Group-convolution kernel, {group_label(conv.group)}", symmetric=True, show_scale=True),
             "group_kernels")
    st.caption("Row g is the kernel rotated by g, its group axis (columns h) shifted cyclically.")
