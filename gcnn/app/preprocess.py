"""Turn a drawing or an uploaded picture into the 28x28 image the networks see.

MNIST-style preprocessing: crop to the ink, scale the longer side to 20
pixels (keeping the aspect ratio), and place the result in a 28x28 field
with its centre of mass at the centre.  Output: float tensor ``[1, 28, 28]``
in [0, 1], white digit on black.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

__all__ = ["ImageInputError", "EmptyImageError", "read_upload", "ink_from_array", "mnist_preprocess",
           "square_thumbnail",
           "MAX_UPLOAD_BYTES", "MAX_UPLOAD_PIXELS"]

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096
INK_THRESHOLD = 0.1  # pixels brighter than this count as ink when cropping
MIN_INK_PIXELS = 4


class ImageInputError(ValueError):
    """An image cannot be used; the message says why and what to do."""


class EmptyImageError(ImageInputError):
    """The image holds no ink (for example an empty canvas)."""


def read_upload(data: bytes) -> np.ndarray:
    """Decode an uploaded file into ink ``[H, W]`` (float, 0 = background, 1 = ink).

    Any PIL-readable format and mode works: palette, 16-bit and float
    greyscale, RGBA (transparency is respected), CMYK; animations use their
    first frame.  Dark ink on a light background is inverted.

    Raises:
        ImageInputError: not an image, corrupt, or too large.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageInputError(f"The file is {len(data) / 2**20:.1f} MB; please upload an image under "
                              f"{MAX_UPLOAD_BYTES // 2**20} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_UPLOAD_PIXELS:
                raise ImageInputError(f"The image is {image.width}x{image.height} pixels; please upload one with "
                                      f"at most {MAX_UPLOAD_PIXELS:,} pixels (e.g. 4096x4096).")
            image.seek(0)
            image.load()
    except ImageInputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageInputError("This file is not an image that can be read (try a PNG or JPEG).") from error
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt data
        raise ImageInputError(f"This image is damaged and cannot be read ({error}).") from error
    return ink_from_array(_to_float_array(ImageOps.exif_transpose(image)))


def _to_float_array(image: Image.Image) -> np.ndarray:
    """Pixels as floats in [0, 1]: ``[H, W]`` for greyscale, ``[H, W, 4]`` with alpha, ``[H, W, 3]`` otherwise."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        span = values.max() - values.min()
        return (values - values.min()) / span if span > 0 else np.zeros_like(values)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    converted = image.convert("RGBA" if has_alpha else "RGB")
    return np.asarray(converted, dtype=np.float64) / 255


def ink_from_array(pixels: np.ndarray) -> np.ndarray:
    """Ink ``[H, W]`` in [0, 1] from greyscale ``[H, W]``, RGB ``[H, W, 3]`` or RGBA ``[H, W, 4]`` pixels.

    Integer arrays are read as 8-bit.  With transparency, ink is the opaque
    part (the canvas draws white strokes on a transparent layer); otherwise
    the brighter of ink and background is decided from the image border.
    """
    pixels = np.asarray(pixels)
    pixels = pixels / 255 if np.issubdtype(pixels.dtype, np.integer) else pixels.astype(np.float64)
    if pixels.ndim == 2:
        grey, alpha = pixels, None
    elif pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        grey = pixels[..., :3] @ np.array([0.299, 0.587, 0.114])
        alpha = pixels[..., 3] if pixels.shape[2] == 4 else None
    else:
        raise ImageInputError(f"Expected a greyscale, RGB or RGBA image, got an array of shape {pixels.shape}.")
    if alpha is not None and alpha.min() < 1:
        opaque = alpha > 0.5
        dark_ink = opaque.any() and grey[opaque].mean() < 0.5
        return alpha * ((1 - grey) if dark_ink else grey)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return 1 - grey if np.median(border) > 0.5 else grey


def square_thumbnail(ink: np.ndarray, size: int = 64) -> Tensor:
    """Pad ``ink [H, W]`` to a square with zeros (centred) and resize it to ``[size, size]``."""
    ink = torch.from_numpy(np.asarray(ink, dtype=np.float32))
    height, width = ink.shape
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    square = torch.zeros(side, side)
    square[top:top + height, left:left + width] = ink
    return TF.resize(square[None], [size, size], antialias=True)[0].clamp(0, 1)


def mnist_preprocess(ink: np.ndarray) -> Tensor:
    """Crop to the ink, fit into 20x20, centre by mass in 28x28: ``[1, 28, 28]`` float in [0, 1].

    Raises:
        EmptyImageError: there is (almost) no ink.
    """
    ink = np.clip(np.asarray(ink, dtype=np.float64), 0, 1)
    rows, cols = np.nonzero(ink > INK_THRESHOLD)
    if len(rows) < MIN_INK_PIXELS:
        raise EmptyImageError("The image is empty: draw a digit (or upload one) first.")
    crop = torch.from_numpy(ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]).float()
    scale = 20 / max(crop.shape)
    size = [max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))]
    digit = TF.resize(crop[None], size, antialias=True).clamp(0, 1)[0]
    digit = digit / digit.max()  # full contrast, as in MNIST
    height, width = digit.shape
    ys, xs = torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64)
    mass = digit.double().sum()
    centre_y = float((digit.double().sum(1) * ys).sum() / mass)
    centre_x = float((digit.double().sum(0) * xs).sum() / mass)
    # Put the centre of mass on the field's centre (13.5), keeping the digit inside the field.
    top = int(np.clip(round(13.5 - centre_y), 0, 28 - height))
    left = int(np.clip(round(13.5 - centre_x), 0, 28 - width))
    field = torch.zeros(1, 28, 28)
    field[0, top:top + height, left:left + width] = digit
    return field
