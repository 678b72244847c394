"""Feature maps that show equivariance: turn (or mirror) the digit, and its maps turn and move around the ring.

The figure up top sets the two sides of ``f(g·x) = g·f(x)`` side by side,
with their difference and the maps they come from, each picture with its
words; what takes longer (the error at every angle, the group played through,
the self-check) follows under it.  Everything computed is cached by model,
digit and transformation, so a model or an angle seen before costs a look-up.
"""

import math

import streamlit as st
import torch

from gcnn import DihedralGroup
from gcnn.app import guide, memory, ui
from gcnn.app.feature_maps import (
    APPROXIMATE,
    ROUNDING,
    Transformation,
    compare,
    describe,
    element_label,
    element_transformation,
    find_element,
    group_label,
    largest_differences,
    move_words,
    orbit,
    readable,
    strongest_channel,
    transform_images,
    untrained_model,
    verdict,
)
from gcnn.app.figure import Panel, colour_legend, figure_html
from gcnn.app.plotting import equivariance_curve, vector_heatmap
from gcnn.app.ring_picture import RingLayout, ring_picture
from gcnn.app.rotation_view import png_data_url
from gcnn.app.samples import sample_digit
from gcnn.app.turn_player import flipbook, turn_player

# Dihedral groups have no shipped model: the page builds a small untrained one for them.
DEMOS = {"demo_d4": ("D4 demo (untrained)", 4), "demo_d8": ("D8 demo (untrained)", 8)}
TURN_STEP = 5  # degrees between the slider's angles (the Draw page's steps)
CURVE_STEP = 10  # degrees between the error curve's angles (besides the group's own)

ui.page_setup("Feature maps", "🧩")
models, problems = ui.shipped_models()
ui.require_models(models, problems)


@st.cache_resource(show_spinner=False)
def demo_model(order: int) -> torch.nn.Module:
    return untrained_model(DihedralGroup(order))


def model_for(name: str) -> torch.nn.Module:
    return demo_model(DEMOS[name][1]) if name in DEMOS else models[name].model


def label_for(name: str) -> str:
    return DEMOS[name][0] if name in DEMOS else models[name].label


# Cached as resources, not data: the maps are megabytes of tensors that cache_data would copy (pickle) on every
# look-up; nothing here changes what it gets back.
@st.cache_resource(show_spinner=False, max_entries=16)
def comparison_for(name: str, digit: bytes, angle: float, mirrored: bool):
    """Every layer's maps under one transformation (what the figure needs, so nothing else waits before it)."""
    return compare(model_for(name), ui.digit_from_key(digit), Transformation(angle, mirrored))


@st.cache_resource(show_spinner=False, max_entries=16)
def pooled_for(name: str, digit: bytes, angle: float, mirrored: bool) -> torch.Tensor:
    """The pooled vectors ``[2, C]`` of the digit and its transformed copy."""
    image = ui.digit_from_key(digit)
    with torch.no_grad():
        return model_for(name).invariant_features(torch.stack([image, transform_images(Transformation(angle, mirrored),
                                                                                       image)]))


@st.cache_resource(show_spinner=False, max_entries=16)
def curve_for(name: str, digit: bytes, mirrored: bool, angles: tuple[float, ...]):
    """Largest differences ``[angles, layers]`` for the digit turned by every angle (one forward pass)."""
    transformations = [Transformation(a, mirrored) for a in angles]
    return largest_differences(model_for(name), ui.digit_from_key(digit), transformations)


@st.cache_resource(show_spinner=False, max_entries=16)
def orbit_for(name: str, digit: bytes, layer: int):
    """The digit under every element of the model's group, and that layer's maps of each: ``[|G|, ...]``."""
    model = model_for(name)
    group = model.group
    images, maps = orbit(model, ui.digit_from_key(digit), [element_transformation(group, g)
                                                            for g in range(group.order)])
    return images[1:], maps[layer].tensor[1:]


