"""Pictures of the project's own making, so the app has something to show before anything is drawn."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from .preprocess import ink_from_array, mnist_preprocess

__all__ = ["sample_digit", "sample_picture"]

# Pen strokes on the Draw page's 280 x 280 canvas, as (points, pen width): a "7" with a crossbar, and a "6" that a
# plain CNN reads as a 9 upside down (the home page's demonstration).
_STROKES = {
    "7": [([(70, 60), (210, 55), (190, 95), (130, 230)], 20), ([(110, 140), (190, 140)], 16)],
    "6": [([(180, 40), (125, 85), (95, 140), (92, 195), (120, 232), (165, 228), (188, 190), (170, 152), (128, 150),
            (98, 180)], 20)],
}


def sample_digit(digit: str = "7") -> Tensor:
    """A hand-drawn-looking digit (``"7"`` or ``"6"``), preprocessed like MNIST: ``[1, 28, 28]``."""
    canvas = Image.new("L", (280, 280), 0)
    pen = ImageDraw.Draw(canvas)
    for points, width in _STROKES[digit]:
        pen.line(points, fill=255, width=width, joint="curve")
    return mnist_preprocess(ink_from_array(np.asarray(canvas)))


def sample_picture(size: int = 64) -> Tensor:
    """An asymmetric picture (a flag on a pole over a ground line), ``[size, size]`` in [0, 1].

    No rotation or mirror maps it onto itself, so every group element's
    action is visible.
    """
    canvas = Image.new("L", (size, size), 0)
    pen = ImageDraw.Draw(canvas)
    s = size / 64
    pen.line([(20 * s, 12 * s), (20 * s, 52 * s)], fill=255, width=max(1, round(4 * s)))  # pole
    pen.polygon([(22 * s, 12 * s), (46 * s, 18 * s), (22 * s, 26 * s)], fill=200)  # flag pointing right
    pen.line([(10 * s, 52 * s), (44 * s, 52 * s)], fill=140, width=max(1, round(3 * s)))  # ground
    pen.ellipse([(40 * s, 36 * s), (48 * s, 44 * s)], fill=90)  # a ball right of the pole
    return torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255)
