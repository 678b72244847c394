"""Float32 precision on CUDA: TF32 (fast) or exact IEEE float32 (for measurements).

On Ampere and later GPUs PyTorch runs float32 *convolutions* in TF32 by default (10-bit mantissa); matmuls stay
IEEE float32 unless asked otherwise.  TF32 is fine for training, but it ruins equivariance measurements: a C4
model's relative invariance error on an H100 is 1.4e-4 with TF32 convolutions and 1.9e-7 without (issue 14).
So the project trains with TF32 (``python -m gcnn.train --tf32``, the default) and evaluates and measures
equivariance in exact float32::

    from gcnn.precision import exact_float32, set_exact_float32

    set_exact_float32()           # from now on: IEEE float32 convolutions and matmuls on CUDA
    with exact_float32():         # only inside the block; the previous setting comes back after it
        logits = model(images)

The switches are process-wide (``torch.backends``) and have no effect on the CPU.  Where PyTorch has the
``fp32_precision`` settings (2.9 and later) they are used, otherwise the older ``allow_tf32`` flags.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["set_exact_float32", "exact_float32", "uses_tf32"]


def _new_api() -> bool:
    return hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv")


def uses_tf32() -> tuple[bool, bool]:
    """``(convolutions, matmuls)``: whether each runs float32 in TF32 on CUDA now."""
    if _new_api():
        return (torch.backends.cudnn.conv.fp32_precision == "tf32",
                torch.backends.cuda.matmul.fp32_precision == "tf32")
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


def _set(convolutions: bool, matmuls: bool) -> None:
    if _new_api():
        # "ieee" rather than "none": "none" defers to the parent setting, which may itself be TF32.
        torch.backends.cudnn.conv.fp32_precision = "tf32" if convolutions else "ieee"
        torch.backends.cuda.matmul.fp32_precision = "tf32" if matmuls else "ieee"
    else:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = convolutions, matmuls


def set_exact_float32(enabled: bool = True) -> tuple[bool, bool]:
    """Exact IEEE float32 (``enabled``) or TF32 for CUDA convolutions and matmuls, process-wide.

    Returns the previous ``(convolutions, matmuls)`` TF32 state (see :func:`uses_tf32`).
    """
    previous = uses_tf32()
    _set(not enabled, not enabled)
    return previous


@contextmanager
def exact_float32(enabled: bool = True) -> Iterator[None]:
    """Inside the block, CUDA float32 is exact (``enabled``) or TF32; the previous setting returns after it."""
    previous = set_exact_float32(enabled)
    try:
        yield
    finally:
        _set(*previous)
