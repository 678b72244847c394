"""Every page runs under Streamlit's AppTest, with models and data present, missing, or broken."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from drawings import drawn_seven
from streamlit.testing.v1 import AppTest

from gcnn.app.preprocess import ink_from_array, mnist_preprocess
from gcnn.data import rotate
from gcnn.shipped import REFERENCE_ROTATED, SHIPPED, load_shipped

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["app.py", "pages/1_Draw_and_rotate.py", "pages/2_Feature_maps.py", "pages/3_Accuracy_vs_angle.py",
         "pages/4_Groups_and_kernels.py", "pages/5_About.py"]


def run_page(page: str) -> AppTest:
    """Run the app (``app.py`` declares the pages) and open ``page``."""
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.run()  # the first run registers the pages (st.navigation); switch_page can only find them after it
    if page != "app.py":
        app.switch_page(page).run()
    return app


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs(page, env, canvas):
    app = run_page(page)
    assert not app.exception, app.exception
    assert app.title[0].value


def test_home_lists_models_and_guides(env):
    app = run_page("app.py")
    assert not app.exception
    markdown = " ".join(m.value for m in app.markdown)
    assert "equivariant" in markdown
    assert all(label in markdown for label in SHIPPED.values())  # sidebar lists the loaded models
    table = app.dataframe[0].value
    assert list(table["model"]) == list(SHIPPED.values())


def test_draw_page_asks_for_a_drawing_when_the_canvas_is_empty(env, canvas):
    app = run_page("pages/1_Draw_and_rotate.py")
    assert not app.exception
    assert any("draw a digit" in info.value for info in app.info)
    assert not app.metric  # no prediction for a blank canvas
    canvas.drawings["canvas_0"] = np.zeros((280, 280, 4), dtype=np.uint8)  # touched but still blank
    app.run()
    assert not app.metric and any("draw a digit" in info.value.lower() for info in app.info)


def test_draw_page_predicts_and_rotates(env, canvas):
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_page("pages/1_Draw_and_rotate.py")
    assert not app.exception
    assert [m.label for m in app.metric] == list(SHIPPED.values())
    assert all(m.value.isdigit() for m in app.metric)
    captions = " ".join(c.value for c in app.caption)
    assert "Reads the input as turned by" in captions  # the GCNNs read the rotation off their group axis
    app.slider(key="angle").set_value(90).run()
    assert not app.exception
    assert "you chose 90°" in " ".join(c.value for c in app.caption)
    # a C4 GCNN is exactly invariant to a quarter turn: same answer as at 0 degrees
    app_upright = run_page("pages/1_Draw_and_rotate.py")
    c4 = list(SHIPPED).index("gcnn_c4")
    assert app.metric[c4].value == app_upright.metric[c4].value


def test_draw_page_answers_are_the_models_answers_at_the_slider_angle(env, canvas, tiny_models_dir):
    """The page looks answers up in its cached sweep: they must be what each model says at that angle."""
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_page("pages/1_Draw_and_rotate.py")
    app.slider(key="angle").set_value(35).run()
    models, _ = load_shipped(tiny_models_dir)
    turned = rotate(mnist_preprocess(ink_from_array(drawn_seven()))[None], 35.0)
    for metric, shipped in zip(app.metric, models.values(), strict=True):
        with torch.no_grad():
            p = torch.softmax(shipped.model.eval()(turned), dim=1)[0]
        assert (metric.label, metric.value, metric.delta) == (shipped.label, str(int(p.argmax())),
                                                              f"{p.max():.0%} sure")


def test_draw_page_mnist_digit_and_missing_dataset(env, canvas, tmp_path):
    app = run_page("pages/1_Draw_and_rotate.py")
    app.radio(key="source").set_value("MNIST test digit").run()
    assert not app.exception and len(app.metric) == len(SHIPPED)
    env.setenv("GCNN_DATA_DIR", str(tmp_path / "no_data"))
    app = run_page("pages/1_Draw_and_rotate.py")
    app.radio(key="source").set_value("MNIST test digit").run()
    assert not app.exception
    assert any("MNIST dataset was not found" in w.value and "--data-dir" in w.value for w in app.warning)


def test_missing_models_show_the_training_command(monkeypatch, tmp_path, canvas):
    monkeypatch.setenv("GCNN_MODELS_DIR", str(tmp_path))
    for page in PAGES:
        app = run_page(page)
        assert not app.exception, page
    app = run_page("pages/1_Draw_and_rotate.py")
    warnings = " ".join(w.value for w in app.warning)
    assert "python -m gcnn.train --preset gcnn_c4" in warnings
    assert any("No trained model could be loaded" in e.value for e in app.error)


def test_corrupt_checkpoint_is_reported_and_others_still_load(monkeypatch, tmp_path, tiny_models_dir, canvas):
    for file in tiny_models_dir.iterdir():
        (tmp_path / file.name).write_bytes(file.read_bytes())
    (tmp_path / "gcnn_best.pt").write_bytes(b"garbage")
    monkeypatch.setenv("GCNN_MODELS_DIR", str(tmp_path))
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_page("pages/1_Draw_and_rotate.py")
    assert not app.exception
    assert any("gcnn_best.pt" in w.value and "--preset gcnn_best" in w.value for w in app.warning)
    assert len(app.metric) == len(SHIPPED) - 1


def figures(app: AppTest) -> dict[str, dict]:
    """Every Plotly figure on the page, as its JSON, by the chart's widget key."""
    return {chart.proto.id.rsplit("-", 1)[-1]: json.loads(chart.proto.spec) for chart in app.get("plotly_chart")}


