"""The maths of the Feature maps page: transform a digit, move its feature maps the same way, measure the gap.

A model is equivariant when transforming its input by ``g`` transforms every feature map by ``g``:
``f(g x) == g . f(x)``, where ``g`` acts on a regular feature map ``[B, C, |G|, H, W]`` by turning each
``[H, W]`` slice and permuting the group axis (:func:`gcnn.nn.transform_feature_map`).  This module lets the
page show both sides of that equation for any transformation the user picks, including turns *between* the
group's elements (45 degrees for C4), where the page shows how far from equivariant the network is:

* :class:`Transformation`: a turn by an angle in degrees (counter-clockwise as displayed), after an optional
  left-right mirror, as the README's convention: ``r^j s`` mirrors first.
* :func:`act_on_maps`: its action on a regular feature map.  For a group element this is exactly
  :func:`~gcnn.nn.transform_feature_map`; between elements each map is turned by the angle and the group axis
  shifted by the matching fraction of a step, interpolating linearly between the two neighbouring elements
  (the natural continuous extension; an equivariant network can only approximate it).
* :func:`compare`: every layer's ``f(x)``, ``f(g x)``, ``g . f(x)`` and their largest difference.
* :func:`largest_differences`: that difference for many transformations at once (one forward pass).
* :func:`ring_layout`: the group axis laid out as a ring, elements around a circle in angle order, so the
  group axis permutation reads as a turn of the ring.

Differences are measured as ``max |f(g x) - g . f(x)|`` divided by the range of ``f(x)`` in that layer, inside
the disc inscribed in the maps for turns that are not quarter turns (those move the corners out of view).
:func:`gcnn.equivariance.check_equivariance` (a relative L2 norm per group element, per module) measures the
same property for whole modules; this module works on every layer of one forward pass and on angles between
elements, which the page needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..groups import Group, base_grid, resample
from ..models import GroupEquivariantCNN
from ..nn import transform_feature_map

__all__ = ["Transformation", "element_transformation", "element_label", "group_label", "find_element",
           "transform_images", "act_on_maps", "LayerComparison", "compare", "orbit", "largest_differences", "verdict",
           "describe", "readable", "move_words", "ring_layout", "strongest_channel", "untrained_model", "ROUNDING",
           "APPROXIMATE"]

# Thresholds on the largest difference (a fraction of the maps' range) used to put it into words.
ROUNDING = 1e-5  # float32 arithmetic reordered: the maps are equal
APPROXIMATE = 0.05  # a few percent: the interpolation of turned kernels and images, the maps agree closely


@dataclass(frozen=True)
class Transformation:
    """A turn by ``angle`` degrees, counter-clockwise as displayed, after a left-right mirror if ``mirrored``."""

    angle: float
    mirrored: bool = False

    @property
    def quarter_turns(self) -> int | None:
        """The number of quarter turns, or ``None`` when ``angle`` is not a multiple of 90 degrees."""
        turns = (self.angle % 360) / 90
        return round(turns) % 4 if abs(turns - round(turns)) < 1e-9 else None

    @property
    def exact(self) -> bool:
        """Whether it moves whole pixels (quarter turns and mirrors), so nothing is interpolated."""
        return self.quarter_turns is not None

    @property
    def label(self) -> str:
        return f"mirror, then {self.angle % 360:g}°" if self.mirrored else f"{self.angle % 360:g}°"

    @property
    def inverse(self) -> Transformation:
        """``g^-1``: the turn back; a mirror followed by a turn is a reflection, its own inverse."""
        return self if self.mirrored else Transformation(-self.angle)


def element_transformation(group: Group, g: int) -> Transformation:
    return Transformation(math.degrees(float(group.angle(g))), bool(group.is_mirrored(g)))


def element_label(group: Group, g: int) -> str:
    """``"90°"`` or ``"90° + mirror"``: a group element as people read it."""
    angle = f"{math.degrees(float(group.angle(g))):g}°"
    return f"{angle} + mirror" if bool(group.is_mirrored(g)) else angle


def group_label(group: Group) -> str:
    """A group as people read it: ``"C4, 4 rotations by 90°"``, ``"D4, 4 rotations by 90° and their mirror
    images"``; the trivial group is a plain CNN's."""
    turns = group.rotation_order
    mirrored = bool(group.is_mirrored(group.elements()).any())
    if turns == 1:
        return "D1, a mirror" if mirrored else "C1, no rotations (a plain CNN)"
    rotations = f"{turns} rotations by {360 / turns:g}°"
    return f"D{turns}, {rotations} and their mirror images" if mirrored else f"C{turns}, {rotations}"


