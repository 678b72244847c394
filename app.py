"""gcnn: see rotation equivariance.  Run with ``streamlit run app.py``.

This file is the app's entry point and its home page; the other pages are the scripts in ``pages/``
(Streamlit's classic multipage mode, see ``gcnn.app.ui.PAGES``).
"""

import streamlit as st

from gcnn.app import ui
from gcnn.app.plotting import accuracy_curves
from gcnn.shipped import REFERENCE_ROTATED

ui.page_setup("Group-equivariant CNNs", "🔄")
models, problems = ui.shipped_models()
ui.sidebar(models)

st.markdown(
    "A network is **equivariant** to rotations when rotating its input rotates its internal feature maps in a "
    "predictable way, instead of changing them arbitrarily; pooling those maps over all rotations then gives an "
    "answer that does not change at all. A plain CNN learns upright digits only, while a group-equivariant CNN "
    "(GCNN) has the rotations built into its convolutions, so it recognises digits at any angle without ever "
    "seeing a rotated one."
)

results = ui.evaluation()
if results:
    shown = {name: results["models"][name] for name in models if name in results["models"]}
    ui.chart(accuracy_curves(shown, {n: m.label for n, m in models.items()},
                             ui.group_angles({n: models[n] for n in shown})), "home_curves")
    st.caption("The triangles along the top mark each GCNN's own rotations: there it is built to be invariant "
               "(exactly at quarter turns, which move whole pixels; the others resample the image, so nearly).")
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
ui.people_table(rows, percent=["upright accuracy", "rotated accuracy", "reference (rotated)"],
                counts=["parameters", "epochs"])

