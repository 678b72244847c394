"""Predictions for single images, as the app shows them.

``image`` below is always one MNIST-style image ``[1, 28, 28]`` (float in
[0, 1], white on black); models are any of :mod:`gcnn.models`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..nn import eval_mode
from ..transforms import rotate

__all__ = ["RotationSweep", "SweepPlan", "rotation_sweep", "model_answers", "quarter_turn_symmetric"]


@dataclass
class RotationSweep:
    """One model's answers for one image turned by each angle.

    ``probabilities [A, classes]``: one row per angle in ``angles`` (degrees).
    """

    angles: list[float]
    probabilities: Tensor

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
    """Whether ``model`` measurably ignores quarter turns: its log-probabilities are the same for a random image
    and that image turned by 90 degrees.

    Such a model (a C4 or C16 GCNN, with or without input-rotation averaging) answers the same at ``a`` and
    ``a + 90`` degrees, since :func:`~gcnn.data.rotate` by ``a + 90`` equals ``rot90`` of the rotation by ``a``
    (both sample the image at the same points), so a sweep needs only the angles in [0, 90).
    Measured, not read off the config (a restriction to a subgroup or a plain CNN fails it): "the same" means
    a change under the turn below ``tolerance`` times the change between two different random images, so
    an untrained model with nearly uniform answers is judged as strictly as a trained one.
    """
    generator = torch.Generator().manual_seed(0)
    image, other = torch.rand(2, 1, 1, 28, 28, generator=generator)
    log = model_answers(model, torch.cat([image, torch.rot90(image, 1, dims=(-2, -1)), other])).log()
    return bool((log[0] - log[1]).norm() <= tolerance * (log[0] - log[2]).norm())


@torch.inference_mode()
def model_answers(model: nn.Module, images: Tensor) -> Tensor:
    """Probabilities ``[B, classes]`` for ``images [B, 1, 28, 28]``: one forward pass (which averages any input
    turns the model makes)."""
    with eval_mode(model):
        return torch.softmax(model(images), dim=1)


@dataclass
class SweepPlan:
    """Which rotated copies of an image one model must see to answer at every angle in ``angles`` (degrees).

    ``computed``: the angles actually run; for a quarter-turn-symmetric model
    only angles in [0, 90), as the answer at ``a + 90 k`` is the one at ``a``.
    """

    angles: list[float]
    computed: list[float]
    quarter_symmetric: bool

    @classmethod
    def for_angles(cls, angles: Sequence[float], quarter_symmetric: bool) -> SweepPlan:
        bases = [a % 90 if quarter_symmetric else a % 360 for a in angles]
        return cls(list(angles), list(dict.fromkeys(map(float, bases))), quarter_symmetric)

    def images(self, image: Tensor) -> Tensor:
        """The batch to run, ``[len(computed), 1, 28, 28]``: ``image [1, 28, 28]`` turned by each computed angle."""
        return torch.cat([rotate(image[None], angle) if angle else image[None] for angle in self.computed])

    def assemble(self, probabilities: Tensor) -> RotationSweep:
        """The sweep over ``angles`` from the probabilities of one forward pass over :meth:`images`."""
        rows = [self.computed.index(angle % 90 if self.quarter_symmetric else angle % 360) for angle in self.angles]
        return RotationSweep(list(self.angles), probabilities[rows])


def rotation_sweep(models: Mapping[str, nn.Module], image: Tensor, angles: Sequence[float]) -> dict[str, RotationSweep]:
    """Every model's probabilities for ``image`` turned by each angle (degrees).

    One forward pass per model over the angles it needs (see :class:`SweepPlan`).
    """
    sweeps = {}
    for name, model in models.items():
        plan = SweepPlan.for_angles(angles, quarter_turn_symmetric(model))
        sweeps[name] = plan.assemble(model_answers(model, plan.images(image)))
    return sweeps
