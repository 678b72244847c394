"""Kernel bases: how a group convolution's stored parameters become one ``k x k`` kernel per group element.

A layer stores, for every (output channel, input channel[, input group element]), a vector ``c`` of ``n``
numbers.  A basis fixes ``n`` and the linear maps ``T[g]`` (``[k*k, n]``) with ``vec(L_g kernel) = T[g] @ c``,
where ``(L_g K)(p) = K(g^-1 p)`` is the kernel transformed by the group element ``g``.  Layers fold ``T`` into
their precomputed kernel-bank transform (see :class:`gcnn.nn.LiftingConvolution`), so the basis changes what
the parameters mean, never the cost of a forward pass.

Two bases:

:class:`PixelBasis` (``"pixel"``, the default)
    ``c`` holds kernel pixels, as in ``nn.Conv2d``.  Quarter turns and mirrors permute them exactly; any other
    element resamples the kernel bilinearly, which blurs it and breaks equivariance between quarter turns
    (relative error ~0.15-0.2 for a C16 lifting layer on MNIST digits).  Groups with such elements store only
    the disc of pixels within ``k/2`` of the centre (the corners would rotate off the grid).

:class:`HarmonicBasis` (``"harmonic"``)
    ``c`` holds coefficients of smooth, band-limited functions of the plane, sampled on the pixel grid:
    Gaussian rings times circular harmonics, in polar coordinates ``(rho, phi)`` about the kernel's centre,

        psi_{r,m,cos}(rho, phi) = exp(-(rho - r)^2 / (2 sigma^2)) cos(m phi)
        psi_{r,m,sin}(rho, phi) = exp(-(rho - r)^2 / (2 sigma^2)) sin(m phi)      (m > 0)

    for ring radii ``r = 0, 1, ..., (k-1)/2`` pixels (``sigma`` for every ring, or ``outer_sigma`` for the
    outermost, as e2cnn narrows it to 0.4) and frequencies ``0 <= m <= min(max_frequency,
    floor(frequency_cutoff * r))`` (ring 0: ``m = 0`` only; a ring of radius ``r`` has about ``2 pi r`` pixels,
    so ``cutoff = 0.8 pi`` keeps every harmonic below its Nyquist frequency, as in e2cnn).  Each element's
    kernel is the *continuous* function transformed analytically, ``psi(g^-1 p)``, then sampled at the pixel
    centres ``p``, so a turn by 22.5 degrees loses nothing to interpolation.  Quarter turns and mirrors map
    pixel centres onto pixel centres: their matrices are the identity's rows permuted (``torch.rot90`` /
    ``torch.flip``), so they are exact to the last bit, as for the pixel basis.  Every pair of functions (the
    cosine and sine of one ring and frequency) is scaled to unit RMS norm on the grid, so the layers' default
    initialisation gives kernels of about the pixel basis's energy, with no preferred orientation.

    Why a narrower outer ring helps: the ring of radius ``(k-1)/2`` spills past the disc of radius ``k/2`` that
    every turn maps onto itself, and the square grid samples that spill only towards its corners, so a turn by
    22.5 degrees moves kernel energy onto pixels that the upright kernel does not have.  On a 5x5 grid the four
    corner pixels hold 4.5% of the outer ring's energy at ``sigma = 0.6`` and 0.5% at ``outer_sigma = 0.4``
    (e2cnn's choice).  gcnn_best's C16 lifting layer at initialisation: error at the worst element 0.096 ->
    0.073 (``benchmarks/bench_basis.py``).

Bases are small immutable descriptions (``config()`` / :func:`basis_from_config`), independent of the kernel
size; :meth:`KernelBasis.matrices` builds the maps for one group and kernel size.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

from .groups import Group

__all__ = ["KernelBasis", "PixelBasis", "HarmonicBasis", "basis_from_config", "kernel_support",
           "kernel_transform_matrices"]


class KernelBasis(ABC):
    """A rule making one ``k x k`` kernel per group element from ``n`` stored numbers (see the module docs)."""

    name: str

    @abstractmethod
    def matrices(self, group: Group, kernel_size: int) -> Tensor:
        """``T [|G|, k*k, n]`` (float64): ``vec(L_g kernel) = T[g] @ c`` for the stored vector ``c [n]``."""

    def is_permutation(self, group: Group) -> bool:
        """Whether every ``T[g]`` is a permutation matrix (then a layer builds its bank by indexing alone)."""
        return False

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-ready description; :func:`basis_from_config` inverts it."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KernelBasis) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.config().items())))

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value!r}"
                              for key, value in self.config().items() if key != "name")
        return f"{type(self).__name__}({arguments})"


def kernel_support(group: Group, kernel_size: int) -> Tensor:
    """The kernel pixels the pixel basis stores for ``group``: flat indices into ``k x k`` (row-major).

    Pixel-exact groups use the whole square, ``arange(k * k)``.  Groups with an
    element that needs interpolation use the disc of radius ``k/2`` about the
    kernel's centre: a rotation would move the corners off the grid, so they
    are left out altogether rather than stored and masked (5x5: 21 of 25
    pixels; 3x3: all 9).
    """
    if group.all_pixel_exact:
        return torch.arange(kernel_size * kernel_size)
    centre = (kernel_size - 1) / 2
    ys, xs = torch.meshgrid(torch.arange(kernel_size), torch.arange(kernel_size), indexing="ij")
    disc = ((ys - centre) ** 2 + (xs - centre) ** 2) <= (kernel_size / 2) ** 2
    return disc.flatten().nonzero().flatten()


def _transform_images(group: Group, images: Tensor) -> Tensor:
    """``[|G|, k*k, n]``: every element's action on ``n`` images ``[n, k, k]``, as columns."""
    n = images.shape[0]
    return torch.stack([group.transform_image(g, images).reshape(n, -1).T for g in range(group.order)])


