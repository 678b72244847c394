"""The machine a run happened on, in words and flags: recorded with every checkpoint and benchmark, because
training times only mean something next to the CPU that produced them."""

from __future__ import annotations

import platform

import torch

__all__ = ["RELEVANT_CPU_FLAGS", "cpu_model", "cpu_flags", "describe_device"]

# The instruction sets that decide convolution speed on x86 CPUs: avx512_bf16 (and AMX) make bfloat16 autocast
# pay; without them it is slower than float32.
RELEVANT_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """Which of :data:`RELEVANT_CPU_FLAGS` this CPU has (empty where ``/proc/cpuinfo`` is unreadable)."""
    flags = set((_cpuinfo_field("flags") or "").split())
    return [flag for flag in RELEVANT_CPU_FLAGS if flag in flags]


def describe_device(device: torch.device) -> str:
    """``"NVIDIA H200"`` or ``"AMD EPYC, 2 threads (avx2 fma avx512f avx512_bf16)"``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    flags = " ".join(cpu_flags())
    return f"{cpu_model()}, {torch.get_num_threads()} threads" + (f" ({flags})" if flags else "")
