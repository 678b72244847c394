"""The Draw & rotate page: first answer first, the turn's frames, changed answers, what the page remembers.

AppTest runs the page; one real-browser test plays the turn and checks that it asks the server for nothing.
"""

from __future__ import annotations

import asyncio
import base64
import io

import numpy as np
import pytest
import torch
from app_pages import DRAW, player, players, run_page, shown_answers
from drawings import drawn_seven
from PIL import Image
from streamlit.testing.v1 import AppTest

from gcnn.app import memory, ui
from gcnn.app.inference import RotationSweep
from gcnn.app.preprocess import ink_from_array, mnist_preprocess
from gcnn.app.rotation_view import CHANGED, SAME, sweep_table
from gcnn.app.worker import InferenceWorker
from gcnn.data import rotate
from gcnn.shipped import SHIPPED, load_shipped

ANGLES = list(range(0, 360, 5))


@pytest.fixture
def models(tiny_models_dir):
    return load_shipped(tiny_models_dir)[0]


def run_draw_page() -> AppTest:
    return run_page(DRAW)


def drawn() -> torch.Tensor:
    return mnist_preprocess(ink_from_array(drawn_seven()))


def answers(model: torch.nn.Module, image: torch.Tensor, angle: float) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model.eval()(rotate(image[None], float(angle))), dim=1)[0]


def test_the_first_answer_does_not_wait_for_the_turn(env, canvas, models, monkeypatch):
    """With the turn withheld (never cached, never computed), every model's answer at the angle still shows."""

    def withheld(self, image, angles):
        raise RuntimeError("the turn is withheld by the test")

    monkeypatch.setattr(InferenceWorker, "sweep", withheld)
    monkeypatch.setattr(InferenceWorker, "cached_sweep", lambda self, image, angles: None)
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_draw_page()
    assert "withheld" in str(app.exception[0].value)  # the page did ask for the turn, after the answers
    first = player(app)
    assert "Computing every model's answer" in first["pending"] and first["angles"] == [0]
    assert [model["label"] for model in first["models"]] == list(SHIPPED.values())
    for model, shipped in zip(first["models"], models.values(), strict=True):
        p = answers(shipped.model, drawn(), 0)
        assert model["predicted"] == [int(p.argmax())]
        assert model["confidence"] == [pytest.approx(p.max().item(), abs=1e-3)]


def test_the_turn_has_one_right_frame_per_angle(env, canvas, models):
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_draw_page()
    assert not app.exception
    frames = player(app)
    assert frames["angles"] == ANGLES and frames["start"] == 0 and not frames.get("pending")
    assert frames["report"] and frames["strips"] and frames["truth"] is None
    assert [model["label"] for model in frames["models"]] == list(SHIPPED.values())
    image = drawn()
    for index, angle in enumerate(ANGLES):
        expected_pixels = (rotate(image[None], float(angle))[0, 0] * 255).round()
        assert frames["digits"][index].startswith("data:image/png;base64,")
        png = base64.b64decode(frames["digits"][index].split(",", 1)[1])
        assert np.abs(np.asarray(Image.open(io.BytesIO(png)), dtype=float) - expected_pixels.numpy()).max() <= 1
        for model, shipped in zip(frames["models"], models.values(), strict=True):
            p = answers(shipped.model, image, angle)
            assert model["confidence"][index] == pytest.approx(p.max().item(), abs=1e-3)
            assert model["predicted"][index] == int(p.argmax())


def test_the_player_starts_at_the_remembered_angle(env, canvas, models):
    """The angle the visitor settled on (kept by the player's change callback) is where the player starts."""
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_draw_page()
    app.session_state[memory.ANGLE] = 35
    app.run()
    assert not app.exception
    frames = player(app)
    assert frames["angles"][frames["start"]] == 35
    assert shown_answers(frames) == {shipped.label: int(answers(shipped.model, drawn(), 35).argmax())
                                     for shipped in models.values()}
    links = [link.proto.label for link in app.get("page_link") if "See inside" in link.proto.label]
    assert links == ["See inside: this digit's feature maps, turned by 35°"]


def test_a_quarter_turn_leaves_the_c4_gcnns_answer(env, canvas):
    canvas.drawings["canvas_0"] = drawn_seven()
    c4 = next(m for m in player(run_draw_page())["models"] if m["name"] == "gcnn_c4")
    assert c4["predicted"][ANGLES.index(90)] == c4["predicted"][0]  # exactly invariant to quarter turns


