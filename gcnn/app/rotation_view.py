"""What the Draw page shows of a precomputed rotation sweep, built without Plotly.

* :func:`turn_frames`: every frame of a full turn (the digit turned by each
  swept angle and every model's answer there), played in the browser by
  :mod:`gcnn.app.turn_player` without asking the server for anything;
* :func:`sweep_table`: the sweep as a table of predicted digits that stays readable on a phone;
* :func:`digit_png`: a digit as a crisp picture, for the views redrawn on every slider step.

No Plotly on that page: its first chart costs a browser about a CPU-second, which eight sessions sharing two
cores with the server cannot afford (``benchmarks/bench_app_load.py``; :mod:`gcnn.app.turn_player` has the figures).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from pandas.io.formats.style import Styler
from PIL import Image
from plotly.colors import sample_colorscale, unlabel_rgb
from torch import Tensor

from ..data import rotate
from .inference import RotationSweep
from .plotting import model_colour

__all__ = ["turn_frames", "sweep_table", "digit_png", "FRAME_MS"]

FRAME_MS = 70  # one 5-degree step per frame: a full turn in about 5 s


def _png(pixels: Tensor) -> bytes:
    """A greyscale PNG of ``pixels [H, W]`` (uint8, white on black, as the networks see the digit)."""
    png = io.BytesIO()
    Image.fromarray(pixels.numpy()).save(png, format="PNG", optimize=True)
    return png.getvalue()


def _png_data_url(pixels: Tensor) -> str:
    """``pixels [H, W]`` (uint8) as a PNG data URL: about 0.4 KB a digit, most of what a turn's 72 frames weigh."""
    return "data:image/png;base64," + base64.b64encode(_png(pixels)).decode("ascii")


def _pixels(images: Tensor) -> Tensor:
    """``images [..., H, W]`` in [0, 1] as 0-255 integers (uint8)."""
    return (images * 255).round().clamp(0, 255).to(torch.uint8)


def digit_png(image: Tensor, scale: int = 8) -> bytes:
    """One digit ``[1, 28, 28]`` as a PNG, each pixel a ``scale`` x ``scale`` block (crisp at any size).

    A plain picture rather than a Plotly figure, so the Draw page needs no Plotly (see the module's docstring).
    """
    return _png(_pixels(image[0]).repeat_interleave(scale, dim=0).repeat_interleave(scale, dim=1))


def turn_frames(image: Tensor, sweeps: Mapping[str, RotationSweep], labels: Mapping[str, str],
                start_angle: float = 0) -> dict[str, Any]:
    """Every frame of a full turn, JSON-ready, for :func:`gcnn.app.turn_player.turn_player`.

    ``image [1, 28, 28]``; ``sweeps[name]`` share their angles; ``labels[name]`` is the model's display name.
    Returns ``{"title", "angles": [A], "digits": [A PNG data URLs of the digit turned by each angle],
    "models": [{"label", "colour", "predicted": [A], "confidence": [A]}], "frame_ms", "start"}``, where
    ``start`` is the index of the angle nearest ``start_angle``.
    """
    names = list(sweeps)
    angles = sweeps[names[0]].angles
    turned = rotate(image[None].expand(len(angles), -1, -1, -1).contiguous(), torch.tensor(angles, dtype=torch.float))
    return {
        "title": "Play a full turn: the digit and every model's answer",
        "angles": [float(a) if a % 1 else int(a) for a in angles],
        "digits": [_png_data_url(pixels) for pixels in _pixels(turned[:, 0])],
        "models": [{"label": labels[name], "colour": model_colour(name), "predicted": sweeps[name].predicted,
                    "confidence": [round(c, 4) for c in sweeps[name].confidence]} for name in names],
        "frame_ms": FRAME_MS,
        "start": min(range(len(angles)), key=lambda i: abs((angles[i] - start_angle + 180) % 360 - 180)),
    }


def sweep_table(sweeps: Mapping[str, RotationSweep], labels: Mapping[str, str], angles: Sequence[float]) -> Styler:
    """The predicted digit of each model (columns) at each of ``angles`` (rows, ``"15°"``), shaded by its probability.

    A styled static table (``st.table``) rather than a Plotly heatmap, so the
    page needs no Plotly at all (see the module's docstring).  Angles as rows
    and a few of them (e.g. every 15 degrees) keep the cells large enough to
    read on a phone; every angle in ``angles`` must be swept.
    """
    index = [f"{a:g}°" for a in angles]
    rows = {name: [sweep.index(a) for a in angles] for name, sweep in sweeps.items()}
    digits = pd.DataFrame({labels[n]: [sweeps[n].predicted[r] for r in rows[n]] for n in sweeps}, index=index)
    confidence = pd.DataFrame({labels[n]: [sweeps[n].confidence[r] for r in rows[n]] for n in sweeps}, index=index)
    shades = sample_colorscale("Blues", confidence.to_numpy().ravel().tolist())

    def cell_styles(_: pd.DataFrame) -> pd.DataFrame:
        styles = [f"background-color: {shade}; color: {_readable_text_colour(shade)}" for shade in shades]
        return pd.DataFrame(np.reshape(styles, confidence.shape), index=index, columns=confidence.columns)

    return digits.style.apply(cell_styles, axis=None)


def _readable_text_colour(background: str) -> str:
    """Black or white, whichever contrasts more with ``background`` (``"rgb(r, g, b)"``), by WCAG 2's contrast ratio."""
    channels = [value / 255 for value in unlabel_rgb(background)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "white" if (1.05 / (luminance + 0.05)) > ((luminance + 0.05) / 0.05) else "black"
