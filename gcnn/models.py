"""Classifiers: the group-equivariant CNN and the plain CNN it is compared with.

Both take images ``[B, C_in, H, W]`` and return logits ``[B, out_channels]``.
Input normalisation (``(x - input_mean) / input_std``) lives inside the
model, so callers pass raw pixels (for MNIST: floats in [0, 1], white digit on
black).  Each model describes itself with :meth:`config`, a JSON-serialisable
dict from which :func:`model_from_config` rebuilds it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .basis import KernelBasis, basis_from_config
from .equivariance import EquivarianceError, check_equivariance, module_input
from .groups import CyclicGroup, Group, group_from_config
from .nn import (
    GroupBatchNorm,
    GroupConvolution,
    GroupLayerNorm,
    GroupPool,
    GroupRestriction,
    LiftingConvolution,
    SpatialPool,
)
from .transforms import RotateImages

__all__ = ["GroupEquivariantCNN", "BaselineCNN", "FeatureMap", "model_from_config", "count_parameters"]


@dataclass
class FeatureMap:
    """One layer's activations as a group feature map ``[B, C, |G|, H, W]``.

    A plain CNN's maps use the trivial group ``CyclicGroup(1)`` (``|G| = 1``).
    """

    name: str
    tensor: Tensor
    group: Group


def _per_layer(value: int | Sequence[int], count: int, name: str) -> list[int]:
    values = [int(value)] * count if isinstance(value, int) else [int(v) for v in value]
    if len(values) != count:
        raise ValueError(f"{name} needs {count} values (one per layer), got {len(values)}")
    return values


def _check_num_hidden(num_hidden: int) -> None:
    if isinstance(num_hidden, bool) or not isinstance(num_hidden, int) or num_hidden < 0:
        raise ValueError(f"num_hidden must be a whole number of at least 0, got {num_hidden!r}")


class Normalise(nn.Module):
    """``(x - mean) / std`` with constants kept in the config, not the state dict."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.mean, self.std = float(mean), float(std)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


_NORMS = {"layer": GroupLayerNorm, "batch": GroupBatchNorm, "none": None}
INPUT_POOLS = ("mean", "max")  # how a model combines the logits of its turned input copies


