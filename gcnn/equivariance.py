"""Measure how equivariant a module is, element by element, as escnn's ``check_equivariance`` does.

:func:`check_equivariance` transforms the input by each group element, runs the module, and compares with the
output transformed by the same element.  Quarter turns and mirrors move pixels exactly, so there an equivariant
network differs only by float rounding (about 1e-7 relative); the other elements of ``CyclicGroup(8)``,
``CyclicGroup(16)``, ... resample bilinearly, and their error is the network's real, approximate equivariance.
Every result says which kind it is (``exact``), so a test can hold exact elements to 1e-5 and report the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .groups import Group, transform_feature_map
from .modes import eval_mode
from .transforms import rotate, turns_exactly

__all__ = ["EquivarianceError", "check_equivariance", "sample_input", "module_input"]


@dataclass(frozen=True)
class EquivarianceError:
    """The measured equivariance error of one transformation.

    Attributes:
        element: the group element's index, or ``None`` for an extra angle (not in the group).
        angle: its rotation in degrees, counter-clockwise as displayed.
        mirrored: whether it includes the left-right mirror.
        exact: whether it maps the pixel grid onto itself (quarter turns and mirrors), so that any error beyond
            float rounding is a real defect; other transformations interpolate.
        error: ``||f(g x) - g f(x)|| / ||g f(x)||`` over the whole batch.
    """

    element: int | None
    angle: float
    mirrored: bool
    exact: bool
    error: float


def sample_input(
    shape: Sequence[int], seed: int = 0, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """A seeded, smooth random input of ``shape`` ``[..., H, W]``, zero outside the disc inscribed in the image.

    Smooth (noise on a 4x coarser grid, upsampled bilinearly) because bilinear resampling of pixel noise is
    lossy whatever the network does; zero outside the disc because a turn by a non-right angle moves the
    corners out of the image.  Values in [0, 1], as MNIST pixels; drawn on the CPU in float32 (the same values
    everywhere), then given ``dtype`` and ``device``.
    """
    *batch, height, width = shape
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(int(torch.tensor(batch).prod()), 1, -(-height // 4) + 1, -(-width // 4) + 1,
                        generator=generator)
    smooth = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return (smooth * _disc(height, width, margin=1.0)).reshape(shape).to(dtype=dtype, device=device)


def module_input(module: nn.Module, shape: Sequence[int], seed: int = 0) -> Tensor:
    """:func:`sample_input` in the dtype and on the device of ``module``'s first floating-point parameter or
    buffer (float32 on the CPU for a module that has none), so a ``.double()`` or CUDA module can take it."""
    tensors = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
    return sample_input(shape, seed, dtype=tensors[0].dtype if tensors else torch.float32,
                        device=tensors[0].device if tensors else None)


def _disc(height: int, width: int, margin: float = 0.0) -> Tensor:
    """``[H, W]``: 1 inside the disc inscribed in the image (shrunk by ``margin`` pixels), 0 outside."""
    ys = torch.arange(height, dtype=torch.float32) - (height - 1) / 2
    xs = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
    radius = (min(height, width) - 1) / 2 - margin
    return ((ys[:, None] ** 2 + xs[None, :] ** 2) <= radius**2).float()


@torch.no_grad()
def check_equivariance(
    module: nn.Module, group: Group, x: Tensor, *, angles: Sequence[float] = ()
) -> list[EquivarianceError]:
    """The equivariance error of ``module`` under every element of ``group``, then under each extra angle.

    Args:
        module: maps an image ``[B, C, H, W]`` or a regular feature map ``[B, C, |G|, H, W]`` on ``group``
            to a regular feature map on ``group`` (equivariance) or to a vector ``[B, K]`` such as logits
            (invariance).
        group: the group the module claims to respect.  A model that restricts its maps to a subgroup
            (``restrict_after``; its ``output_group``) is invariant under that subgroup only: a group with a
            quarter turn or mirror outside it is refused, since those errors would read as defects.
        x: the input, square or not (see :func:`sample_input` for a sensible one).
        angles: extra angles in degrees, not necessarily in the group, for modules with an invariant output:
            the input is turned with :func:`gcnn.transforms.rotate` (torchvision's bilinear rotation, the one
            the rotated test set uses), measuring approximate invariance between the group's elements.

    Group elements act on images by :meth:`Group.transform_image` and on feature maps by
    :func:`gcnn.groups.transform_feature_map`.  For interpolated elements, maps are compared inside the disc
    inscribed in them (a turn by a non-right angle moves the corners out of view and in from nowhere);
    exact elements are compared everywhere.  All transformed inputs of one shape go through the module as one
    batch (a quarter turn of a non-square input swaps ``H`` and ``W``: those go as a second batch).  The module
    runs in eval mode (no batch-norm statistics move) and its train/eval mode is restored afterwards.

    Returns:
        one :class:`EquivarianceError` per group element (in element order), then one per extra angle.
    """
    if x.dim() not in (4, 5) or x.dim() == 5 and x.shape[2] != group.order:
        raise ValueError(f"check_equivariance takes an image [B, C, H, W] or a regular feature map "
                         f"[B, C, {group.order}, H, W] on {group!r}, got shape {tuple(x.shape)}")
    _refuse_elements_outside_the_output_group(module, group)
    with eval_mode(module):
        y = module(x)
        if y.dim() == 5 and y.shape[2] != group.order or y.dim() not in (2, 5):
            raise ValueError(f"check_equivariance compares regular feature maps [B, C, {group.order}, H, W] on "
                             f"{group!r} or invariant vectors [B, K]; the module returned shape {tuple(y.shape)}")
        if angles and (x.dim() != 4 or y.dim() != 2):
            raise ValueError("extra angles need an image input and an invariant output [B, K]: a feature map "
                             "cannot be turned by an angle outside its group")
        inputs = [group.transform_image(g, x) if x.dim() == 4 else transform_feature_map(group, g, x)
                  for g in range(group.order)]
        inputs += [rotate(x, float(angle)) for angle in angles]
        outputs = _run_by_shape(module, inputs)
        results = []
        for g, actual in zip(range(group.order), outputs, strict=False):
            expected = y if y.dim() == 2 else transform_feature_map(group, g, y)
            exact = group.is_pixel_exact(g)
            if not exact and y.dim() == 5:
                inside = _disc(*y.shape[-2:]).to(y)
                actual, expected = actual * inside, expected * inside
            results.append(EquivarianceError(g, float(group.angle(g).rad2deg()), bool(group.is_mirrored(g)), exact,
                                             _relative_error(actual, expected)))
        for angle, actual in zip(angles, outputs[group.order:], strict=True):
            exact = turns_exactly(float(angle), *x.shape[-2:])
            results.append(EquivarianceError(None, float(angle), False, exact, _relative_error(actual, y)))
        return results


def _run_by_shape(module: nn.Module, inputs: list[Tensor]) -> list[Tensor]:
    """``module`` applied to each of ``inputs``, with one pass per distinct input shape rather than one per input."""
    outputs: list[Tensor | None] = [None] * len(inputs)
    by_shape: dict[torch.Size, list[int]] = {}
    for index, tensor in enumerate(inputs):
        by_shape.setdefault(tensor.shape, []).append(index)
    for indices in by_shape.values():
        batch = module(torch.cat([inputs[i] for i in indices]))
        for index, output in zip(indices, batch.split(len(inputs[indices[0]])), strict=True):
            outputs[index] = output
    return outputs


def _refuse_elements_outside_the_output_group(module: nn.Module, group: Group) -> None:
    """``ValueError`` when ``module`` restricts its maps to a subgroup (an ``output_group`` other than its
    ``group``, as :class:`~gcnn.models.GroupEquivariantCNN` with ``restrict_after``) that lacks one of
    ``group``'s quarter turns or mirrors."""
    held = getattr(module, "output_group", None)
    if not isinstance(held, Group) or held == getattr(module, "group", held):
        return
    kept = {_motion(held, h) for h in range(held.order)}
    lost = [g for g in range(group.order) if group.is_pixel_exact(g) and _motion(group, g) not in kept]
    if lost:
        names = ", ".join(f"{'a mirror and ' if mirrored else ''}{angle:g} degrees" for angle, mirrored in
                          (_motion(group, g) for g in lost))
        raise ValueError(f"{type(module).__name__} restricts its feature maps to {held!r}, so its output is not "
                         f"meant to be invariant under {group!r}'s elements that turn by {names}, and their errors "
                         f"would read as defects; check it against its output_group {held!r} "
                         "(model.check_equivariance() does)")


def _motion(group: Group, g: int) -> tuple[float, bool]:
    """What element ``g`` does to an image: its angle in degrees (rounded, in [0, 360)) and whether it mirrors."""
    return round(float(group.angle(g).rad2deg()), 6) % 360, bool(group.is_mirrored(g))


def _relative_error(actual: Tensor, expected: Tensor) -> float:
    return ((actual - expected).norm() / expected.norm().clamp_min(torch.finfo(expected.dtype).tiny)).item()