class PixelBasis(KernelBasis):
    """Kernels stored pixel by pixel; elements that are not quarter turns or mirrors resample them bilinearly."""

    name = "pixel"

    def matrices(self, group: Group, kernel_size: int) -> Tensor:
        """Permutation matrices (``rot90``/``flip``) for pixel-exact elements; for the others, bilinear
        resampling, with every element's output restricted to the stored disc, so no weight reaches a corner."""
        support = kernel_support(group, kernel_size)
        one_hot = torch.zeros(len(support), kernel_size * kernel_size, dtype=torch.float64)
        one_hot[torch.arange(len(support)), support] = 1.0  # one stored weight set to 1 per basis kernel
        matrices = _transform_images(group, one_hot.reshape(-1, kernel_size, kernel_size))
        if not group.all_pixel_exact:
            outside = torch.ones(kernel_size * kernel_size, dtype=torch.bool)
            outside[support] = False
            matrices[:, outside] = 0.0
        return matrices

    def is_permutation(self, group: Group) -> bool:
        return group.all_pixel_exact

    def config(self) -> dict[str, Any]:
        return {"name": self.name}


class HarmonicBasis(KernelBasis):
    """Gaussian rings times circular harmonics, turned analytically (see the module docs for the formulas).

    Args:
        max_frequency: the highest angular frequency ``m`` on any ring.
        sigma: the rings' width (standard deviation, pixels).
        frequency_cutoff: a ring of radius ``r`` keeps ``m <= frequency_cutoff * r`` (``0.8 pi`` by default).
        outer_sigma: the outermost ring's width, where it differs from ``sigma`` (e2cnn: 0.4); ``None``: ``sigma``.
            A ring of radius 0 (kernel size 1 or 2) is never the outer one.
    """

    name = "harmonic"

    def __init__(self, max_frequency: int = 2, sigma: float = 0.6, frequency_cutoff: float = 0.8 * math.pi,
                 outer_sigma: float | None = None) -> None:
        if isinstance(max_frequency, bool) or not isinstance(max_frequency, int) or max_frequency < 0:
            raise ValueError(f"max_frequency must be a non-negative int, got {max_frequency!r}")
        if not sigma > 0 or not frequency_cutoff >= 0 or not (outer_sigma is None or outer_sigma > 0):
            raise ValueError(f"sigma and outer_sigma must be positive and frequency_cutoff non-negative, got "
                             f"{sigma}, {outer_sigma}, {frequency_cutoff}")
        self.max_frequency = max_frequency
        self.sigma = float(sigma)
        self.frequency_cutoff = float(frequency_cutoff)
        self.outer_sigma = None if outer_sigma is None else float(outer_sigma)

    def ring_width(self, radius: float, kernel_size: int) -> float:
        """The standard deviation of the ring of ``radius`` pixels in a ``kernel_size`` kernel."""
        outermost = (kernel_size - 1) // 2
        return self.outer_sigma if self.outer_sigma is not None and radius == outermost > 0 else self.sigma

    def functions(self, kernel_size: int) -> list[tuple[float, int, str]]:
        """The basis functions as ``(ring radius, frequency, "cos" | "sin")``, in storage order."""
        functions = []
        for radius in range((kernel_size - 1) // 2 + 1):
            top = min(self.max_frequency, math.floor(self.frequency_cutoff * radius + 1e-9))
            for m in range(top + 1):
                functions += [(float(radius), m, "cos")] + ([(float(radius), m, "sin")] if m else [])
        return functions

    def _sample(self, kernel_size: int, points: Tensor) -> Tensor:
        """Every function at ``points [P, 2]`` (``(x, y)``, y up, pixel units about the centre): ``[P, n]``."""
        rho = points.norm(dim=-1)
        phi = torch.atan2(points[:, 1], points[:, 0])
        columns = []
        for radius, m, part in self.functions(kernel_size):
            ring = torch.exp(-((rho - radius) ** 2) / (2 * self.ring_width(radius, kernel_size) ** 2))
            columns.append(ring * (torch.cos(m * phi) if part == "cos" else torch.sin(m * phi)))
        return torch.stack(columns, dim=-1)

    def _scales(self, kernel_size: int, samples: Tensor) -> Tensor:
        """``[n]``: one scale per (ring, frequency), the RMS of its cosine's and sine's norms on the grid.

        One scale for both, not one each: the grid samples ``cos(m phi)`` and ``sin(m phi)`` unequally, and
        scaling them apart would make randomly initialised kernels prefer some orientations over others.
        """
        norms = samples.norm(dim=0)
        keys = [(radius, m) for radius, m, _ in self.functions(kernel_size)]
        return torch.stack([norms[[j for j, other in enumerate(keys) if other == key]].square().mean().sqrt()
                            for key in keys])

    def matrices(self, group: Group, kernel_size: int) -> Tensor:
        """``psi(g^-1 p)`` at every pixel centre ``p`` for the elements that interpolate; the identity's samples
        permuted by ``rot90``/``flip`` for quarter turns and mirrors (exact).  Columns scaled to about unit norm."""
        centre = (kernel_size - 1) / 2
        rows, cols = torch.meshgrid(torch.arange(kernel_size, dtype=torch.float64),
                                    torch.arange(kernel_size, dtype=torch.float64), indexing="ij")
        points = torch.stack([cols - centre, centre - rows], dim=-1).reshape(-1, 2)  # (x, y), y up
        identity = self._sample(kernel_size, points)  # [k*k, n]
        scale = self._scales(kernel_size, identity)
        identity = identity / scale
        images = identity.T.reshape(-1, kernel_size, kernel_size)
        matrices = []
        for g in range(group.order):
            if group.is_pixel_exact(g):
                matrices.append(group.transform_image(g, images).reshape(len(images), -1).T)
            else:
                # (L_g psi)(p) = psi(g^-1 p); with row vectors and an orthogonal M_g, g^-1 p is p @ M_g.
                matrices.append(self._sample(kernel_size, points @ group.matrix_representation(g)) / scale)
        return torch.stack(matrices)

    def config(self) -> dict[str, Any]:
        config = {"name": self.name, "max_frequency": self.max_frequency, "sigma": self.sigma,
                  "frequency_cutoff": self.frequency_cutoff}
        # Only where set, so the configs of the models trained before it existed stay what they were.
        return config if self.outer_sigma is None else {**config, "outer_sigma": self.outer_sigma}


_BASES: dict[str, type[KernelBasis]] = {"pixel": PixelBasis, "harmonic": HarmonicBasis}


def basis_from_config(config: KernelBasis | str | dict[str, Any] | None) -> KernelBasis:
    """A basis from its :meth:`KernelBasis.config`, its name (default settings), or itself; ``None``: pixels."""
    if isinstance(config, KernelBasis):
        return config
    if config is None:
        return PixelBasis()
    settings = {"name": config} if isinstance(config, str) else dict(config)
    name = settings.pop("name", None)
    if name not in _BASES:
        raise ValueError(f"unknown kernel basis {name!r}; expected one of {', '.join(map(repr, _BASES))}")
    try:
        return _BASES[name](**settings)
    except TypeError as error:
        raise ValueError(f"bad {name} basis settings {settings}: {error}") from error


def kernel_transform_matrices(group: Group, kernel_size: int, basis: KernelBasis | str | None = None) -> Tensor:
    """``[|G|, k*k, n]`` (float32): the linear maps taking a layer's stored numbers to its transformed
    ``k x k`` kernels, ``vec(L_g kernel) = T[g] @ stored`` (see :meth:`KernelBasis.matrices`)."""
    return basis_from_config(basis).matrices(group, kernel_size).to(torch.float32)
