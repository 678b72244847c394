"""Feature maps that show equivariance: turn (or mirror) the digit, and its maps turn and move around the ring."""

import math

import streamlit as st
import torch

from gcnn import DihedralGroup
from gcnn.app import ui
from gcnn.app.feature_maps import (
    ROUNDING,
    Transformation,
    compare,
    describe,
    element_label,
    element_transformation,
    find_element,
    group_label,
    largest_differences,
    orbit,
    ring_layout,
    strongest_channel,
    transform_images,
    untrained_model,
)
from gcnn.app.plotting import colour_bar, equivariance_curve, ring_animation, ring_figure, vector_heatmap
from gcnn.app.samples import sample_digit

# Dihedral groups have no shipped model: the page builds a small untrained one for them.
DEMOS = {"demo_d4": ("D4 demo (untrained)", 4), "demo_d8": ("D8 demo (untrained)", 8)}
CURVE_STEP = 5  # degrees between the angles of the error curve, and of the turn slider

ui.page_setup("Feature maps", "🧩")
models, problems = ui.shipped_models()
ui.require_models(models, problems)
if "angle" in st.session_state:  # the Draw page's slider; its widget state is gone once that page is left
    st.session_state["fm_draw_angle"] = st.session_state["angle"]


@st.cache_resource(show_spinner=False)
def demo_model(order: int) -> torch.nn.Module:
    return untrained_model(DihedralGroup(order))


def model_for(name: str) -> torch.nn.Module:
    return demo_model(DEMOS[name][1]) if name in DEMOS else models[name].model


def label_for(name: str) -> str:
    return DEMOS[name][0] if name in DEMOS else models[name].label


@st.cache_data(show_spinner=False, max_entries=32)
def comparison_for(name: str, digit: bytes, angle: float, mirrored: bool):
    """Every layer's maps under one transformation, and the pooled vectors of the digit and its transformed copy."""
    image, transformation = ui.digit_from_key(digit), Transformation(angle, mirrored)
    model = model_for(name)
    layers = compare(model, image, transformation)
    with torch.no_grad():
        pooled = model.invariant_features(torch.stack([image, transform_images(transformation, image)]))
    return layers, pooled


@st.cache_data(show_spinner=False, max_entries=16)
def curve_for(name: str, digit: bytes, mirrored: bool, angles: tuple[float, ...]):
    """Largest differences ``[angles, layers]`` for the digit turned by every angle (one forward pass)."""
    transformations = [Transformation(a, mirrored) for a in angles]
    return largest_differences(model_for(name), ui.digit_from_key(digit), transformations)


@st.cache_data(show_spinner=False, max_entries=16)
def orbit_for(name: str, digit: bytes, layer: int):
    """The digit under every element of the model's group, and that layer's maps of each: ``[|G|, ...]``."""
    model = model_for(name)
    group = model.group
    images, maps = orbit(model, ui.digit_from_key(digit), [element_transformation(group, g)
                                                            for g in range(group.order)])
    return images[1:], maps[layer].tensor[1:]


@st.cache_data(show_spinner=False, max_entries=16)
def answers_under_group(name: str, digit: bytes) -> list[dict]:
    """The model's own self-check (``check_equivariance``): how much its logits change under each group element."""
    model = model_for(name)
    return [{"element": element_label(model.group, result.element), "exact pixel move": result.exact,
             "change of the logits": result.error}
            for result in model.check_equivariance(ui.digit_from_key(digit)[None])]


choices = [*models, *DEMOS]
name = st.selectbox("Model", choices, index=choices.index("gcnn_c4") if "gcnn_c4" in models else 0,
                    format_func=label_for, key="fm_model")
ui.sidebar(models, in_use=label_for(name))
model = model_for(name)
group = model.group  # a plain CNN has the trivial group, C1
if name in DEMOS:
    st.info(f"No shipped model uses a dihedral group, so this {DEMOS[name][1] * 2}-element "
            f"{group_label(group)} network is built here with random weights (seed 0), untrained: its answers mean "
            "nothing, but equivariance is a property of the architecture, not of training, so its maps show it all the "
            "same. Its inner ring holds the mirrored elements.")

image = st.session_state.get("digit")
source = "your digit from the Draw & rotate page" if image is not None else "a sample digit (draw your own on " \
    "the Draw & rotate page and come back)"
image = sample_digit() if image is None else image
digit = ui.digit_key(image)

