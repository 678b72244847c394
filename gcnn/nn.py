"""Equivariant layers for regular group feature maps.

Layout of a group feature map: ``[B, C, |G|, H, W]``: batch, channels, one
slice per group element (in the group's element order), height, width.  It
may be stored in the default order or channels-last (``B, H, W, C, |G|``, see
:func:`set_memory_format`); every layer accepts either and keeps it.

Equivariance convention: transforming the input image by ``g`` transforms
every output map spatially by ``g`` and permutes the group axis by left
multiplication, ``y'[:, :, h] = L_g y[:, :, g^-1 h]``.  For ``CyclicGroup(N)``
and element ``j`` that is ``torch.roll(L_j y, j, dims=2)``.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .basis import KernelBasis, PixelBasis, basis_from_config, kernel_support, kernel_transform_matrices
from .equivariance import EquivarianceError, check_equivariance, module_input
from .groups import Group, transform_feature_map
from .modes import eval_mode

__all__ = [
    "LiftingConvolution",
    "GroupConvolution",
    "GroupPool",
    "SpatialPool",
    "GroupLayerNorm",
    "GroupBatchNorm",
    "GroupRestriction",
    "kernel_support",
    "kernel_transform_matrices",
    "transform_feature_map",
    "set_memory_format",
    "eval_mode",
    "is_channels_last",
    "ExactnessWarning",
]

# nn.Conv2d's forms of a size: one int for both axes, or (along H, along W).
IntOrPair = int | tuple[int, int]


class ExactnessWarning(UserWarning):
    """A layer loses exact equivariance at the input size it runs at: its strided sampling grid (or its
    ``padding='same'`` with an even kernel) is not symmetric about the input's centre, so quarter turns and
    mirrors move the output off its grid (see :class:`GroupConvolution`).  A layer warns once per input size;
    ``warnings.simplefilter("error", gcnn.ExactnessWarning)`` makes it an error instead."""


def _axis_pair(value: object, name: str, minimum: int) -> tuple[int, int]:
    """``value``, an int or a pair of ints as ``nn.Conv2d`` takes them, as ``(along H, along W)``."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return pair


def _square_size(value: object, name: str) -> int:
    """A window or kernel size (an int or an equal pair) as one int: a quarter turn swaps the two axes, so a
    ``k x l`` kernel would become ``l x k``; the layers therefore hold square ones."""
    height, width = _axis_pair(value, name, 1)
    if height != width:
        raise ValueError(f"{name} must be the same along both axes, got {value!r}: a quarter turn swaps the axes, "
                         "so equivariant kernels and pooling windows are square")
    return height


@functools.cache  # asked on every pass of a strided layer
def _reversed_axes(group: Group) -> tuple[bool, bool]:
    """Whether some element of ``group`` reverses the H axis, and the W axis, of an image: a left-right mirror
    reverses W only, any turn both.  Along those axes a sampling grid must be symmetric about the centre."""
    others = range(1, group.order)
    return (any(not (group.is_mirrored(g) and group.quarter_turns(g) == 0) for g in others), len(others) > 0)


def _conv_arguments(
    group: Group, kernel_size: IntOrPair, in_channels: int, out_channels: int, padding: IntOrPair | str,
    stride: IntOrPair, dilation: IntOrPair,
) -> tuple[int, IntOrPair | str, IntOrPair, IntOrPair]:
    """A group convolution's ``(kernel_size, padding, stride, dilation)``, checked, as the layer stores them: one
    int for a size that is the same along both axes, a pair ``(H, W)`` where they differ (only for groups whose
    elements never turn rows into columns: C1, C2, D1, D2), ``'same'`` / ``'valid'`` as given."""
    for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
        if isinstance(channels, bool) or not isinstance(channels, int):
            raise TypeError(f"{name} must be an int, got {channels!r}")
        if channels < 1:
            raise ValueError(f"{name} must be at least 1, got {channels}")
    kernel = _square_size(kernel_size, "kernel_size")
    pairs = {"stride": _axis_pair(stride, "stride", 1), "dilation": _axis_pair(dilation, "dilation", 1)}
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}")
        if padding == "same" and pairs["stride"] != (1, 1):
            raise ValueError("padding='same' is not supported for strided convolutions (as in nn.Conv2d)")
    else:
        pairs["padding"] = _axis_pair(padding, "padding", 0)
    uneven = {name: pair for name, pair in pairs.items() if pair[0] != pair[1]}
    if uneven and not all(group.quarter_turns(g) in (0, 2) for g in range(group.order)):
        raise ValueError(f"{group!r} turns rows into columns, so a layer that differs along H and W cannot be "
                         f"equivariant: {', '.join(f'{name}={pair}' for name, pair in uneven.items())}")
    if padding == "same" and any(reverses and d * (kernel - 1) % 2
                                 for reverses, d in zip(_reversed_axes(group), pairs["dilation"], strict=True)):
        warnings.warn(f"padding='same' with kernel_size={kernel} and dilation={dilation} pads one side more than "
                      f"the other (as nn.Conv2d does), so the output grid is off the input's centre and the layer "
                      f"is not exactly equivariant under {group!r}'s quarter turns and mirrors; an odd "
                      "dilation * (kernel_size - 1) + 1 keeps it",
                      ExactnessWarning, stacklevel=4)

    def stored(pair: tuple[int, int]) -> IntOrPair:
        return pair[0] if pair[0] == pair[1] else pair

    return (kernel, padding if isinstance(padding, str) else stored(pairs["padding"]), stored(pairs["stride"]),
            stored(pairs["dilation"]))


