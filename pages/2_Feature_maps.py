"""Feature maps along the group dimension, for an input and the same input turned by 90 degrees."""

import math

import streamlit as st
import torch

from gcnn.app import ui
from gcnn.app.inference import equivariance_report
from gcnn.app.plotting import digit_image, image_grid
from gcnn.app.samples import sample_digit

ui.page_setup("Feature maps", "🧩")
models, problems = ui.shipped_models()
ui.require_models(models, problems)

name = st.selectbox("Model", list(models), format_func=lambda n: models[n].label, key="fm_model")
shipped = models[name]
ui.sidebar(models, in_use=shipped.label)

image = st.session_state.get("digit")
if image is None:
    image = sample_digit()
    st.caption("Showing a sample digit; draw your own on the Draw & rotate page and come back.")
else:
    st.caption("Showing the digit from the Draw & rotate page.")
turned = torch.rot90(image, 1, dims=(-2, -1))


@st.cache_data(show_spinner=False, max_entries=16)
def report_for(model_name: str, digit: bytes):
    """Maps and equivariance errors for one model and digit; cached, so picking layers and channels is free."""
    return equivariance_report(models[model_name].model, ui.digit_from_key(digit))


report = report_for(name, ui.digit_key(image))
maps, maps_turned = report.maps, report.maps_turned
layer = st.selectbox("Layer", range(len(maps)), format_func=lambda i: f"{maps[i].name}: {maps[i].group!r}, "
                     f"{maps[i].tensor.shape[1]} channels", key="fm_layer")
feature, feature_turned = maps[layer], maps_turned[layer]
channel_count = feature.tensor.shape[1]
channels = st.multiselect("Channels", list(range(channel_count)), default=list(range(min(4, channel_count))),
                          key="fm_channels")
if not channels:
    st.info("Pick at least one channel.")
    st.stop()

group = feature.group
columns = [f"g{g}: {math.degrees(float(group.angle(g))):.0f}°" + (" mirrored" if bool(group.is_mirrored(g)) else "")
           for g in range(group.order)]
rows = [f"ch {c}" for c in channels]
left, right = st.columns(2)
with left:
    st.plotly_chart(digit_image(image, "Input"), width="stretch", key="fm_input")
    st.plotly_chart(image_grid(feature.tensor[0, channels], columns, rows, "Feature maps of the input"),
                    width="stretch", key="fm_maps")
with right:
    st.plotly_chart(digit_image(turned, "Input turned by 90°"), width="stretch", key="fm_input_turned")
    st.plotly_chart(image_grid(feature_turned.tensor[0, channels], columns, rows, "Feature maps of the turned input"),
                    width="stretch", key="fm_maps_turned")

if group.order > 1:
    st.markdown("Turning the input by 90° turns every map by 90° **and** moves it along the group axis: column "
                "`h` of the turned input shows column `r⁻¹h` of the original, turned (for a cyclic group of order "
                "N, a cyclic shift by N/4 columns).")
else:
    st.markdown("A plain CNN has no group axis: its maps for the turned input are simply different maps.")

st.subheader("Measured equivariance")
st.dataframe([{"layer": layer_name, "relative error": error} for layer_name, error in report.map_errors.items()],
             hide_index=True, column_config={"relative error": st.column_config.NumberColumn(format="%.2e")})
st.metric("Pooled invariant vector: relative change under the 90° turn", f"{report.invariant_error:.2e}")
st.plotly_chart(image_grid(torch.stack([report.invariant, report.invariant_rotated])[:, None, None, :],
                           ["invariant vector"], ["input", "turned"], "Pooled vector (one value per channel)"),
                width="stretch", key="fm_invariant")
