"""Photo-like pictures of a digit, as a phone camera would take them: for testing the upload path.

From a clean MNIST digit: dark ink on grey or off-white paper, lighting that
falls off across the page, a soft shadow from one edge, sensor noise and
JPEG compression, with the digit at a random scale and position on a larger
picture.  Everything is drawn from the given ``numpy.random.Generator``, so
a seed gives the same picture.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from scipy import ndimage
from torch import Tensor

__all__ = ["PhotoLike", "photo_like"]


@dataclass(frozen=True)
class PhotoLike:
    """``data``: the JPEG file; ``ink [H, W]``: the digit's clean ink (0 to 1) where the picture shows it."""

    data: bytes
    ink: np.ndarray


def photo_like(digit: Tensor | np.ndarray, rng: np.random.Generator, size: tuple[int, int] | None = None) -> PhotoLike:
    """A photo-like JPEG of ``digit``: a square field white on black in [0, 1], ``[S, S]`` or ``[1, S, S]``,
    MNIST's 28x28 or the same field drawn finer (e.g. 112x112 for a digit turned without losing detail).

    ``size``: ``(height, width)`` of the picture; random in 192..320 pixels by default.
    """
    digit = torch.as_tensor(np.asarray(digit, dtype=np.float32))
    if digit.dim() not in (2, 3) or digit.shape[-1] != digit.shape[-2] or digit[..., 0, 0].numel() != 1:
        raise ValueError(f"expected a square digit field [S, S] or [1, S, S], got shape {tuple(digit.shape)}")
    digit = digit.reshape(1, *digit.shape[-2:])
    height, width = size if size is not None else tuple(int(v) for v in rng.integers(192, 321, size=2))
    # The 28-pixel field (digit 20 pixels tall, 4-pixel margin) scaled to 40-85% of the shorter side.
    field = int(min(height, width) * rng.uniform(0.4, 0.85) * 28 / 20)
    field = min(field, height, width)
    ink_patch = TF.resize(digit, [field, field], antialias=True)[0].clamp(0, 1).numpy().astype(np.float64)
    top, left = int(rng.integers(0, height - field + 1)), int(rng.integers(0, width - field + 1))
    ink = np.zeros((height, width))
    ink[top:top + field, left:left + field] = ink_patch

    paper = rng.uniform(0.55, 0.92) + rng.uniform(-0.04, 0.04, size=3)  # grey or off-white, slightly tinted
    pen = rng.uniform(0.02, 0.25) + rng.uniform(-0.03, 0.03, size=3)  # black to dark blue-grey
    reflectance = paper * (1 - ink[..., None]) + pen * ink[..., None]

    rows, cols = np.mgrid[0:height, 0:width]
    ys, xs = rows / max(height, width), cols / max(height, width)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(direction) * xs + np.sin(direction) * ys
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) or 1)
    lighting = 1 - rng.uniform(0.15, 0.5) * ramp  # light falls off across the page
    # A soft shadow (a hand or the phone) over one edge: up to a third of the picture.
    edge = int(rng.integers(4))
    depth = rng.uniform(0.05, 0.33)
    distance = [rows / height, 1 - rows / height, cols / width, 1 - cols / width][edge]  # from that edge, 0 to 1
    shadow = ndimage.gaussian_filter((distance < depth).astype(np.float64), rng.uniform(6, 20))
    lighting = lighting * (1 - rng.uniform(0.2, 0.5) * shadow)

    picture = reflectance * lighting[..., None] + rng.normal(0, rng.uniform(0.01, 0.04), size=(height, width, 3))
    image = Image.fromarray(np.round(np.clip(picture, 0, 1) * 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(40, 86)))
    return PhotoLike(buffer.getvalue(), ink)
