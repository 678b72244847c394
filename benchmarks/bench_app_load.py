"""The live demo under load: the real app, N headless Chromium sessions drawing digits and moving the slider at once.

One command starts ``streamlit run app.py`` on a free loopback port (the
shipped models unless ``--models-dir``), then for each session count (1 and
8 by default) opens that many browser sessions on the Draw page.  Each
session draws several different digits with real mouse strokes (each session
its own variants, so no session is served from another's cache) and, after
each drawing, moves the slider a few 5-degree steps with the keyboard.
Reported, as p50 / p95 over all sessions' actions:

* mouse-up -> every model's prediction visible (the first answer);
* mouse-up -> the full turn shown (the turn player and the table);
* slider key press -> the new angle shown (the turn player answers in the browser; each settled angle also
  reruns its fragment on the server, which several sessions' steps compete for);

and the server's resident memory (peak, sampled every 0.2 s).  The results
table, with the machine and its load (``uptime``), goes to
``benchmarks/app_load.md``.  Everything is bounded: a fixed number of
actions, a timeout on every wait, loopback only.  Needs Debian's Chromium at
/usr/bin/chromium (never ``playwright install``).

    python -m benchmarks.bench_app_load [--sessions 1 8] [--digits 4] [--slider-steps 3] [--repeats 3] [--busy 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import async_playwright

from gcnn.app import ui
from gcnn.checkpoint import atomic_write
from gcnn.shipped import SHIPPED, models_dir

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
OUTPUT = Path(__file__).resolve().parent / "app_load.md"
WAIT_MS = 120_000  # the longest any single wait may take before the action counts as failed

# Strokes of a few digits, as points in the canvas's unit square (one list per stroke).
DIGITS = {
    "7": [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]],
    "1": [[(0.45, 0.25), (0.55, 0.15), (0.55, 0.85)]],
    "4": [[(0.6, 0.85), (0.6, 0.15), (0.25, 0.6), (0.78, 0.6)]],
    "2": [[(0.3, 0.3), (0.5, 0.15), (0.7, 0.3), (0.3, 0.85), (0.75, 0.85)]],
    "0": [[(0.5, 0.15), (0.72, 0.3), (0.75, 0.6), (0.5, 0.85), (0.28, 0.6), (0.3, 0.3), (0.5, 0.15)]],
    "6": [[(0.65, 0.15), (0.35, 0.45), (0.3, 0.7), (0.5, 0.85), (0.68, 0.7), (0.55, 0.52), (0.33, 0.62)]],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_app(models_dir: Path, data_dir: Path | None = None, log: Path | None = None,
              timeout: float = 90) -> Iterator[tuple[str, subprocess.Popen]]:
    """``streamlit run app.py`` on a free loopback port; yields ``(url, process)`` once it answers."""
    port = free_port()
    env = {**os.environ, "GCNN_MODELS_DIR": str(models_dir)}
    if data_dir is not None:
        env["GCNN_DATA_DIR"] = str(data_dir)
    with open(log or os.devnull, "w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true", f"--server.port={port}",
             "--server.address=127.0.0.1", "--browser.gatherUsageStats=false"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError(f"streamlit did not start (log: {log})") from None
                    time.sleep(0.3)
            yield url, server
        finally:
            server.terminate()
            server.wait(timeout=20)


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakMemory:
    """Samples a process's resident memory every ``interval`` seconds on a thread while in the ``with`` block."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


async def wait_canvas_ready(page) -> None:
    """The canvas listens to strokes once its background has loaded (an opaque pixel on its lower canvas)."""
    await page.locator("canvas.upper-canvas").first.wait_for(state="visible", timeout=WAIT_MS)
    lower = await page.locator("canvas.dc-canvas.lower-canvas").first.element_handle(timeout=WAIT_MS)
    await page.wait_for_function("c => c.getContext('2d').getImageData(0, 0, 1, 1).data[3] === 255", arg=lower,
                                 timeout=WAIT_MS)


INKED = """c => {
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < data.length; i += 4) if (data[i] > 128) return true;
    return false;
}"""