def find_element(group: Group, transformation: Transformation) -> int | None:
    """The element of ``group`` that is ``transformation``, or ``None`` when it falls between elements."""
    for g in range(group.order):
        candidate = element_transformation(group, g)
        gap = (candidate.angle - transformation.angle + 180) % 360 - 180
        if candidate.mirrored == transformation.mirrored and abs(gap) < 1e-6:
            return g
    return None


def _turn(x: Tensor, angle: float) -> Tensor:
    """``x [..., H, W]`` turned by ``angle`` degrees about its centre: ``rot90`` for quarter turns, else bilinear
    with zero fill, sampled as :meth:`Group.transform_image` does (so inputs and maps are turned alike)."""
    turns = Transformation(angle).quarter_turns
    if turns is not None:
        return torch.rot90(x, turns, dims=(-2, -1))
    # (L f)(p) = f(R^-1 p): sample at the points turned back, in the grid's y-down coordinates.
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    back = torch.tensor([[c, -s], [s, c]], dtype=x.dtype)
    return resample(x, base_grid(*x.shape[-2:], dtype=x.dtype) @ back.T)


def transform_images(transformation: Transformation, images: Tensor) -> Tensor:
    """``images [..., H, W]`` mirrored left-right (if asked), then turned."""
    mirrored = torch.flip(images, dims=(-1,)) if transformation.mirrored else images
    return _turn(mirrored, transformation.angle)


def _rotation_index(group: Group, steps: int) -> int:
    """The element ``r^steps`` (rotation by ``steps`` group steps); its index is ``steps mod N`` in both groups."""
    return steps % group.rotation_order


def _permute(group: Group, g: int, maps: Tensor) -> Tensor:
    """The group axis of ``maps [B, C, |G|, H, W]`` permuted as ``g`` does, ``out[:, :, h] = maps[:, :, g^-1 h]``
    (no spatial transform)."""
    return maps[:, :, group.product(group.inverse(g), group.elements())]


def act_on_maps(group: Group, transformation: Transformation, maps: Tensor) -> Tensor:
    """``g . maps`` for a regular feature map ``maps [B, C, |G|, H, W]`` on ``group``.

    A group element acts exactly as :func:`gcnn.nn.transform_feature_map`.  A turn between elements turns every
    map by its angle and shifts the group axis by the fraction of a step, blending the two neighbouring shifts
    linearly.  ``ValueError`` for a mirror when ``group`` has none.
    """
    if maps.dim() != 5 or maps.shape[2] != group.order:
        raise ValueError(f"act_on_maps takes a regular feature map [B, C, {group.order}, H, W] on {group!r}, "
                         f"got shape {tuple(maps.shape)}")
    if transformation.mirrored:
        if not bool(group.is_mirrored(group.elements()).any()):
            raise ValueError(f"{group!r} has no mirror, so a mirrored input has no counterpart on its group axis")
        # The mirror s is index N (r^0 s) in DihedralGroup's layout.
        maps = transform_feature_map(group, group.rotation_order, maps)
    steps = (transformation.angle % 360) / (360 / group.rotation_order)
    whole = math.floor(steps + 1e-9)
    fraction = max(steps - whole, 0.0)
    shifted = _permute(group, _rotation_index(group, whole), maps)
    if fraction > 1e-9:
        shifted = (1 - fraction) * shifted + fraction * _permute(group, _rotation_index(group, whole + 1), maps)
    return _turn(shifted, transformation.angle)


def _disc(height: int, width: int) -> Tensor:
    """``[H, W]``: 1 inside the disc inscribed in the map, 0 outside (where a non-quarter turn loses pixels)."""
    ys = torch.arange(height, dtype=torch.float32) - (height - 1) / 2
    xs = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
    return ((ys[:, None] ** 2 + xs[None, :] ** 2) <= ((min(height, width) - 1) / 2) ** 2).float()


def _largest(actual: Tensor, expected: Tensor, reference: Tensor, mask: Tensor | None) -> float:
    """``max |actual - expected|`` (inside ``mask``) as a fraction of ``reference``'s range."""
    gap = (actual - expected).abs()
    if mask is not None:
        gap = gap * mask
    spread = float(reference.max() - reference.min())
    return float(gap.max()) / spread if spread > 0 else float(gap.max())