class _InvariantClassifier(nn.Module):
    """What both classifiers share: a pooled vector, a linear head, and eval-time averaging over turned inputs.

    Subclasses define ``invariant_features(x) -> [B, C]`` and set ``group`` and ``final_linear``, and
    ``output_group`` when the logits are invariant under a subgroup of ``group`` only (it defaults to ``group``).
    With ``input_rotations = n > 1`` the eval-mode logits combine those of ``x`` and of ``x`` turned by
    ``k * input_step`` degrees, ``k = 1 .. n-1`` (:mod:`gcnn.transforms`, equal to torchvision's bilinear
    ``rotate`` with fill 0); training sees ``x`` alone.  ``input_step`` defaults to ``360 / (rotation_order * n)``,
    which spreads the copies over one group step.  ``input_pool`` says how the copies combine: ``"mean"`` of
    their logits, or ``"max"``, per class the largest logit of any copy (the strongest evidence for the class in
    any of the orientations tried, as ``group_pool="max"`` keeps the best-matching group element).
    """

    group: Group
    output_group: Group
    final_linear: nn.Linear

    def __init__(self, group: Group, input_rotations: int, input_step: float | None = None,
                 input_pool: str = "mean") -> None:
        super().__init__()
        self.group = self.output_group = group
        if input_rotations < 1:
            raise ValueError(f"input_rotations must be at least 1, got {input_rotations}")
        if input_step is not None and not 0 < input_step < 360:
            raise ValueError(f"input_step must be between 0 and 360 degrees, got {input_step}")
        if input_pool not in INPUT_POOLS:
            raise ValueError(f"input_pool must be one of {', '.join(map(repr, INPUT_POOLS))}, got {input_pool!r}")
        self.input_rotations = int(input_rotations)
        self.input_step = None if input_step is None else float(input_step)
        self.input_pool = input_pool
        # No parameters or buffers: checkpoints of models without it load unchanged.
        self.turn_inputs = RotateImages(self.input_angles()[1:]) if self.input_rotations > 1 else None

    def input_angles(self) -> list[float]:
        """The angles (degrees) whose turned inputs are combined in eval mode; ``[0.0]`` when off."""
        step = self.input_step or 360 / (self.group.rotation_order * self.input_rotations)
        return [k * step for k in range(self.input_rotations)]

    def invariant_features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _logits(self, pooled: Tensor, x: Tensor) -> Tensor:
        """The logits from ``pooled`` (the invariant vector of ``x``), combined in eval mode with those of the
        turned copies of ``x``."""
        if self.training or self.turn_inputs is None:
            return self.final_linear(pooled)
        turned = self.turn_inputs(x)  # [A, B, C, H, W]: one pass over all copies
        features = self.invariant_features(turned.flatten(0, 1)).unflatten(0, turned.shape[:2])
        features = torch.cat([pooled[None], features])
        if self.input_pool == "mean":  # the head is affine: the mean of the features gives the mean logits
            return self.final_linear(features.mean(dim=0))
        return self.final_linear(features).amax(dim=0)

    def forward(self, x: Tensor) -> Tensor:
        return self._logits(self.invariant_features(x), x)

    def check_equivariance(
        self, x: Tensor | None = None, *, angles: Sequence[float] = ()
    ) -> list[EquivarianceError]:
        """The logits' measured invariance under every element of ``output_group`` (the group that holds at the
        output: ``group``, or the last subgroup of ``restrict_after``) and any extra ``angles`` (degrees).

        ``x`` defaults to :func:`gcnn.equivariance.sample_input` of shape ``[2, in_channels, 28, 28]`` in the
        model's dtype and on its device.  Runs in eval mode (the caller's mode is restored); see
        :func:`gcnn.equivariance.check_equivariance`.
        """
        if x is None:
            x = module_input(self, (2, self.in_channels, 28, 28))
        return check_equivariance(self, self.output_group, x, angles=angles)


