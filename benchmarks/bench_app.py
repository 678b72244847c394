"""Training throughput of each shipped design, and the app's hot path with the shipped models.

* Training: images per second of a full Adam step (forward, cross-entropy,
  backward, update) at batch 128, for every preset's model (data loading and
  augmentation excluded); group-equivariant ones also in channels-last layout.
* Hot path: a new digit on the Draw & rotate page: the first answer (every
  shipped model at the slider's angle, through the app's inference worker),
  the full turn (every model at all 72 slider angles, with and without the
  quarter-turn shortcut), and a rerun of that page under Streamlit's AppTest
  at a new angle (served from the cached turn; includes Streamlit's own
  overhead, not the browser's rendering; in the browser an angle the visitor
  settles on reruns only the player's fragment, less than this); and why the
  worker uses one thread.
  The whole app with browsers: ``python -m benchmarks.bench_app_load``.

    python -m benchmarks.bench_app [--quick]
"""

from __future__ import annotations

import functools
import subprocess
import sys
import types
from itertools import count
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from benchmarks.timing import command_line, table, timings
from gcnn import GroupEquivariantCNN, count_parameters, model_from_config, set_memory_format
from gcnn.app import memory
from gcnn.app.inference import SweepPlan, model_answers
from gcnn.app.preprocess import ink_from_array, mnist_preprocess
from gcnn.app.worker import InferenceWorker
from gcnn.presets import PRESETS, preset
from gcnn.shipped import load_shipped

ROOT = Path(__file__).resolve().parent.parent
SLIDER_ANGLES = list(range(0, 360, 5))


def canvas_drawing() -> np.ndarray:
    """A hand-drawn "7" as the canvas returns it: RGBA, white ink on transparent."""
    layer = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(layer).line([(70, 60), (210, 60), (120, 230)], fill=(255, 255, 255, 255), width=20)
    return np.asarray(layer)


def training_throughput(batch: int, repeats: int) -> str:
    steps, parameters = {}, {}
    for name in PRESETS:
        settings = preset(name)
        torch.manual_seed(0)
        model = model_from_config(settings["model"]).train()
        parameters[name] = count_parameters(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.get("lr", 1e-2), weight_decay=1e-4)
        x, labels = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))

        def step(memory_format: torch.memory_format | None = None, model=model, optimizer=optimizer, x=x,
                 labels=labels) -> None:
            set_memory_format(model, memory_format)
            optimizer.zero_grad()
            F.cross_entropy(model(x), labels).backward()
            optimizer.step()

        steps[name] = step
        if isinstance(model, GroupEquivariantCNN):
            steps[f"{name} channels_last"] = functools.partial(step, torch.channels_last)
    t = timings(steps, repeats)
    rows = []
    for name in PRESETS:
        row = [name, f"{parameters[name]:,}", t[name], f"{batch / t[name] * 1e3:,.0f}"]
        channels_last = f"{name} channels_last"
        rows.append(row + ([t[channels_last], t.ratio(channels_last, name)] if channels_last in t else ["-", "-"]))
    return table(f"Training throughput (Adam step, batch {batch})",
                 ["preset", "parameters", "step ms", "images/s", "channels-last step ms", "channels-last ratio"],
                 rows, "cnn_rotaug shares cnn's network; its rotations happen in the data pipeline, not timed here. "
                       "Channels-last: the same model after `gcnn.set_memory_format(model, torch.channels_last)` "
                       "(group-equivariant models only); ratio: median [95% interval] of the per-round ratios.")


def hot_path(repeats: int) -> str:
    models, problems = load_shipped()
    if problems:
        return f"### App hot path\n\nSkipped: {'; '.join(problems.values())}\n"
    networks = {name: shipped.model for name, shipped in models.items()}
    worker = InferenceWorker(networks)
    digit = mnist_preprocess(ink_from_array(canvas_drawing()))
    drawings = count(1)

    def new_image() -> torch.Tensor:  # a digit no cache has seen
        return digit * (1 - 1e-4 * next(drawings))

    state = types.SimpleNamespace(image_data=canvas_drawing(), json_data={"objects": []})
    sys.modules["streamlit_drawable_canvas"] = types.SimpleNamespace(st_canvas=lambda **kwargs: state)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.run()  # the first run registers the pages (st.navigation); switch_page can only find them after it
    app.switch_page("pages/1_Draw_and_rotate.py").run()
    angles = count(5, 5)

    def settle(angle: int) -> None:  # as the turn player's change callback leaves it
        app.session_state[memory.ANGLE] = angle
        app.run()

    every_angle = SweepPlan.for_angles(SLIDER_ANGLES, quarter_symmetric=False)
    default = torch.get_num_threads()
    torch.set_num_threads(1)  # the worker's setting, so the turn with and without the shortcut compare fairly
    t = timings({
        "first answer": lambda: worker.answers(new_image(), 35),
        "turn": lambda: worker.sweep(new_image(), SLIDER_ANGLES),
        "turn, every angle": lambda: [model_answers(m, every_angle.images(new_image())) for m in networks.values()],
        "new angle": lambda: settle(next(angles) % 360),
    }, repeats)
    torch.set_num_threads(default)
    symmetric = [name for name in networks if worker.quarter_symmetric(name)]
    rows = [[f"first answer: {len(models)} models at one angle, one image each (worker)", t["first answer"]],
            [f"the turn: {len(models)} models x {len(SLIDER_ANGLES)} angles; {', '.join(symmetric)} run only the "
             f"angles in [0, 90) (worker)", t["turn"]],
            [f"the turn without the quarter-turn shortcut, {len(SLIDER_ANGLES)} angles for every model (one "
             "thread, as the worker)", t["turn, every angle"]],
            ["a new angle: page rerun (AppTest), the turn looked up", t["new angle"]]]
    return "\n".join([table("App hot path (Draw & rotate, shipped models)", ["interaction", "median ms"], rows),
                      threads_under_load(networks["gcnn_best"] if "gcnn_best" in networks else
                                         next(iter(networks.values())), digit, repeats)])


def threads_under_load(model: torch.nn.Module, digit: torch.Tensor, repeats: int) -> str:
    """Why the worker runs one intra-op thread: a pass over 18 turned digits with 1 and 2 threads, alone and next
    to one busy process (as the browser, another session or any program would be)."""
    batch = SweepPlan.for_angles(range(0, 90, 5), quarter_symmetric=False).images(digit)
    default = torch.get_num_threads()

    def pass_with(threads: int):
        def run() -> None:
            torch.set_num_threads(threads)
            with torch.inference_mode():
                model(batch)
        return run

    calls = {"1 thread": pass_with(1), "2 threads": pass_with(2)}
    alone = timings(calls, repeats)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        loaded = timings(calls, repeats)
    finally:
        busy.kill()
        busy.wait()
        torch.set_num_threads(default)
    rows = [[name, alone[name], loaded[name]] for name in calls]
    return table("One forward pass of the largest model over 18 turned digits, by intra-op threads",
                 ["threads", "alone, median ms", "next to one busy process, median ms"], rows,
                 "The app's inference worker uses one thread: torch's threads collapse as soon as another process "
                 "wants a core, which on a laptop the browser always does.")


def run(quick: bool = False) -> str:
    repeats = 3 if quick else 7
    return "\n".join([training_throughput(16 if quick else 128, repeats), hot_path(repeats)])


if __name__ == "__main__":
    command_line(run, __doc__)