@st.cache_data(show_spinner=False, max_entries=32)
def orbit_pictures(name: str, digit: bytes, layer: int, channel: int) -> list[str] | None:
    """One ring picture of the channel's maps per group element g, the digit transformed by g in its middle
    (``None`` where the layer's group is not the model's, as after a restriction)."""
    images, maps = orbit_for(name, digit, layer)
    group = model_for(name).group
    if maps.shape[2] != group.order:
        return None
    layout = RingLayout.of(group, size=280)  # a smaller picture: all |G| of them go to the browser at once
    limit = max(float(maps[:, channel].abs().max()), 1e-6)
    return [png_data_url(ring_picture(maps[g, channel], layout, limit=limit, centre=images[g, 0], tracked=g))
            for g in range(group.order)]


@st.cache_data(show_spinner=False, max_entries=16)
def answers_under_group(name: str, digit: bytes) -> list[dict]:
    """The model's own self-check: how much its logits change under each group element."""
    model = model_for(name)
    return [{"element": element_label(model.group, result.element), "exact pixel move": result.exact,
             "change of the logits": result.error}
            for result in model.check_equivariance(ui.digit_from_key(digit)[None])]


# -- the input and the controls ------------------------------------------------------------------------------------
drawn = st.session_state.get(memory.DIGIT)
image = sample_digit() if drawn is None else drawn
words = st.session_state.get(memory.DIGIT_WORDS, "your digit") if drawn is not None else "a sample digit"
digit = ui.digit_key(image)

choices = [*models, *DEMOS]
st.session_state.setdefault("fm_model", "gcnn_c4" if "gcnn_c4" in models else choices[0])
st.session_state.setdefault("fm_follow", drawn is not None)
pick, pick_layer, pick_channel = st.columns([3, 4, 3])
turn, mirror, follow = st.columns([5, 2, 3], vertical_alignment="center")
name = pick.selectbox("Model", choices, format_func=label_for, key="fm_model")
ui.sidebar(models, in_use=label_for(name))
model = model_for(name)
group = model.group  # a plain CNN has the trivial group, C1
group_angles = sorted({round(math.degrees(float(group.angle(g))), 6) for g in range(group.order)})
following = follow.toggle("Follow the Draw page", key="fm_follow", disabled=drawn is None,
                          help="Use the Draw & rotate page's digit and angle (draw a digit there first)." if
                          drawn is None else f"Use the Draw & rotate page's digit and its angle, "
                          f"{memory.angle():g}° now.")
angle_key = f"fm_angle_{name}"
if following and drawn is not None:
    st.session_state[angle_key] = memory.angle()  # the Draw page's angles are all on this slider
st.session_state.setdefault(angle_key, 90)
angle = turn.select_slider(
    "Turn the digit by", sorted({*range(0, 360, TURN_STEP), *group_angles}), key=angle_key, disabled=following,
    format_func=lambda a: f"{a:g}°" + (" · one of its own rotations" if a in group_angles else ""),
    help="The network's own rotations are built in: there its maps must follow exactly (up to blended pixels "
         "for turns that are not quarter turns). Between them it was not built to follow.")
has_mirror = bool(group.is_mirrored(group.elements()).any())
mirrored = mirror.toggle("Mirror first", key=f"fm_mirror_{name}", disabled=not has_mirror,
                         help="Flip left-right before turning (the D demos only: their groups hold mirrors).")
mirrored = mirrored and has_mirror
transformation = Transformation(float(angle), mirrored)
if name in DEMOS:
    st.info(f"No shipped model uses a dihedral group, so this network on {group_label(group)} is built here with "
            "random weights (seed 0), untrained: its answers mean nothing, but equivariance is a property of the "
            "architecture, not of training, so its maps show it all the same.")

layers = comparison_for(name, digit, transformation.angle, mirrored)
layer = pick_layer.selectbox("Layer", range(len(layers)), key=f"fm_layer_{name}", format_func=lambda i: (
    f"{layers[i].name}: {layers[i].maps.shape[0]} channels of {layers[i].maps.shape[-1]} × "
    f"{layers[i].maps.shape[-2]} maps"))
chosen = layers[layer]
strongest = strongest_channel(chosen.maps)
channel = pick_channel.selectbox("Channel", range(chosen.maps.shape[0]), index=strongest,
                                 key=f"fm_channel_{name}_{layer}",
                                 format_func=lambda c: f"channel {c}" + (" (turns most clearly)" if c == strongest
                                                                         else ""))