# -- the transformation ------------------------------------------------------------------------------------------
group_angles = sorted({round(math.degrees(float(group.angle(g))), 6) for g in range(group.order)})
angles = sorted({*range(0, 360, CURVE_STEP), *group_angles})
turn, mirror, follow = st.columns([3, 1, 1])
draw_angle = st.session_state.get("fm_draw_angle")
following = follow.toggle(f"Follow the Draw page ({draw_angle}°)" if draw_angle is not None else "Follow the Draw page",
                          key="fm_follow", disabled=draw_angle is None,
                          help="Use the angle of the Draw & rotate page's slider.")
angle = turn.select_slider(
    "Turn the input by", angles, value=90, key=f"fm_angle_{name}", disabled=following,
    format_func=lambda a: f"{a:g}°" + (" · group element" if a in group_angles else ""),
    help="Angles marked 'group element' are in the model's group: there the maps must follow exactly (up to "
         "interpolation for elements that are not quarter turns). Between them, equivariance is only approximate.")
if following and draw_angle is not None:
    angle = float(draw_angle)
has_mirror = bool(group.is_mirrored(group.elements()).any())
mirrored = mirror.toggle("Mirror first", key=f"fm_mirror_{name}", disabled=not has_mirror,
                         help="Flip left-right before turning (dihedral groups only).")
mirrored = mirrored and has_mirror
transformation = Transformation(float(angle), mirrored)
element = find_element(group, transformation)

layers, pooled = comparison_for(name, digit, transformation.angle, mirrored)
left, right = st.columns([3, 2])
layer = left.selectbox("Layer", range(len(layers)), key=f"fm_layer_{name}", format_func=lambda i: (
    f"{layers[i].name}: {layers[i].maps.shape[0]} channels on {group_label(layers[i].group)}, "
    f"{layers[i].maps.shape[-1]}x{layers[i].maps.shape[-2]} maps"))
chosen = layers[layer]
strongest = strongest_channel(chosen.maps)
channel = right.selectbox("Channel", range(chosen.maps.shape[0]), index=strongest, key=f"fm_channel_{name}_{layer}",
                          format_func=lambda c: f"channel {c}" + (" (clearest turn)" if c == strongest else ""))

# -- the verdict -------------------------------------------------------------------------------------------------
layer_group = chosen.group
g_name = transformation.label
if element is not None:
    kind = "a quarter turn or mirror: pixels move exactly" if transformation.exact else \
        "in the group, but not a quarter turn: the image, kernels and maps are resampled bilinearly, so the maps " \
        "match only approximately, and on maps a few pixels wide not much better than between elements"
    st.markdown(f"Input: {source}, transformed by **g = {g_name}**, an element of {group_label(group)} ({kind}).")
elif layer_group.order == 1:
    st.markdown(f"Input: {source}, turned by **{g_name}**. A plain CNN has no group axis: nothing says how its maps "
                "should move, so the turned maps are compared with the maps simply turned.")
else:
    step = 360 / group.rotation_order
    st.markdown(f"Input: {source}, turned by **{g_name}**, which is *between* the elements of "
                f"{group_label(group)} (every {step:g}°). The network is only **approximately equivariant** here: "
                f"the turned maps are compared with the maps turned by {g_name} and moved "
                f"{transformation.angle % step / step:.0%} of a step "
                "around the ring (a blend of the two neighbouring positions). How close they come is the measured "
                "error below.")
words = describe(chosen.channel_largest(channel))
st.markdown(f"**{chosen.name}, channel {channel}: {words}.**  (Whole layer: {describe(chosen.largest)}.)")

# -- four rings ---------------------------------------------------------------------------------------------------
positions = ring_layout(layer_group)
hover = [f"group element {element_label(layer_group, h)}" for h in range(layer_group.order)]
small = layer_group.rotation_order <= 8
labels = [element_label(layer_group, h).replace(" + mirror", "") if not bool(layer_group.is_mirrored(h)) and
          (small or layer_group.quarter_turns(h) is not None) else "" for h in range(layer_group.order)]
tracked = find_element(layer_group, transformation)
maps, moved = chosen.maps[channel], chosen.moved[channel]
actual, difference = chosen.maps_transformed[channel], chosen.difference[channel]
limit = max(float(torch.stack([maps, moved, actual]).nan_to_num().abs().max()), 1e-6)
transformed_image = transform_images(transformation, image)[0]
rings = [
    (maps, "1 · maps of the digit: f(x)", dict(centre=image[0], tracked=0)),
    (moved, "2 · moved by g: g·f(x)", dict(centre_text="g · f(x)", tracked=tracked)),
    (actual, "3 · maps of the transformed digit: f(g·x)", dict(centre=transformed_image, tracked=tracked)),
    (difference, "4 · difference: 3 − 2", dict(centre_text=f"max {chosen.channel_largest(channel):.0e}"
                                                .replace("e-0", "e-"))),
]
for row in (rings[:2], rings[2:]):
    for column, (values, title, extra) in zip(st.columns(2), row, strict=True):
        column.plotly_chart(ring_figure(values.nan_to_num(), positions, limit=limit, hover=hover, title=title,
                                        labels=labels, **extra), width="content", key=f"fm_ring_{title[0]}",
                            config={"displayModeBar": False})