async def draw(page, strokes, offset: tuple[float, float] = (0, 0), scale: float = 1.0, attempts: int = 5) -> float:
    """Draw ``strokes`` (unit-square points) with real mouse events, shifted by ``offset`` and scaled about the
    centre; returns the ``time.perf_counter()`` of the last mouse-up.

    Right after it appears, the canvas can still ignore strokes (it switches its pen on asynchronously, and no
    DOM state says when), so a drawing that left no ink on the canvas is drawn again, up to ``attempts`` times.
    """
    for _ in range(attempts):
        # Looked up on every attempt: a rerun can replace the canvas (then the old one has no box).
        lower = await page.locator("canvas.dc-canvas.lower-canvas").first.element_handle(timeout=WAIT_MS)
        box = await page.locator("canvas.upper-canvas").first.bounding_box()
        if box is None:
            await asyncio.sleep(0.2)
            continue
        released = await _strokes(page, box, strokes, offset, scale)
        try:
            await page.wait_for_function(INKED, arg=lower, timeout=1500)
            return released
        except PlaywrightTimeout:
            continue
    raise RuntimeError(f"the canvas took no ink in {attempts} attempts")


async def _strokes(page, box: dict, strokes, offset: tuple[float, float], scale: float) -> float:

    def at(x: float, y: float) -> tuple[float, float]:
        x, y = 0.5 + (x - 0.5) * scale + offset[0], 0.5 + (y - 0.5) * scale + offset[1]
        return box["x"] + x * box["width"], box["y"] + y * box["height"]

    for stroke in strokes:
        await page.mouse.move(*at(*stroke[0]))
        await page.mouse.down()
        for (x0, y0), (x1, y1) in zip(stroke, stroke[1:], strict=False):
            for step in range(1, 9):
                t = step / 8
                await page.mouse.move(*at(x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
        await page.mouse.up()
    return time.perf_counter()


# The answers are shown: every model's answer present in the turn player and none of them stale (Streamlit fades an
# element until the run that replaces it has sent it); with a text, the player shows that angle (e.g. "Turned by
# 15°").
SETTLED = """([models, text]) => {
    const answers = document.querySelectorAll('.gcnn-turn .gcnn-answer');
    if (answers.length !== models) return false;
    for (const answer of answers) if (answer.closest('[data-stale="true"]') !== null) return false;
    if (!text) return true;
    const angle = document.querySelector('.gcnn-turn-angle');
    return angle !== null && angle.textContent === text;
}"""

# The full turn is shown: the player has its slider (while the turn is computed it shows the first answers only).
TURN_SHOWN = """() => {
    const slider = document.querySelector('.gcnn-turn .gcnn-turn-slider');
    return slider !== null && slider.closest('[data-stale="true"]') === null;
}"""


@dataclass
class Timings:
    first_answer: list[float] = field(default_factory=list)
    full_turn: list[float] = field(default_factory=list)
    slider: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def clear(page) -> None:
    """Press Clear the canvas and wait until the answers are gone and the new canvas takes strokes."""
    await page.get_by_role("button", name="Clear the canvas").click(timeout=WAIT_MS)
    await page.wait_for_function("() => document.querySelectorAll('.gcnn-answer').length === 0", timeout=WAIT_MS)
    await wait_canvas_ready(page)


async def step_slider(page, steps: int, models: int) -> list[float]:
    """Move the turn player's slider ``steps`` times by 5 degrees with the keyboard; the seconds from each key press
    until the page shows the new angle (the player answers in the browser; each settled angle also reruns the
    player's fragment on the server, which is what several sessions' steps compete for)."""
    slider = page.locator(".gcnn-turn-slider").first
    await slider.focus()
    angle = int(await slider.evaluate("s => Number(s.getAttribute('aria-valuetext').match(/-?[0-9]+/)[0])"))
    seconds = []
    for _ in range(steps):
        angle = (angle + 5) % 360
        await page.keyboard.press("ArrowRight")
        start = time.perf_counter()
        try:
            await page.wait_for_function(SETTLED, arg=[models, f"Turned by {angle}°"], timeout=WAIT_MS)
        except PlaywrightTimeout as error:
            raise PlaywrightTimeout(f"slider to {angle}°: {error}") from error
        seconds.append(time.perf_counter() - start)
    return seconds


async def session(browser, url: str, index: int, digits: int, slider_steps: int, models: int,
                  timings: Timings) -> None:
    """One user: open the Draw page, draw ``digits`` digits (clearing in between), move the slider after each."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    try:
        await page.goto(f"{url}/{ui.PAGES['draw'].url_path}", timeout=WAIT_MS)
        step = "opening the page"
        names = list(DIGITS)
        for number in range(digits):
            step = f"drawing {number + 1}"
            if number:
                await clear(page)
            else:
                await wait_canvas_ready(page)
            # Every session and drawing its own variant: a shift and a size no other drawing has.
            shift = (0.03 * ((index * 7 + number) % 5 - 2), 0.03 * ((index * 3 + number) % 5 - 2))
            start = await draw(page, DIGITS[names[(index + number) % len(names)]], shift, 0.85 + 0.03 * (index % 5))
            await page.wait_for_function(SETTLED, arg=[models, None], timeout=WAIT_MS)
            timings.first_answer.append(time.perf_counter() - start)
            step = f"drawing {number + 1}: waiting for the full turn"
            await page.wait_for_function(TURN_SHOWN, timeout=WAIT_MS)
            timings.full_turn.append(time.perf_counter() - start)
            step = f"drawing {number + 1}: moving the slider"
            timings.slider += await step_slider(page, slider_steps, models)
    except Exception as error:  # noqa: BLE001 - a failed session is reported in the table, not fatal to the run
        timings.failures.append(f"session {index}, {step}: {type(error).__name__}: {str(error).splitlines()[0]}")
    finally:
        await context.close()


async def drive(url: str, sessions: int, digits: int, slider_steps: int, models: int) -> Timings:
    timings = Timings()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            # Warm-up: one session's first page load pays for Streamlit's and the models' start-up; not counted.
            await session(browser, url, 99, 1, 0, models, Timings())
            await asyncio.gather(*(session(browser, url, i, digits, slider_steps, models, timings)
                                   for i in range(sessions)))
        finally:
            await browser.close()
    return timings


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolated between order statistics; NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, round(q) - 1))]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, torch {torch.__version__}, Chromium on the same machine")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """``count`` CPU-bound processes beside the app for the ``with`` block: another session's training, a build,
    any busy program (the conditions the live demo was first measured in)."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for process in busy:
            process.kill()
            process.wait()


def run(sessions: list[int], digits: int, slider_steps: int, models_dir: Path, output: Path, repeats: int = 3,
        busy: int = 0) -> str:
    """Each session count ``repeats`` times, each on a fresh server, with ``busy`` CPU-bound processes beside it."""
    if not CHROMIUM.exists():
        raise SystemExit("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    models = len([name for name in SHIPPED if (models_dir / f"{name}.pt").exists()])
    fmt = "{:.2f} / {:.2f}".format
    rows, summary, notes = [], [], []
    before = uptime()
    with busy_processes(busy):
        for count in sessions:
            runs = []
            for repeat in range(repeats):
                with serve_app(models_dir, log=ROOT / "test-artifacts" / "bench_app_load.log") as (url, server), \
                        PeakMemory(server.pid) as memory:
                    started = time.perf_counter()
                    timings = asyncio.run(drive(url, count, digits, slider_steps, models))
                    elapsed = time.perf_counter() - started
                runs.append((timings, memory.peak))
                rows.append([str(count), str(repeat + 1), str(len(timings.first_answer)),
                             fmt(percentile(timings.first_answer, 50), percentile(timings.first_answer, 95)),
                             fmt(percentile(timings.full_turn, 50), percentile(timings.full_turn, 95)),
                             fmt(percentile(timings.slider, 50), percentile(timings.slider, 95)),
                             f"{memory.peak:,.0f}", str(len(timings.failures)), f"{elapsed:.0f}"])
                notes += timings.failures
                print(" | ".join(rows[-1]), flush=True)
            summary.append(summarise(count, runs))
    after = uptime()
    header = ["sessions", "run", "drawings", "mouse-up -> all predictions, p50 / p95 s",
              "mouse-up -> full turn, p50 / p95 s", "slider -> updated, p50 / p95 s", "server peak RSS MB",
              "failed sessions", "run s"]
    summary_header = ["sessions", "runs", "answers p95 s: median (min-max) of runs", "answers p50 s: median of runs",
                      "slider p95 s: median (min-max)", "server peak RSS MB: max", "failed sessions: total"]
    beside = f"{busy} CPU-bound process{'es' if busy != 1 else ''}" if busy else "nothing else"
    lines = [
        "# The live demo under load",
        "",
        f"Written by `python -m benchmarks.bench_app_load --sessions {' '.join(map(str, sessions))} --digits "
        f"{digits} --slider-steps {slider_steps} --repeats {repeats} --busy {busy}` on "
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}.",
        "",
        f"Machine: {machine()}. Models: `{models_dir}` ({models} of {len(SHIPPED)} shipped models). Beside the "
        f"app and the browser: {beside} running.",
        f"Load before: `{before}`; after: `{after}`.",
        "",
        f"Each session draws {digits} different digits (real mouse strokes, its own variants) and after each moves "
        f"the slider {slider_steps} steps of 5 degrees with the keyboard; all sessions start at once, in one "
        "Chromium. Times are from the mouse-up or key press until the page shows it (every prediction card "
        "present and not stale; the turn's player shown; the new angle shown). Peak server memory sampled every "
        f"0.2 s. Each session count ran {repeats} times, each on a freshly started server.",
        "",
        *markdown_table(summary_header, summary),
        "",
        "Every run:",
        "",
        *markdown_table(header, rows),
    ]
    if notes:
        lines += ["", "Failures:", "", *(f"- {note}" for note in notes)]
    text = "\n".join(lines) + "\n"
    atomic_write(output, text.encode())
    return text


def summarise(count: int, runs: list[tuple[Timings, float]]) -> list[str]:
    """One summary row over the runs of one session count: the spread of the runs' percentiles."""
    answers_p95 = [percentile(timings.first_answer, 95) for timings, _ in runs]
    slider_p95 = [percentile(timings.slider, 95) for timings, _ in runs]
    spread = "{:.2f} ({:.2f}-{:.2f})".format
    return [str(count), str(len(runs)),
            spread(statistics.median(answers_p95), min(answers_p95), max(answers_p95)),
            f"{statistics.median(percentile(timings.first_answer, 50) for timings, _ in runs):.2f}",
            spread(statistics.median(slider_p95), min(slider_p95), max(slider_p95)),
            f"{max(peak for _, peak in runs):,.0f}", str(sum(len(timings.failures) for timings, _ in runs))]


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |",
            *("| " + " | ".join(row) + " |" for row in rows)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 8], help="session counts to run")
    parser.add_argument("--digits", type=int, default=4, help="digits drawn per session")
    parser.add_argument("--slider-steps", type=int, default=3, help="slider steps after each digit")
    parser.add_argument("--repeats", type=int, default=3, help="runs per session count, each on a fresh server")
    parser.add_argument("--busy", type=int, default=0, help="CPU-bound processes running beside the app")
    parser.add_argument("--models-dir", type=Path, help="checkpoints to serve (default: gcnn.shipped.models_dir())")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if min(args.sessions) < 1 or args.digits < 1 or args.repeats < 1 or min(args.slider_steps, args.busy) < 0:
        parser.error("--sessions, --digits and --repeats must be at least 1, --slider-steps and --busy at least 0")
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    print(run(args.sessions, args.digits, args.slider_steps, models_dir(args.models_dir), args.output, args.repeats,
              args.busy))


if __name__ == "__main__":
    main()
