"""The real app in a real headless Chromium, at a desktop (1400x900 or 1400x1000) and a phone (390x844) viewport.

Every page opens by its URL on a freshly started server; a digit drawn with the mouse gets every model's answer;
the Draw page fits one screen, marks a changed answer, and keeps its drawing while another page is looked at; no
page logs a console error. Screenshots of every page go to a temporary folder, kept (and its path printed) only
when a test fails.

Needs Debian's Chromium at /usr/bin/chromium (never `playwright install`).
Skipped with a reason when it is absent, unless GCNN_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from benchmarks.bench_app_load import DIGITS, INKED, serve_app
from gcnn.app.ui import PAGES
from gcnn.shipped import SHIPPED, models_dir

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.browser

if not CHROMIUM.exists():
    if os.environ.get("GCNN_REQUIRE_BROWSER") == "1":
        raise RuntimeError("GCNN_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing: apt-get install chromium")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Error as PlaywrightError  # noqa: E402
from playwright.sync_api import Locator, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, request) -> Iterator[Path]:
    """Screenshots and server logs; removed after the module unless a test failed (then its path is printed)."""
    folder = tmp_path_factory.mktemp("browser_artifacts")
    failed_before = request.session.testsfailed
    yield folder
    if request.session.testsfailed > failed_before:
        print(f"\nbrowser test artifacts (screenshots, server logs): {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def app_url(evaluated_models_dir, fake_mnist, artifacts) -> Iterator[str]:
    """A server with the tiny models and their evaluation, so every chart is drawn."""
    with serve_app(evaluated_models_dir, fake_mnist, artifacts / "streamlit.log") as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def open_page(browser, viewport: dict[str, int], request, artifacts: Path) -> Iterator[Page]:
    page = browser.new_page(viewport=viewport)
    yield page
    report = getattr(request.node, "rep_call", None)  # set by the hook in conftest.py
    if report is not None and report.failed:
        page.screenshot(path=str(artifacts / f"{request.node.name}-failed.png"), full_page=True)
    page.close()


@pytest.fixture
def page(browser, request, artifacts):
    yield from open_page(browser, DESKTOP, request, artifacts)


@pytest.fixture
def phone(browser, request, artifacts):
    yield from open_page(browser, PHONE, request, artifacts)


def finished(page: Page) -> None:
    """Wait until the page is complete: its script run has ended (Streamlit marks the state on the app's root
    element) and every element is drawn (charts load their code lazily, showing a skeleton meanwhile, sometimes
    seconds after the run)."""
    expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')).to_have_count(
        1, timeout=60_000)
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=60_000)


def goto(page: Page, app_url: str, key: str) -> None:
    """Open page ``key`` of ``PAGES`` by its URL; wait until its title (led by its icon) shows and its run ends."""
    entry = PAGES[key]
    page.goto(f"{app_url}/{entry.url_path}")
    expect(page.get_by_role("heading", level=1).filter(has_text=entry.icon)).to_be_visible(timeout=60_000)
    finished(page)
    # A deep link opened as the server's first session once raised a modal "Page not found" dialog (a `pages/`
    # folder made Streamlit start in its legacy multipage mode); its backdrop swallowed every mouse event.
    expect(page.get_by_test_id("stDialog")).to_have_count(0)


# For every Plotly figure on the page: the boxes of its plot area, legend and title (null where absent).
FIGURE_BOXES = """() => [...document.querySelectorAll('.js-plotly-plot')].map(plot => {
    const box = selector => {
        const element = plot.querySelector(selector);
        if (!element) return null;
        const r = element.getBoundingClientRect();
        return r.width && r.height ? {top: r.top, bottom: r.bottom, left: r.left, right: r.right} : null;
    };
    return {key: plot.closest('[class*="st-key-"]')?.className.match(/st-key-(\\S+)/)?.[1] ?? '',
            plot: box('.cartesianlayer .bg, .nsewdrag'), legend: box('g.legend'), title: box('g.g-gtitle')};
})"""


def screenshot(page: Page, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main element, so the viewport is stretched to it for the shot."""
    viewport = page.viewport_size
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], min(height, 8000))})
    page.screenshot(path=str(path))
    page.set_viewport_size(viewport)


