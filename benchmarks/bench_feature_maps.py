"""How fast the Feature maps page answers: seconds from a change until its figure shows, and until it is complete.

One command starts ``streamlit run app.py`` on a free loopback port (the shipped models unless ``--models-dir``)
and one headless Chromium tab at 1400x1000 opens the Feature maps page, then switches the model GCNN C4 -> C16 ->
C4 -> C16 -> C4, moving the angle slider two steps after each switch.  For every change it prints the seconds
until the figure is shown again (the four ring pictures, nothing stale) and until the page is complete (the
script run has ended, nothing stale, every chart drawn, every picture loaded).  Needs Debian's Chromium at
/usr/bin/chromium (never ``playwright install``).

    python -m benchmarks.bench_feature_maps [--models-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from pathlib import Path

from playwright.async_api import async_playwright

from benchmarks.bench_app_load import CHROMIUM, machine, serve_app, uptime
from gcnn.app import ui
from gcnn.shipped import SHIPPED, models_dir

WAIT_MS = 300_000

COMPLETE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.dataset.testScriptState !== 'notRunning') return false;
  if (document.querySelector('[data-stale="true"], [data-testid="stSkeleton"], [data-testid="stSpinner"]')) {
    return false;
  }
  for (const chart of document.querySelectorAll('[data-testid="stPlotlyChart"]')) {
    if (!chart.querySelector('.main-svg')) return false;
  }
  return [...document.querySelectorAll('img')].every(image => image.complete);
}"""

FIGURE = """() => {
  const figure = document.querySelector('.gcnn-figure');
  return figure !== null && figure.closest('[data-stale="true"]') === null
      && [...figure.querySelectorAll('img')].every(image => image.complete);
}"""

# The run has started: the page is running its script, or has marked what it will replace as stale.
STARTED = """() => document.querySelector('[data-testid="stApp"]').dataset.testScriptState === 'running'
    || document.querySelector('[data-stale="true"]') !== null"""


async def measure(page, change) -> tuple[float, float]:
    """Seconds from ``change()`` (an awaitable action) until the figure shows, and until the page is complete."""
    start = time.perf_counter()
    await change()
    await page.wait_for_function(STARTED, timeout=10_000, polling=20)
    await page.wait_for_function(FIGURE, timeout=WAIT_MS, polling=20)
    figure = time.perf_counter() - start
    await page.wait_for_function(COMPLETE, timeout=WAIT_MS, polling=50)
    return figure, time.perf_counter() - start


async def drive(url: str) -> list[tuple[str, float | None, float]]:
    rows = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                                   args=["--no-sandbox", "--disable-gpu"])
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        start = time.perf_counter()
        await page.goto(f"{url}/{ui.PAGES['maps'].url_path}")
        await page.wait_for_function(COMPLETE, timeout=WAIT_MS)
        rows.append(("open the page (first session: the models load)", None, time.perf_counter() - start))

        async def pick(label: str) -> None:
            await page.get_by_test_id("stSelectbox").filter(has_text=re.compile("^Model")).first.click()
            await page.get_by_role("option", name=label, exact=True).click()

        async def step() -> None:
            await page.get_by_role("slider").first.focus()
            await page.keyboard.press("ArrowRight")

        for name in ["gcnn_best", "gcnn_c4"] * 2:
            rows.append((f"model -> {SHIPPED[name]}", *await measure(page, lambda n=name: pick(SHIPPED[n]))))
            for _ in range(2):
                rows.append(("  an angle step", *await measure(page, step)))
        await browser.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, help="checkpoints to serve (default: gcnn.shipped.models_dir())")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        raise SystemExit("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    before = uptime()
    with serve_app(models_dir(args.models_dir)) as (url, _):
        rows = asyncio.run(drive(url))
    print(f"`python -m benchmarks.bench_feature_maps`: {machine()}; load before: `{before}`, after: `{uptime()}`.\n")
    print("| change | figure shown, s | page complete, s |\n| --- | --- | --- |")
    for change, figure, complete in rows:
        print(f"| {change} | {'—' if figure is None else f'{figure:.2f}'} | {complete:.2f} |")


if __name__ == "__main__":
    main()
