"""Export a trained model as plain ``torch.nn`` layers: ordinary convolutions with the kernel banks baked in.

A group convolution is one ``conv2d`` over its transformed kernel bank, so a
trained :class:`~gcnn.models.GroupEquivariantCNN` is, at inference time, a
plain CNN on ``[B, C * |G|, H, W]`` tensors (channel ``c * |G| + g`` holds
channel ``c`` at group element ``g``).  :func:`export_plain` builds that CNN:

* each group convolution becomes an ``nn.Conv2d`` holding its kernel bank;
* batch norm (eval statistics) is folded into the convolution before it;
* the reference layer norm over ``[C, |G|, H, W]`` becomes ``nn.GroupNorm(1, C * |G|)``;
* a restriction to a subgroup, being a channel permutation, is folded into
  the next convolution's input channels (or kept as one before the head);
* the head pools over the group axis and space, then applies the same linear layer.

The result needs nothing from ``gcnn`` beyond three tiny modules (input
normalisation, the invariant head, a channel permutation), runs as fast as
a plain CNN, and works with ``torch.jit``, ``torch.onnx`` and
``torch.compile``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .models import BaselineCNN, GroupEquivariantCNN, Normalise
from .nn import (
    GroupBatchNorm,
    GroupConvolution,
    GroupLayerNorm,
    GroupPool,
    GroupRestriction,
    LiftingConvolution,
    SpatialPool,
    eval_mode,
    pool_group_axis,
)
from .transforms import RotateImages

__all__ = ["export_plain", "InvariantHead", "ChannelPermutation", "InputRotationAverage"]


class InvariantHead(GroupPool):
    """Pool ``[B, C * N, H, W]`` over the ``N`` group elements of each channel, then over space: ``[B, C]``."""

    def __init__(self, group_order: int, mode: str = "mean") -> None:
        super().__init__(mode)
        self.group_order = group_order

    def forward(self, x: Tensor) -> Tensor:
        # pool_group_axis, not super().forward: TorchScript cannot compile super() calls.
        return pool_group_axis(x.unflatten(1, (-1, self.group_order)), self.mode).mean(dim=(-2, -1))

    def extra_repr(self) -> str:
        return f"group_order={self.group_order}, {super().extra_repr()}"


class InputRotationAverage(nn.Module):
    """Mean of ``network``'s logits over the input and copies of it turned by ``angles`` (degrees).

    The export of a model with ``input_rotations > 1`` (``angles`` are its ``input_angles()[1:]``): the
    turned copies come from :class:`~gcnn.transforms.RotateImages`, as in the model, and all copies go
    through ``network`` as one batch ``[(1 + len(angles)) * B, C, H, W]``.
    """

    def __init__(self, network: nn.Module, angles: list[float]) -> None:
        super().__init__()
        self.network = network
        self.turn = RotateImages(angles)

    def forward(self, x: Tensor) -> Tensor:
        copies = torch.cat([x, self.turn(x).flatten(0, 1)])
        return self.network(copies).unflatten(0, (len(self.turn.angles) + 1, -1)).mean(dim=0)


class ChannelPermutation(nn.Module):
    """``x[:, index]`` for ``x [B, C, H, W]``: the flat form of a restriction that ends a network."""

    # No class-level annotation of the buffer: TorchScript cannot resolve it under postponed annotations.

    def __init__(self, index: Tensor) -> None:
        super().__init__()
        self.register_buffer("index", index)

    def forward(self, x: Tensor) -> Tensor:
        return x[:, self.index]


@torch.no_grad()
def export_plain(model: GroupEquivariantCNN | BaselineCNN) -> nn.Module:
    """A plain ``nn.Sequential`` computing ``model``'s logits (eval mode) with ordinary layers.

    A model that averages over turned inputs (``input_rotations > 1``) gives
    that ``nn.Sequential`` wrapped in :class:`InputRotationAverage`.  Either
    way the result scripts (``torch.jit.script``), traces and exports to ONNX
    with a dynamic batch dimension.

    Shapes: images ``[B, C_in, H, W]`` -> logits ``[B, out_channels]``, as the
    model.  Outputs equal the model's in eval mode up to float rounding
    (batch-norm folding reorders a few multiplications).  The model's weights
    are copied, so later training does not change the export.
    """
    if isinstance(model, BaselineCNN):
        return _with_input_rotations(_export_baseline(model), model)
    if not isinstance(model, GroupEquivariantCNN):
        raise TypeError(f"export_plain takes a GroupEquivariantCNN or BaselineCNN, not {type(model).__name__}")
    with eval_mode(model):
        layers: list[nn.Module] = [Normalise(model.input_mean, model.input_std)]
        # pending channel order from a restriction: new channel j = old permutation[j]
        permutation: Tensor | None = None
        for block in model.blocks:
            order, channels = block[0].group.order, block[0].out_channels
            for module in block:
                if isinstance(module, (LiftingConvolution, GroupConvolution)):
                    layers.append(_conv_from_bank(module, permutation))
                    permutation = None
                elif isinstance(module, GroupBatchNorm):
                    _fold_batch_norm(layers[-1], module, order)
                elif isinstance(module, GroupLayerNorm):
                    layers.append(_group_norm(module, order))
                elif isinstance(module, nn.ReLU):
                    layers.append(nn.ReLU())
                elif isinstance(module, SpatialPool):
                    pool = nn.MaxPool2d if module.mode == "max" else nn.AvgPool2d
                    layers.append(pool(module.kernel_size, module.stride))
                elif isinstance(module, GroupRestriction):
                    flat = torch.arange(channels * order, device=block[0].weight.device)
                    permutation = module(flat.reshape(1, channels, order, 1, 1)).flatten()
                else:
                    raise TypeError(f"export_plain does not know how to export {type(module).__name__}")
        if permutation is not None:
            layers.append(ChannelPermutation(permutation))
        layers.append(InvariantHead(model.output_group.order, model.group_pool.mode))
        layers.append(_copy_linear(model.final_linear))
    weight = model.final_linear.weight
    return _with_input_rotations(nn.Sequential(*layers).eval().to(device=weight.device, dtype=weight.dtype), model)


def _with_input_rotations(network: nn.Sequential, model: GroupEquivariantCNN | BaselineCNN) -> nn.Module:
    """``network``, wrapped to average over the model's turned inputs when it has any."""
    return network if model.input_rotations == 1 else InputRotationAverage(network, model.input_angles()[1:]).eval()