def largest(app: AppTest) -> list[float]:
    return app.dataframe[0].value["largest difference (of the maps' range)"].tolist()


def test_feature_maps_page_shows_equivariance(env):
    app = run_page("pages/2_Feature_maps.py")
    assert not app.exception
    assert app.selectbox(key="fm_model").value == "gcnn_c4"  # opens on the C4 GCNN
    assert app.select_slider(key="fm_angle_gcnn_c4").value == 90
    assert max(largest(app)) < 1e-5  # exact for quarter turns, in every layer
    assert "equal up to float rounding" in " ".join(m.value for m in app.markdown)
    charts = figures(app)
    ring = charts["fm_ring_1"]
    assert sum(trace["type"] == "heatmap" for trace in ring["data"]) == 4 + 1  # C4's ring and the digit inside
    assert len(charts["fm_animation"]["frames"]) == 4  # one frame per group element
    assert [frame["name"] for frame in charts["fm_animation"]["frames"]] == ["0°", "90°", "180°", "270°"]

    app.select_slider(key="fm_angle_gcnn_c4").set_value(45).run()  # between C4's elements
    assert not app.exception
    assert min(largest(app)) > 1e-4
    assert "approximately equivariant" in " ".join(m.value for m in app.markdown)

    app.selectbox(key="fm_model").set_value("cnn").run()
    assert not app.exception
    assert min(largest(app)) > 1e-3  # the plain CNN is not equivariant
    assert len(figures(app)["fm_animation"]["frames"]) == 1


def test_feature_maps_layer_box_resets_when_the_model_changes(env):
    app = run_page("pages/2_Feature_maps.py")
    app.selectbox(key="fm_layer_gcnn_c4").set_value(1).run()
    app.selectbox(key="fm_model").set_value("gcnn_best").run()
    assert not app.exception
    layer = app.selectbox(key="fm_layer_gcnn_best")
    assert layer.value == 0 and "CyclicGroup(order=8)" in layer.format_func(layer.value)
    assert len(figures(app)["fm_animation"]["frames"]) == 8


def test_feature_maps_dihedral_demo_follows_mirrors(env):
    app = run_page("pages/2_Feature_maps.py")
    app.selectbox(key="fm_model").set_value("demo_d8").run()
    assert any("untrained" in info.value for info in app.info)
    app.toggle(key="fm_mirror_demo_d8").set_value(True).run()
    app.select_slider(key="fm_angle_demo_d8").set_value(270).run()
    assert not app.exception
    assert max(largest(app)) < 1e-5  # r^6 s (mirror, then 270°) moves pixels exactly
    charts = figures(app)
    assert len(charts["fm_animation"]["frames"]) == 16
    assert sum(trace["type"] == "heatmap" for trace in charts["fm_ring_1"]["data"]) == 16 + 1


