"""gcnn: see rotation equivariance.  Run with ``streamlit run app.py``.

This file is the app's entry point and its home page; the other pages are the scripts in ``pages/``
(Streamlit's classic multipage mode, see ``gcnn.app.ui.PAGES``).  The home page lands the idea first: a bundled
handwritten 6 turns by itself while a plain CNN's answer flips to 9 and a GCNN's holds, then the way to try it.
"""

import streamlit as st

from gcnn.app import guide, ui
from gcnn.app.inference import rotation_sweep
from gcnn.app.plotting import accuracy_curves
from gcnn.app.rotation_view import turn_frames
from gcnn.app.samples import sample_digit
from gcnn.app.turn_player import turn_player
from gcnn.shipped import REFERENCE_ROTATED

DEMO_PAIR = ("cnn", "gcnn_best")  # the plain CNN that flips, the GCNN that holds
DEMO_ANGLES = list(range(0, 360, 5))

ui.page_setup("See rotation equivariance", "🔄")
models, problems = ui.shipped_models()
ui.sidebar(models)


@st.cache_data(show_spinner="Turning the sample digit ...")
def demo_frames(models_dir: str) -> dict | None:
    """The demonstration's frames, computed once per process: the sample 6 at every 5° and the pair's answers
    (``None`` without both models)."""
    if not all(name in models for name in DEMO_PAIR):
        return None
    image = sample_digit("6")
    sweeps = rotation_sweep({name: models[name].model for name in DEMO_PAIR}, image, DEMO_ANGLES)
    return turn_frames(image, sweeps, {name: models[name].label for name in DEMO_PAIR}, report=False, autoplay=True,
                       loop=True, frame_ms=100, picture_px=140, caption="A handwritten 6, turning by itself")


st.markdown("Turn a handwritten **6** upside down and a plain CNN, which learned from upright digits, reads a "
            "**9**. A group-equivariant CNN (GCNN) has the turns built into its layers, so it **keeps its answer** "
            "at every angle, without ever having seen a turned digit.")
frames = demo_frames(str(ui.folders()[1]))
if frames is not None:
    demo, words = st.columns([3, 2], gap="large")
    with demo:
        turn_player(frames)
    with words:  # the button first: on a phone it comes right under the demonstration
        if st.button("Draw your own digit", icon="✏️", type="primary", key="draw_your_own"):
            st.switch_page(ui.PAGES["draw"].script)
        st.markdown("**What you see.** The red strip: every angle where the plain CNN changed its mind. The GCNN's "
                    "strip stays pale: whatever the angle, the same answer.\n\n**Why.** Turning the digit only "
                    "turns and reshuffles what happens inside a GCNN, so what it finally pools is the same. That "
                    "is *equivariance*.")

guide.show("home", "Try it yourself, in four steps")

results = ui.evaluation()
if results:
    shown = {name: results["models"][name] for name in models if name in results["models"]}
    ui.chart(accuracy_curves(shown, {n: m.label for n, m in models.items()}, emphasis=DEMO_PAIR), "home_curves")
    digits = max((entry.get("curve_images", 0) for entry in shown.values()), default=0)
    st.caption(f"The same story on {f'{digits:,} ' if digits else ''}test digits, each turned by every angle: the "
               "plain CNN is right only near upright, the GCNN nearly everywhere. Faint: the other models, side "
               "by side on the Accuracy against angle page.")
else:
    st.info("No evaluation results yet (`models/evaluation.json`). Create them with `python -m gcnn.evaluate`.")

st.subheader("Explore")
cards = {"draw": "Draw a digit, turn it, and watch each model's answer change, or not.",
         "maps": "Look inside: the feature maps turn and move around a ring as the digit turns.",
         "accuracy": "Accuracy at every angle, the results table, and confusion matrices.",
         "groups": "The groups acting on a picture, and a trained GCNN's kernels."}
pairs = list(cards.items())
for row in (pairs[:2], pairs[2:]):  # row by row, so a phone stacks them in this order too
    for column, (key, text) in zip(st.columns(2), row, strict=True):
        with column:
            ui.page_link_card(key, text)

st.subheader("Loaded models")
ui.require_models(models, problems)
rows = []
for name, shipped in models.items():
    metrics = (results or {}).get("models", {}).get(name) or {}
    recorded = shipped.metadata.get("metrics", {})
    rows.append({  # the accuracies first: on a phone the columns after them are a sideways scroll away
        "model": shipped.label,
        "rotated accuracy": metrics.get("rotated", recorded.get("test_rotated")),
        "upright accuracy": metrics.get("upright", recorded.get("test_upright")),
        "reference (rotated)": REFERENCE_ROTATED.get(name),
        "parameters": shipped.metadata.get("parameters"),
        "epochs": shipped.metadata.get("epochs_trained"),
    })
ui.people_table(rows, percent=["rotated accuracy", "upright accuracy", "reference (rotated)"],
                counts=["parameters", "epochs"])