def test_the_player_keeps_the_angle_it_was_left_at(monkeypatch):
    """Its change callback copies the angle to a key no widget owns, which survives other pages."""
    key = memory.player_key(b"a digit")
    state = {key: {"angle": 135}}
    monkeypatch.setattr(memory.st, "session_state", state)
    memory.remember_angle(key)
    assert memory.angle() == 135
    assert memory.player_key(b"another digit") != key  # a new digit starts a player of its own


def test_the_table_marks_answers_that_changed():
    """Red where a model's answer differs from its answer upright, whatever the confidence."""
    sweeps = {"steady": RotationSweep([0, 90, 180], torch.tensor([[0.1, 0.9], [0.4, 0.6], [0.3, 0.7]])),
              "fickle": RotationSweep([0, 90, 180], torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))}
    styler = sweep_table(sweeps, {"steady": "Steady", "fickle": "Fickle"}, [0, 90, 180])
    assert styler.data.to_dict("list") == {"Steady": [1, 1, 1], "Fickle": [0, 1, 0]}
    styles = styler._compute().ctx
    colour = {cell: dict(style)["background-color"] for cell, style in styles.items()}
    assert [colour[(row, 1)] for row in range(3)] == [SAME, CHANGED, SAME]
    assert {colour[(row, 0)] for row in range(3)} == {SAME}


def test_the_table_lists_every_15_degrees_with_each_models_digit(env, canvas, models):
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_draw_page()
    assert len(app.table) == 1
    table = app.table[0].value
    angles = list(range(0, 360, 15))
    assert list(table.index) == [f"{a}°" for a in angles]  # angles as rows: readable at 390 px
    assert list(table.columns) == list(SHIPPED.values())  # the models' names, whole
    for angle, (_, row) in zip(angles, table.iterrows(), strict=True):
        assert list(row) == [int(answers(m.model, drawn(), angle).argmax()) for m in models.values()]


def test_clear_gives_an_empty_canvas_and_forgets_the_angle(env, canvas):
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_draw_page()
    app.session_state[memory.ANGLE] = 90
    app.run()
    app.button(key="clear").click().run()
    assert not app.exception
    assert canvas.keys[-1] == "canvas_1" and canvas.initial["canvas_1"] is None  # a new canvas, nothing on it
    assert not players(app) and any("draw a digit" in i.value for i in app.info)
    canvas.drawings["canvas_1"] = drawn_seven()
    app.run()
    frames = player(app)
    assert frames["angles"][frames["start"]] == 0  # the next digit starts upright


def test_the_drawing_survives_a_visit_to_another_page(env, canvas):
    """Draw -> About -> Draw: the canvas is built again from the strokes, with the same answers and angle."""
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_draw_page()
    app.session_state[memory.ANGLE] = 45
    app.run()
    before = player(app)
    app.switch_page("pages/5_About.py").run()
    assert memory.ANGLE in app.session_state
    app.switch_page(DRAW).run()
    assert not app.exception
    assert canvas.keys[-1] == "canvas_1" and canvas.initial["canvas_1"] == {"drawn on": "canvas_0"}
    after = player(app)  # the new canvas sends no picture of the strokes it was given: the digit is remembered
    assert after["id"] == before["id"] and after["angles"][after["start"]] == 45


def test_coming_back_to_drawing_redraws_the_drawing(env, canvas):
    """Upload, then Draw again: the drawing is still there (a new canvas built from its strokes)."""
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_draw_page()
    app.radio(key="source").set_value("Upload").run()
    assert not players(app)
    app.radio(key="source").set_value("Draw").run()
    assert not app.exception
    assert canvas.keys[-1] == "canvas_1" and canvas.initial["canvas_1"] == {"drawn on": "canvas_0"}
    assert player(app)["models"]


def test_wiping_the_canvas_forgets_the_drawing(env, canvas):
    """The canvas's own toolbar can wipe it: the page then asks for a drawing and does not bring the old one back."""
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_draw_page()
    canvas.drawings["canvas_0"] = np.zeros((280, 280, 4), dtype=np.uint8)
    app.run()
    assert not players(app) and memory.DIGIT not in app.session_state
    app.switch_page("pages/5_About.py").run()
    app.switch_page(DRAW).run()
    assert canvas.initial[canvas.keys[-1]] is None and not players(app)