@dataclass
class LayerComparison:
    """One layer's maps for a digit ``x`` and a transformation ``g``, ``[C, |G|, H, W]`` each.

    ``maps`` is ``f(x)``, ``maps_transformed`` is ``f(g x)``, ``moved`` is ``g . f(x)``; ``mask [H, W]`` is the
    compared region (``None``: everywhere); ``largest`` is the largest difference as a fraction of the range of
    ``f(x)`` in this layer.

    ``round_trip`` is ``g^-1 . (g . f(x))``, and ``blending`` its largest difference from ``f(x)`` (the same
    measure): what turning these maps by ``g`` and back does to them with no network involved.  A turn that is
    not a quarter turn blends neighbouring pixels, on both sides of ``f(g x) = g . f(x)``, so even an operation
    that commutes with every turn leaves a difference there: ``relu(x - 0.5)`` on MNIST digits, turned by
    22.5 degrees, differs by 0.35-0.47 of its range, and its round trip by 0.35-0.52 (20 test digits).  A layer
    whose difference is no larger than its round trip follows the turn as closely as its pixel grid allows.
    Only the layer's own group elements get this yardstick (22.5 degrees in C16): for moves of whole pixels, and
    for turns between the group's elements (which the network was not built to follow, and whose move also
    blends neighbouring maps round the ring), ``round_trip`` is ``f(x)`` itself and ``blending`` 0.
    """

    name: str
    group: Group
    maps: Tensor
    maps_transformed: Tensor
    moved: Tensor
    mask: Tensor | None
    largest: float
    round_trip: Tensor
    blending: float

    @property
    def difference(self) -> Tensor:
        """``f(g x) - g . f(x)`` inside the compared region (zero outside it)."""
        gap = self.maps_transformed - self.moved
        return gap if self.mask is None else gap * self.mask

    def channel_largest(self, channel: int) -> float:
        """The largest difference in one channel, as a fraction of that channel's range."""
        return _largest(self.maps_transformed[channel], self.moved[channel], self.maps[channel], self.mask)

    def channel_blending(self, channel: int) -> float:
        """``blending`` for one channel, as a fraction of that channel's range."""
        return _largest(self.round_trip[channel], self.maps[channel], self.maps[channel], self.mask)


def _feature_maps(model: nn.Module, images: Tensor) -> list:
    """Every block's maps; for a GCNN, the lifting convolution's own output first (its kernels alone)."""
    model.eval()
    maps = model.feature_maps(images)
    return [model.lifting_map(images), *maps] if isinstance(model, GroupEquivariantCNN) else maps


@torch.no_grad()
def compare(model: nn.Module, image: Tensor, transformation: Transformation) -> list[LayerComparison]:
    """Every layer's ``f(x)``, ``f(g x)`` and ``g . f(x)`` for ``image [1, H, W]``: one forward pass on the pair.

    A layer whose group cannot express the transformation (a mirror on a cyclic group) gets ``moved`` and the
    difference of NaN.
    """
    pair = torch.stack([image, transform_images(transformation, image)])
    comparisons = []
    for feature in _feature_maps(model, pair):
        plain, transformed = feature.tensor[:1], feature.tensor[1:]
        mask = None if transformation.exact else _disc(*plain.shape[-2:])
        try:
            moved = act_on_maps(feature.group, transformation, plain)
            largest = _largest(transformed, moved, plain, mask)
            blends = not transformation.exact and find_element(feature.group, transformation) is not None
            round_trip = act_on_maps(feature.group, transformation.inverse, moved) if blends else plain
            blending = _largest(round_trip, plain, plain, mask)
        except ValueError:
            moved, largest = torch.full_like(plain, math.nan), math.nan
            round_trip, blending = moved, math.nan
        comparisons.append(LayerComparison(feature.name, feature.group, plain[0], transformed[0], moved[0], mask,
                                           largest, round_trip[0], blending))
    return comparisons


@torch.no_grad()
def orbit(model: nn.Module, image: Tensor, transformations: Sequence[Transformation]) -> tuple[Tensor, list]:
    """The digit ``image [1, H, W]`` followed by each transformed copy, ``[1 + T, 1, H, W]``, and every layer's
    maps of that batch (:class:`gcnn.models.FeatureMap`, ``[1 + T, C, |G|, H, W]``): one forward pass."""
    batch = torch.stack([image, *(transform_images(t, image) for t in transformations)])
    return batch, _feature_maps(model, batch)


@torch.no_grad()
def largest_differences(model: nn.Module, image: Tensor, transformations: Sequence[Transformation]) -> Tensor:
    """``[T, L]``: the largest difference of every layer (columns) under every transformation (rows).

    One forward pass on the digit and all its transformed copies; NaN where a layer's group has no counterpart.
    """
    _, maps = orbit(model, image, transformations)
    result = torch.full((len(transformations), len(maps)), math.nan)
    for column, feature in enumerate(maps):
        plain = feature.tensor[:1]
        for row, transformation in enumerate(transformations):
            try:
                moved = act_on_maps(feature.group, transformation, plain)
            except ValueError:
                continue
            mask = None if transformation.exact else _disc(*plain.shape[-2:])
            result[row, column] = _largest(feature.tensor[row + 1: row + 2], moved, plain, mask)
    return result


