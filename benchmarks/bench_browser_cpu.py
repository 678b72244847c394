"""What one session of the Draw page costs the browser and the server, in CPU seconds, step by step.

With eight sessions on two cores the browsers, not the server, used most of the CPU, so this is the figure to
watch when the page changes (``benchmarks/bench_app_load.py`` measures the latencies that follow from it).
One Chromium tab on a freshly started app; CPU time (user + system) of every Chromium process and of the server,
read from ``/proc`` before and after each step:

* opening the page until the canvas takes strokes;
* the first drawing until its answers and the turn are shown (the page's first figures: any heavy script they load
  is paid here);
* each later drawing, 3 slider steps after each, and Clear (medians over ``--drawings``).

    python -m benchmarks.bench_browser_cpu [--drawings 6]

Linux only (``/proc``); needs Debian's Chromium at /usr/bin/chromium. Figures from an otherwise idle machine are a
best case: say so when quoting them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from playwright.async_api import async_playwright

from benchmarks.bench_app_load import (
    CHROMIUM,
    DIGITS,
    SETTLED,
    TURN_SHOWN,
    WAIT_MS,
    clear,
    draw,
    machine,
    serve_app,
    step_slider,
    uptime,
    wait_canvas_ready,
)
from gcnn.app import ui
from gcnn.shipped import SHIPPED, models_dir


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (those that have ended count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / 100


def chromium_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if "chromium" in (entry / "cmdline").read_text():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


async def measure(url: str, server_pid: int, drawings: int) -> dict[str, list[tuple[float, float]]]:
    """``step -> [(browser CPU-s, server CPU-s), ...]``."""
    steps: dict[str, list[tuple[float, float]]] = {}
    models = len(SHIPPED)

    def reading() -> tuple[float, float]:
        return cpu_seconds(chromium_pids()), cpu_seconds([server_pid])

    def record(step: str, before: tuple[float, float]) -> None:
        after = reading()
        steps.setdefault(step, []).append((after[0] - before[0], after[1] - before[1]))

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        before = reading()
        await page.goto(f"{url}/{ui.PAGES['draw'].url_path}", timeout=WAIT_MS)
        await wait_canvas_ready(page)
        record("open the page", before)
        names = list(DIGITS)
        for number in range(drawings):
            if number:
                before = reading()
                await clear(page)
                record("Clear", before)
            before = reading()
            await draw(page, DIGITS[names[number % len(names)]], (0.02 * number - 0.05, 0), 0.9)
            await page.wait_for_function(SETTLED, arg=[models, None], timeout=WAIT_MS)
            await page.wait_for_function(TURN_SHOWN, timeout=WAIT_MS)
            await asyncio.sleep(0.3)  # the turn's last paint
            record("first drawing, answers and turn" if number == 0 else "a later drawing, answers and turn", before)
            before = reading()
            await step_slider(page, 3, models)
            record("3 slider steps", before)
        await browser.close()
    return steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drawings", type=int, default=6)
    args = parser.parse_args(argv)
    if args.drawings < 2:
        parser.error("--drawings must be at least 2 (the first drawing is reported apart)")
    if not CHROMIUM.exists():
        raise SystemExit("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    before = uptime()
    started = time.perf_counter()
    with serve_app(models_dir(None)) as (url, server):
        steps = asyncio.run(measure(url, server.pid, args.drawings))
    print(f"`python -m benchmarks.bench_browser_cpu --drawings {args.drawings}`: {machine()}; one tab; "
          f"load before: `{before}`; {time.perf_counter() - started:.0f} s.\n")
    print("| step | times | Chromium CPU-s (median) | server CPU-s (median) |")
    print("| --- | --- | --- | --- |")
    for step, readings in steps.items():
        print(f"| {step} | {len(readings)} | {statistics.median(b for b, _ in readings):.2f} | "
              f"{statistics.median(s for _, s in readings):.2f} |")


if __name__ == "__main__":
    main()
