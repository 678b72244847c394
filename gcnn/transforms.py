"""Image rotation as torchvision's ``rotate`` does it, in a form that scripts, traces and exports to ONNX.

``rotate(images, 30.0)`` equals ``torchvision.transforms.v2.functional.rotate(images, 30.0,
InterpolationMode.BILINEAR, fill=0.0)`` to float rounding (about 1e-7), without importing torchvision:
counter-clockwise as displayed, about the image centre, bilinear, zero outside the image, quarter turns
exact (``torch.rot90``), as torchvision's fast paths.

Bilinear rotation with zero fill is two ``grid_sample`` calls' worth of arithmetic: torchvision samples the image
and a channel of ones on the same grid (``align_corners=False``) and multiplies the two, so pixels whose
neighbourhood leaves the image fade to zero.  The grid and that mask depend only on the angles and on ``H, W``,
so :class:`RotateImages` precomputes them once per image size and an eager call is one ``grid_sample`` and one
multiplication.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["rotation_grid", "rotate", "RotateImages", "turns_exactly"]


def _quarter_turns(angle: float) -> int:
    """The number of quarter turns of ``angle`` (degrees), or -1 when it is not a multiple of 90."""
    turns = angle / 90.0
    nearest = round(turns)
    return nearest % 4 if abs(turns - nearest) < 1e-9 else -1


def _rot90_turns(turns: int, height: int, width: int) -> bool:
    """Whether torchvision's rotate takes ``turns`` quarter turns (-1: none) by ``rot90``, its fast path: half
    turns of any image, quarter turns of square ones."""
    return turns >= 0 and (turns % 2 == 0 or height == width)


def turns_exactly(angle: float, height: int, width: int) -> bool:
    """Whether :func:`rotate` turns ``[H, W]`` images by ``angle`` (degrees) exactly, moving whole pixels."""
    return _rot90_turns(_quarter_turns(angle), height, width)


def rotation_grid(
    angles: list[float], height: int, width: int, dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> tuple[Tensor, Tensor]:
    """Sampling grids and fill masks that turn ``[H, W]`` images by each angle (degrees, counter-clockwise).

    Returns ``(grid [A, H, W, 2], mask [A, 1, H, W])`` for ``grid_sample(..., align_corners=False)``:
    ``rotated = grid_sample(image, grid) * mask``.  Output pixel ``(x, y)`` (pixel units from the centre,
    y down) reads the input at ``(cos a * x - sin a * y, sin a * x + cos a * y)``.  The arithmetic is
    torchvision's, step for step and in ``dtype``, so the grids agree with its own to the last bit or two.
    """
    # torchvision's inverse affine matrix for a turn by `angle` about the centre: [[c, s, 0], [-s, c, 0]] with
    # c, s the cosine and sine of -angle, computed in double precision and then cast.
    rows: list[list[list[float]]] = []
    for angle in angles:
        radians = -(angle % 360.0) * math.pi / 180.0
        rows.append([[math.cos(radians), math.sin(radians), 0.0], [-math.sin(radians), math.cos(radians), 0.0]])
    theta = torch.tensor(rows, dtype=dtype, device=device)
    base = torch.ones(height, width, 3, dtype=dtype, device=device)
    base[..., 0] = torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, width, dtype=dtype, device=device)
    base[..., 1] = torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, height, dtype=dtype,
                                  device=device).unsqueeze(-1)
    # Normalise to grid_sample's [-1, 1] with align_corners=False: pixel edges at +-1.
    scale = torch.tensor([0.5 * width, 0.5 * height], dtype=dtype, device=device)
    grid = base.reshape(1, height * width, 3).matmul(theta.transpose(1, 2) / scale)
    grid = grid.reshape(len(angles), height, width, 2)
    ones = torch.ones(len(angles), 1, height, width, dtype=dtype, device=device)
    mask = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return grid, mask


def rotate(images: Tensor, angles: float | Sequence[float] | Tensor) -> Tensor:
    """Turn ``images [N, C, H, W]`` counter-clockwise about their centre: bilinear, fill 0.

    ``angles`` (degrees) is one angle for every image, or ``N`` angles, one per image.  Equals torchvision's
    ``rotate`` with bilinear interpolation and ``fill=0`` to float rounding.
    """
    if images.dim() != 4:
        raise ValueError(f"rotate expects images [N, C, H, W], got shape {tuple(images.shape)}")
    if isinstance(angles, Tensor) and angles.dim() == 0 or isinstance(angles, (int, float)):
        return RotateImages([float(angles)])(images)[0]
    angles = [float(a) for a in angles]
    if len(angles) != len(images):
        raise ValueError(f"got {len(angles)} angles for {len(images)} images")
    grid, mask = rotation_grid(angles, *images.shape[-2:], dtype=images.dtype, device=images.device)
    rotated = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False) * mask
    for index, angle in enumerate(angles):  # quarter turns exactly, as torchvision's fast paths
        if turns_exactly(angle, *images.shape[-2:]):
            rotated[index] = torch.rot90(images[index], _quarter_turns(angle), dims=(-2, -1))
    return rotated


class RotateImages(nn.Module):
    """``[B, C, H, W] -> [A, B, C, H, W]``: the images turned by each of ``angles`` (degrees), as :func:`rotate`.

    Quarter turns (of square images, or half turns of any) are exact ``torch.rot90`` calls; other angles one
    ``grid_sample`` over all of them at once.  In eager mode the grid and fill mask are cached per image size,
    dtype and device (plain attributes, not buffers: the state dict stays empty); scripted, traced and
    compiled graphs build them from the input's shape instead, which traces, ``torch.export`` and ONNX fold
    into constants for a fixed image size.  Scripts, traces (for one image size, any batch) and exports to
    ONNX (dynamic batch).

    Shapes:
        input ``[B, C, H, W]`` -> output ``[len(angles), B, C, H, W]``.
    """

    __jit_ignored_attributes__ = ["_grids"]  # the eager cache; TorchScript builds grids from the input's shape
    _grids: dict[tuple[int, int, torch.dtype, torch.device], tuple[Tensor, Tensor]]

    def __init__(self, angles: Sequence[float]) -> None:
        super().__init__()
        if not len(angles):
            raise ValueError("RotateImages needs at least one angle")
        self.angles = [float(a) for a in angles]
        self.quarter_turns = [_quarter_turns(a) for a in self.angles]  # -1 where not a multiple of 90
        self._grids = {}

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError("RotateImages expects images [B, C, H, W], got " + str(x.dim()) + " dimensions")
        batch, channels, height, width = x.shape
        if torch.jit.is_scripting():
            grid, mask = rotation_grid(self.angles, height, width, x.dtype, x.device)
            exact = [_rot90_turns(turns, height, width) for turns in self.quarter_turns]
        else:
            grid, mask, exact = self._plan(x)
        # Every angle by grid_sample (one call, the batch and channels as channels of one image) ...
        flat = x.reshape(1, batch * channels, height, width).expand(len(self.angles), -1, -1, -1)
        turned = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False) * mask
        turned = turned.reshape(len(self.angles), batch, channels, height, width)
        # ... and the quarter turns exactly instead.
        copies: list[Tensor] = []
        for index in range(len(self.angles)):
            copies.append(torch.rot90(x, self.quarter_turns[index], [-2, -1]) if exact[index] else turned[index])
        return torch.stack(copies)

    @torch.jit.unused
    def _plan(self, x: Tensor) -> tuple[Tensor, Tensor, list[bool]]:
        """The grid and mask for ``x``'s size, dtype and device, and which angles are exact ``rot90`` turns."""
        if torch.jit.is_tracing():
            # A trace is specific to the image size: the grid (built inside the trace, the same on every
            # invocation, as the trace's check wants) and the choice of rot90 are its constants, as warned.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                height, width = int(x.shape[-2]), int(x.shape[-1])
                grid, mask = rotation_grid(self.angles, height, width, x.dtype, x.device)
        else:
            height, width = x.shape[-2:]
            if torch.compiler.is_compiling():  # a cache lookup cannot be compiled
                grid, mask = rotation_grid(self.angles, height, width, x.dtype, x.device)
            else:
                key = (height, width, x.dtype, x.device)
                if key not in self._grids:
                    self._grids[key] = rotation_grid(self.angles, *key)
                grid, mask = self._grids[key]
        return grid, mask, [_rot90_turns(turns, height, width) for turns in self.quarter_turns]

    def extra_repr(self) -> str:
        return f"angles={self.angles}"
