"""Predictions for single images, as the app shows them.

``image`` below is always one MNIST-style image ``[1, 28, 28]`` (float in
[0, 1], white on black); models are any of :mod:`gcnn.models`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data import rotate
from ..groups import CyclicGroup
from ..models import FeatureMap
from ..nn import transform_feature_map

__all__ = ["RotationSweep", "rotation_sweep", "estimate_rotation", "equivariance_report",
           "EquivarianceReport"]


@dataclass
class RotationSweep:
    """One model's answers for one image turned by each angle.

    ``probabilities [A, classes]``: one row per angle in ``angles`` (degrees).
    ``read_rotation``: per angle, the turn read off the model's group axis
    (see :func:`estimate_rotation`), or ``None`` where the model has no cyclic
    group axis or the activations carry no orientation.
    """

    angles: list[float]
    probabilities: Tensor
    read_rotation: list[float | None]

    @property
    def predicted(self) -> list[int]:
        return self.probabilities.argmax(dim=1).tolist()

    @property
    def confidence(self) -> list[float]:
        return self.probabilities.amax(dim=1).tolist()

    def index(self, angle: float) -> int:
        """Position of ``angle`` (modulo 360) in ``angles``; ``ValueError`` if it was not swept."""
        wrapped = [a % 360 for a in self.angles]
        if angle % 360 not in wrapped:
            raise ValueError(f"{angle} degrees is not one of the swept angles")
        return wrapped.index(angle % 360)


@torch.no_grad()
def rotation_sweep(models: Mapping[str, nn.Module], image: Tensor, angles: Sequence[float]) -> dict[str, RotationSweep]:
    """Every model's probabilities and read-out rotation for ``image`` turned by each angle (degrees).

    One forward pass per model: the batch holds ``image`` itself (the
    reference for the read-out) and every rotated copy.
    """
    batch = torch.cat([image[None], *(rotate(image[None], float(angle)) for angle in angles)])
    sweeps = {}
    for name, model in models.items():
        model.eval()
        logits, maps = model.forward_with_maps(batch)
        profiles = _orientation_profiles(maps)
        turns = [None] * len(angles) if profiles is None else \
            [_phase_difference(profiles[0], after) for after in profiles[1:]]
        sweeps[name] = RotationSweep(list(angles), torch.softmax(logits[1:], dim=1), turns)
    return sweeps


def _orientation_profiles(maps: Sequence[FeatureMap]) -> Tensor | None:
    """Mean activation per channel and rotation, ``[B, C, N]``, from the deepest map on a cyclic group (N >= 3)."""
    usable = [m for m in maps if isinstance(m.group, CyclicGroup) and m.group.order >= 3]
    return usable[-1].tensor.mean(dim=(-2, -1)) if usable else None


def _phase_difference(before: Tensor, after: Tensor) -> float | None:
    """The turn in degrees, in [0, 360), taking orientation profile ``before [C, N]`` to ``after [C, N]``."""
    # FFT convention: rolling by +k multiplies harmonic 1 by exp(-2 pi i k / N).
    cross = (torch.fft.fft(before.double(), dim=1)[:, 1].conj() * torch.fft.fft(after.double(), dim=1)[:, 1]).sum()
    if cross.abs() < 1e-12:
        return None
    return math.degrees(-math.atan2(cross.imag.item(), cross.real.item())) % 360


@torch.no_grad()
def estimate_rotation(model: nn.Module, reference: Tensor, rotated: Tensor) -> float | None:
    """How far ``rotated`` is turned relative to ``reference``, in degrees in [0, 360), read off the group axis.

    Turning the input by group element ``k`` rolls each channel's activations
    along the group axis by ``k``, so the phase of the first Fourier harmonic
    of that axis turns by ``2 pi k / N``.  Comparing the two phases, summed
    over channels, gives the rotation, interpolated between group elements.
    Returns ``None`` for models without a cyclic group axis (a plain CNN) or
    when the activations carry no orientation (e.g. a rotationally symmetric input).
    """
    model.eval()
    profiles = _orientation_profiles(model.feature_maps(torch.stack([reference, rotated])))
    return None if profiles is None else _phase_difference(profiles[0], profiles[1])


@dataclass
class EquivarianceReport:
    """Every feature map of an image and of the image turned, and how exactly the maps followed the turn.

    ``maps`` / ``maps_turned``: the model's feature maps (batch of one) for the
    image and for the turned image.  ``map_errors``: layer name -> relative
    error ``|f(L_g x) - L_g f(x)| / |L_g f(x)|``.  ``invariant_error``: the
    same for the pooled invariant vector (``L_g`` acts trivially there).
    """

    maps: list[FeatureMap]
    maps_turned: list[FeatureMap]
    map_errors: dict[str, float]
    invariant_error: float
    invariant: Tensor
    invariant_rotated: Tensor


@torch.no_grad()
def equivariance_report(model: nn.Module, image: Tensor, quarter_turns: int = 1) -> EquivarianceReport:
    """Feature maps of ``image`` and of ``image`` turned by ``k`` quarter turns, with measured equivariance errors.

    Two forward passes, each on the pair: one for the maps, one for the invariant vectors.
    """
    model.eval()
    pair = torch.stack([image, torch.rot90(image, quarter_turns, dims=(-2, -1))])
    maps, maps_turned, errors = [], [], {}
    for both in model.feature_maps(pair):
        plain, rotated = (FeatureMap(both.name, tensor, both.group) for tensor in both.tensor.split(1))
        group = plain.group
        turns = [g for g in range(group.order) if group.quarter_turns(g) == quarter_turns % 4
                 and not bool(group.is_mirrored(g))]
        expected = transform_feature_map(group, turns[0], plain.tensor) if turns else \
            torch.rot90(plain.tensor, quarter_turns, dims=(-2, -1))
        errors[plain.name] = _relative(rotated.tensor, expected)
        maps.append(plain)
        maps_turned.append(rotated)
    invariant, invariant_rotated = model.invariant_features(pair)
    return EquivarianceReport(maps, maps_turned, errors, _relative(invariant_rotated, invariant), invariant,
                              invariant_rotated)


def _relative(actual: Tensor, expected: Tensor) -> float:
    return ((actual - expected).norm() / expected.norm().clamp_min(1e-12)).item()
