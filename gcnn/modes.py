"""Running a module in a chosen train/eval mode and handing it back as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["eval_mode"]


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(model):`` runs ``model`` in eval mode inside the block and restores the caller's
    train/eval mode afterwards, so helpers that evaluate a model leave it as they found it."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