st.plotly_chart(colour_bar(limit, "activation (rings 1-3) and difference (ring 4), one scale"), width="stretch",
                key="fm_colour_bar", config={"displayModeBar": False})
st.caption(
    "Each ring is one channel's group feature map: one map per group element, placed at that element's angle "
    "(the identity at the top, counter-clockwise"
    + (", mirrored elements on the inner ring" if has_mirror else "") + "). Turning the input turns every map "
    "*and* turns the ring: the thick frame follows the identity's map to its new place. Ring 4 is ring 3 minus "
    "ring 2" + ("" if transformation.exact else ", compared inside the disc a turn keeps in view") + ": white "
    "means equal.")

# -- animation and error curve --------------------------------------------------------------------------------------
st.subheader("Stepping through the group")
animation, curve = st.columns([2, 3])
with animation:
    orbit_images, orbit_maps = orbit_for(name, digit, layer)
    if orbit_maps.shape[2] == group.order:
        frames = [orbit_maps[g, channel] for g in range(group.order)]
        frame_limit = max(float(orbit_maps[:, channel].abs().max()), 1e-6)
        st.plotly_chart(ring_animation(frames, [orbit_images[g, 0] for g in range(group.order)], positions,
                                       limit=frame_limit, hover=hover, labels=labels, tracked=list(range(group.order)),
                                       frame_names=[element_label(group, g) for g in range(group.order)],
                                       title=f"f(g·x) for every g in {group_label(group)}"),
                        width="content", key="fm_animation", config={"displayModeBar": False})
        st.caption("Press play: the digit in the middle runs through every group element, and the ring of maps "
                   "turns with it, each map turned the same way.")
    else:
        st.info("This layer's group differs from the model's input group, so the animation is not drawn.")
with curve:
    differences = curve_for(name, digit, mirrored, tuple(float(a) for a in angles))
    ui.chart(equivariance_curve(angles, {item.name: differences[:, i].tolist() for i, item in enumerate(layers)},
                                group_angles, "f(g·x) against g·f(x) at every angle", ROUNDING), "fm_curve")
    st.caption("Diamonds mark the group's elements. Quarter turns (and mirrors) move pixels exactly, so an "
               "equivariant network's maps match up to float rounding there; other elements resample images and "
               "kernels, and angles between elements are matched only approximately: the network is exactly "
               "equivariant to its group, not to every angle.")

# -- every layer, and the pooled vector ----------------------------------------------------------------------------
st.subheader("Every layer under g = " + g_name)
st.dataframe([{"layer": item.name, "largest difference (of the maps' range)": item.largest,
               "in words": describe(item.largest).split(": ", 1)[-1], "group": group_label(item.group),
               "channels": item.maps.shape[0]} for item in layers],
             hide_index=True, width="stretch", column_config={
                 "largest difference (of the maps' range)": st.column_config.NumberColumn(format="%.1e")})
change = float((pooled[1] - pooled[0]).abs().max() / pooled[0].abs().max().clamp_min(1e-12))
st.subheader("The pooled vector")
st.markdown(f"Pooling each channel over space (and, in a GCNN, over the group axis) forgets where (and at which "
            f"orientation) a pattern was found. Under g = {g_name} its largest change is **{change:.1e}** of its "
            "largest value"
            + (": the classifier sees the same vector, so it gives the same answer." if change < ROUNDING else "."))
ui.chart(vector_heatmap(pooled, ["digit x", f"g·x ({g_name})"], "Pooled vector, one value per channel"), "fm_pooled")

st.subheader("The answer under every group element")
st.markdown("The model checks itself: the relative change of its logits when the digit "
            "is transformed by each element of its group. Exact pixel moves leave it at float rounding; the other "
            "elements resample the digit, so the answer changes a little.")
st.dataframe(answers_under_group(name, digit), hide_index=True, width="stretch",
             column_config={"change of the logits": st.column_config.NumberColumn(format="%.1e")})
