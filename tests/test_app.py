"""Every page runs under Streamlit's AppTest, with models and data present, missing, or broken."""

from __future__ import annotations

import base64
import io
import json
import re
import types

import numpy as np
import pytest
from app_pages import ROOT, player, players, run_page
from drawings import drawn_seven
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from gcnn.app import memory, ui
from gcnn.app.preprocess import ink_from_array, mnist_preprocess
from gcnn.shipped import REFERENCE_ROTATED, SHIPPED, models_dir

PAGES = ["app.py", "pages/1_Draw_and_rotate.py", "pages/2_Feature_maps.py", "pages/3_Accuracy_vs_angle.py",
         "pages/4_Groups_and_kernels.py", "pages/5_About.py"]


# Each page's charts: (how many have a legend, how many there are), with the evaluated tiny models and a drawing.
CHARTS = {"app.py": (1, 1), "pages/1_Draw_and_rotate.py": (0, 0), "pages/2_Feature_maps.py": (1, 2),
          "pages/3_Accuracy_vs_angle.py": (1, 2), "pages/4_Groups_and_kernels.py": (0, 4), "pages/5_About.py": (0, 0)}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_with_readable_charts_and_words(page, env, canvas, evaluated_models_dir):
    """Every page runs; every chart hides Plotly's mode bar (on a touch screen it stays up over the title) and
    has its legend below the plot (inside or above it covers the curves on a phone); groups are named as people
    say them, and no text shows a function call."""
    env.setenv("GCNN_MODELS_DIR", str(evaluated_models_dir))
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_page(page)
    assert not app.exception, app.exception
    assert app.title[0].value
    legends = 0
    for chart in app.get("plotly_chart"):
        assert json.loads(chart.proto.config)["displayModeBar"] is False, chart.proto.id
        figure = json.loads(chart.proto.spec)
        shown = [t for t in figure["data"] if t.get("showlegend", True) and t.get("name")]
        if len(shown) >= 2 and figure["layout"].get("showlegend") is not False:
            legend = figure["layout"]["legend"]
            assert legend["orientation"] == "h" and legend["y"] < 0 and legend["yanchor"] == "top", chart.proto.id
            legends += 1
    assert (legends, len(app.get("plotly_chart"))) == CHARTS[page]
    texts = [e.value for kind in ("markdown", "caption", "info", "subheader") for e in app.get(kind)]
    texts += [option for box in app.selectbox for option in box.options]  # as shown
    for text in texts:
        assert "order=" not in text and "left_action" not in text and "Group(" not in text, text


def test_home_lists_models_and_guides(env):
    app = run_page("app.py")
    assert not app.exception
    markdown = " ".join(m.value for m in app.markdown)
    assert "equivariant" in markdown
    assert all(label in markdown for label in SHIPPED.values())  # sidebar lists the loaded models
    table = app.dataframe[0].value
    assert list(table["model"]) == list(SHIPPED.values())
    assert list(table.columns)[:3] == ["model", "rotated accuracy", "upright accuracy"]
    assert any("four steps" in m.value for m in app.markdown)  # the guided path


def test_home_opens_on_a_digit_turning_by_itself(env, canvas):
    """Above everything else: the sample 6 turning, a plain CNN beside a GCNN, then the way to draw one's own."""
    app = run_page("app.py")
    demo = player(app)
    assert demo["autoplay"] and demo["loop"] and not demo["report"] and demo["strips"]
    assert [model["name"] for model in demo["models"]] == ["cnn", "gcnn_best"] and len(demo["angles"]) == 72
    app.button(key="draw_your_own").click().run()
    assert not app.exception and app.title[0].value.endswith("Draw & rotate")


