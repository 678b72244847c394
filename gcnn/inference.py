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

from .data import rotate
from .groups import CyclicGroup
from .nn import transform_feature_map

__all__ = ["probabilities", "RotationSweep", "rotation_sweep", "estimate_rotation", "equivariance_report",
           "EquivarianceReport"]


@torch.no_grad()
def probabilities(model: nn.Module, images: Tensor) -> Tensor:
    """Class probabilities ``[B, classes]`` for ``images [B, 1, 28, 28]``."""
    model.eval()
    return torch.softmax(model(images), dim=1)


@dataclass
class RotationSweep:
    """One model's answer for one image rotated by each angle: ``predicted``, ``confidence`` ``[A]``."""

    angles: list[float]
    predicted: list[int]
    confidence: list[float]


def rotation_sweep(models: Mapping[str, nn.Module], image: Tensor, angles: Sequence[float]) -> dict[str, RotationSweep]:
    """Every model's predicted class and its probability for ``image`` turned by each angle (degrees)."""
    batch = torch.cat([rotate(image[None], float(angle)) for angle in angles])
    sweeps = {}
    for name, model in models.items():
        confidence, predicted = probabilities(model, batch).max(dim=1)
        sweeps[name] = RotationSweep(list(angles), predicted.tolist(), confidence.tolist())
    return sweeps


def _orientation_profile(model: nn.Module, image: Tensor) -> Tensor | None:
    """Mean activation per channel and rotation, ``[C, N]``, from the deepest map on a cyclic group (N >= 3)."""
    usable = [m for m in model.feature_maps(image[None]) if isinstance(m.group, CyclicGroup) and m.group.order >= 3]
    return usable[-1].tensor[0].mean(dim=(-2, -1)) if usable else None


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
    before, after = _orientation_profile(model, reference), _orientation_profile(model, rotated)
    if before is None or after is None:
        return None
    # FFT convention: rolling by +k multiplies harmonic 1 by exp(-2 pi i k / N).
    cross = (torch.fft.fft(before.double(), dim=1)[:, 1].conj() * torch.fft.fft(after.double(), dim=1)[:, 1]).sum()
    if cross.abs() < 1e-12:
        return None
    return math.degrees(-math.atan2(cross.imag.item(), cross.real.item())) % 360


@dataclass
class EquivarianceReport:
    """How exactly each feature map followed a rotation of the input, and the invariant vectors.

    ``map_errors``: layer name -> relative error ``|f(L_g x) - L_g f(x)| / |L_g f(x)|``.
    ``invariant_error``: the same for the pooled invariant vector (``L_g`` acts trivially there).
    """

    map_errors: dict[str, float]
    invariant_error: float
    invariant: Tensor
    invariant_rotated: Tensor


@torch.no_grad()
def equivariance_report(model: nn.Module, image: Tensor, quarter_turns: int = 1) -> EquivarianceReport:
    """Measure equivariance of every feature map and invariance of the pooled vector for ``k`` quarter turns."""
    model.eval()
    turned = torch.rot90(image, quarter_turns, dims=(-2, -1))
    errors = {}
    for plain, rotated in zip(model.feature_maps(image[None]), model.feature_maps(turned[None]), strict=True):
        group = plain.group
        turns = [g for g in range(group.order) if group.quarter_turns(g) == quarter_turns % 4
                 and not bool(group.is_mirrored(g))]
        expected = transform_feature_map(group, turns[0], plain.tensor) if turns else \
            torch.rot90(plain.tensor, quarter_turns, dims=(-2, -1))
        errors[plain.name] = _relative(rotated.tensor, expected)
    invariant, invariant_rotated = model.invariant_features(image[None])[0], model.invariant_features(turned[None])[0]
    return EquivarianceReport(errors, _relative(invariant_rotated, invariant), invariant, invariant_rotated)


def _relative(actual: Tensor, expected: Tensor) -> float:
    return ((actual - expected).norm() / expected.norm().clamp_min(1e-12)).item()
