"""Kernel bases as the Groups & kernels page shows them: one kernel, turned by every element of a group."""

from __future__ import annotations

import torch
from torch import Tensor

from ..basis import KernelBasis
from ..groups import Group
from ..nn import LiftingConvolution


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