def _export_baseline(model: BaselineCNN) -> nn.Sequential:
    layers: list[nn.Module] = [Normalise(model.input_mean, model.input_std)]
    for conv in model.convs:
        plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding)
        plain.load_state_dict(conv.state_dict())
        # BaselineCNN's layer norm over [C, H, W] without affine is GroupNorm with one group.
        layers += [plain, nn.GroupNorm(1, conv.out_channels, affine=False), nn.ReLU()]
    layers += [InvariantHead(1), _copy_linear(model.final_linear)]
    weight = model.final_linear.weight
    return nn.Sequential(*layers).eval().to(device=weight.device, dtype=weight.dtype)


def _conv_from_bank(layer: LiftingConvolution | GroupConvolution, permutation: Tensor | None) -> nn.Conv2d:
    bank, bias = layer.conv_weights()  # [C_out * |G|, C_in * |G_in|, k, k] and [C_out * |G|] (or None)
    if permutation is not None:
        # The input arrives in the pre-restriction order: old channel permutation[j] feeds weight column j.
        bank = bank[:, torch.argsort(permutation)]
    conv = nn.Conv2d(bank.shape[1], bank.shape[0], layer.kernel_size, stride=layer.stride, padding=layer.padding,
                     dilation=layer.dilation, bias=bias is not None)
    conv.weight.copy_(bank)
    if bias is not None:
        conv.bias.copy_(bias)
    return conv


def _fold_batch_norm(conv: nn.Module, norm: GroupBatchNorm, order: int) -> None:
    """``norm(conv(x))`` in eval mode as one convolution: scale the kernels, shift the bias."""
    if not isinstance(conv, nn.Conv2d) or norm.running_mean is None:
        raise TypeError("export_plain folds batch norm only directly after a convolution, with running statistics")
    scale = torch.rsqrt(norm.running_var + norm.eps)
    shift = -norm.running_mean * scale
    if norm.affine:
        scale, shift = scale * norm.weight, shift * norm.weight + norm.bias
    scale, shift = scale.repeat_interleave(order), shift.repeat_interleave(order)
    conv.weight.mul_(scale[:, None, None, None].to(conv.weight))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(conv.weight[:, 0, 0, 0])
    conv.bias = nn.Parameter(bias * scale.to(bias) + shift.to(bias))


def _group_norm(norm: GroupLayerNorm, order: int) -> nn.GroupNorm:
    channels = norm.num_channels * order
    plain = nn.GroupNorm(1, channels, eps=norm.eps, affine=norm.weight is not None)
    if norm.weight is not None:
        plain.weight.copy_(norm.weight.repeat_interleave(order))
        plain.bias.copy_(norm.bias.repeat_interleave(order))
    return plain


def _copy_linear(linear: nn.Linear) -> nn.Linear:
    plain = nn.Linear(linear.in_features, linear.out_features)
    plain.load_state_dict(linear.state_dict())
    return plain