# -- the verdict, in words -------------------------------------------------------------------------------------------
largest, blending = chosen.channel_largest(channel), chosen.channel_blending(channel)
layer_group = chosen.group
g_name = transformation.label
done = f"{'mirrored, then ' if mirrored else ''}turned by {transformation.angle % 360:g}°"  # what g did to the digit
element = find_element(group, transformation)
if layer_group.order == 1:
    kind = "A plain CNN has no ring: nothing says how its maps should move, so they are compared with the " \
           "upright digit's maps simply turned."
elif element is not None and transformation.exact:
    kind = f"{'A mirror' if mirrored else 'A quarter turn'}, one of the network's own: pixels move exactly."
elif element is not None:
    kind = "One of the network's own rotations, but not a quarter turn: pixels are blended, so the maps can " \
           "only match approximately. The yardstick: the upright digit's maps turned there and back, which " \
           "blending alone changes."
else:
    kind = (f"Between the network's own rotations (every {360 / group.rotation_order:g}°): it was not built to "
            "follow this turn, so its maps follow only roughly.")
where = chosen.name if chosen.name.startswith("layer") else f"the {chosen.name}"  # "layer 2", "the lifting ..."
st.markdown(f"**{words[0].upper()}{words[1:]}, {done}.** {kind} In "
            f"{where}, channel {channel}, the maps of the turned digit and the upright digit's maps "
            f"{move_words(layer_group, transformation)} are "
            f"**{describe(largest, blending)}**.")

# -- the figure ----------------------------------------------------------------------------------------------------
layout = RingLayout.of(layer_group)
tracked = find_element(layer_group, transformation)
maps, moved = chosen.maps[channel], chosen.moved[channel]
actual, difference = chosen.maps_transformed[channel], chosen.difference[channel]
limit = max(float(torch.stack([maps, moved, actual]).nan_to_num().abs().max()), 1e-6)
transformed = transform_images(transformation, image)[0]
if math.isnan(largest):
    what_is_left = "Nothing to compare: this layer's group has no mirror."
elif largest < ROUNDING:
    what_is_left = "White: the prediction holds exactly."
elif largest < APPROXIMATE:
    what_is_left = "Faint colour: close, not exact."
elif largest <= blending:
    what_is_left = "Colour at the edges of strokes, no more than turning these maps there and back leaves."
elif blending >= ROUNDING:
    what_is_left = "Colour: more than turning these maps there and back leaves; the network follows this turn " \
                   "only roughly here."
else:
    what_is_left = "Colour: the maps do not follow the turn."


def picture(values: torch.Tensor, **extra) -> str:
    return png_data_url(ring_picture(values, layout, limit=limit, **extra))


panels = [
    Panel(f"Your digit {done}: its maps", "f(g·x)",
          picture(actual, centre=transformed, tracked=tracked),
          "What the network computes for the turned digit (in the middle).", "maps of the turned digit"),
    Panel(f"The upright digit's maps, {move_words(layer_group, transformation)}", "g·f(x)",
          picture(moved, tracked=tracked),
          "What equivariance predicts, without showing the network the turned digit.",
          "maps of the upright digit, moved"),
    Panel("What is left: the first minus the second", "f(g·x) − g·f(x)", picture(difference), what_is_left
          + ("" if transformation.exact else " Compared inside the circle a turn keeps in view."),
          "difference of the two"),
    Panel("The upright digit's maps", "f(x)", picture(maps, centre=image[0], tracked=0),
          "One map per rotation the network checks, round a ring: 0° at the top, counter-clockwise"
          + (", mirror images inside." if has_mirror else ".") + " The second picture is made from these.",
          "maps of the upright digit"),
]
st.html(figure_html(panels, colour_legend(limit, "one colour scale for all four: blue below zero, white zero, red "
                                                 "above; the thick frame follows the upright map.")))
st.caption(f"Whole layer: {describe(chosen.largest, chosen.blending)}. Where the maps are equal, pooling them over "
           "the ring gives the same answer for the turned digit as for the upright one.")
guide.show("maps")

