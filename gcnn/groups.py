"""Finite groups of planar rotations and reflections.

Elements are integers ``0 .. order - 1``; every operation works on integer
tensors, so no float angle is ever compared or wrapped around.

Conventions (shared by every module of :mod:`gcnn`):

* Images are ``[..., H, W]`` tensors displayed with row 0 on top.
* A rotation by ``theta`` turns an image **counter-clockwise as displayed**.
  Element ``j`` of ``CyclicGroup(N)`` rotates by ``2*pi*j/N``, so
  ``torch.rot90(x, 1, dims=(-2, -1))`` is element ``N // 4`` when ``4 | N``.
* :meth:`Group.matrix_representation` uses mathematical coordinates
  (x to the right, y **up**).  :meth:`Group.left_action_on_R2` acts on
  sampling grids in :func:`torch.nn.functional.grid_sample` layout
  (``[..., 2]`` holding ``(x, y)`` with x to the right and y **down**).
"""

from __future__ import annotations

import math
import operator
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

__all__ = ["Group", "CyclicGroup", "DihedralGroup", "group_from_config", "transform_feature_map"]

# Flips the y axis: maps mathematical (y up) coordinates to image (y down) ones and back.
_FLIP_Y = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)


class Group(ABC):
    """A finite group of isometries of the plane that fix the origin.

    Subclasses define the multiplication table and each element's rotation
    angle and mirror flag; everything else is derived here.
    """

    def __init__(self, order: int) -> None:
        self.order = int(order)

    # -- structure -----------------------------------------------------------------
    def __len__(self) -> int:
        return self.order

    def elements(self) -> Tensor:
        """All elements, ``LongTensor [order]``."""
        return torch.arange(self.order)

    @property
    def identity(self) -> int:
        return 0

    @abstractmethod
    def product(self, g: Tensor | int, h: Tensor | int) -> Tensor:
        """Elementwise product ``g * h`` of broadcastable integer tensors."""

    @abstractmethod
    def inverse(self, g: Tensor | int) -> Tensor:
        """Elementwise inverse of an integer tensor of elements."""

    def left_action_on_H(self, g: Tensor | int, h: Tensor | int) -> Tensor:
        """All products ``g_i * h_j``: ``[len(g), len(h)]`` for 1-D inputs."""
        g = torch.as_tensor(g).reshape(-1, 1)
        h = torch.as_tensor(h).reshape(1, -1)
        return self.product(g, h)

    # -- geometry ------------------------------------------------------------------
    @abstractmethod
    def angle(self, g: Tensor | int) -> Tensor:
        """Rotation angle in radians (float64), counter-clockwise as displayed."""

    @abstractmethod
    def is_mirrored(self, g: Tensor | int) -> Tensor:
        """Whether ``g`` includes the mirror ``x -> -x`` (a left-right flip)."""

    def quarter_turns(self, g: int) -> int | None:
        """The number of quarter turns of ``g``'s rotation, or ``None`` if not a multiple of 90 degrees."""
        turns = float(self.angle(g)) / (math.pi / 2)
        nearest = round(turns)
        return nearest % 4 if abs(turns - nearest) < 1e-9 else None

    def is_pixel_exact(self, g: int) -> bool:
        """Whether ``g`` maps the pixel grid onto itself (so no interpolation is needed)."""
        return self.quarter_turns(g) is not None

    @property
    def all_pixel_exact(self) -> bool:
        return all(self.is_pixel_exact(g) for g in range(self.order))

    def matrix_representation(self, g: Tensor | int) -> Tensor:
        """Orthogonal matrices ``[..., 2, 2]`` (float64) in y-up coordinates.

        A mirrored element first flips ``x -> -x`` and then rotates.
        """
        theta = self.angle(g)
        c, s = torch.cos(theta), torch.sin(theta)
        rotation = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
        mirror = torch.where(torch.as_tensor(self.is_mirrored(g)), -1.0, 1.0).to(torch.float64)
        flip = torch.ones(*mirror.shape, 2, dtype=torch.float64)
        flip[..., 0] = mirror
        return rotation * flip[..., None, :]  # rotation @ diag(mirror, 1)

    def left_action_on_R2(self, g: Tensor | int, grid: Tensor) -> Tensor:
        """Apply ``g`` to points of a sampling grid.

        Args:
            g: an element, or a 1-D tensor of ``n`` elements.
            grid: ``[..., 2]`` points ``(x, y)`` in grid_sample layout (y down).

        Returns:
            ``[..., 2]`` for a single element, ``[n, ..., 2]`` for a 1-D ``g``,
            in ``grid``'s dtype.  To resample an image ``f`` as ``L_g f``
            (``(L_g f)(p) = f(g^-1 p)``), sample ``f`` at
            ``left_action_on_R2(inverse(g), base_grid)``.
        """
        matrix = _FLIP_Y @ self.matrix_representation(g) @ _FLIP_Y  # y-down coordinates
        matrix = matrix.to(grid.dtype)
        if matrix.dim() == 2:
            return grid @ matrix.T
        return torch.einsum("nij,...j->n...i", matrix, grid)

    def transform_image(self, g: int, image: Tensor) -> Tensor:
        """``L_g image`` for ``image [..., H, W]``, exact when ``g`` is pixel exact.

        Other elements resample bilinearly about the image centre with zero fill.
        """
        turns = self.quarter_turns(g)
        if turns is not None:
            flipped = torch.flip(image, dims=(-1,)) if bool(self.is_mirrored(g)) else image
            return torch.rot90(flipped, turns, dims=(-2, -1))
        return resample(image, self.left_action_on_R2(self.inverse(g), base_grid(*image.shape[-2:])))

    def resample_image(self, image: Tensor) -> Tensor:
        """Every element's action on ``image [..., H, W]`` through :meth:`left_action_on_R2` and ``grid_sample``.

        Returns ``[|G|, ..., H, W]``, element ``g`` at index ``g``; bilinear, zero fill.
        """
        grids = self.left_action_on_R2(self.inverse(self.elements()), base_grid(*image.shape[-2:]))
        return torch.stack([resample(image, grid) for grid in grids])

    # -- subgroups -----------------------------------------------------------------
    @abstractmethod
    def embed(self, subgroup: Group) -> Tensor:
        """Indices in ``self`` of ``subgroup``'s elements, ``LongTensor [len(subgroup)]``.

        Raises ``ValueError`` when ``subgroup`` is not a subgroup of ``self``.
        """

    def restriction_index(self, subgroup: Group) -> Tensor:
        """Index ``[num_cosets, len(subgroup)]`` splitting this group into right cosets ``H g_t``.

        Entry ``[t, h]`` is the index of ``h * g_t``: reading a regular feature
        map's group axis through it turns it into ``num_cosets`` regular
        feature maps of the subgroup.
        """
        embedded = self.embed(subgroup)
        covered = torch.zeros(self.order, dtype=torch.bool)
        cosets = []
        for representative in range(self.order):
            if not covered[representative]:
                coset = self.product(embedded, representative)
                covered[coset] = True
                cosets.append(coset)
        return torch.stack(cosets)

    # -- serialisation -------------------------------------------------------------
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable description; :func:`group_from_config` inverts it."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Group) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.config().items())))


