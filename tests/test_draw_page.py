"""The Draw & rotate page: first answer first, the turn's frames, the table, the Clear button, the wording.

AppTest runs the page; one real-browser test plays the turn and checks that it asks the server for nothing.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from drawings import drawn_seven
from PIL import Image
from streamlit.testing.v1 import AppTest

from gcnn.app import ui
from gcnn.app.preprocess import ink_from_array, mnist_preprocess
from gcnn.app.worker import InferenceWorker
from gcnn.data import rotate
from gcnn.shipped import SHIPPED, SHORT_LABELS, load_shipped

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/1_Draw_and_rotate.py"


@pytest.fixture
def models(tiny_models_dir):
    return load_shipped(tiny_models_dir)[0]


def run_draw_page() -> AppTest:
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.run()  # the first run registers the pages (st.navigation)
    app.switch_page(PAGE).run()
    return app


def turn_frames(app: AppTest) -> dict:
    """The frames the turn player got, as the browser receives them."""
    players = [json.loads(c.proto.json) for c in app.get("bidi_component")
               if c.proto.component_name == "gcnn_turn_player"]
    assert len(players) == 1, "expected one turn player"
    return players[0]


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
    image = mnist_preprocess(ink_from_array(drawn_seven()))
    assert [m.label for m in app.metric] == list(SHIPPED.values())
    for metric, shipped in zip(app.metric, models.values(), strict=True):
        p = answers(shipped.model, image, 0)
        assert (metric.value, metric.delta) == (str(int(p.argmax())), f"{p.max():.0%} sure")


def test_the_turn_has_one_right_frame_per_angle(env, canvas, models):
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_draw_page()
    assert not app.exception
    frames = turn_frames(app)
    angles = list(range(0, 360, 5))
    assert frames["angles"] == angles and frames["start"] == 0
    assert [model["label"] for model in frames["models"]] == list(SHIPPED.values())
    image = mnist_preprocess(ink_from_array(drawn_seven()))
    for index, angle in enumerate(angles):
        expected_pixels = (rotate(image[None], float(angle))[0, 0] * 255).round()
        assert frames["digits"][index].startswith("data:image/png;base64,")
        png = base64.b64decode(frames["digits"][index].split(",", 1)[1])
        assert np.abs(np.asarray(Image.open(io.BytesIO(png)), dtype=float) - expected_pixels.numpy()).max() <= 1
        for model, shipped in zip(frames["models"], models.values(), strict=True):
            p = answers(shipped.model, image, angle)
            assert model["confidence"][index] == pytest.approx(p.max().item(), abs=1e-3)
            assert model["predicted"][index] == int(p.argmax())


def test_the_table_lists_every_15_degrees_with_each_models_digit(env, canvas, models):
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_draw_page()
    assert len(app.table) == 1
    table = app.table[0].value
    angles = list(range(0, 360, 15))
    assert list(table.index) == [f"{a}°" for a in angles]  # angles as rows: readable at 390 px
    assert list(table.columns) == [SHORT_LABELS[name] for name in SHIPPED]
    image = mnist_preprocess(ink_from_array(drawn_seven()))
    for angle, (_, row) in zip(angles, table.iterrows(), strict=True):
        assert list(row) == [int(answers(m.model, image, angle).argmax()) for m in models.values()]


def test_the_slider_moves_the_answers_and_read_outs(env, canvas, models):
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_draw_page()
    captions = [c.value for c in app.caption if c.value.startswith("Reads")]
    assert captions and all("turned by **0°** from your drawing (you chose 0°)" in c for c in captions)  # not 360°
    app.slider(key="angle").set_value(90).run()
    assert not app.exception
    image = mnist_preprocess(ink_from_array(drawn_seven()))
    for metric, shipped in zip(app.metric, models.values(), strict=True):
        assert metric.value == str(int(answers(shipped.model, image, 90).argmax()))
    captions = [c.value for c in app.caption if c.value.startswith("Reads")]
    # The tiny C4 model reads a quarter turn exactly (gcnn_best's stand-in is C8).
    assert any("turned by **90°**" in c and "you chose 90°" in c for c in captions)


def test_clear_gives_an_empty_canvas(env, canvas):
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_draw_page()
    assert len(app.metric) == len(SHIPPED)
    app.button(key="clear").click().run()
    assert not app.exception
    assert canvas.keys[-1] == "canvas_1"  # a new canvas, with nothing drawn on it
    assert not app.metric and any("draw a digit" in i.value for i in app.info)


def test_a_new_digit_after_clear_starts_at_the_angle_the_slider_shows(env, canvas, models):
    """The cleared page draws no slider; the browser then shows it at 0°, and the answers must say 0° too."""
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_draw_page()
    app.slider(key="angle").set_value(90).run()
    app.button(key="clear").click().run()
    canvas.drawings["canvas_1"] = drawn_seven()
    app.run()
    assert not app.exception and app.slider(key="angle").value == 0
    image = mnist_preprocess(ink_from_array(drawn_seven()))
    for metric, shipped in zip(app.metric, models.values(), strict=True):
        assert metric.value == str(int(answers(shipped.model, image, 0).argmax()))
    assert "Rotated by 0°" in [image.caption for element in app.get("image") for image in element.proto.imgs]


def test_coming_back_to_draw_gives_an_empty_canvas(env, canvas):
    """A canvas the page did not draw for a while comes back empty in the browser: the answers must not stay."""
    canvas.drawings["canvas_0"] = drawn_seven()
    app = run_draw_page()
    assert len(app.metric) == len(SHIPPED)
    app.radio(key="source").set_value("Upload").run()
    app.radio(key="source").set_value("Draw").run()
    assert not app.exception
    assert canvas.keys[-1] != "canvas_0" and not app.metric


def test_other_sources_are_named_and_uploads_take_images_only(env, canvas):
    app = run_draw_page()
    app.radio(key="source").set_value("MNIST test digit").run()
    assert not app.exception
    assert any("from the test digit" in c.value for c in app.caption)
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
            turn = page.locator(".st-key-turn")
            before = await turn.locator("img.gcnn-turn-digit").get_attribute("src")
            start_label = await turn.locator(".gcnn-turn-angle").inner_text()
            sent.clear()
            await turn.get_by_role("button", name="▶ Play").click()
            await page.wait_for_function(
                "() => /Turned by [1-9][0-9]+°/.test(document.querySelector('.st-key-turn .gcnn-turn-angle')"
                ".textContent)", timeout=30_000)
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
    answers_by_label = {m.label: m.value for m in app.metric}
    assert answers_by_label[SHIPPED["cnn"]] == "7" and answers_by_label[SHIPPED["gcnn_best"]] == "7"


def test_a_blank_upload_is_told_no_digit_was_found(env, canvas):
    paper = Image.new("RGB", (200, 200), (200, 200, 190))
    data = io.BytesIO()
    paper.save(data, format="PNG")
    app = upload(run_draw_page(), data.getvalue(), "paper.png")
    assert not app.exception and not app.metric
    assert any("No digit was found in the uploaded image" in i.value for i in app.info)
    assert not any("draw" in i.value.lower() for i in app.info)
