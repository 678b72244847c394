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

from ..groups import CyclicGroup
from ..models import FeatureMap, GroupEquivariantCNN
from ..nn import eval_mode
from ..transforms import rotate

__all__ = ["RotationSweep", "SweepPlan", "rotation_sweep", "model_answers", "quarter_turn_symmetric",
           "estimate_rotation"]


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


def quarter_turn_symmetric(model: nn.Module, tolerance: float = 1e-3) -> bool:
    """Whether ``model`` measurably ignores quarter turns: its log-probabilities, and its orientation profile up to a
    roll of the group axis by a quarter, are the same for a random image and that image turned by 90 degrees.

    Such a model (a C4 or C16 GCNN, with or without input-rotation averaging) answers the same at ``a`` and
    ``a + 90`` degrees, since :func:`~gcnn.data.rotate` by ``a + 90`` equals ``rot90`` of the rotation by ``a``
    (both sample the image at the same points), so a sweep needs only the angles in [0, 90).
    Measured, not read off the config (a restriction to a subgroup or a plain CNN fails it): "the same" means
    a change under the turn below ``tolerance`` times the change between two different random images, so
    an untrained model with nearly uniform answers is judged as strictly as a trained one.
    """
    generator = torch.Generator().manual_seed(0)
    image, other = torch.rand(2, 1, 1, 28, 28, generator=generator)
    probabilities, profiles = model_answers(model, torch.cat([image, torch.rot90(image, 1, dims=(-2, -1)), other]))
    outputs = [probabilities.log()]
    if profiles is not None:
        order = profiles.shape[-1]
        if order % 4:
            return False
        outputs.append(torch.cat([torch.roll(profiles[:1], order // 4, dims=-1), profiles[1:]]))
    return all((out[0] - out[1]).norm() <= tolerance * (out[0] - out[2]).norm() for out in outputs)


@torch.inference_mode()
def model_answers(model: nn.Module, images: Tensor) -> tuple[Tensor, Tensor | None]:
    """Probabilities ``[B, classes]`` for ``images [B, 1, 28, 28]`` and, for a model with a cyclic group axis,
    the orientation profile of each image ``[B, C, N]`` (else ``None``); one forward pass."""
    with eval_mode(model):
        if not isinstance(model, GroupEquivariantCNN):  # no group axis to read; forward() averages any input turns
            return torch.softmax(model(images), dim=1), None
        logits, maps = model.forward_with_maps(images)
    return torch.softmax(logits, dim=1), _orientation_profiles(maps)


@dataclass
class SweepPlan:
    """Which rotated copies of an image one model must see to answer at every angle in ``angles`` (degrees).

    ``computed``: the angles actually run, ``0`` first (the read-out's
    reference); for a quarter-turn-symmetric model only angles in [0, 90),
    as the answer at ``a + 90 k`` is the one at ``a``, read out ``90 k`` degrees further.
    """

    angles: list[float]
    computed: list[float]
    quarter_symmetric: bool

    @classmethod
    def for_angles(cls, angles: Sequence[float], quarter_symmetric: bool) -> SweepPlan:
        bases = [a % 90 if quarter_symmetric else a % 360 for a in angles]
        return cls(list(angles), list(dict.fromkeys([0.0, *map(float, bases)])), quarter_symmetric)

    def images(self, image: Tensor) -> Tensor:
        """The batch to run, ``[len(computed), 1, 28, 28]``: ``image [1, 28, 28]`` turned by each computed angle."""
        return torch.cat([rotate(image[None], angle) if angle else image[None] for angle in self.computed])

    def assemble(self, probabilities: Tensor, profiles: Tensor | None) -> RotationSweep:
        """The sweep over ``angles`` from one forward pass over :meth:`images`."""
        rows, turns = [], []
        for angle in self.angles:
            base = angle % 90 if self.quarter_symmetric else angle % 360
            row = self.computed.index(base)
            rows.append(row)
            turn = None if profiles is None else _phase_difference(profiles[0], profiles[row])
            turns.append(None if turn is None else (turn + (angle - base)) % 360)
        return RotationSweep(list(self.angles), probabilities[rows], turns)


def rotation_sweep(models: Mapping[str, nn.Module], image: Tensor, angles: Sequence[float]) -> dict[str, RotationSweep]:
    """Every model's probabilities and read-out rotation for ``image`` turned by each angle (degrees).

    One forward pass per model over the angles it needs (see :class:`SweepPlan`).
    """
    sweeps = {}
    for name, model in models.items():
        plan = SweepPlan.for_angles(angles, quarter_turn_symmetric(model))
        sweeps[name] = plan.assemble(*model_answers(model, plan.images(image)))
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
    with eval_mode(model):
        profiles = _orientation_profiles(model.feature_maps(torch.stack([reference, rotated])))
    return None if profiles is None else _phase_difference(profiles[0], profiles[1])
