"""How quickly the Draw & rotate page answers, with the shipped models, on this machine.

Times (medians) the work behind one interaction:

* new drawing: preprocess the canvas, every model's probabilities, the 36-angle
  sweep for every model, the GCNNs' rotation estimates;
* slider move: every model's probabilities and rotation estimates (the sweep
  is cached per drawing);
* a full rerun of the page script under Streamlit's AppTest after a slider move
  (includes Streamlit's own overhead, not the browser's rendering).

    python benchmarks/bench_app.py
"""

from __future__ import annotations

import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from gcnn.data import rotate
from gcnn.inference import estimate_rotation, probabilities, rotation_sweep
from gcnn.preprocess import ink_from_array, mnist_preprocess
from gcnn.shipped import load_shipped

ROOT = Path(__file__).resolve().parent.parent
SWEEP_ANGLES = list(range(0, 360, 10))


def canvas_drawing() -> np.ndarray:
    layer = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(layer).line([(70, 60), (210, 60), (120, 230)], fill=(255, 255, 255, 255), width=20)
    return np.asarray(layer)


def median_seconds(function, repeats: int = 7) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    models, problems = load_shipped()
    if problems:
        print("\n".join(problems.values()), file=sys.stderr)
    drawing = canvas_drawing()

    def answer(image: torch.Tensor, angle: float) -> None:
        rotated = rotate(image[None], angle)[0]
        for shipped in models.values():
            probabilities(shipped.model, rotated[None])
            if shipped.is_equivariant:
                estimate_rotation(shipped.model, image, rotated)

    def new_drawing() -> None:
        image = mnist_preprocess(ink_from_array(drawing))
        answer(image, 0.0)
        rotation_sweep({n: m.model for n, m in models.items()}, image, SWEEP_ANGLES)

    image = mnist_preprocess(ink_from_array(drawing))
    angles = iter(range(5, 10_000, 5))
    print(f"{len(models)} models, {torch.get_num_threads()} threads; medians:")
    print(f"  new drawing (predictions + {len(SWEEP_ANGLES)}-angle sweep): {median_seconds(new_drawing) * 1e3:7.1f} ms")
    print(f"  slider move (predictions + rotation estimates):      "
          f"{median_seconds(lambda: answer(image, float(next(angles) % 360))) * 1e3:7.1f} ms")

    state = types.SimpleNamespace(image_data=drawing)
    sys.modules["streamlit_drawable_canvas"] = types.SimpleNamespace(st_canvas=lambda **kwargs: state)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.run()  # the first run registers the pages (st.navigation); switch_page can only find them after it
    app.switch_page("app_pages/1_Draw_and_rotate.py").run()
    print(f"  page rerun after a slider move (AppTest):           "
          f"{median_seconds(lambda: app.slider(key='angle').set_value(next(angles) % 360).run(), 5) * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