def overlap(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def check_figures(page: Page, key: str) -> int:
    """Legends below their plot area and clear of the title, in the rendered DOM; returns how many legends."""
    # Plotly draws after the script run has ended: wait until every chart on the page has its SVG.
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
        .every(chart => chart.querySelector('.js-plotly-plot .main-svg'))""", timeout=30_000)
    legends = 0
    for figure in page.evaluate(FIGURE_BOXES):
        if figure["legend"] is None or figure["plot"] is None:
            continue
        legends += 1
        assert figure["legend"]["top"] >= figure["plot"]["bottom"] - 1, (key, figure)
        assert figure["title"] is None or not overlap(figure["title"], figure["legend"]), (key, figure)
    return legends


def expect_sidebar_closed(page: Page) -> None:
    """Collapsed, and out of the screen (it would cover the page on a phone)."""
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar).to_have_attribute("data-collapsed", "true")
    page.wait_for_function("s => s.getBoundingClientRect().right <= 1", arg=sidebar.element_handle(), timeout=5_000)


def test_every_page_on_a_phone(app_url, phone, artifacts):
    """390x844: every page by its URL, sidebar collapsed, nothing wider than the screen, legends under plots."""
    legends = 0
    for key in PAGES:
        goto(phone, app_url, key)
        expect_sidebar_closed(phone)
        width = phone.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollWidth")
        assert width <= PHONE["width"], (key, width)
        legends += check_figures(phone, key)
        screenshot(phone, artifacts / f"phone-{key}.png")
    assert legends >= 3  # home and accuracy curves, the feature maps' error curve


def test_sidebar_closes_after_navigating_on_a_phone(app_url, phone):
    goto(phone, app_url, "home")
    phone.get_by_test_id("stExpandSidebarButton").click()
    sidebar = phone.get_by_test_id("stSidebar")
    expect(sidebar).to_have_attribute("data-collapsed", "false")
    sidebar.get_by_role("link", name=PAGES["accuracy"].label).click()
    expect(phone.get_by_role("heading", level=1).filter(has_text=PAGES["accuracy"].icon)).to_be_visible(
        timeout=60_000)
    expect_sidebar_closed(phone)


def check_animation(page: Page) -> None:
    """The Feature maps page's flip-book: one frame per element of the tiny gcnn_c4's C4, and play steps on, in the
    browser."""
    book = page.locator(".gcnn-turn").filter(has=page.locator(".gcnn-turn-flipbook"))
    expect(book.locator(".gcnn-turn-angle")).to_have_text("g = 0°")
    expect(book.locator(".gcnn-turn-slider")).to_have_attribute("max", "3")
    book.get_by_role("button", name="▶ Play").click()
    expect(book.locator(".gcnn-turn-angle")).not_to_have_text("g = 0°", timeout=10_000)


def check_chrome(page: Page) -> None:
    """What .streamlit/config.toml hides: no Deploy button (shown on localhost otherwise), no Streamlit page list
    (it would call the home page "app"); the sidebar holds our links, one per page."""
    expect(page.get_by_test_id("stAppDeployButton")).to_have_count(0)
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    links = page.get_by_test_id("stSidebar").get_by_test_id("stPageLink-NavLink")
    expect(links).to_have_count(len(PAGES))
    assert [text.strip().splitlines()[-1] for text in links.all_inner_texts()] == [e.label for e in PAGES.values()]


def test_every_page_on_a_desktop_by_its_url_on_a_fresh_server(evaluated_models_dir, fake_mnist, browser,
                                                                 artifacts):
    """1400x900.  The server's very first session is a deep link (that once raised "Page not found"); then every
    other page, each by its URL in a new tab: legends under their plots, the feature maps' flip-book, the chrome,
    and no console error."""
    order = ["draw", *(key for key in PAGES if key != "draw")]
    legends = 0
    console = Console()
    with serve_app(evaluated_models_dir, fake_mnist, artifacts / "fresh-server.log") as (url, _):
        for key in order:
            tab = browser.new_page(viewport=DESKTOP)
            console.watch(tab)
            try:
                goto(tab, url, key)
                legends += check_figures(tab, key)
                screenshot(tab, artifacts / f"desktop-{key}.png")
                if key == "maps":
                    check_animation(tab)
                if key == "home":
                    check_chrome(tab)
            finally:
                tab.close()
    assert legends >= 3  # home and accuracy curves, the feature maps' error curve
    console.check()  # no console error on any page opened by its address


def draw(page: Page, strokes: list[list[tuple[float, float]]], attempts: int = 5) -> None:
    """Draw ``strokes`` (points in the canvas's unit square, e.g. ``bench_app_load.DIGITS["6"]``) with real mouse
    input on the drawable canvas (fabric.js listens to mouse events on its upper canvas).

    The component switches fabric's free-drawing brush on only once its initial drawing has loaded (async, and no
    DOM state says when; the load paints the black background onto the lower canvas, so that is waited for), and
    a rerun can replace the canvas: a drawing that left no ink is drawn again, on the canvas found then.
    """
    for _ in range(attempts):
        canvas = page.locator("canvas.upper-canvas").first
        expect(canvas).to_be_visible(timeout=60_000)
        lower = page.locator("canvas.dc-canvas.lower-canvas").first.element_handle()
        try:
            page.wait_for_function("c => c.getContext('2d').getImageData(0, 0, 1, 1).data[3] === 255", arg=lower,
                                   timeout=30_000)
            box = canvas.bounding_box()
            for points in strokes:
                page.mouse.move(box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"])
                page.mouse.down()
                for (x0, y0), (x1, y1) in pairwise(points):
                    for step in range(1, 16):
                        t = step / 15
                        page.mouse.move(box["x"] + (x0 + t * (x1 - x0)) * box["width"],
                                        box["y"] + (y0 + t * (y1 - y0)) * box["height"])
                page.mouse.up()
            page.wait_for_function(INKED, arg=lower, timeout=3_000)
            return
        except PlaywrightError:  # no ink, or the canvas was replaced meanwhile
            continue
    raise AssertionError(f"the canvas took no ink in {attempts} attempts")


def turn_to(page: Page, angle: int) -> None:
    """Turn the Draw page's digit to ``angle`` with the player's slider (keyboard, 5° a step), and wait until the
    server has the angle (the see-inside link names it)."""
    finished(page)
    page.locator(".gcnn-turn-slider").focus()
    page.keyboard.press("Home")
    for _ in range(angle // 5):
        page.keyboard.press("ArrowRight")
    expect(page.locator(".gcnn-turn-angle")).to_have_text(f"Turned by {angle}°")
    expect(page.get_by_text(f"this digit's feature maps, turned by {angle}°")).to_be_visible(timeout=15_000)


def answers_shown(page: Page) -> None:
    """Wait for the full turn: every shipped model's answer, the slider (absent while the turn is computed), and the
    end of the run (a drawing of several strokes reaches the server stroke by stroke)."""
    finished(page)
    expect(page.locator(".gcnn-answer")).to_have_count(len(SHIPPED), timeout=60_000)
    expect(page.locator(".gcnn-turn-slider")).to_be_visible(timeout=60_000)


def test_draw_predict_and_rotate(app_url, page):
    page.goto(f"{app_url}/{PAGES['draw'].url_path}")
    expect(page.get_by_text("draw a digit to see the predictions")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stDialog")).to_have_count(0)
    draw(page, DIGITS["7"])
    for name, label in SHIPPED.items():
        expect(page.locator(f'.gcnn-answer[data-model="{name}"] .gcnn-answer-name')).to_have_text(label,
                                                                                                  timeout=60_000)
    expect(page.locator(".gcnn-answer")).to_have_count(len(SHIPPED))
    digit = page.locator(".gcnn-turn-digit")
    before = digit.get_attribute("src")

    slider = page.locator(".gcnn-turn-slider")
    slider.focus()
    for _ in range(18):  # 18 steps of 5 degrees: 90 degrees
        page.keyboard.press("ArrowRight")
    expect(page.locator(".gcnn-turn-angle")).to_have_text("Turned by 90°")
    expect(digit).not_to_have_attribute("src", before)
    # the settled angle reaches the server: the link inside follows it
    expect(page.get_by_text("this digit's feature maps, turned by 90°")).to_be_visible(timeout=30_000)


ONE_SCREEN = {"width": 1400, "height": 1000}


@pytest.fixture(scope="module")
def shipped_url(artifacts) -> Iterator[str]:
    """A server with the shipped models: what a drawn 6 does depends on trained weights."""
    with serve_app(models_dir(), None, artifacts / "shipped.log") as (url, _):
        yield url


@pytest.fixture
def projector(browser, request, artifacts):
    """1400x1000: a projector's or a laptop's screen."""
    yield from open_page(browser, ONE_SCREEN, request, artifacts)


def inside_viewport(page: Page, locator: Locator, what: str) -> None:
    """Every element ``locator`` matches lies wholly inside the viewport, with the page not scrolled."""
    assert page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollTop") == 0
    for index in range(locator.count()):
        box = locator.nth(index).bounding_box()
        assert box is not None, what
        assert box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= ONE_SCREEN["width"] and \
            box["y"] + box["height"] <= ONE_SCREEN["height"], (what, index, box)


def test_draw_page_fits_one_screen_and_marks_the_plain_cnn_changing_its_mind(shipped_url, projector, artifacts):
    """At 1400x1000 after drawing a 6: the canvas, the angle control, the turned digit, every model's answer (its
    name whole) and every strip in view; at 180° the plain CNN is marked "changed its mind: 6 → 9", the GCNN not."""
    projector.goto(f"{shipped_url}/{PAGES['draw'].url_path}")
    draw(projector, DIGITS["6"])
    answers_shown(projector)
    turn_to(projector, 180)
    projector.screenshot(path=str(artifacts / "draw-one-screen-180.png"))
    for selector, what in [("canvas.upper-canvas", "the canvas"), (".gcnn-turn-slider", "the angle control"),
                           (".gcnn-turn-digit", "the turned digit"), (".gcnn-answer", "an answer"),
                           (".gcnn-strip", "a strip")]:
        inside_viewport(projector, projector.locator(selector), what)
    expect(projector.locator(".gcnn-strip")).to_have_count(len(SHIPPED))
    for name, label in SHIPPED.items():
        shown = projector.locator(f'.gcnn-answer[data-model="{name}"] .gcnn-answer-name')
        expect(shown).to_have_text(label)
        assert shown.evaluate("e => e.scrollWidth <= e.clientWidth && e.scrollHeight <= e.clientHeight"), label
    cnn = projector.locator('.gcnn-answer[data-model="cnn"]')
    expect(cnn).to_have_attribute("data-changed", "true")
    expect(cnn.locator(".gcnn-answer-change")).to_have_text("changed its mind: 6 → 9")
    expect(projector.locator('.gcnn-answer[data-model="gcnn_best"]')).to_have_attribute("data-changed", "false")


def test_the_drawing_and_angle_survive_a_visit_to_another_page(app_url, projector):
    """Draw -> About -> Draw, by the sidebar's links: the strokes are back on the canvas, with the answers at the
    angle left."""
    projector.goto(f"{app_url}/{PAGES['draw'].url_path}")
    draw(projector, DIGITS["6"])
    answers_shown(projector)
    turn_to(projector, 90)
    sidebar = projector.get_by_test_id("stSidebar")
    sidebar.get_by_role("link", name=PAGES["about"].label).click()
    expect(projector.get_by_role("heading", level=1).filter(has_text=PAGES["about"].icon)).to_be_visible(
        timeout=60_000)
    sidebar.get_by_role("link", name=PAGES["draw"].label).click()
    answers_shown(projector)
    expect(projector.locator(".gcnn-turn-angle")).to_have_text("Turned by 90°")
    projector.wait_for_function(INKED, arg=projector.locator("canvas.dc-canvas.lower-canvas").first.element_handle(),
                                timeout=30_000)  # the strokes, drawn again


def test_every_new_drawing_can_be_turned_to_the_angle_of_the_one_before(app_url, projector):
    """Draw, turn to 45°, Clear, draw again, turn to 45° again (three drawings): the server gets each turn.  With one
    player widget for the page, a drawing after Clear inherited the earlier one's settled angle, so this turn
    was no change to Streamlit and the answers stayed at 0° (3 of 6 drawings in a row)."""
    projector.goto(f"{app_url}/{PAGES['draw'].url_path}")
    for index, digit in enumerate(("7", "6", "7")):
        if index:
            projector.get_by_role("button", name="Clear the canvas").click()
            expect(projector.locator(".gcnn-answer")).to_have_count(0, timeout=60_000)
        draw(projector, DIGITS[digit])
        answers_shown(projector)
        turn_to(projector, 45)


def test_on_a_phone_the_turned_digit_and_answers_sit_together_under_the_slider(app_url, phone):
    phone.goto(f"{app_url}/{PAGES['draw'].url_path}")
    draw(phone, DIGITS["7"])
    answers_shown(phone)
    slider = phone.locator(".gcnn-turn-slider").bounding_box()
    digit = phone.locator(".gcnn-turn-digit").bounding_box()
    first, last = phone.locator(".gcnn-answer").first.bounding_box(), phone.locator(".gcnn-answer").last.bounding_box()
    assert slider["y"] + slider["height"] <= digit["y"]  # under the slider
    assert first["x"] >= digit["x"] + digit["width"] and first["y"] < digit["y"] + digit["height"]  # beside it
    assert last["y"] + last["height"] - digit["y"] < PHONE["height"] / 2  # all of them in half a phone's screen


# Opening a page by its address, Streamlit's own start-up asks for <page>/_stcore/health and host-config (trying the
# address as the app's base path) before the real ones; Chromium logs each of those 404s as a console error.
STREAMLIT_PROBE = re.compile(r"/[A-Za-z_]+/_stcore/(health|host-config)$")
PROBE_LOGGED = "Failed to load resource: the server responded with a status of 404 (Not Found)"


class Console:
    """What the browser logs as errors for the tabs it watches: console errors, uncaught exceptions, failed
    requests (Streamlit's own start-up probes apart)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.probes: list[str] = []
        self.failed: list[str] = []

    def watch(self, tab: Page) -> None:
        tab.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        tab.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        tab.on("response", lambda response: (self.probes if STREAMLIT_PROBE.search(response.url) else
                                             self.failed).append(response.url) if response.status >= 400 else None)

    def check(self) -> None:
        assert self.failed == [], self.failed
        assert self.errors == [PROBE_LOGGED] * len(self.probes), (self.errors, self.probes)


def test_no_console_errors_on_any_page(app_url, browser):
    """Every page reached by the sidebar's links and used as a visitor would (a digit drawn, turned, cleared and
    drawn again, the players played): no console error, no uncaught exception, no failed request. (Every page
    opened by its address is watched the same way in the fresh-server test above.)"""
    tab = browser.new_page(viewport=ONE_SCREEN)
    console = Console()
    console.watch(tab)
    try:
        goto(tab, app_url, "home")
        sidebar = tab.get_by_test_id("stSidebar")
        for key, entry in PAGES.items():
            sidebar.get_by_role("link", name=entry.label).click()
            expect(tab.get_by_role("heading", level=1).filter(has_text=entry.icon)).to_be_visible(timeout=60_000)
            finished(tab)
            if key == "draw":
                for digit in ("7", "6"):  # a second drawing replaces the first one's pictures
                    if digit == "6":
                        tab.get_by_role("button", name="Clear the canvas").click()
                        expect(tab.locator(".gcnn-answer")).to_have_count(0, timeout=60_000)
                    draw(tab, DIGITS[digit])
                    answers_shown(tab)
                    turn_to(tab, 45)
            if key in ("home", "draw", "maps"):
                tab.locator(".gcnn-turn").first.get_by_role("button", name="▶ Play").click()
            finished(tab)
        console.check()
    finally:
        tab.close()