def test_a_test_digit_is_marked_right_or_wrong_and_named(env, canvas):
    app = run_draw_page()
    app.radio(key="source").set_value("MNIST test digit").run()
    app.number_input(key="mnist_index").set_value(3).run()
    assert not app.exception
    test = ui.mnist_test()
    frames = player(app)
    assert frames["truth"] == int(test[1][3])
    assert app.session_state[memory.DIGIT_WORDS] == f"test digit 3 (a {int(test[1][3])})"
    app.switch_page("pages/5_About.py").run()
    app.switch_page(DRAW).run()  # the input and the index are kept too
    assert app.radio(key="source").value == "MNIST test digit" and app.number_input(key="mnist_index").value == 3


def test_uploads_take_images_only(env, canvas):
    app = run_draw_page()
    app.radio(key="source").set_value("Upload").run()
    uploader = app.get("file_uploader")[0].proto
    assert set(uploader.type) >= {".png", ".jpg", ".jpeg"} and ".pdf" not in uploader.type
    assert any("Upload an image" in i.value for i in app.info)


def test_the_page_explains_six_and_nine(env, canvas):
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_draw_page()
    assert any("6 and 9" in e.label for e in app.expander)
    text = " ".join(m.value for m in app.markdown)
    assert "turned by 180°" in text and "handwriting" in text and "mass" in text


@pytest.mark.browser
def test_the_turn_plays_in_the_browser_without_the_server(tiny_models_dir, fake_mnist):
    from benchmarks.bench_app_load import CHROMIUM, DIGITS, TURN_SHOWN, draw, serve_app, wait_canvas_ready

    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async def play(url: str) -> tuple[int, str, str, str]:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                                       args=["--no-sandbox", "--disable-gpu"])
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            sent = []
            page.on("websocket", lambda ws: ws.on("framesent", lambda frame: sent.append(frame)))
            await page.goto(f"{url}/{ui.PAGES['draw'].url_path}")
            await wait_canvas_ready(page)
            await draw(page, DIGITS["7"])
            await page.wait_for_function(TURN_SHOWN, timeout=60_000)
            turn = page.locator(".gcnn-turn")
            before = await turn.locator("img.gcnn-turn-digit").get_attribute("src")
            start_label = await turn.locator(".gcnn-turn-angle").inner_text()
            sent.clear()
            await turn.get_by_role("button", name="▶ Play").click()
            await page.wait_for_function(
                "() => /Turned by [1-9][0-9]+°/.test(document.querySelector('.gcnn-turn-angle').textContent)",
                timeout=30_000)
            after = await turn.locator("img.gcnn-turn-digit").get_attribute("src")
            await browser.close()
            return len(sent), start_label, before, after

    with serve_app(tiny_models_dir, fake_mnist) as (url, _):
        sent, start_label, before, after = asyncio.run(play(url))
    assert start_label == "Turned by 0°"
    assert before != after  # the digit turned
    assert sent == 0  # and the browser asked the server for nothing


def upload(app: AppTest, data: bytes, name: str) -> AppTest:
    app.radio(key="source").set_value("Upload").run()
    app.get("file_uploader")[0].set_value((name, data, "image/jpeg" if name.endswith(".jpg") else "image/png"))
    return app.run()


def test_a_photographed_digit_is_read_through_the_upload_path(monkeypatch, canvas, fake_mnist):
    """A photo-like JPEG (grey paper, gradient light, shadow, noise) of the sample "7": the shipped models read 7."""
    from gcnn.app.photo import photo_like
    from gcnn.app.samples import sample_digit
    from gcnn.shipped import models_dir

    monkeypatch.setenv("GCNN_MODELS_DIR", str(models_dir()))
    monkeypatch.setenv("GCNN_DATA_DIR", str(fake_mnist))
    photo = photo_like(sample_digit(), np.random.default_rng(3))
    app = upload(run_draw_page(), photo.data, "photo.jpg")
    assert not app.exception
    answers_by_label = shown_answers(player(app))
    assert answers_by_label[SHIPPED["cnn"]] == 7 and answers_by_label[SHIPPED["gcnn_best"]] == 7
    app.switch_page("pages/5_About.py").run()
    app.switch_page(DRAW).run()  # the upload is remembered (the uploader itself comes back empty)
    assert shown_answers(player(app)) == answers_by_label
    assert any("photo.jpg" in c.value and "uploaded earlier" in c.value for c in app.caption)


def test_a_blank_upload_is_told_no_digit_was_found(env, canvas):
    paper = Image.new("RGB", (200, 200), (200, 200, 190))
    data = io.BytesIO()
    paper.save(data, format="PNG")
    app = upload(run_draw_page(), data.getvalue(), "paper.png")
    assert not app.exception and not players(app)
    assert any("No digit was found in the uploaded image" in i.value for i in app.info)
    assert not any("draw" in i.value.lower() for i in app.info)