def _per_axis(value: IntOrPair) -> tuple[int, int]:
    """A stored size as ``(along H, along W)``."""
    return value if isinstance(value, tuple) else (value, value)


class _BankCache(NamedTuple):
    """A layer's bank and bias, with the parameter values (copies) and settings they were built from."""

    key: tuple
    parameters: tuple[Tensor, ...]
    weights: tuple[Tensor, Tensor | None]


class _GroupKernelConv(nn.Module):
    """Shared machinery: a weight, its transformed kernel bank, and the bank's cache.

    The bank (and the bias, repeated over the group axis) is rebuilt on every
    forward pass in training mode, with autograd enabled (so gradients flow to
    the parameters), inside ``torch.compile`` and ``torch.func`` transforms,
    and on GPUs (where building it is one or two kernels, cheaper than the
    check below, which would wait for the device).  On the CPU, in eval mode
    under ``torch.no_grad()`` or ``torch.inference_mode()``, both are cached:
    each pass compares the parameters with copies of the values the cache was
    built from (``torch.equal``, a read of the small weight next to a
    convolution), so no way of editing them (optimiser steps,
    ``load_state_dict``, ``p.data.add_()``, new Parameters, EMA) can serve a
    stale bank.  ``train()``, moves (``.to()``) and :meth:`clear_cache` drop
    it; ``eval()`` keeps it.  The cache is replaced by one attribute
    assignment, so threads running the same model at once each see a whole
    cache, and the public :meth:`conv_weights`, :meth:`kernel_bank` and
    :meth:`transformed_weight` return new tensors, never the cached ones.

    ``memory_format`` picks the layout ``conv2d`` runs in: ``None`` follows
    the input, as ``nn.Conv2d`` does; ``torch.channels_last`` converts the
    input (a no-op when it already is) and returns the output in that layout,
    which the next layer then receives.  See :func:`set_memory_format`.

    Weight layout (``basis``, see :mod:`gcnn.basis`): with the pixel basis,
    pixel-exact groups store whole ``k x k`` kernels, as ``nn.Conv2d`` does,
    and groups that interpolate store only the ``n`` pixels of the disc
    inside the kernel (:func:`kernel_support`), so no parameter is dead.
    With the harmonic basis every kernel is ``n`` coefficients of smooth
    functions that turn analytically.  Either way, a last axis of ``n``
    instead of ``k, k`` (``vector_storage``) means the bank is one matmul
    by the basis's precomputed matrices, then the same ``index_select``.
    :meth:`dense_weight` gives the identity's ``k x k`` kernels, and pixel
    checkpoints saved with ``k x k`` weights load unchanged (their corners
    never reached an output, so dropping them is exact).
    """

    weight: Tensor
    transforms: Tensor | None
    _permutation: Tensor
    _bank_index: Tensor
    _cache: _BankCache | None

    def __init__(
        self, group: Group, kernel_size: IntOrPair, in_channels: int, out_channels: int, group_input: bool,
        padding: IntOrPair | str, bias: bool, memory_format: torch.memory_format | None, stride: IntOrPair,
        dilation: IntOrPair, basis: KernelBasis | str | dict[str, Any] | None,
    ) -> None:
        super().__init__()
        kernel_size, padding, stride, dilation = _conv_arguments(group, kernel_size, in_channels, out_channels,
                                                                 padding, stride, dilation)
        self.group = group
        self.kernel_size = kernel_size
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.memory_format = memory_format
        self._inexact_sizes: set[tuple[int, int]] = set()  # input sizes whose ExactnessWarning was given
        self.basis = basis_from_config(basis)
        transforms = kernel_transform_matrices(group, kernel_size, self.basis)  # [|G|, k*k, n]
        # Permutations (pixels, pixel-exact groups) are applied by indexing alone, on whole k x k kernels.
        self.vector_storage = not self.basis.is_permutation(group)
        kernel_shape = (transforms.shape[-1],) if self.vector_storage else (kernel_size, kernel_size)
        # A lifting convolution's input (an image) has no group axis; a group convolution's has |G| entries.
        leading_shape = (out_channels, in_channels, group.order) if group_input else (out_channels, in_channels)
        self.weight = nn.Parameter(torch.empty(*leading_shape, *kernel_shape))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        # _permutation[g, h] = g^-1 h: where output element g reads the kernel's group axis (all 0 when lifting).
        elements = group.elements()
        permutation = (group.left_action_on_H(group.inverse(elements), elements) if group_input
                       else torch.zeros(group.order, 1, dtype=torch.long))
        self.register_buffer("_permutation", permutation, persistent=False)
        # Vector storage: one matmul makes every element's k x k kernel of every stored kernel,
        # [C_out * C_in * |G_in|, n] @ [n, |G| * k*k]; permutations need no arithmetic at all.
        self.register_buffer("transforms", transforms.permute(2, 0, 1).flatten(1) if self.vector_storage else None,
                             persistent=False)
        self.register_buffer("_bank_index", self._make_bank_index(transforms), persistent=False)
        self._cache = None
        self.reset_parameters()

    def _make_bank_index(self, transforms: Tensor) -> Tensor:
        """Where each entry of the flat bank ``[C_out, |G|, C_in, |G_in|, k*k]`` is read from.

        Pixel-exact groups read the flat ``weight`` itself: entry ``[o, g, i, h, p]`` is weight
        ``[o, i, g^-1 h]`` at the pixel that ``g``'s permutation matrix sends to ``p``.  Vector storage reads
        the matmul's output ``[C_out, C_in, |G_in|, |G|, k*k]`` at ``[o, i, g^-1 h, g, p]``.  Either way
        one ``index_select`` builds the bank, its spatial transform and group-axis permutation included.
        """
        order, pixels = self.group.order, self.kernel_size ** 2
        in_order = self._permutation.shape[1]
        o = torch.arange(self.out_channels)[:, None, None, None, None]
        g = torch.arange(order)[None, :, None, None, None]
        i = torch.arange(self.in_channels)[None, None, :, None, None]
        kernel = (o * self.in_channels + i) * in_order + self._permutation[None, :, None, :, None]
        p = torch.arange(pixels)
        if self.vector_storage:
            index = kernel * (order * pixels) + g * pixels + p
        else:
            source_pixel = transforms.argmax(dim=-1)  # [|G|, k*k]: each row of a permutation matrix has one 1
            index = kernel * pixels + source_pixel[None, :, None, None, :]
        # int32 halves the index's memory (4 bytes per bank entry) where the sizes allow it.
        return index.flatten().to(torch.int32 if index.numel() < 2**31 else torch.int64)

    def reset_parameters(self) -> None:
        # Same scheme as torch.nn.Conv2d, with fan-in over channels, group and the stored numbers per kernel
        # (kaiming_uniform_ counts every axis after the first two).  The harmonic basis's functions have unit
        # norm, so its kernels start with the energy of pixel kernels.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight[0].numel()
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # Checkpoints saved before disc storage hold [..., k, k] weights for groups that interpolate.  Their corner
        # weights were masked on both sides of every transform and never reached an output, so keeping the disc
        # entries gives the same layer exactly.
        key = prefix + "weight"
        weight = state_dict.get(key)
        k = self.kernel_size
        if (self.vector_storage and isinstance(self.basis, PixelBasis) and isinstance(weight, Tensor)
                and tuple(weight.shape) == (*self.weight.shape[:-1], k, k)):
            state_dict[key] = weight.flatten(-2)[..., kernel_support(self.group, k).to(weight.device)]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _flat_weight(self) -> Tensor:
        """The stored kernel weights with each kernel's numbers on one last axis."""
        return self.weight if self.vector_storage else self.weight.flatten(-2)

    def dense_weight(self) -> Tensor:
        """The identity's ``k x k`` kernels, ``[C_out, C_in, k, k]`` (lifting) or ``[C_out, C_in, |G|, k, k]``.

        Pixel basis, groups that interpolate: the pixels outside the disc are
        zero.  Harmonic basis: the basis functions summed with the stored
        coefficients.  A new tensor (safe to modify) that autograd follows
        back to ``weight``: for display and for code that expects
        ``nn.Conv2d``-style kernels.
        """
        k = self.kernel_size
        if not self.vector_storage:
            return self.weight.clone()
        return (self.weight @ self.transforms[:, : k * k]).unflatten(-1, (k, k))  # columns of the identity

    def _build_bank(self) -> Tensor:
        """The bank from the parameters: one index_select (permutations) or one matmul and one index_select
        (vector storage), so a training step launches few kernels on a GPU, forward and backward."""
        k = self.kernel_size
        if self.vector_storage:
            source = (self.weight.reshape(-1, self.weight.shape[-1]) @ self.transforms).flatten()
        else:
            source = self.weight.reshape(-1)
        bank = source.index_select(0, self._bank_index)
        return bank.view(self.out_channels * self.group.order, self.in_channels * self._permutation.shape[1], k, k)

    def kernel_bank(self) -> Tensor:
        """The transformed kernels as a ``conv2d`` weight ``[C_out * |G|, C_in * |G_in|, k, k]``.

        A new tensor on every call (safe to modify); with autograd enabled, gradients flow back to ``weight``.
        """
        return self.conv_weights()[0]

    def conv_weights(self) -> tuple[Tensor, Tensor | None]:
        """The ``conv2d`` weight (the kernel bank) and bias ``[C_out * |G|]`` (or ``None``), built anew.

        New tensors on every call, never the forward pass's cache, so modifying them changes nothing else.
        Built in the parameters' dtype even under autocast (``conv2d`` casts them, as for ``nn.Conv2d``).
        """
        device_type = self.weight.device.type
        if torch.is_autocast_enabled(device_type):
            # Autocast would run the matmul of an interpolated bank in low precision; build it as nn.Conv2d keeps
            # its weight, in the parameters' dtype, and let conv2d cast it.
            with torch.autocast(device_type, enabled=False):
                return self._build_weights()
        return self._build_weights()

    def _build_weights(self) -> tuple[Tensor, Tensor | None]:
        # The bias is shared over the group axis: [C_out] -> [C_out * |G|] in one copy (backward: one sum).
        bias = None if self.bias is None else self.bias[:, None].expand(-1, self.group.order).clone().view(-1)
        return self._build_bank(), bias

    def clear_cache(self) -> None:
        """Drop the cached bank (``train()`` and moves between devices or dtypes do it too)."""
        self._cache = None

    def train(self, mode: bool = True) -> _GroupKernelConv:
        if mode:  # training rebuilds the bank on every pass: free the cache (eval() keeps it, as it is still right)
            self.clear_cache()
        return super().train(mode)

    def _apply(self, *args: Any, **kwargs: Any) -> _GroupKernelConv:
        self.clear_cache()  # .to(), .cuda(), .half(), ...: the parameters are new tensors
        return super()._apply(*args, **kwargs)

    def _may_cache(self) -> bool:
        """Whether this forward pass may use the bank cache (see the class documentation)."""
        return not (self.training or torch.is_grad_enabled() or torch.compiler.is_compiling()
                    or self.weight.device.type != "cpu"
                    or torch._C._functorch.is_functorch_wrapped_tensor(self.weight))

    def _forward_weights(self) -> tuple[Tensor, Tensor | None]:
        """The bank and bias for a forward pass: cached where :meth:`_may_cache` allows, else built."""
        if not self._may_cache():
            return self.conv_weights()
        parameters = tuple(p for p in (self.weight, self.bias) if p is not None)
        key = (tuple((p.dtype, p.device, p.shape) for p in parameters), torch.is_inference_mode_enabled())
        cache = self._cache  # read once: another thread may publish a new cache meanwhile
        # Comparing the values (not storage or version counters) catches every way of editing a parameter:
        # optimiser steps, load_state_dict, p.data.add_() (which bypasses the version counter), a new Parameter.
        if (cache is not None and cache.key == key
                and all(torch.equal(p, kept) for p, kept in zip(parameters, cache.parameters, strict=True))):
            return cache.weights
        weights = self.conv_weights()
        self._cache = _BankCache(key, tuple(p.detach().clone() for p in parameters), weights)  # one assignment
        return weights

    def transformed_weight(self) -> Tensor:
        """The kernel bank with its axes apart: ``[C_out, |G|, C_in, k, k]`` (lifting) or
        ``[C_out, |G|, C_in, |G|, k, k]`` (group convolution); index 1 is the output group element."""
        return self.kernel_bank().reshape(self.out_channels, self.group.order, *self.dense_weight().shape[1:])

    def _convolve(self, x: Tensor) -> Tensor:
        """Apply the bank to ``x [B, C_in * |G_in|, H, W]``; returns ``[B, C_out, |G|, H', W']``."""
        if self.memory_format is not None:
            # One channel (an image) fits both layouts, so .contiguous() keeps the default strides and conv2d
            # would answer in the default layout; a copy with explicit channels-last strides avoids that.
            x = (torch.empty_like(x, memory_format=self.memory_format).copy_(x) if x.shape[1] == 1
                 else x.contiguous(memory_format=self.memory_format))
        if self.stride != 1 and not torch.compiler.is_compiling():  # compiled graphs were checked eagerly
            self._check_grid(*x.shape[-2:])
        bank, bias = self._forward_weights()
        out = F.conv2d(x, bank, bias, stride=self.stride, padding=self.padding, dilation=self.dilation)
        return out.unflatten(1, (self.out_channels, self.group.order))

    def _check_grid(self, height: int, width: int) -> None:
        """Warn when the strided sampling grid on a ``height x width`` input is not symmetric about its centre
        along an axis the group reverses (see the exactness rule in :class:`GroupConvolution`)."""
        k, sizes = self.kernel_size, (height, width)
        paddings = (0, 0) if self.padding == "valid" else _per_axis(self.padding)  # 'same' never strides
        strides, dilations = _per_axis(self.stride), _per_axis(self.dilation)
        spans = [size + 2 * p - d * (k - 1) - 1 for size, p, d in zip(sizes, paddings, dilations, strict=True)]
        off = [reverses and span >= 0 and span % s != 0
               for reverses, span, s in zip(_reversed_axes(self.group), spans, strides, strict=True)]
        if any(off) and sizes not in self._inexact_sizes:
            fixed = [size + (-span % s if bad else 0) for size, span, s, bad in zip(sizes, spans, strides, off,
                                                                                    strict=True)]
            spans_off = " and ".join(f"{span} along {axis}" for axis, span, bad in zip("HW", spans, off, strict=True)
                                     if bad)
            warnings.warn(f"{type(self).__name__}({self.extra_repr()}) on {height}x{width} inputs is not exactly "
                          f"equivariant: size + 2*padding - dilation*(kernel_size - 1) - 1 is {spans_off}, not a "
                          f"multiple of the stride, so the strided sampling grid is not symmetric about the input's "
                          f"centre and the group's quarter turns and mirrors move the output off it; "
                          f"{fixed[0]}x{fixed[1]} inputs keep it (the rule is in GroupConvolution's docstring)",
                          ExactnessWarning, stacklevel=1)  # the message names the layer; callers are many
            self._inexact_sizes.add(sizes)  # after warning: where a filter makes it an error, it stays one

    def extra_repr(self) -> str:
        layout = "" if self.memory_format is None else f", memory_format={self.memory_format}"
        stride = "" if self.stride == 1 else f", stride={self.stride}"
        dilation = "" if self.dilation == 1 else f", dilation={self.dilation}"
        basis = "" if isinstance(self.basis, PixelBasis) else f", basis={self.basis!r}"
        return (f"{self.group!r}, kernel_size={self.kernel_size}, in_channels={self.in_channels}, "
                f"out_channels={self.out_channels}{stride}, padding={self.padding!r}{dilation}, "
                f"bias={self.bias is not None}{basis}{layout}")

    def check_equivariance(self, x: Tensor | None = None) -> list[EquivarianceError]:
        """The measured error per group element, a list of :class:`gcnn.equivariance.EquivarianceError`:
        :func:`gcnn.equivariance.check_equivariance` on ``x``, by default a seeded smooth input of 29x29 pixels
        in the layer's dtype and on its device (:func:`gcnn.equivariance.sample_input`)."""
        if x is None:
            group_axis = (self.group.order,) if isinstance(self, GroupConvolution) else ()
            x = module_input(self, (2, self.in_channels, *group_axis, 29, 29))
        return check_equivariance(self, self.group, x)