def test_home_demonstration_shows_what_it_says_with_the_shipped_models(monkeypatch, fake_mnist):
    """The claim beside it: the plain CNN reads the 6 as a 9 upside down, the GCNN never changes its answer."""
    monkeypatch.setenv("GCNN_MODELS_DIR", str(models_dir()))
    monkeypatch.setenv("GCNN_DATA_DIR", str(fake_mnist))
    cnn, gcnn = player(run_page("app.py"))["models"]
    assert cnn["predicted"][0] == 6 and cnn["predicted"][36] == 9  # 36 steps of 5°: 180°
    assert set(gcnn["predicted"]) == {6}


def test_home_chart_shows_the_pair_at_a_glance(env, evaluated_models_dir):
    env.setenv("GCNN_MODELS_DIR", str(evaluated_models_dir))
    curves = figures(run_page("app.py"))["home_curves"]["data"]
    assert [trace["name"] for trace in curves if trace.get("showlegend", True)] == [SHIPPED["cnn"],
                                                                                    SHIPPED["gcnn_best"]]
    assert len(curves) == len(SHIPPED)  # the others faint, no group marks


def test_draw_page_asks_for_a_drawing_when_the_canvas_is_empty(env, canvas):
    app = run_page("pages/1_Draw_and_rotate.py")
    assert not app.exception
    assert any("draw a digit" in info.value for info in app.info)
    assert not players(app)  # no prediction for a blank canvas
    canvas.drawings["canvas_0"] = np.zeros((280, 280, 4), dtype=np.uint8)  # touched but still blank
    app.run()
    assert not players(app) and any("draw a digit" in info.value.lower() for info in app.info)


def test_draw_page_mnist_digit_and_missing_dataset(env, canvas, tmp_path):
    app = run_page("pages/1_Draw_and_rotate.py")
    app.radio(key="source").set_value("MNIST test digit").run()
    assert not app.exception and len(player(app)["models"]) == len(SHIPPED)
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
    assert len(player(app)["models"]) == len(SHIPPED) - 1


def figures(app: AppTest) -> dict[str, dict]:
    """Every Plotly figure on the page, as its JSON, by the chart's widget key."""
    return {chart.proto.id.rsplit("-", 1)[-1]: json.loads(chart.proto.spec) for chart in app.get("plotly_chart")}


def largest(app: AppTest) -> list[float]:
    return app.dataframe[0].value["difference"].tolist()


def figure(app: AppTest) -> str:
    """The Feature maps page's figure: its HTML."""
    figures = [element.proto.body for element in app.get("html") if "gcnn-figure" in element.proto.body]
    assert len(figures) == 1
    return figures[0]


def flipbook_frames(app: AppTest) -> list[str]:
    """The names of the frames of the page's flip-book (the group played through)."""
    return players(app)[0]["names"]


def words(app: AppTest) -> str:
    return " ".join(m.value for m in app.markdown)


def test_feature_maps_page_shows_equivariance(env):
    app = run_page("pages/2_Feature_maps.py")
    assert not app.exception
    assert app.selectbox(key="fm_model").value == "gcnn_c4"  # opens on the C4 GCNN
    assert app.select_slider(key="fm_angle_gcnn_c4").value == 90
    assert max(largest(app)) < 1e-5  # exact for quarter turns, in every layer
    assert "equal, up to the computer's rounding" in words(app)
    html = figure(app)
    # plain words first, notation second, a line beside each picture, the pictures inline (no media files)
    for title, notation in [("Your digit turned by 90°: its maps", "f(g·x)"),
                            ("The upright digit&#x27;s maps, turned by 90° and moved one step round the ring",
                             "g·f(x)"),
                            ("What is left: the first minus the second", "f(g·x) − g·f(x)"),
                            ("The upright digit&#x27;s maps", "f(x)")]:
        assert title in html and html.index(title) < html.index(notation, html.index(title))
    assert html.count('src="data:image/png;base64,') == 4 and "White: the prediction holds exactly." in html
    assert flipbook_frames(app) == ["g = 0°", "g = 90°", "g = 180°", "g = 270°"]  # one frame per group element

    app.select_slider(key="fm_angle_gcnn_c4").set_value(45).run()  # between C4's elements
    assert not app.exception
    assert min(largest(app)) > 1e-4
    assert "Between the network's own rotations (every 90°)" in words(app)
    assert "moved 0.5 steps round the ring" in figure(app)

    app.selectbox(key="fm_model").set_value("cnn").run()
    assert not app.exception
    assert min(largest(app)) > 1e-3  # the plain CNN is not equivariant
    assert "A plain CNN has no ring" in words(app) and len(flipbook_frames(app)) == 1


