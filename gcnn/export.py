"""Export a trained network as plain ``torch.nn`` layers: ordinary convolutions with the kernel banks baked in.

A group convolution is one ``conv2d`` over its transformed kernel bank, so a
network of group layers is, at inference time, a plain CNN on flat maps
``[B, C * |G|, H, W]`` (channel ``c * |G| + g`` holds channel ``c`` at group
element ``g``).  :func:`export_plain` builds that CNN, from a bundled model
(:class:`~gcnn.models.GroupEquivariantCNN`, :class:`~gcnn.models.BaselineCNN`)
or from any ``nn.Sequential`` of gcnn layers, torch layers and bundled models:

* each lifting or group convolution becomes an ``nn.Conv2d`` holding its kernel bank;
* batch norm (eval statistics) is folded into the convolution before it
  (elsewhere it becomes an ``nn.BatchNorm2d`` over the flat channels);
* the layer norm over ``[C, |G|, H, W]`` becomes ``nn.GroupNorm(1, C * |G|)``;
* a restriction to a subgroup, being a channel permutation, is folded into
  the next convolution's input channels (or kept as a :class:`ChannelPermutation`);
* :class:`~gcnn.nn.SpatialPool` becomes :class:`SymmetricPool2d`, which picks
  the same window for every input size (3-wide and centred on an odd axis);
* :class:`~gcnn.nn.GroupPool` becomes :class:`GroupAxisPool`; the bundled
  models' head pools over the group axis and space (:class:`InvariantHead`),
  then applies the same linear layer;
* elementwise torch layers (activations, dropout) act on flat maps as they
  do on group maps; other torch layers are copied where they act on images
  or plain tensors (before a lifting convolution, after a group pool).

A module ending on a group feature map gets its output unflattened back to
``[B, C, |G|, H, W]``, and one starting on one gets its input flattened.  The
result needs nothing from ``gcnn`` beyond a few tiny modules defined here,
runs as fast as a plain CNN, and works with ``torch.jit``, ``torch.onnx``
and ``torch.compile``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models import INPUT_POOLS, BaselineCNN, GroupEquivariantCNN, Normalise
from .nn import (
    GroupBatchNorm,
    GroupConvolution,
    GroupLayerNorm,
    GroupPool,
    GroupRestriction,
    LiftingConvolution,
    SpatialPool,
    blur_max_pool2d,
    eval_mode,
    pool_group_axis,
    symmetric_pool2d,
)
from .transforms import RotateImages

__all__ = ["export_plain", "InvariantHead", "GroupAxisPool", "SymmetricPool2d", "Upsample", "ChannelPermutation",
           "InputRotationAverage"]

_GCNN_LAYERS = (LiftingConvolution, GroupConvolution, GroupBatchNorm, GroupLayerNorm, GroupPool, GroupRestriction,
                SpatialPool, GroupEquivariantCNN, BaselineCNN)
# Layers that act on every value alone (dropout: in eval mode), so on a flat map exactly as on [B, C, |G|, H, W].
_ELEMENTWISE = (nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
                nn.Sigmoid, nn.LogSigmoid, nn.Tanh, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish, nn.Softplus,
                nn.Softsign, nn.Softshrink, nn.Hardshrink, nn.Tanhshrink, nn.Threshold, nn.Dropout, nn.Dropout1d,
                nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


class GroupAxisPool(GroupPool):
    """:class:`~gcnn.nn.GroupPool` on a flat map: ``[B, C * N, H, W] -> [B, C, H, W]``, mean or max over the
    ``N`` group elements of each channel."""

    def __init__(self, group_order: int, mode: str = "mean") -> None:
        super().__init__(mode)
        self.group_order = group_order

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(x)

    def pool(self, x: Tensor) -> Tensor:
        # pool_group_axis, not GroupPool.forward: TorchScript cannot compile super() calls.
        return pool_group_axis(x.unflatten(1, (-1, self.group_order)), self.mode)

    def extra_repr(self) -> str:
        return f"group_order={self.group_order}, {super().extra_repr()}"


class InvariantHead(GroupAxisPool):
    """Pool ``[B, C * N, H, W]`` over the ``N`` group elements of each channel, then over space: ``[B, C]``."""

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(x).mean(dim=(-2, -1))


class SymmetricPool2d(nn.Module):
    """:class:`~gcnn.nn.SpatialPool` on a flat map ``[B, C, H, W]``: the window is chosen for each input size
    as the layer chooses it (:func:`gcnn.nn.symmetric_pool2d`, or :func:`gcnn.nn.blur_max_pool2d` when
    ``antialias``), so a scripted export pools every size the model does.  A trace or an ONNX graph holds the
    windows of the size it was made at."""

    def __init__(self, kernel_size: int, stride: int, mode: str, antialias: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.mode, self.antialias = kernel_size, stride, mode, antialias

    def forward(self, x: Tensor) -> Tensor:
        if self.antialias:
            return blur_max_pool2d(x)
        return symmetric_pool2d(x, self.kernel_size, self.stride, self.mode)

    def extra_repr(self) -> str:
        antialias = ", antialias=True" if self.antialias else ""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, mode={self.mode!r}{antialias}"


class Upsample(nn.Module):
    """The input resampled bilinearly by ``factor`` (:class:`~gcnn.models.GroupEquivariantCNN`'s ``upsample``),
    as ``F.interpolate`` with ``align_corners=False``."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=float(self.factor), mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class InputRotationAverage(nn.Module):
    """Mean (or per-class maximum, ``pool="max"``) of ``network``'s logits over the input and copies of it
    turned by ``angles`` (degrees).

    The export of a model with ``input_rotations > 1`` (``angles`` are its ``input_angles()[1:]``, ``pool`` its
    ``input_pool``): the turned copies come from :class:`~gcnn.transforms.RotateImages`, as in the model, and
    all copies go through ``network`` as one batch ``[(1 + len(angles)) * B, C, H, W]``.
    """

    def __init__(self, network: nn.Module, angles: list[float], pool: str = "mean") -> None:
        super().__init__()
        if pool not in INPUT_POOLS:
            raise ValueError(f"pool must be one of {', '.join(map(repr, INPUT_POOLS))}, got {pool!r}")
        self.network = network
        self.turn = RotateImages(angles)
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        copies = torch.cat([x, self.turn(x).flatten(0, 1)])
        logits = self.network(copies).unflatten(0, (len(self.turn.angles) + 1, -1))
        return logits.amax(dim=0) if self.pool == "max" else logits.mean(dim=0)

    def extra_repr(self) -> str:
        return f"pool={self.pool!r}"


class ChannelPermutation(nn.Module):
    """``x[:, index]`` for ``x [B, C, H, W]``: the flat form of a restriction no convolution follows."""

    # No class-level annotation of the buffer: TorchScript cannot resolve it under postponed annotations.

    def __init__(self, index: Tensor) -> None:
        super().__init__()
        self.register_buffer("index", index)

    def forward(self, x: Tensor) -> Tensor:
        return x[:, self.index]


@torch.no_grad()
def export_plain(module: nn.Module) -> nn.Module:
    """``module`` (in eval mode) as plain torch layers that compute the same outputs at every input size.

    ``module`` is a bundled model, or an ``nn.Sequential`` (nested ones too) of gcnn layers
    (:class:`~gcnn.nn.LiftingConvolution`, :class:`~gcnn.nn.GroupConvolution`, norms, pools, restrictions),
    torch layers and bundled models, or one gcnn layer.  Returns an ``nn.Sequential`` (for a model with
    ``input_rotations > 1``, wrapped in :class:`InputRotationAverage`) that scripts (``torch.jit.script``),
    traces and exports to ONNX with a dynamic batch dimension.

    Shapes: the module's own.  A bundled model maps images ``[B, C_in, H, W]`` to logits ``[B, classes]``; a
    module that starts (ends) on a group feature map takes (returns) ``[B, C, |G|, H, W]``.  Outputs equal the
    module's in eval mode up to float rounding (batch-norm folding reorders a few multiplications), at any
    input size the module accepts.  Weights are copied, so later training does not change the export.

    Raises:
        TypeError: a module the export cannot see through (one whose ``forward`` calls gcnn layers in its own
            way: build it as ``nn.Sequential`` or export its parts), or a torch layer other than an elementwise
            one applied to a group feature map; the message names it and where it sits.
        ValueError: layers that do not fit together (a group convolution on another group's map) or
            cannot be expressed plainly (batch norm without running statistics).
    """
    with eval_mode(module):
        if isinstance(module, BaselineCNN):
            return _with_input_rotations(_export_baseline(module), module)
        if isinstance(module, GroupEquivariantCNN):
            return _with_input_rotations(_export_gcnn(module), module)
        leaves = list(_sequence(module, type(module).__name__))
        flat = _FlatNetwork(_input_order(leaves))
        for path, layer in leaves:
            flat.add(path, layer)
        return nn.Sequential(*flat.finish(unflatten=True)).eval()


def _sequence(module: nn.Module, path: str) -> Iterator[tuple[str, nn.Module]]:
    """The layers ``module`` runs one after another, with where each sits (``Sequential[5][0]``)."""
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:  # not a forward of its own
        for name, child in module.named_children():
            yield from _sequence(child, f"{path}[{name}]")
    elif isinstance(module, _GCNN_LAYERS) or not any(isinstance(m, _GCNN_LAYERS) for m in module.modules()):
        yield path, module
    else:
        inner = next(name for name, m in module.named_modules() if isinstance(m, _GCNN_LAYERS))
        raise TypeError(f"export_plain cannot see how {path} ({type(module).__name__}) uses the gcnn layer "
                        f"{inner!r} inside it in its forward(): build it as an nn.Sequential of gcnn and torch "
                        "layers, or export its parts one by one")


class _FlatNetwork:
    """The plain layers of a sequence of modules, built one module at a time.

    Tracks what flows between the layers: ``order``, the group order of a flat group map ``[B, C * |G|, H, W]``
    (``None``: an image or another plain tensor), and ``channels``, its ``C`` (``None`` where unknown), and a
    restriction waiting to be folded into the next convolution.
    """

    def __init__(self, order: int | None) -> None:
        self.layers: list[nn.Module] = [] if order is None else [nn.Flatten(1, 2)]  # from [B, C, |G|, H, W]
        self.order = order
        self.channels: int | None = None
        self.restriction: tuple[str, GroupRestriction] | None = None

    def add(self, path: str, layer: nn.Module) -> None:
        if isinstance(layer, _ELEMENTWISE):  # commutes with a pending restriction's channel permutation
            self.layers.append(copy.deepcopy(layer))
            return
        if isinstance(layer, (LiftingConvolution, GroupConvolution)):
            self._convolution(path, layer)
            return
        self._apply_restriction()
        if isinstance(layer, (GroupEquivariantCNN, BaselineCNN)):
            self._expect(path, layer, None)
            self.layers.append(export_plain(layer))
        elif isinstance(layer, GroupRestriction):
            self._expect(path, layer, layer.group.order)
            self.restriction = (path, layer)
            self.order, self.channels = layer.subgroup.order, _times(self.channels, layer.num_cosets)
        elif self.order is None:  # an image or plain tensor
            if isinstance(layer, _GCNN_LAYERS):  # the layers for group maps would fail in the module as well
                raise ValueError(f"export_plain: {path} ({type(layer).__name__}) takes a group feature map, but an "
                                 "image or plain tensor reaches it")
            self.layers.append(copy.deepcopy(layer))
        elif isinstance(layer, nn.BatchNorm3d):  # GroupBatchNorm, or torch's over [B, C, |G|, H, W]: the same
            self._batch_norm(path, layer)
        elif isinstance(layer, GroupLayerNorm):
            self.layers.append(_group_norm(layer, self.order))
        elif isinstance(layer, SpatialPool):
            self.layers.append(SymmetricPool2d(layer.kernel_size, layer.stride, layer.mode, layer.antialias))
        elif isinstance(layer, GroupPool):
            self.layers.append(GroupAxisPool(self.order, layer.mode))
            self.order = None
        elif isinstance(layer, nn.Flatten) and layer.start_dim == 1 and layer.end_dim == -1:
            self.layers.append(nn.Flatten())  # [B, C, |G|, H, W] and its flat map flatten to the same vector
            self.order = None
        else:
            raise TypeError(f"export_plain cannot export {path} ({type(layer).__name__}) where it sits: it acts on "
                            "a group feature map [B, C, |G|, H, W], and of the torch layers only elementwise ones "
                            "(activations, dropout) are known to act on its flat form alike; apply it after a "
                            "GroupPool, or make it a gcnn layer")

    def finish(self, unflatten: bool) -> list[nn.Module]:
        """The plain layers; with ``unflatten``, a group map at the end is given back as ``[B, C, |G|, H, W]``."""
        self._apply_restriction()
        if unflatten and self.order is not None:
            self.layers.append(nn.Unflatten(1, (-1, self.order)))
        return self.layers

    def _expect(self, path: str, layer: nn.Module, order: int | None) -> None:
        """Refuse ``layer`` unless the map reaching it is on a group of ``order`` (``None``: an image)."""
        if order != self.order:
            given = "an image or plain tensor" if self.order is None else f"a map on {self.order} group elements"
            wanted = "an image or plain tensor" if order is None else f"a map on {order} group elements"
            raise ValueError(f"export_plain: {path} ({type(layer).__name__}) takes {wanted}, but {given} reaches it")

    def _convolution(self, path: str, layer: LiftingConvolution | GroupConvolution) -> None:
        self._expect(path, layer, layer.group.order if isinstance(layer, GroupConvolution) else None)
        bank, bias = layer.conv_weights()  # [C_out * |G|, C_in * |G_in|, k, k] and [C_out * |G|] (or None)
        if self.restriction is not None:
            # The input arrives in the pre-restriction order: old channel permutation[j] feeds weight column j.
            bank = bank[:, torch.argsort(self._restriction_index(bank.shape[1]))]
            self.restriction = None
        conv = nn.Conv2d(bank.shape[1], bank.shape[0], layer.kernel_size, stride=layer.stride, padding=layer.padding,
                         dilation=layer.dilation, bias=bias is not None, device=bank.device, dtype=bank.dtype)
        conv.weight.copy_(bank)
        if bias is not None:
            conv.bias.copy_(bias)
        self.layers.append(conv)
        self.order, self.channels = layer.group.order, layer.out_channels

    def _restriction_index(self, width: int) -> Tensor:
        """Where each channel of the pending restriction's flat output (``width`` channels, as its input) comes
        from."""
        _, restriction = self.restriction
        flat = torch.arange(width, device=restriction.index.device)
        return restriction(flat.reshape(1, -1, restriction.group.order, 1, 1)).flatten()

    def _apply_restriction(self) -> None:
        """A restriction no convolution absorbs, as a channel permutation of the flat map."""
        if self.restriction is None:
            return
        path, restriction = self.restriction
        if self.channels is None:
            raise ValueError(f"export_plain: {path} (GroupRestriction) starts the module, so its channel count is "
                             "unknown; follow it by a GroupConvolution, or restrict after a convolution")
        self.layers.append(ChannelPermutation(self._restriction_index(self.channels * self.order)))
        self.restriction = None

    def _batch_norm(self, path: str, norm: nn.BatchNorm3d) -> None:
        if norm.running_mean is None:
            raise ValueError(f"export_plain: {path} ({type(norm).__name__}) has no running statistics "
                             "(track_running_stats=False), so in eval mode it normalises each batch by itself: "
                             "no plain layer computes that")
        previous = self.layers[-1] if self.layers else None
        if isinstance(previous, nn.Conv2d):  # one this export made from a group convolution: fold into it
            _fold_batch_norm(previous, norm, self.order)
            return
        plain = nn.BatchNorm2d(norm.num_features * self.order, norm.eps, affine=norm.affine,
                               device=norm.running_mean.device, dtype=norm.running_mean.dtype).eval()
        plain.running_mean.copy_(norm.running_mean.repeat_interleave(self.order))
        plain.running_var.copy_(norm.running_var.repeat_interleave(self.order))
        if norm.affine:
            plain.weight.copy_(norm.weight.repeat_interleave(self.order))
            plain.bias.copy_(norm.bias.repeat_interleave(self.order))
        self.layers.append(plain)


def _input_order(leaves: list[tuple[str, nn.Module]]) -> int | None:
    """The group order of the map a sequence of layers takes, ``None`` for an image or plain tensor (told by its
    first layer that is not elementwise)."""
    for path, layer in leaves:
        if isinstance(layer, GroupConvolution):
            return layer.group.order
        if isinstance(layer, GroupRestriction):
            return layer.group.order
        if isinstance(layer, (GroupBatchNorm, GroupLayerNorm, GroupPool, SpatialPool)):
            raise ValueError(f"export_plain: the module starts with {path} ({type(layer).__name__}) on a group "
                             "feature map whose group it does not name; start it with a GroupConvolution or "
                             "GroupRestriction, or export it with that layer in front")
        if not isinstance(layer, _ELEMENTWISE):
            return None
    return None


def _times(channels: int | None, factor: int) -> int | None:
    return None if channels is None else channels * factor


def _with_input_rotations(network: nn.Sequential, model: GroupEquivariantCNN | BaselineCNN) -> nn.Module:
    """``network``, wrapped to combine the logits of the model's turned inputs when it has any."""
    if model.input_rotations == 1:
        return network
    return InputRotationAverage(network, model.input_angles()[1:], model.input_pool).eval()


def _export_gcnn(model: GroupEquivariantCNN) -> nn.Sequential:
    """Input normalisation, the blocks' flat layers, and the head that pools over group and space."""
    flat = _FlatNetwork(order=None)
    for index, block in enumerate(model.blocks):
        for position, layer in enumerate(block):
            flat.add(f"blocks[{index}][{position}]", layer)
    upsample = [Upsample(model.upsample)] if model.upsample > 1 else []
    return nn.Sequential(Normalise(model.input_mean, model.input_std), *upsample, *flat.finish(unflatten=False),
                         InvariantHead(model.output_group.order, model.group_pool.mode),
                         copy.deepcopy(model.final_linear)).eval()


def _export_baseline(model: BaselineCNN) -> nn.Sequential:
    layers: list[nn.Module] = [Normalise(model.input_mean, model.input_std)]
    for conv in model.convs:
        # BaselineCNN's layer norm over [C, H, W] without affine is GroupNorm with one group.
        layers += [copy.deepcopy(conv), nn.GroupNorm(1, conv.out_channels, affine=False), nn.ReLU()]
    layers += [InvariantHead(1), copy.deepcopy(model.final_linear)]
    return nn.Sequential(*layers).eval()


def _fold_batch_norm(conv: nn.Conv2d, norm: nn.BatchNorm3d, order: int) -> None:
    """``norm(conv(x))`` in eval mode as one convolution: scale the kernels, shift the bias."""
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
    weight = norm.weight
    plain = nn.GroupNorm(1, channels, eps=norm.eps, affine=weight is not None,
                         **({} if weight is None else {"device": weight.device, "dtype": weight.dtype}))
    if weight is not None:
        plain.weight.copy_(weight.repeat_interleave(order))
        plain.bias.copy_(norm.bias.repeat_interleave(order))
    return plain