class LiftingConvolution(_GroupKernelConv):
    """Lift an image to a group feature map: one transformed kernel per group element.

    ``y[b, o, g] = sum_i (x[b, i] * L_g weight[o, i])`` (cross-correlation).

    Shapes:
        input ``[B, C_in, H, W]`` -> output ``[B, C_out, |G|, H', W']`` with
        ``H' = (H + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1`` (likewise ``W'``), as for
        ``nn.Conv2d``; ``padding='same'`` keeps ``H' = H`` (stride 1 only).

    Exactness: see :class:`GroupConvolution`.

    Parameters:
        weight ``[C_out, C_in, k, k]`` for pixel-exact groups with the pixel basis, else ``[C_out, C_in, n]``:
        the ``n`` disc pixels of :func:`kernel_support`, or the ``n`` coefficients of the harmonic basis
        (``basis``, see :mod:`gcnn.basis`); bias ``[C_out]``, shared over the group axis.
    """

    def __init__(
        self, group: Group, kernel_size: IntOrPair, in_channels: int, out_channels: int,
        padding: IntOrPair | str = 0, bias: bool = True, memory_format: torch.memory_format | None = None, *,
        stride: IntOrPair = 1, dilation: IntOrPair = 1,
        basis: KernelBasis | str | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(group, kernel_size, in_channels, out_channels, False, padding, bias, memory_format, stride,
                         dilation, basis)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"LiftingConvolution expects [B, C, H, W], got shape {tuple(x.shape)}")
        return self._convolve(x)