def test_feature_maps_layer_box_resets_when_the_model_changes(env):
    app = run_page("pages/2_Feature_maps.py")
    app.selectbox(key="fm_layer_gcnn_c4").set_value(1).run()
    app.selectbox(key="fm_model").set_value("gcnn_best").run()
    assert not app.exception
    assert app.selectbox(key="fm_layer_gcnn_best").value == 0
    assert set(app.dataframe[0].value["group"]) == {"C8, 8 rotations by 45°"}  # the tiny stand-in's group
    assert len(flipbook_frames(app)) == 8


def test_feature_maps_give_a_yardstick_for_rotations_that_blend_pixels(env):
    """A rotation of the model's own group that is not a quarter turn (45° for the tiny C8 stand-in of gcnn_best):
    every row, the lifting convolution first, gets its round trip, and the verdict is measured against it."""
    app = run_page("pages/2_Feature_maps.py")
    app.selectbox(key="fm_model").set_value("gcnn_best").run()
    app.select_slider(key="fm_angle_gcnn_best").set_value(45).run()
    assert not app.exception
    table = app.dataframe[0].value
    assert table["layer"].tolist()[0] == "lifting convolution"
    assert (table["there and back"] > 1e-3).all() and (table["difference"] > 1e-3).all()
    text = words(app)
    assert "The yardstick: the upright digit's maps turned there and back" in text
    assert "In the lifting convolution, channel" in text  # the first row, named as a reader would
    assert "blended pixels" in text and "turning the upright digit's maps there and back alone changes them" in text
    assert "For the turned digit its largest change is" in text and "vector" in text.split("largest change is")[1]
    app.select_slider(key="fm_angle_gcnn_best").set_value(90).run()  # a quarter turn: nothing blends
    assert (app.dataframe[0].value["there and back"] == 0).all()
    assert "A quarter turn, one of the network's own" in words(app)


def test_feature_maps_dihedral_demo_follows_mirrors(env):
    app = run_page("pages/2_Feature_maps.py")
    app.selectbox(key="fm_model").set_value("demo_d8").run()
    assert any("untrained" in info.value for info in app.info)
    app.toggle(key="fm_mirror_demo_d8").set_value(True).run()
    app.select_slider(key="fm_angle_demo_d8").set_value(270).run()
    assert not app.exception
    assert max(largest(app)) < 1e-5  # r^6 s (mirror, then 270°) moves pixels exactly
    assert "mirrored, then turned by 270°" in words(app) and "to the other ring" in figure(app)
    assert len(flipbook_frames(app)) == 16


def test_feature_maps_follow_the_draw_pages_digit_and_angle(env):
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.run()
    app.session_state[memory.DIGIT] = mnist_preprocess(ink_from_array(drawn_seven()))
    app.session_state[memory.DIGIT_WORDS] = "your drawing"
    app.session_state[memory.ANGLE] = 180  # as the Draw page's player leaves it
    app.switch_page("pages/2_Feature_maps.py").run()
    assert not app.exception
    assert app.toggle(key="fm_follow").value  # following by default once there is a drawing
    assert "**Your drawing, turned by 180°.**" in words(app)
    assert app.select_slider(key="fm_angle_gcnn_c4").value == 180 and app.select_slider(key="fm_angle_gcnn_c4").disabled
    app.toggle(key="fm_follow").set_value(False).run()
    app.select_slider(key="fm_angle_gcnn_c4").set_value(45).run()
    assert not app.exception and "**Your drawing, turned by 45°.**" in words(app)  # its own angle, the same digit


