"""Training throughput of each shipped design, and the app's hot path with the shipped models.

* Training: images per second of a full Adam step (forward, cross-entropy,
  backward, update) at batch 128, for every preset's model (data loading and
  augmentation excluded); group-equivariant ones also in channels-last layout.
* Hot path: a new digit on the Draw & rotate page: every shipped model's
  probabilities and rotation read-out at all 72 slider angles (one forward
  pass per model), and a full rerun of that page under Streamlit's AppTest
  after a slider move (served from the cached sweep; includes Streamlit's own
  overhead, not the browser's rendering).

    python -m benchmarks.bench_app [--quick]
"""

from __future__ import annotations

import functools
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
from gcnn.app.inference import rotation_sweep
from gcnn.app.preprocess import ink_from_array, mnist_preprocess
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
    drawing = canvas_drawing()
    networks = {name: shipped.model for name, shipped in models.items()}

    def new_digit() -> None:
        rotation_sweep(networks, mnist_preprocess(ink_from_array(drawing)), SLIDER_ANGLES)

    state = types.SimpleNamespace(image_data=drawing)
    sys.modules["streamlit_drawable_canvas"] = types.SimpleNamespace(st_canvas=lambda **kwargs: state)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.run()  # the first run registers the pages (st.navigation); switch_page can only find them after it
    app.switch_page("pages/1_Draw_and_rotate.py").run()
    angles = count(5, 5)
    t = timings({"new digit": new_digit,
                 "slider move": lambda: app.slider(key="angle").set_value(next(angles) % 360).run()}, repeats)
    rows = [[f"new digit: {len(models)} models x {len(SLIDER_ANGLES)} angles, one forward pass per model",
             t["new digit"]],
            ["slider move: full page rerun (AppTest), answers looked up", t["slider move"]]]
    return table("App hot path (Draw & rotate, shipped models)", ["interaction", "median ms"], rows)


def run(quick: bool = False) -> str:
    repeats = 3 if quick else 7
    return "\n".join([training_throughput(16 if quick else 128, repeats), hot_path(repeats)])


if __name__ == "__main__":
    command_line(run, __doc__)
