"""Kernel bases as the Groups & kernels page shows them: one kernel, turned by every element of a group."""

from __future__ import annotations

import torch
from torch import Tensor

from ..basis import KernelBasis, basis_from_config
from ..groups import Group
from ..nn import LiftingConvolution
from ..presets import PRESETS

# The harmonic basis as the shipped gcnn_best uses it, so the page shows the kernels the model is made of.
SHIPPED_HARMONIC = basis_from_config(PRESETS["gcnn_best"]["model"]["basis"])


@torch.no_grad()
def turned_kernels(group: Group, basis: KernelBasis | str, kernel_size: int = 5, seed: int = 0) -> Tensor:
    """``[|G|, k, k]``: one seeded random kernel of ``basis``, as the layer makes it for each element of ``group``.

    With the pixel basis the copies between quarter turns are bilinear resamplings of the pixels (blurred, and
    different in character from the upright kernel); with the harmonic basis each copy is the same smooth function
    turned analytically, then sampled.
    """
    layer = LiftingConvolution(group, kernel_size, 1, 1, bias=False, basis=basis)
    generator = torch.Generator().manual_seed(seed)
    layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator))
    return layer.transformed_weight()[0, :, 0]


def kernel_energy_kept(kernels: Tensor) -> list[float]:
    """For each row of ``kernels [R, |G|, k, k]`` (one kernel turned by every element), the smallest squared norm
    of a turned copy over the upright copy's: how much of the kernel the blurriest turn keeps."""
    energy = kernels.square().flatten(-2).sum(-1)  # [R, |G|]
    return (energy.min(dim=1).values / energy[:, 0]).tolist()