def test_feature_maps_without_a_drawing_use_the_sample_and_cannot_follow(env):
    app = run_page("pages/2_Feature_maps.py")
    assert "**A sample digit, turned by 90°.**" in words(app)
    assert app.toggle(key="fm_follow").disabled and not app.toggle(key="fm_follow").value


def test_accuracy_page_with_evaluation_and_recompute(env, evaluated_models_dir):
    env.setenv("GCNN_MODELS_DIR", str(evaluated_models_dir))
    app = run_page("pages/3_Accuracy_vs_angle.py")
    assert not app.exception
    table = app.dataframe[0].value
    assert list(table["model"]) == list(SHIPPED.values())
    # the accuracies first: on a phone the rest is a sideways scroll away
    assert list(table.columns)[:4] == ["model", "rotated (random angle)", "upright", "worst accuracy"]
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
    assert marks == {f"{SHIPPED['gcnn_c4']}: its 4 rotations": [0, 90, 180, 270],
                     f"{SHIPPED['gcnn_best']}: its 8 rotations": [0, 45, 90, 135, 180, 225, 270, 315]}
    confusion = figures(app)["confusion"]["layout"]
    assert confusion["xaxis"]["tickvals"] == list(range(10)) == confusion["yaxis"]["tickvals"]


def test_accuracy_page_without_dataset_hides_only_recompute(env, tmp_path):
    env.setenv("GCNN_DATA_DIR", str(tmp_path / "no_data"))
    app = run_page("pages/3_Accuracy_vs_angle.py")
    assert not app.exception
    assert any("MNIST dataset was not found" in w.value for w in app.warning)
    assert not app.button


def test_groups_page_shows_an_upload_the_way_round_it_came(env):
    picture = Image.new("L", (120, 160), 255)  # a dark 1 on white paper
    ImageDraw.Draw(picture).line([(60, 20), (60, 140)], fill=0, width=14)
    data = io.BytesIO()
    picture.save(data, format="PNG")
    app = run_page("pages/4_Groups_and_kernels.py")
    app.get("file_uploader")[0].set_value(("one.png", data.getvalue(), "image/png"))
    app.run()
    assert not app.exception
    figure = figures(app)["group_action"]
    z = figure["data"][0]["z"]  # Plotly sends arrays as typed arrays: base64 data, dtype and shape
    identity = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(
        [int(n) for n in str(z["shape"]).split(",")])
    assert identity[0].mean() > 0.9 and identity[:, identity.shape[1] // 2].mean() < 0.5  # white paper, dark stroke
    assert "**C8, 8 rotations by 45°**" in [m.value for m in app.markdown]  # the title, above the figure (it wraps)
    assert not figure["layout"].get("title", {}).get("text")


def test_recompute_says_how_long_is_left(monkeypatch):
    """The estimate extrapolates the time so far; none before 2% of the work."""
    texts = []
    bar = types.SimpleNamespace(progress=lambda value, text: texts.append(text), empty=lambda: None)
    monkeypatch.setattr(ui.st, "progress", lambda value, text: bar)
    clock = iter([100.0, 100.5, 110.0, 400.0])
    monkeypatch.setattr(ui.time, "monotonic", lambda: next(clock))
    progress = ui.EtaProgress("starting")
    progress(0.01, "GCNN C4: 5 degrees")
    progress(0.25, "GCNN C4: 90 degrees")
    progress(0.75, "Plain CNN: 90 degrees")
    assert texts == ["GCNN C4: 5 degrees", "GCNN C4: 90 degrees · about 30 s left",
                     "Plain CNN: 90 degrees · about 2 min left"]


def test_groups_page_switches_groups(env):
    app = run_page("pages/4_Groups_and_kernels.py")
    for group in ("C4", "D4", "C16"):
        app.selectbox(key="group").set_value(group).run()
        assert not app.exception
    app.selectbox(key="kernel_model").set_value("gcnn_best").run()
    assert not app.exception