class CyclicGroup(Group):
    """``C_N``: the ``N`` rotations by multiples of ``2*pi/N``.

    Element ``j`` rotates by ``2*pi*j/N`` counter-clockwise as displayed;
    ``product(i, j) = (i + j) mod N``.
    """

    def __init__(self, order: int) -> None:
        self.rotation_order = _whole_order(order, "CyclicGroup")  # number of rotations, as for DihedralGroup
        super().__init__(self.rotation_order)

    def product(self, g: Tensor | int, h: Tensor | int) -> Tensor:
        return torch.remainder(torch.as_tensor(g) + torch.as_tensor(h), self.order)

    def inverse(self, g: Tensor | int) -> Tensor:
        return torch.remainder(-torch.as_tensor(g), self.order)

    def angle(self, g: Tensor | int) -> Tensor:
        return torch.as_tensor(g, dtype=torch.float64) * (2 * math.pi / self.order)

    def is_mirrored(self, g: Tensor | int) -> Tensor:
        return torch.zeros_like(torch.as_tensor(g), dtype=torch.bool)

    def embed(self, subgroup: Group) -> Tensor:
        if not isinstance(subgroup, CyclicGroup) or self.order % subgroup.order:
            raise ValueError(f"{subgroup!r} is not a subgroup of {self!r}")
        return subgroup.elements() * (self.order // subgroup.order)

    def config(self) -> dict[str, Any]:
        return {"name": "cyclic", "order": self.order}

    def __repr__(self) -> str:
        return f"CyclicGroup(order={self.order})"


class DihedralGroup(Group):
    """``D_N``: ``N`` rotations and their ``N`` mirror images, ``2N`` elements.

    ``order`` passed to the constructor is the number of rotations ``N``;
    ``len(group)`` and ``group.order`` are ``2N``.  Layout of the group axis:
    index ``m * N + j`` is ``r^j s^m``, i.e. first the mirror ``s`` (a
    left-right flip, ``torch.flip(x, dims=(-1,))``) if ``m == 1``, then the
    rotation ``r^j`` by ``2*pi*j/N``.  Indices ``0 .. N-1`` are the rotations
    and form a ``CyclicGroup(N)``.  ``DihedralGroup(1)`` is the mirror group.
    """

    def __init__(self, order: int) -> None:
        self.rotation_order = _whole_order(order, "DihedralGroup")
        super().__init__(2 * self.rotation_order)

    def _split(self, g: Tensor | int) -> tuple[Tensor, Tensor]:
        g = torch.as_tensor(g)
        return torch.remainder(g, self.rotation_order), g // self.rotation_order

    def product(self, g: Tensor | int, h: Tensor | int) -> Tensor:
        # r^a s^m * r^b s^n = r^(a + (-1)^m b) s^(m + n)
        a, m = self._split(g)
        b, n = self._split(h)
        rotation = torch.remainder(a + torch.where(m == 1, -b, b), self.rotation_order)
        return torch.remainder(m + n, 2) * self.rotation_order + rotation

    def inverse(self, g: Tensor | int) -> Tensor:
        # Mirrors are involutions; rotations invert to r^-j.
        j, m = self._split(g)
        return torch.where(m == 1, torch.as_tensor(g), torch.remainder(-j, self.rotation_order))

    def angle(self, g: Tensor | int) -> Tensor:
        j, _ = self._split(g)
        return j.to(torch.float64) * (2 * math.pi / self.rotation_order)

    def is_mirrored(self, g: Tensor | int) -> Tensor:
        return self._split(g)[1] == 1

    def embed(self, subgroup: Group) -> Tensor:
        n = subgroup.order if isinstance(subgroup, CyclicGroup) else getattr(subgroup, "rotation_order", 0)
        if n == 0 or self.rotation_order % n:
            raise ValueError(f"{subgroup!r} is not a subgroup of {self!r}")
        step = self.rotation_order // n
        if isinstance(subgroup, CyclicGroup):
            return subgroup.elements() * step
        j, m = torch.remainder(subgroup.elements(), n), subgroup.elements() // n
        return m * self.rotation_order + j * step

    def config(self) -> dict[str, Any]:
        return {"name": "dihedral", "order": self.rotation_order}

    def __repr__(self) -> str:
        return f"DihedralGroup(order={self.rotation_order})"


def group_from_config(config: dict[str, Any]) -> Group:
    """Rebuild a group from :meth:`Group.config`."""
    kinds = {"cyclic": CyclicGroup, "dihedral": DihedralGroup}
    if not isinstance(config, dict):
        raise ValueError(f"a group config is a dict such as {{'name': 'cyclic', 'order': 4}}, got {config!r}")
    name = config.get("name")
    if name not in kinds:
        raise ValueError(f"unknown group {name!r}; expected one of {sorted(kinds)}")
    return kinds[name](config.get("order"))


def _whole_order(order: object, group: str) -> int:
    """``order`` as an ``int``: ``TypeError`` unless it is a whole number (an ``int``, a NumPy or 0-d torch
    integer; not a ``bool`` or a float, which used to be truncated), ``ValueError`` below 1."""
    try:
        if isinstance(order, bool):
            raise TypeError
        whole = operator.index(order)
    except TypeError:
        raise TypeError(f"{group} order must be a positive integer, got {order!r} ({type(order).__name__})") from None
    if whole < 1:
        raise ValueError(f"{group} order must be a positive integer, got {whole}")
    return whole


def transform_feature_map(group: Group, g: int, x: Tensor) -> Tensor:
    """The action of ``g`` on a regular feature map ``x [B, C, |G|, H, W]``.

    ``out[:, :, h] = L_g x[:, :, g^-1 h]``: each slice transformed spatially
    (exactly for pixel-exact elements), the group axis permuted.  An
    equivariant layer ``f`` satisfies ``f(L_g image) == transform_feature_map(group, g, f(image))``.
    """
    source = group.product(group.inverse(g), group.elements())
    return group.transform_image(g, x[:, :, source])


def base_grid(height: int, width: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Pixel-centre sampling grid ``[H, W, 2]`` in grid_sample layout (align_corners=True).

    Coordinates are scaled by the larger side so that rotations keep their
    shape on non-square images.
    """
    scale = (max(height, width) - 1) / 2 or 1.0
    ys = (torch.arange(height, dtype=dtype) - (height - 1) / 2) / scale
    xs = (torch.arange(width, dtype=dtype) - (width - 1) / 2) / scale
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)


def resample(image: Tensor, grid: Tensor) -> Tensor:
    """Bilinearly sample ``image [..., H, W]`` at ``grid [H', W', 2]`` made by :func:`base_grid`.

    Points outside the image read as zero.
    """
    height, width = image.shape[-2:]
    scale = max(height, width) - 1 or 1
    # base_grid scales by the larger side; grid_sample wants each axis in [-1, 1].
    normalised = grid * torch.tensor([scale / max(width - 1, 1), scale / max(height - 1, 1)], dtype=grid.dtype)
    flat = image.reshape(-1, 1, height, width)
    out = torch.nn.functional.grid_sample(
        flat, normalised.to(flat.dtype).expand(flat.shape[0], *grid.shape), mode="bilinear",
        padding_mode="zeros", align_corners=True,
    )
    return out.reshape(*image.shape[:-2], *grid.shape[:2])