# -- the group played through, and the error at every angle ----------------------------------------------------------
st.subheader("Stepping through the group")
animation, curve = st.columns([2, 3])
with animation:
    pictures = orbit_pictures(name, digit, layer, channel)
    if pictures is None:
        st.info("This layer's group differs from the model's input group, so the group is not played through here.")
    else:
        elements = [element_transformation(group, g) for g in range(group.order)]
        turn_player(flipbook(pictures, [f"g = {element_label(group, g)}" for g in range(group.order)],
                             [e.angle for e in elements], slider_label="Group element", alt="maps of the turned digit",
                             caption="Press play: the digit in the middle runs through every element of the group, "
                                     "and the ring of maps turns with it, each map turned the same way."))
with curve:
    angles = sorted({*range(0, 360, CURVE_STEP), *group_angles})
    differences = curve_for(name, digit, mirrored, tuple(float(a) for a in angles))
    ui.chart(equivariance_curve(angles, {item.name: differences[:, i].tolist() for i, item in enumerate(layers)},
                                group_angles, "How far the maps are from following, at every angle", ROUNDING),
             "fm_curve")
    st.caption("Diamonds mark the network's own rotations. Quarter turns (and mirrors) move pixels exactly, so an "
               "equivariant network's maps match up to the computer's rounding there; its other rotations blend "
               "pixels, and angles between them it was not built for: it is exactly equivariant to its group, not to "
               "every angle.")

# -- every layer, and the pooled vector ------------------------------------------------------------------------------
st.subheader(f"Every layer, the digit {done}")
# The numbers first and short headers: on a phone only the first two or three columns are in view.
st.dataframe([{"layer": item.name, "difference": item.largest, "there and back": item.blending,
               "in words": verdict(item.largest, item.blending), "group": group_label(item.group)}
              for item in layers],
             hide_index=True, width="stretch", column_config={
                 "difference": st.column_config.NumberColumn(
                     format="%.2g", help="The largest difference of f(g·x) and g·f(x), as a fraction of the maps' "
                                         "range (inside the circle a turn keeps in view)."),
                 "there and back": st.column_config.NumberColumn(
                     format="%.2g", help="The yardstick for rotations that blend pixels: the upright digit's maps "
                                         "turned by g and back, with no network involved (0 where nothing blends).")})
st.caption("A GCNN's first row is its lifting convolution alone (its kernels, before the norm, the ReLU and any "
           "pooling); each row after it is a whole block. \"There and back\" is the yardstick for rotations that blend "
           "pixels: the upright digit's maps turned by g and back, with no network involved.")
pooled = pooled_for(name, digit, transformation.angle, mirrored)
change = float((pooled[1] - pooled[0]).abs().max() / pooled[0].abs().max().clamp_min(1e-12))
st.subheader("The pooled vector")
if change < ROUNDING:
    consequence = "the classifier sees the same vector, so it gives the same answer."
elif change < APPROXIMATE:
    consequence = "nearly the same vector, so the answer rarely changes."
else:
    consequence = "a different vector, so the answer can change."
turned_inputs = model.input_angles()[1:]
if turned_inputs and change >= ROUNDING:
    combined = "keeps the strongest score for each of the ten digits" if model.input_pool == "max" else \
        "averages the scores"
    consequence += (" This model does not answer from this vector alone: it also looks at the digit turned by "
                    f"{', '.join(f'{a:g}°' for a in turned_inputs)} and {combined}.")
st.markdown("Pooling each channel over space (and, in a GCNN, over the ring) forgets where, and at which "
            f"orientation, a pattern was found. For the turned digit its largest change is **{readable(change)}** "
            f"of its largest value: {consequence}")
ui.chart(vector_heatmap(pooled, ["upright digit", f"turned ({g_name})"], "Pooled vector, one value per channel"),
         "fm_pooled")

st.subheader("The answer under every one of its rotations")
st.markdown("The model checks itself: the relative change of its logits when the digit is moved by each element of "
            "its group. Exact pixel moves leave it at the computer's rounding; the other elements blend pixels, so "
            "the answer changes a little.")
st.dataframe(answers_under_group(name, digit), hide_index=True, width="stretch",
             column_config={"change of the logits": st.column_config.NumberColumn(format="%.1e")})
