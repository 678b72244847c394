"""gcnn: see rotation equivariance.  Run with ``streamlit run app.py``.

This file is the app's entry point: it declares the pages and holds the home page.
"""

import streamlit as st

from gcnn.app import ui
from gcnn.app.plotting import accuracy_curves
from gcnn.shipped import REFERENCE_ROTATED


def home() -> None:
    """What equivariance means, the headline chart, a guide to the pages, the loaded models."""
    st.title("🔄 Group-equivariant CNNs")
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
        st.plotly_chart(accuracy_curves(shown, {n: m.label for n, m in models.items()}), width="stretch")
    else:
        st.info("No evaluation results yet (`models/evaluation.json`). Create them with `python -m gcnn.evaluate`.")

    st.subheader("Explore")
    st.page_link(PAGES["draw"], label="Draw & rotate: draw a digit, turn it, watch each model's answer",
                 icon="✏️")
    st.page_link(PAGES["maps"], label="Feature maps: see maps rotate and shift along the group axis",
                 icon="🧩")
    st.page_link(PAGES["accuracy"], label="Accuracy against angle: curves, table, confusion matrices",
                 icon="📈")
    st.page_link(PAGES["groups"], label="Groups & kernels: group elements acting on images and kernels",
                 icon="🔣")

    st.subheader("Loaded models")
    ui.require_models(models, problems)
    rows = []
    for name, shipped in models.items():
        metrics = (results or {}).get("models", {}).get(name) or {}
        recorded = shipped.metadata.get("metrics", {})
        rows.append({
            "model": shipped.label,
            "parameters": shipped.metadata.get("parameters"),
            "epochs": shipped.metadata.get("epochs_trained"),
            "upright accuracy": metrics.get("upright", recorded.get("test_upright")),
            "rotated accuracy": metrics.get("rotated", recorded.get("test_rotated")),
            "reference (rotated)": REFERENCE_ROTATED.get(name),
        })
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "upright accuracy": st.column_config.NumberColumn(format="percent"),
        "rotated accuracy": st.column_config.NumberColumn(format="percent"),
        "reference (rotated)": st.column_config.NumberColumn(format="percent"),
    })


st.set_page_config(page_title="gcnn: rotation equivariance", page_icon="🔄", layout="wide")
PAGES = {
    "home": st.Page(home, title="Home", icon="🔄", default=True),
    "draw": st.Page("pages/1_Draw_and_rotate.py", title="Draw & rotate", icon="✏️", url_path="draw"),
    "maps": st.Page("pages/2_Feature_maps.py", title="Feature maps", icon="🧩", url_path="feature-maps"),
    "accuracy": st.Page("pages/3_Accuracy_vs_angle.py", title="Accuracy against angle", icon="📈",
                        url_path="accuracy"),
    "groups": st.Page("pages/4_Groups_and_kernels.py", title="Groups & kernels", icon="🔣", url_path="groups"),
    "about": st.Page(ui.README_PAGE, title="About (README)", icon="📖", url_path="about"),
}
st.navigation(list(PAGES.values())).run()