class GroupConvolution(_GroupKernelConv):
    """Convolve a group feature map with kernels on the group.

    ``y[b, o, g] = sum_{i, h} (x[b, i, h] * L_g weight[o, i, g^-1 h])``: each
    kernel is transformed spatially by ``g`` and its group axis permuted
    (cyclically shifted for cyclic groups).

    Shapes:
        input ``[B, C_in, |G|, H, W]`` -> output ``[B, C_out, |G|, H', W']``, ``H'`` and ``W'`` as for
        :class:`LiftingConvolution` and ``nn.Conv2d`` (``stride``, ``padding``, ``dilation``).

    Exactness (both convolutions): transforming the input by a pixel-exact
    element (quarter turns, mirrors) transforms the output exactly when the
    output's sampling grid is symmetric about the input's centre: with
    stride ``s``, ``(H + 2 * padding - dilation * (k - 1) - 1)`` divisible
    by ``s``, and likewise for ``W`` (a quarter turn needs both, a mirror
    ``W`` only, a diagonal mirror of D4 neither on a square input).  Stride
    1 with an int padding always qualifies; so does ``padding='same'`` with
    an odd ``dilation * (k - 1) + 1``, while an even one pads one side more
    than the other (as ``nn.Conv2d`` does) and loses exactness.  Dilation
    keeps exactness: a turned dilated kernel is the dilated turned kernel.
    Other elements (e.g. the 22.5-degree turns of C16) are approximate: the
    pixel basis resamples the kernels bilinearly, the harmonic basis
    (``basis="harmonic"``) turns smooth kernels analytically, which keeps
    the error a few times smaller (:mod:`gcnn.basis`); the input's own pixel
    grid limits both.  A strided layer that runs on a size breaking the rule, or a
    ``'same'`` padding that pads unevenly, warns (once per input size)
    (:class:`ExactnessWarning`; a warnings filter can make it an error).

    Arguments (both convolutions): ``kernel_size``, ``padding``, ``stride``
    and ``dilation`` take ``nn.Conv2d``'s forms, an int or a pair
    ``(H, W)``.  Kernels are square, since a quarter turn swaps the axes; a
    pair that differs along H and W is accepted only for groups that never
    turn rows into columns (C1, C2, D1, D2), and kept as a pair (a size
    that agrees along both axes is kept as one int).

    Parameters:
        weight ``[C_out, C_in, |G|, k, k]`` for pixel-exact groups with the pixel basis, else
        ``[C_out, C_in, |G|, n]`` (disc pixels or harmonic coefficients, as for :class:`LiftingConvolution`);
        bias ``[C_out]``, shared over the group axis.
    """

    def __init__(
        self, group: Group, kernel_size: IntOrPair, in_channels: int, out_channels: int,
        padding: IntOrPair | str = 0, bias: bool = True, memory_format: torch.memory_format | None = None, *,
        stride: IntOrPair = 1, dilation: IntOrPair = 1,
        basis: KernelBasis | str | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(group, kernel_size, in_channels, out_channels, True, padding, bias, memory_format, stride,
                         dilation, basis)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5 or x.shape[2] != self.group.order:
            raise ValueError(f"GroupConvolution over {self.group!r} expects [B, C, {self.group.order}, H, W], "
                             f"got shape {tuple(x.shape)}")
        return self._convolve(x.flatten(1, 2))


def pool_group_axis(x: Tensor, mode: str) -> Tensor:
    """Mean or max over axis 2, the group axis of ``[B, C, |G|, ...]``."""
    # max, not amax: its backward scatters through the argmax indices, while amax's compares every element
    # against the maximum (about 6% of a C4 training step); the two differ only on ties.
    return x.mean(dim=2) if mode == "mean" else x.max(dim=2).values


class GroupPool(nn.Module):
    """Pool over the group axis, giving invariant maps: ``[B, C, |G|, H, W] -> [B, C, H, W]``."""

    def __init__(self, mode: str = "mean") -> None:
        super().__init__()
        if mode not in ("mean", "max"):
            raise ValueError(f"GroupPool mode must be 'mean' or 'max', got {mode!r}")
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        return pool_group_axis(x, self.mode)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def _pool_window(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """``(window, padding)`` along an axis of ``size`` pixels that keeps :class:`SpatialPool`'s windows symmetric
    about the axis's centre; ``ValueError`` when no such window exists."""
    k, s = kernel_size, stride
    if size >= k and (size - k) % s == 0:
        return k, 0
    if k == s == 2:
        return 3, 1  # odd size: windows centred on 0, 2, ..., size - 1
    works = ", ".join([str(k + s * j) for j in range(4)])  # a list: TorchScript compiles no generators
    raise ValueError(f"SpatialPool(kernel_size={k}, stride={s}) would lose exact equivariance on a size of "
                     f"{size}: (size - {k}) must be divisible by {s}, e.g. {works}, ...")


def symmetric_pool2d(x: Tensor, kernel_size: int, stride: int, mode: str) -> Tensor:
    """:class:`SpatialPool`'s pooling of ``x [B, C, H, W]``, each channel alone: ``kernel_size`` windows (``mode``
    ``"max"`` or ``"avg"``), except that the default 2x2 window pools an odd axis with 3-wide windows centred on
    the even indices (stride 2, padding 1, never counted in an average).  The window is chosen per call from the
    input's size, so a scripted caller pools every size as the layer does."""
    (kh, ph), (kw, pw) = _pool_window(x.shape[-2], kernel_size, stride), _pool_window(x.shape[-1], kernel_size, stride)
    if mode == "max":
        return F.max_pool2d(x, (kh, kw), stride, (ph, pw))
    return F.avg_pool2d(x, (kh, kw), stride, (ph, pw), count_include_pad=False)


class SpatialPool(nn.Module):
    """Spatial pooling of each group slice: ``[B, C, |G|, H, W] -> [B, C, |G|, H', W']``.

    Equivariance to quarter turns and mirrors is exact when the pooling
    windows lie symmetrically about the centre of each axis:
    ``(size - kernel_size)`` divisible by ``stride``, e.g. even sizes for the
    default 2x2 window with stride 2.  The default window also keeps it for
    odd sizes: along an odd axis its windows are 3 wide, centred on the even
    indices (stride 2, padding 1; padding never counts towards an average),
    so ``H' = ceil(H / 2)`` for every ``H`` (28 -> 14 -> 7 -> 4).  Other
    windows raise a ``ValueError`` naming the size and the sizes that work,
    rather than silently losing equivariance (a 2x2 pool without this rule
    cost gcnn_best its invariance at 30x30: 3.9e-2 relative error).

    ``antialias=True`` (default window only) pools as Zhang's "Making
    convolutional networks shift-invariant again" (2019): the maximum over
    windows at stride 1, then a binomial blur ``[1, 2, 1] / 4`` per axis at
    stride 2, so no frequency above the new grid's Nyquist limit aliases
    into the output.  The windows stay symmetric: a 2-wide maximum on an
    even axis (``H - 1`` outputs), a centred 3-wide one on an odd axis
    (``H`` outputs), then the blur centred on the even indices, so
    ``H' = ceil(H / 2)`` as without it, and quarter turns and mirrors stay
    exact.
    """

    def __init__(self, kernel_size: IntOrPair = 2, stride: IntOrPair | None = None, mode: str = "max",
                 antialias: bool = False) -> None:
        super().__init__()
        if mode not in ("max", "avg"):
            raise ValueError(f"SpatialPool mode must be 'max' or 'avg', got {mode!r}")
        self.kernel_size = _square_size(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _square_size(stride, "stride")
        self.mode = mode
        self.antialias = bool(antialias)
        if self.antialias and (self.kernel_size, self.stride, self.mode) != (2, 2, "max"):
            raise ValueError("SpatialPool(antialias=True) is the 2x2 max pool at stride 2 only")

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(1, 2)
        if self.antialias:
            return blur_max_pool2d(flat).unflatten(1, x.shape[1:3])
        return symmetric_pool2d(flat, self.kernel_size, self.stride, self.mode).unflatten(1, x.shape[1:3])

    def extra_repr(self) -> str:
        antialias = ", antialias=True" if self.antialias else ""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, mode={self.mode!r}{antialias}"


def blur_max_pool2d(x: Tensor) -> Tensor:
    """``[B, C, H, W] -> [B, C, ceil(H/2), ceil(W/2)]``: the maximum at stride 1, then a binomial blur at stride 2,
    every window symmetric about its axis's centre (see :class:`SpatialPool`)."""
    odd_h, odd_w = x.shape[-2] % 2, x.shape[-1] % 2
    # 2-wide windows on even axes (one output fewer, centred on the half pixels), 3-wide centred ones on odd axes.
    x = F.max_pool2d(x, (2 + odd_h, 2 + odd_w), 1, (odd_h, odd_w))
    channels = x.shape[1]
    taps = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device) / 4
    blur = (taps[:, None] * taps[None, :]).expand(channels, 1, 3, 3)
    # Zero padding of one pixel: windows centred on the even indices of the (now odd) axes, symmetric.
    return F.conv2d(x, blur, stride=2, padding=1, groups=channels)


class GroupLayerNorm(nn.Module):
    """Layer norm over ``[C, |G|, H, W]`` of each sample, as in the reference GCNN.

    The statistics cover the whole group axis, so the layer is equivariant.
    With ``affine=True`` a scale and shift per channel (shared over group and
    space) follow.  Shape: ``[B, C, |G|, H, W]`` in and out.
    """

    def __init__(self, num_channels: int, affine: bool = False, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_channels)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        # Group norm with one group over [B, C * |G|, H, W] is this layer norm, and unlike layer_norm it keeps
        # channels-last maps in their layout (layer_norm would copy them to the default one first).
        order = x.shape[2]
        weight = None if self.weight is None else self.weight.repeat_interleave(order)
        bias = None if self.bias is None else self.bias.repeat_interleave(order)
        return F.group_norm(x.flatten(1, 2), 1, weight, bias, self.eps).unflatten(1, x.shape[1:3])

    def extra_repr(self) -> str:
        return f"{self.num_channels}, affine={self.weight is not None}, eps={self.eps}"


class GroupBatchNorm(nn.BatchNorm3d):
    """Batch norm of ``[B, C, |G|, H, W]`` with one set of statistics per channel.

    Statistics and affine parameters are shared across the group axis (it is
    one of :class:`torch.nn.BatchNorm3d`'s three "spatial" axes), which keeps
    the layer equivariant.  Channels-last maps (see :func:`set_memory_format`)
    stay channels-last.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 5 and is_channels_last(x):
            # Stored B, H, W, C, |G|: the same memory is a contiguous [B*H*W, C, |G|, 1, 1] with the same
            # per-channel statistics; batch norm would otherwise answer in the default layout.
            b, c, g, h, w = x.shape
            y = super().forward(x.permute(0, 3, 4, 1, 2).reshape(b * h * w, c, g, 1, 1))
            return y.reshape(b, h, w, c, g).permute(0, 3, 4, 1, 2)
        return super().forward(x)


class GroupRestriction(nn.Module):
    """Restrict a feature map on ``group`` to one on a subgroup.

    The group axis splits into the right cosets ``H g_t`` of the subgroup
    ``H``; each coset becomes a channel of its own, so nothing is discarded:
    ``[B, C, |G|, H, W] -> [B, C * |G|/|H|, |H|, H, W]`` (channel ``c * T + t``
    holds coset ``t`` of channel ``c``).  The output is equivariant under the
    subgroup only.
    """

    index: Tensor

    def __init__(self, group: Group, subgroup: Group) -> None:
        super().__init__()
        self.group = group
        self.subgroup = subgroup
        self.register_buffer("index", group.restriction_index(subgroup), persistent=False)

    @property
    def num_cosets(self) -> int:
        return self.index.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, self.index].flatten(1, 2)

    def extra_repr(self) -> str:
        return f"{self.group!r} -> {self.subgroup!r}"


def set_memory_format(module: nn.Module, memory_format: torch.memory_format | None) -> nn.Module:
    """Run every lifting and group convolution in ``module`` in ``memory_format``; returns ``module``.

    ``torch.channels_last`` keeps the group feature maps channels-last from
    the first convolution on (``[B, C, |G|, H, W]`` stored as ``B, H, W, C,
    |G|``), the layout oneDNN's CPU convolutions are fastest in for wide
    layers and large batches; ``None`` restores the default.  Outputs are the
    same up to float rounding.  (``module.to(memory_format=...)`` cannot do
    this: group convolution weights are 5-D.)
    """
    for layer in module.modules():
        if isinstance(layer, _GroupKernelConv):
            layer.memory_format = memory_format
    return module


def is_channels_last(x: Tensor) -> bool:
    """Whether a group feature map ``x [B, C, |G|, H, W]`` is stored channels-last: ``B, H, W, C, |G|``."""
    return x.permute(0, 3, 4, 1, 2).is_contiguous()