class GroupEquivariantCNN(_InvariantClassifier):
    """Regular group CNN: lifting conv, ``num_hidden`` group convs, invariant pooling, linear.

    Every block is convolution (-> normalisation) -> ReLU (-> optional 2x2 max
    pool) (-> optional restriction to a subgroup).  The head pools over the
    group axis (``group_pool``) and then averages over space, which makes the
    logits invariant to the group, and ends with a linear layer.  The defaults
    reproduce the reference tutorial exactly (layer norm without affine, no
    padding, mean over group and space).

    Args:
        group: the group of the lifting layer.
        kernel_size, in_channels, out_channels, num_hidden: as in the reference.
        hidden_channels: channels of every layer, or one value per layer
            (``num_hidden + 1`` values: the lifting layer first).
        padding: zero padding of every convolution.
        norm: ``"layer"`` (over ``[C, |G|, H, W]``, no affine), ``"batch"``
            (statistics shared across the group axis) or ``"none"``.
        pool_after: layer indices (0 = lifting) followed by a 2x2 max pool.
        antialias: blur those pools (max at stride 1, binomial blur at stride 2; see :class:`SpatialPool`).
        basis: the convolutions' kernel basis: ``"pixel"`` (default), ``"harmonic"`` (smooth kernels turned
            analytically: far smaller errors between quarter turns), or a :class:`gcnn.basis.KernelBasis` or
            its config.
        upsample: resample the (normalised) input bilinearly by this factor before the lifting convolution,
            so kernels act on a finer grid (quarter turns stay exact; costs ``upsample**2`` the compute).
        restrict_after: ``{layer index: subgroup}``: restrict the feature
            map to a subgroup after that layer (e.g. C8 -> C4 -> C1).  The
            logits are then invariant under the last subgroup only, kept as
            ``output_group`` (what :meth:`check_equivariance` checks).
        group_pool: ``"mean"`` or ``"max"`` over the group axis in the head.
        input_rotations: in eval mode, combine the logits of this many
            copies of the input turned by ``k * input_step`` degrees (bilinear,
            fill 0, as torchvision's ``rotate``).  Training ignores it (1 = off).
        input_step: degrees between those copies; by default a fraction of the
            group's rotation step, ``360 / (rotations * input_rotations)``, which
            narrows the gap at angles between group elements.  On a square grid
            only quarter turns are exact, so a C8 or C16 network is invariant at
            its other elements only approximately; copies turned by those
            elements (``input_step=22.5``, ``input_rotations=4`` on C16) give
            every input angle the same set of views, up to quarter turns.
        input_pool: how the copies combine: ``"mean"`` of the logits, or
            ``"max"``, per class the largest logit of any copy.
        input_mean, input_std: input normalisation constants.

    Shapes:
        input ``[B, in_channels, H, W]`` -> logits ``[B, out_channels]``.
    """

    def __init__(
        self,
        group: Group,
        kernel_size: int = 5,
        in_channels: int = 1,
        out_channels: int = 10,
        num_hidden: int = 4,
        hidden_channels: int | Sequence[int] = 16,
        *,
        padding: int = 0,
        norm: str = "layer",
        pool_after: Sequence[int] = (),
        antialias: bool = False,
        basis: KernelBasis | str | Mapping[str, Any] | None = None,
        upsample: int = 1,
        restrict_after: Mapping[int, Group] | None = None,
        group_pool: str = "mean",
        input_rotations: int = 1,
        input_step: float | None = None,
        input_pool: str = "mean",
        input_mean: float = 0.0,
        input_std: float = 1.0,
    ) -> None:
        super().__init__(group, input_rotations, input_step, input_pool)
        _check_num_hidden(num_hidden)
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {', '.join(map(repr, _NORMS))}, got {norm!r}")
        channels = _per_layer(hidden_channels, num_hidden + 1, "hidden_channels")
        restrict_after = {int(k): v for k, v in (restrict_after or {}).items()}
        if any(not 0 <= i <= num_hidden for i in [*pool_after, *restrict_after]):
            raise ValueError(f"pool_after and restrict_after must name layers 0..{num_hidden}")
        if isinstance(upsample, bool) or not isinstance(upsample, int) or upsample < 1:
            raise ValueError(f"upsample must be a positive int, got {upsample!r}")
        self.kernel_size, self.in_channels, self.out_channels = kernel_size, in_channels, out_channels
        self.num_hidden, self.hidden_channels, self.padding = num_hidden, channels, padding
        self.norm, self.pool_after, self.restrict_after = norm, sorted(set(pool_after)), restrict_after
        self.input_mean, self.input_std = float(input_mean), float(input_std)
        self.antialias, self.basis, self.upsample = bool(antialias), basis_from_config(basis), upsample

        self.normalise = Normalise(input_mean, input_std)
        self.blocks = nn.ModuleList()
        current, width = group, in_channels
        for index, out_width in enumerate(channels):
            conv_cls = LiftingConvolution if index == 0 else GroupConvolution
            layers: list[nn.Module] = [conv_cls(current, kernel_size, width, out_width, padding=padding,
                                                basis=self.basis)]
            if norm != "none":
                layers.append(_NORMS[norm](out_width))
            layers.append(nn.ReLU())
            width = out_width
            if index in self.pool_after:
                layers.append(SpatialPool(2, antialias=self.antialias))
            if index in restrict_after:
                restriction = GroupRestriction(current, restrict_after[index])
                layers.append(restriction)
                current, width = restriction.subgroup, width * restriction.num_cosets
            self.blocks.append(nn.Sequential(*layers))
        self.output_group = current
        self.group_pool = GroupPool(group_pool)
        self.final_linear = nn.Linear(width, out_channels)

    def forward_with_maps(self, x: Tensor) -> tuple[Tensor, list[FeatureMap]]:
        """Logits ``[B, out_channels]`` and every block's output, ``[B, C, |G|, H, W]`` each, in one pass.

        A block's map is taken on the block's own group, before any restriction
        to a subgroup that ends the block.
        """
        last, maps = self._blocks_with_maps(x)
        return self._logits(self._pool(last), x), maps

    def feature_maps(self, x: Tensor) -> list[FeatureMap]:
        """Every block's output, ``[B, C, |G|, H, W]`` each, on the block's group."""
        return self._blocks_with_maps(x)[1]

    def lifting_map(self, x: Tensor) -> FeatureMap:
        """The lifting convolution's own output ``[B, C, |G|, H, W]``: its kernels alone, before the first block's
        norm, nonlinearity and pooling, so it shows what the kernel basis does and nothing else."""
        lifting = self.blocks[0][0]
        return FeatureMap("lifting convolution", lifting(self._network_input(x)), lifting.group)

    def _network_input(self, x: Tensor) -> Tensor:
        """``x`` as the first convolution sees it: normalised and, with ``upsample``, enlarged."""
        x = self.normalise(x)
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="bilinear", align_corners=False)
        return x

    def _blocks_with_maps(self, x: Tensor, keep_maps: bool = True) -> tuple[Tensor, list[FeatureMap]]:
        """The last block's output (after any restriction) and every block's map (none unless ``keep_maps``:
        holding them would keep every block's activations alive to the end of an eval pass)."""
        maps = []
        x = self._network_input(x)
        for index, block in enumerate(self.blocks):
            restricts = isinstance(block[-1], GroupRestriction)  # a restriction is always a block's last layer
            x = (block[:-1] if restricts else block)(x)
            if keep_maps:
                maps.append(FeatureMap(f"layer {index}", x, block[0].group))
            if restricts:
                x = block[-1](x)
        return x, maps

    def _pool(self, x: Tensor) -> Tensor:
        return self.group_pool(x).mean(dim=(-2, -1))

    def invariant_features(self, x: Tensor) -> Tensor:
        """The pooled, group-invariant vector ``[B, C_last]`` of ``x`` itself (no input rotations)."""
        return self._pool(self._blocks_with_maps(x, keep_maps=False)[0])

    def config(self) -> dict[str, Any]:
        return {
            "type": "GroupEquivariantCNN",
            "group": self.group.config(),
            "kernel_size": self.kernel_size,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "num_hidden": self.num_hidden,
            "hidden_channels": self.hidden_channels,
            "padding": self.padding,
            "norm": self.norm,
            "pool_after": self.pool_after,
            "antialias": self.antialias,
            "basis": self.basis.config(),
            "upsample": self.upsample,
            "restrict_after": {str(k): g.config() for k, g in sorted(self.restrict_after.items())},
            "group_pool": self.group_pool.mode,
            "input_rotations": self.input_rotations,
            "input_step": self.input_step,
            "input_pool": self.input_pool,
            "input_mean": self.input_mean,
            "input_std": self.input_std,
        }


