"""Rotation-free data augmentation for training on upright digits, batched on the images' device.

Every transform works on a whole batch ``[N, 1, H, W]`` (values in [0, 1], white digit on black) at once, draws
its randomness from a ``torch.Generator`` on the same device, and has no per-image Python loop, so it runs
inside a GPU training step without host work.  What it does, and why (issues 13 and 15: the GCNNs must be
robust off MNIST, and must not depend on where a digit sits to within a pixel):

* **translation** by up to ``translate`` pixels in x and y, sub-pixel: MNIST centres every digit's centre of
  mass on the same pixel, and a rotation-invariant network learns to tell 6 from 9 by where the mass sits
  relative to the centre of its field; random shifts take that shortcut away;
* **scale** by a factor in ``scale`` about the image centre: drawn and uploaded digits are not all
  20 pixels tall;
* **elastic deformation**: a smooth random displacement field of ``elastic`` pixels (peak, per axis), the
  handwriting variation of Simard et al. (2003);

  these three are one sampling grid and one bilinear ``grid_sample``;
* **pen**: with probability ``pen``, the digit redrawn with a round pen of uniform width (uniform in
  :data:`PEN_WIDTHS` pixels) along its centre line (:mod:`gcnn.strokes`): what the app's canvas and most
  drawing tools make of a digit, uniform strokes with round ends, unlike MNIST's scanned pen pressure.  It needs
  the digits' centre lines, traced once before training (``centre_lines``);
* **stroke thickness**: with probability ``thickness``, a grey dilation or erosion by a 3x3 cross
  (``max_pool2d``), each equally likely, blended in with a random strength in [0, 1] (so from no change up to
  a pixel on every side): pens and the app's canvas draw thinner or thicker strokes than MNIST's.  The cross,
  not the square, so diagonal strokes do not thicken more than straight ones, and a random strength, as a
  full erosion would wipe out MNIST's thinnest strokes;
* **low resolution**: with probability ``low_resolution``, down-sampling to 10-20 pixels (anti-aliased) and
  back: small photos and uploads;
* **blur**: a Gaussian of standard deviation uniform in ``[0, blur]`` pixels: out-of-focus photos.

There is **no rotation**: the GCNNs are trained on upright digits only, and their rotation robustness must come
from their equivariance, not from the data.  :func:`random_rotations` is separate and only for the baseline
that is *meant* to learn rotations from the data (``cnn_rotaug``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .strokes import draw_with_pen

__all__ = ["Augmentation", "PEN_WIDTHS", "warp", "dilate", "erode", "gaussian_blur", "down_up", "rotate_batch",
           "random_rotations", "ROTATION_CENTRES"]

# Where random_rotations turns a digit, as (x, y) pixel coordinates (pixel centres at whole numbers, y down).
# "image": the image centre, (13.5, 13.5) on 28x28, where the rotated test set and the GCNNs' quarter turns turn.
# "mass": (14.0, 14.0), where MNIST puts every digit's centre of mass (13.99 / 14.01 over its test set).  Turned
# about the image centre, the ink moves with the angle (upside down it sits half a pixel up-left of upright), so a
# model trained so learns where the ink sits as a cue of how the digit is turned, and a 6 moved one pixel up-left
# is read as 9: 140 of the 191 test digits cnn_rotaug so trained loses to that move.  Turned about (14, 14) (its
# preset's setting now), it loses 55.
ROTATION_CENTRES: dict[str, tuple[float, float] | None] = {"image": None, "mass": (14.0, 14.0)}

_LOW_SIZES = (10, 14, 20)  # side lengths the low-resolution transform goes down to
# Pen widths in pixels at 28x28: the canvas's pens of 10-30 pixels on its 280x280 field are 1-3, MNIST's strokes
# are about 2-3 wide; up to 3.5 so that the thickest pens are inside the range rather than at its edge.
PEN_WIDTHS = (1.0, 3.5)
_ELASTIC_GRID = 4  # control points per side of the coarse displacement field: smooth over ~7 pixels at 28x28


@dataclass(frozen=True)
class Augmentation:
    """Strengths of the rotation-free transforms; 0 (or ``(1, 1)`` for ``scale``) turns one off.

    Args:
        translate: largest shift in pixels along each axis (uniform, sub-pixel).
        scale: ``(low, high)`` range of the zoom factor (uniform).
        elastic: peak displacement in pixels of the smooth random field.
        thickness: probability of changing the stroke width by up to a pixel on each side (dilation or erosion,
            even odds, strength uniform in [0, 1]).
        low_resolution: probability of down-sampling to 10, 14 or 20 pixels and back.
        blur: largest standard deviation in pixels of the Gaussian blur (uniform from 0).
        pen: probability of redrawing a digit with a round pen along its centre line (width uniform in
            :data:`PEN_WIDTHS`); 0 by default, so the transforms draw what they drew before it existed.
    """

    translate: float = 2.0
    scale: tuple[float, float] = (0.85, 1.15)
    elastic: float = 1.0
    thickness: float = 0.5
    low_resolution: float = 0.2
    blur: float = 0.8
    pen: float = 0.0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "scale", tuple(float(s) for s in self.scale))
        except (TypeError, ValueError):
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {self.scale!r}") from None
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1] < math.inf:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {self.scale}")
        for name in ("translate", "elastic", "blur", "thickness", "low_resolution", "pen"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if name in ("thickness", "low_resolution", "pen") and not 0 <= value <= 1:
                raise ValueError(f"{name} is a probability between 0 and 1, got {value}")
            if not 0 <= value < math.inf:  # also refuses nan
                raise ValueError(f"{name} must be a finite number of at least 0, got {value}")

    @classmethod
    def from_dict(cls, strengths: Mapping[str, Any]) -> Augmentation:
        """From a settings dict (e.g. ``TrainSettings.augment``); missing keys take the defaults."""
        if not isinstance(strengths, Mapping):
            raise ValueError(f"augmentation settings must be a dict of strengths, got {strengths!r}")
        unknown = set(strengths) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown augmentation settings {sorted(unknown)}; known: "
                             f"{', '.join(f.name for f in fields(cls))}")
        return cls(**strengths)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready strengths (``scale`` as a list)."""
        return {**asdict(self), "scale": list(self.scale)}

    def __call__(self, images: Tensor, generator: torch.Generator, centre_lines: Tensor | None = None) -> Tensor:
        """Augment ``images [N, C, H, W]`` in [0, 1]; returns a new tensor of the same shape, in [0, 1].

        ``centre_lines``: the images' :func:`gcnn.strokes.centre_line_distances`, needed where ``pen > 0``.
        """
        if images.dim() != 4:
            raise ValueError(f"expected images [N, C, H, W], got shape {tuple(images.shape)}")
        images = self.redraw_with_pen(images, generator, centre_lines)
        images = self.change_thickness(images, generator)
        images = self.deform(images, generator)
        images = self.lower_resolution(images, generator)
        return self.blur_images(images, generator).clamp_(0, 1)

    def redraw_with_pen(self, images: Tensor, generator: torch.Generator, centre_lines: Tensor | None) -> Tensor:
        """Per image, with probability ``pen``: the digit redrawn along its centre line with a round pen of a
        width uniform in :data:`PEN_WIDTHS` (a digit too faint to trace keeps its own strokes)."""
        if self.pen == 0:
            return images
        if centre_lines is None or len(centre_lines) != len(images):
            raise ValueError("pen redrawing needs the images' centre lines, one per image: "
                             "gcnn.strokes.centre_line_distances(images)")
        low, high = PEN_WIDTHS
        chosen = _uniform(len(images), generator, images) < self.pen
        widths = low + (high - low) * _uniform(len(images), generator, images)
        drawn = draw_with_pen(centre_lines, widths)
        chosen &= drawn.flatten(1).amax(1) > 0
        return torch.where(chosen[:, None, None, None], drawn, images)

    def change_thickness(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Per image, with probability ``thickness / 2`` each: dilation or erosion, blended in with a uniform
        random strength."""
        if self.thickness == 0:
            return images
        choice = _uniform(len(images), generator, images)[:, None, None, None]
        strength = _uniform(len(images), generator, images)[:, None, None, None]
        half = self.thickness / 2
        target = torch.where(choice < half, dilate(images), torch.where(choice < self.thickness, erode(images), images))
        return torch.lerp(images, target, strength)

    def deform(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Translation, scale and elastic displacement in one bilinear resampling (fill 0)."""
        n, _, height, width = images.shape
        if self.translate == 0 and self.scale == (1.0, 1.0) and self.elastic == 0:
            return images
        low, high = self.scale
        zoom = low + (high - low) * _uniform(n, generator, images)
        shift = (2 * _uniform(2 * n, generator, images) - 1).reshape(n, 2) * self.translate  # pixels, (x, y)
        displacement = None
        if self.elastic > 0:
            # Uniform control displacements on a coarse grid, upsampled bicubically: a smooth field whose
            # peak stays within ``elastic`` pixels (bicubic overshoot is clamped).
            coarse = 2 * _uniform(n * 2 * _ELASTIC_GRID**2, generator, images) - 1
            coarse = coarse.reshape(n, 2, _ELASTIC_GRID, _ELASTIC_GRID)
            field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True).clamp(-1, 1)
            displacement = field * self.elastic
        return warp(images, zoom, shift, displacement)

    def lower_resolution(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """With probability ``low_resolution`` per image: down to one of 10, 14, 20 pixels, back up bilinearly."""
        if self.low_resolution == 0:
            return images
        n = len(images)
        pick = _uniform(n, generator, images)
        size_index = (_uniform(n, generator, images) * len(_LOW_SIZES)).long().clamp_(max=len(_LOW_SIZES) - 1)
        result = images
        # One pass per size over the whole batch (three cheap resizes) instead of a loop over images.
        for index, size in enumerate(_LOW_SIZES):
            chosen = (pick < self.low_resolution) & (size_index == index)
            result = torch.where(chosen[:, None, None, None], down_up(images, size), result)
        return result

    def blur_images(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Separable Gaussian blur, standard deviation uniform in ``[0, blur]`` per image (5 taps)."""
        if self.blur == 0:
            return images
        return gaussian_blur(images, self.blur * _uniform(len(images), generator, images))


def warp(images: Tensor, zoom: Tensor, shift: Tensor, displacement: Tensor | None = None) -> Tensor:
    """Zoom about the centre, shift, and displace ``images [N, C, H, W]`` in one bilinear resampling (fill 0).

    Args:
        zoom: ``[N]`` factors; above 1 the content grows.
        shift: ``[N, 2]`` pixels ``(x, y)``: the content moves right and down by them.
        displacement: ``[N, 2, H, W]`` optional field in pixels ``(x, y)``: output pixel ``p`` reads the zoomed,
            shifted image at ``p + displacement[p]``.
    """
    n, _, height, width = images.shape
    zoom, shift = zoom.to(images), shift.to(images)
    # The grid gives, for every output pixel, where to read the input in [-1, 1] coordinates (align_corners
    # False: one pixel is 2 / size).  Reading at x / zoom - shift draws the content zoomed by ``zoom`` and moved
    # by ``+shift`` pixels.
    theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom
    theta[:, 0, 2] = -shift[:, 0] * 2 / width
    theta[:, 1, 2] = -shift[:, 1] * 2 / height
    grid = F.affine_grid(theta, [n, 1, height, width], align_corners=False)
    if displacement is not None:
        to_grid = torch.tensor([2 / width, 2 / height], device=images.device, dtype=images.dtype)
        grid = grid + displacement.permute(0, 2, 3, 1) * to_grid
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def dilate(images: Tensor) -> Tensor:
    """Grey dilation by a 3x3 cross (a pixel and its 4 neighbours): strokes one pixel thicker on every side."""
    return torch.maximum(F.max_pool2d(images, (3, 1), stride=1, padding=(1, 0)),
                         F.max_pool2d(images, (1, 3), stride=1, padding=(0, 1)))


def erode(images: Tensor) -> Tensor:
    """Grey erosion by a 3x3 cross: strokes one pixel thinner on every side."""
    return -dilate(-images)


def down_up(images: Tensor, size: int) -> Tensor:
    """Down-sample to ``size x size`` (anti-aliased) and back to the original size, bilinearly."""
    height, width = images.shape[-2:]
    small = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)


def gaussian_blur(images: Tensor, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur of ``images [N, C, H, W]``, 5 taps, standard deviation ``sigma [N]`` pixels per
    image (0 leaves an image as it is); zero padding, like the black background."""
    n, channels, height, width = images.shape
    offsets = torch.arange(-2, 3, device=images.device, dtype=images.dtype)
    taps = torch.exp(-offsets**2 / (2 * sigma[:, None].clamp(min=1e-3) ** 2))
    taps = (taps / taps.sum(1, keepdim=True)).repeat_interleave(channels, 0)  # [N * C, 5]
    # Every image its own kernel: the batch becomes the channels of one grouped convolution.
    flat = images.reshape(1, n * channels, height, width)
    flat = F.conv2d(F.pad(flat, (2, 2, 0, 0)), taps[:, None, None, :], groups=n * channels)
    flat = F.conv2d(F.pad(flat, (0, 0, 2, 2)), taps[:, None, :, None], groups=n * channels)
    return flat.reshape(n, channels, height, width)


def rotate_batch(images: Tensor, angles: Tensor, centre: tuple[float, float] | None = None) -> Tensor:
    """Rotate each image counter-clockwise (as displayed) by its angle in degrees ``[N]`` about ``centre`` (x, y in
    pixels, pixel centres at whole numbers; default the image centre); bilinear, fill 0, one ``grid_sample``.
    About the image centre, quarter turns of square images are exact ``rot90``."""
    n, _, height, width = images.shape
    radians = torch.deg2rad(angles.to(images.dtype))
    cos, sin = torch.cos(radians), torch.sin(radians)
    theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
    # Output pixel (x, y) (y pointing down) reads the input at the clockwise-turned position, so the content
    # turns counter-clockwise on screen; normalised coordinates scale per axis, hence the aspect factors.
    theta[:, 0, 0], theta[:, 1, 1] = cos, cos
    theta[:, 0, 1], theta[:, 1, 0] = -sin * height / width, sin * width / height
    if centre is not None:  # x_in = A (x_out - c) + c, in normalised coordinates (align_corners=False)
        c = torch.tensor([(2 * centre[0] + 1) / width - 1, (2 * centre[1] + 1) / height - 1],
                         device=images.device, dtype=images.dtype)
        theta[:, :, 2] = c - theta[:, :, :2] @ c
    grid = F.affine_grid(theta, [n, 1, height, width], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_rotations(images: Tensor, generator: torch.Generator, centre: tuple[float, float] | None = None) -> Tensor:
    """Rotate each image by its own uniform random angle about ``centre`` (default the image centre; see
    :data:`ROTATION_CENTRES`), bilinear, fill 0.

    Only for baselines that learn rotations from the data (``cnn_rotaug``); the GCNNs never see it.  Batched
    (one ``affine_grid``/``grid_sample``), unlike :func:`gcnn.data.rotate`, whose per-image torchvision calls
    fix the rotated *test* protocol.
    """
    return rotate_batch(images, 360 * _uniform(len(images), generator, images), centre)


def _uniform(count: int, generator: torch.Generator, like: Tensor) -> Tensor:
    """``count`` uniform numbers in [0, 1) from ``generator``, on ``like``'s device, in its dtype."""
    return torch.rand(count, generator=generator, device=like.device, dtype=like.dtype)