def test_feature_maps_use_the_drawn_digit_and_can_follow_the_draw_angle(env):
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.run()
    app.session_state["digit"] = mnist_preprocess(ink_from_array(drawn_seven()))
    app.session_state["angle"] = 35  # as the Draw page's slider leaves it
    app.switch_page("pages/2_Feature_maps.py").run()
    assert not app.exception
    markdown = " ".join(m.value for m in app.markdown)
    assert "your digit from the Draw & rotate page" in markdown and "**g = 90°**" in markdown
    app.toggle(key="fm_follow").set_value(True).run()
    assert not app.exception
    assert "turned by **35°**" in " ".join(m.value for m in app.markdown)


def test_accuracy_page_with_evaluation_and_recompute(env, evaluated_models_dir):
    env.setenv("GCNN_MODELS_DIR", str(evaluated_models_dir))
    app = run_page("pages/3_Accuracy_vs_angle.py")
    assert not app.exception
    table = app.dataframe[0].value
    assert list(table["model"]) == list(SHIPPED.values())
    # formatted for people: one decimal, "—" where the reference reported nothing
    assert table["reference (rotated)"].tolist() == [f"{REFERENCE_ROTATED[n]:.1%}" if n in REFERENCE_ROTATED else "—"
                                                     for n in SHIPPED]
    assert table["reference (rotated)"].tolist()[:3] == ["44.8%", "—", "85.5%"]
    assert all(re.fullmatch(r"\d+\.\d%", cell) for cell in table["upright"])
    app.select_slider(key="cm_angle").set_value(90).run()
    assert not app.exception
    app.number_input(key="recompute_count").set_value(50)
    app.select_slider(key="recompute_step").set_value(90)
    app.button(key="recompute").click().run()
    assert not app.exception
    assert "recomputed on 50 test images" in " ".join(c.value for c in app.caption)


def test_accuracy_curves_mark_each_gcnns_rotations(env, evaluated_models_dir):
    env.setenv("GCNN_MODELS_DIR", str(evaluated_models_dir))
    app = run_page("pages/3_Accuracy_vs_angle.py")
    curves = figures(app)["curves"]["data"]
    lines = [trace for trace in curves if trace["mode"] == "lines+markers"]
    marks = {trace["name"]: trace["x"] for trace in curves if trace["mode"] == "markers"}
    assert [trace["name"] for trace in lines] == list(SHIPPED.values())
    assert len({trace["line"]["color"] for trace in lines}) == len(SHIPPED)  # one colour per model
    # the tiny stand-ins: gcnn_c4 on C4, gcnn_best on C8
    assert marks == {"GCNN C4 (reference): its 4 rotations": [0, 90, 180, 270],
                     "GCNN best (ours): its 8 rotations": [0, 45, 90, 135, 180, 225, 270, 315]}
    confusion = figures(app)["confusion"]["layout"]
    assert confusion["xaxis"]["tickvals"] == list(range(10)) == confusion["yaxis"]["tickvals"]


def test_every_legend_sits_below_its_plot(env, canvas, evaluated_models_dir):
    """On a phone a legend inside or above the plot covers bars and curves: every legend goes below."""
    env.setenv("GCNN_MODELS_DIR", str(evaluated_models_dir))
    canvas.drawings["canvas_0"] = drawn_seven()
    checked = 0
    for page in PAGES:
        for key, figure in figures(run_page(page)).items():
            shown = [t for t in figure["data"] if t.get("showlegend", True) and t.get("name")]
            if len(shown) < 2 or figure["layout"].get("showlegend") is False:
                continue
            legend = figure["layout"]["legend"]
            assert legend["orientation"] == "h" and legend["y"] < 0 and legend["yanchor"] == "top", (page, key)
            checked += 1
    assert checked >= 3  # the home and accuracy pages' curves, the feature maps page's error curve


def test_accuracy_page_without_dataset_hides_only_recompute(env, tmp_path):
    env.setenv("GCNN_DATA_DIR", str(tmp_path / "no_data"))
    app = run_page("pages/3_Accuracy_vs_angle.py")
    assert not app.exception
    assert any("MNIST dataset was not found" in w.value for w in app.warning)
    assert not app.button


def test_groups_page_switches_groups(env):
    app = run_page("pages/4_Groups_and_kernels.py")
    for group in ("C4", "D4", "C16"):
        app.selectbox(key="group").set_value(group).run()
        assert not app.exception
    app.selectbox(key="kernel_model").set_value("gcnn_best").run()
    assert not app.exception