def verdict(largest: float, blending: float = 0.0) -> str:
    """A largest difference (fraction of the maps' range) in plain words, against ``blending``, what turning the
    maps there and back alone does (:class:`LayerComparison`; 0 for moves of whole pixels)."""
    if math.isnan(largest):
        return "no counterpart: this layer's group has no mirror"
    if largest < ROUNDING:
        return "equal, up to the computer's rounding"
    if largest < APPROXIMATE:
        return "nearly equal, as any turn but a quarter turn blends pixels"
    if blending >= ROUNDING:
        return "as close as blended pixels allow" if largest <= blending else \
            "further apart than blended pixels alone explain"
    return "clearly different"


def describe(largest: float, blending: float = 0.0) -> str:
    """A largest difference in plain words first, the numbers second: ``"equal, up to the computer's rounding
    (largest difference 1 × 10⁻⁷ of the maps' range)"``; for a turn that blends pixels, with the round trip's."""
    if math.isnan(largest):
        return verdict(largest)
    words = f"{verdict(largest, blending)} (largest difference {readable(largest)} of the maps' range"
    if blending >= ROUNDING:
        words += f"; turning the upright digit's maps there and back alone changes them by {readable(blending)}"
    return words + ")"


def readable(value: float) -> str:
    """``0.4``, ``0.02``, ``2 × 10⁻⁷``: as a reader writes it, one significant digit."""
    if value == 0:
        return "0"
    if value >= 1e-3:
        return f"{value:.1g}"
    mantissa, exponent = f"{value:.0e}".split("e")
    superscript = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    return f"{mantissa} × 10{str(int(exponent)).translate(superscript)}"


def move_words(group: Group, transformation: Transformation) -> str:
    """What ``transformation`` does to a regular feature map on ``group``, in words: ``"turned by 90° and moved
    one step round the ring"``; between elements, a fraction of a step (a blend of two neighbouring maps)."""
    angle = transformation.angle % 360
    moves = f"{'mirrored, ' if transformation.mirrored else ''}turned by {angle:g}°"
    if group.order == 1:
        return f"{moves} (a plain CNN has no ring to move round)"
    steps = angle / (360 / group.rotation_order)
    whole = round(steps)
    if abs(steps - whole) < 1e-6:
        around = {0: "left in place", 1: "moved one step round the ring"}.get(whole, f"moved {whole} steps round "
                                                                                 "the ring")
    else:
        around = f"moved {steps:.2g} steps round the ring (a blend of two neighbouring maps)"
    return f"{moves} and {around}" + (", to the other ring" if transformation.mirrored else "")


def ring_layout(group: Group, inner_radius: float = 0.55) -> Tensor:
    """``[|G|, 2]`` positions ``(x, y)``, y up, of the group axis around a ring: the identity at the top, each
    element at its own angle counter-clockwise (so turning the input turns the ring by the same angle); mirrored
    elements on an inner ring of ``inner_radius``, next to the rotation they share an angle with."""
    elements = group.elements()
    angles = group.angle(elements) + math.pi / 2
    radius = torch.where(group.is_mirrored(elements), inner_radius, 1.0).to(torch.float64)
    return torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1)


def strongest_channel(maps: Tensor) -> int:
    """The channel of ``maps [C, |G|, H, W]`` whose maps differ most along the group axis (the clearest turn of
    the ring); by overall activation when there is no group axis to speak of."""
    spread = (maps - maps.mean(dim=1, keepdim=True)).abs().mean(dim=(1, 2, 3))
    score = spread if bool((spread > 0).any()) else maps.abs().mean(dim=(1, 2, 3))
    return int(score.argmax())


def untrained_model(group: Group, seed: int = 0) -> GroupEquivariantCNN:
    """A small GCNN on ``group`` with seeded random weights, in eval mode: for groups no shipped model uses
    (the dihedral ones).  Equivariance comes from the architecture, not from training, so its maps show it too.
    Kernel 5 with padding 2 keeps 28 x 28 maps, large enough to read in a ring; one 2 x 2 pool after layer 1."""
    with torch.random.fork_rng():  # seeded without touching the caller's random state
        torch.manual_seed(seed)
        return GroupEquivariantCNN(group, kernel_size=5, num_hidden=2, hidden_channels=[6, 8, 8], padding=2,
                                   pool_after=[1]).eval()
