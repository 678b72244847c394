"""Test accuracy against rotation angle, the results table, and confusion matrices per angle."""

import streamlit as st

from gcnn.app import ui
from gcnn.app.plotting import accuracy_curves, confusion_heatmap
from gcnn.evaluate import angle_sweep, curve_subset
from gcnn.shipped import REFERENCE_ROTATED

ui.page_setup("Accuracy against angle", "📈")
models, problems = ui.shipped_models()
ui.sidebar(models, in_use="all shipped models")
ui.require_models(models, problems)
labels = {n: m.label for n, m in models.items()}

results = (ui.evaluation() or {}).get("models", {})
recomputed = st.session_state.get("recomputed")
shown = recomputed or {n: results[n] for n in models if n in results}
if not shown:
    st.info("No evaluation results yet (`models/evaluation.json`). Create them with `python -m gcnn.evaluate`, "
            "or recompute below if the dataset is present.")
else:
    source = (f"recomputed on {next(iter(shown.values()))['curve_images']:,} test images" if recomputed else
              f"from `models/evaluation.json`, {next(iter(shown.values())).get('curve_images', '?'):,} test images "
              "per angle")
    ui.chart(accuracy_curves(shown, labels, ui.group_angles({n: models[n] for n in shown if n in models})), "curves")
    st.caption(f"Curves {source}. Every image is rotated about its centre (bilinear, black fill). The triangles "
               "along the top mark each GCNN's own rotations (multiples of 360°/N): there it is built to be invariant "
               "(exactly at quarter turns, which move whole pixels; nearly at the others, which resample the image), "
               "so its curve peaks; halfway between them (45° + k·90° for C4) it is only approximately invariant, "
               "and its accuracy dips. The C16 GCNN also looks at each digit turned by 22.5°, 45° and 67.5° and "
               "keeps, per digit class, its strongest answer: every angle gets the same four views (up to quarter "
               "turns), so its curve stays flat.")

    st.subheader("Results")
    table = []
    for name in models:
        r = results.get(name)
        if r:  # the accuracies first: on a phone the columns after them are a sideways scroll away
            table.append({"model": labels[name], "rotated (random angle)": r["rotated"], "upright": r["upright"],
                          "worst accuracy": r["worst_accuracy"], "worst angle": f"{r['worst_angle']}°",
                          "reference (rotated)": REFERENCE_ROTATED.get(name), "parameters": r.get("parameters"),
                          "epochs": r.get("epochs")})
    ui.people_table(table, percent=["upright", "rotated (random angle)", "worst accuracy", "reference (rotated)"],
                    counts=["parameters", "epochs"])
    st.caption("Upright and rotated accuracy use the full 10,000-image test set; 'rotated' turns every image by "
               "its own seeded angle in [0°, 360°). The reference tutorial reported 44.8% (CNN) and 85.5% (C4 GCNN).")

    st.subheader("Confusion at one angle")
    pick, when = st.columns(2)
    name = pick.selectbox("Model", list(shown), format_func=lambda n: labels.get(n, n), key="cm_model")
    angles = shown[name]["angles"]
    angle = when.select_slider("Angle (degrees)", angles, value=180 if 180 in angles else angles[0], key="cm_angle")
    ui.chart(confusion_heatmap(shown[name]["confusion"][angles.index(angle)],
                               f"{labels.get(name, name)} at {angle}° (rows: true digit)"), "confusion")
    st.caption("At 180° a 6 looks like a 9: watch those two cells trade places for the plain CNN.")

st.subheader("Recompute")
test = ui.mnist_test()
if isinstance(test, str):
    st.warning(test)
    st.stop()
available = len(test[0])
count = st.number_input("Test images per angle", min(50, available), available, min(100, available), step=50,
                        key="recompute_count", help="Every model sees this many test digits at every angle: more "
                        "images give smoother curves and take proportionally longer.")
step = st.select_slider("Angle step (degrees)", [5, 10, 15, 30, 45], value=15, key="recompute_step")
if st.button("Recompute accuracy against angle", key="recompute"):
    subset = curve_subset(len(test[0]), int(count))
    images, targets = test[0][subset], test[1][subset]
    bar = ui.EtaProgress("starting ...")
    recomputed = {}
    for position, (name, shipped) in enumerate(models.items()):
        def report(fraction: float, text: str, position=position, label=shipped.label) -> None:
            bar((position + fraction) / len(models), f"{label}: {text}")

        sweep = angle_sweep(shipped.model, images, targets, list(range(0, 360, step)), report)
        recomputed[name] = {**sweep, "curve_images": len(subset)}
    bar.empty()
    st.session_state["recomputed"] = recomputed
    st.rerun()