class BaselineCNN(_InvariantClassifier):
    """The reference's plain CNN: conv -> layer norm over ``[C, H, W]`` -> ReLU, repeated; mean pool; linear.

    ``num_hidden + 1`` convolutions without padding (by default), like
    :class:`GroupEquivariantCNN`, so at the same depth twice the channels
    gives about the same parameter count as a C4 GCNN.

    Args:
        input_rotations: in eval mode, average the logits over this many
            copies of the input turned by ``k * 360 / input_rotations``
            degrees (bilinear, fill 0; quarter turns exact), which makes a
            plain CNN exactly invariant to those turns that are quarter
            turns (test-time augmentation; 8 gives 45-degree steps).
            Training ignores it (1 = off).
        input_step, input_pool: the degrees between the copies (instead of
            ``360 / input_rotations``) and how they combine (``"mean"`` or
            ``"max"``), as for :class:`GroupEquivariantCNN`.

    Shapes:
        input ``[B, in_channels, H, W]`` -> logits ``[B, out_channels]``.
    """

    def __init__(
        self,
        kernel_size: int = 5,
        in_channels: int = 1,
        out_channels: int = 10,
        num_hidden: int = 4,
        hidden_channels: int = 32,
        *,
        padding: int = 0,
        input_rotations: int = 1,
        input_step: float | None = None,
        input_pool: str = "mean",
        input_mean: float = 0.0,
        input_std: float = 1.0,
    ) -> None:
        # The trivial group: invariant to nothing by design.
        super().__init__(CyclicGroup(1), input_rotations, input_step, input_pool)
        _check_num_hidden(num_hidden)
        self.kernel_size, self.in_channels, self.out_channels = kernel_size, in_channels, out_channels
        self.num_hidden, self.hidden_channels, self.padding = num_hidden, hidden_channels, padding
        self.input_mean, self.input_std = float(input_mean), float(input_std)
        self.normalise = Normalise(input_mean, input_std)
        widths = [in_channels] + [hidden_channels] * (num_hidden + 1)
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, kernel_size, padding=padding) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.final_linear = nn.Linear(hidden_channels, out_channels)

    def _blocks(self, x: Tensor) -> Iterator[Tensor]:
        """Yield each block's output ``[B, C, H, W]``."""
        x = self.normalise(x)
        for conv in self.convs:
            x = conv(x)
            x = F.relu(F.layer_norm(x, x.shape[-3:]))  # over [C, H, W] of each sample, as in the reference
            yield x

    def forward_with_maps(self, x: Tensor) -> tuple[Tensor, list[FeatureMap]]:
        """Logits ``[B, out_channels]`` and every block's output as ``[B, C, 1, H, W]`` (the trivial group)."""
        maps = [FeatureMap(f"layer {i}", y.unsqueeze(2), self.group) for i, y in enumerate(self._blocks(x))]
        pooled = maps[-1].tensor.mean(dim=(-3, -2, -1))
        return self._logits(pooled, x), maps

    def feature_maps(self, x: Tensor) -> list[FeatureMap]:
        """Every block's output as ``[B, C, 1, H, W]`` (the trivial group)."""
        return [FeatureMap(f"layer {i}", y.unsqueeze(2), self.group) for i, y in enumerate(self._blocks(x))]

    def invariant_features(self, x: Tensor) -> Tensor:
        """The spatially pooled vector ``[B, hidden_channels]`` of ``x`` itself (no rotation invariance)."""
        *_, last = self._blocks(x)
        return last.mean(dim=(-2, -1))

    def config(self) -> dict[str, Any]:
        return {
            "type": "BaselineCNN",
            "kernel_size": self.kernel_size,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "num_hidden": self.num_hidden,
            "hidden_channels": self.hidden_channels,
            "padding": self.padding,
            "input_rotations": self.input_rotations,
            "input_step": self.input_step,
            "input_pool": self.input_pool,
            "input_mean": self.input_mean,
            "input_std": self.input_std,
        }


_MODEL_TYPES = {"GroupEquivariantCNN": GroupEquivariantCNN, "BaselineCNN": BaselineCNN}


def model_from_config(config: Mapping[str, Any]) -> nn.Module:
    """Rebuild a model from its :meth:`config`.  Raises ``ValueError`` on an unknown type or any bad field."""
    if not isinstance(config, Mapping):
        raise ValueError(f"a model config is a JSON object (a dict), not {type(config).__name__}")
    config = dict(config)
    kind = config.pop("type", None)
    if kind not in _MODEL_TYPES:
        raise ValueError(f"unknown model type {kind!r}; expected one of {sorted(_MODEL_TYPES)}")
    try:
        if kind == "GroupEquivariantCNN":
            config["group"] = group_from_config(config["group"])
            config["restrict_after"] = {int(k): group_from_config(g)
                                        for k, g in config.get("restrict_after", {}).items()}
        return _MODEL_TYPES[kind](**config)
    except KeyError as error:
        raise ValueError(f"bad {kind} config: it has no {error}") from error
    except TypeError as error:  # a field of the wrong kind (a string for a number, a list for a group, ...)
        raise ValueError(f"bad {kind} config: {error}") from error


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
