"""Timing and reporting shared by the benchmarks: interleaved timings, paired ratios with intervals, machine
description, Markdown tables."""

from __future__ import annotations

import argparse
import inspect
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NamedTuple

import torch

from gcnn.allocator import retain_freed_memory
from gcnn.machine import cpu_flags, cpu_model


def _synchronise() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Ratio(NamedTuple):
    """A rival's time over a baseline's: median of the per-round ratios, with a 95% interval for that median."""

    median: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.median:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def verdict(self, rival: str, baseline: str) -> str:
        """Plain words for the comparison: faster or slower only when the whole interval says so."""
        if self.high < 1:
            finding = f"{rival} is faster than {baseline}"
        elif self.low > 1:
            finding = f"{rival} is slower than {baseline}"
        else:
            finding = f"{rival} and {baseline} are level within this run's precision"
        return f"{finding}: {self}x {baseline}'s time"


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median: the order statistics that bound it with ``confidence``.

    With ``n`` values the ``k``-th smallest lies below the median with probability ``P(Binomial(n, 1/2) >= k)``,
    so the interval drops the ``k - 1`` most extreme values on each side, for the largest ``k`` that keeps the
    coverage.  Fewer than 6 values cannot reach 95%: the interval is then the full range.
    """
    ordered, n = sorted(values), len(values)
    tail, k, below = (1 - confidence) / 2, 0, 0.0
    while k < n and below + math.comb(n, k) / 2**n <= tail:
        below += math.comb(n, k) / 2**n
        k += 1
    return ordered[max(k - 1, 0)], ordered[min(n - k, n - 1)]


class Timings(Mapping[str, float]):
    """Wall times of one call of each function, per round, in milliseconds; ``timings[name]`` is the median."""

    def __init__(self, samples: Mapping[str, Sequence[float]]) -> None:
        self.samples = {name: list(values) for name, values in samples.items()}

    def __getitem__(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def ratio(self, rival: str, baseline: str) -> Ratio:
        """``rival``'s time over ``baseline``'s, round by round: a slow spell of the machine hits both calls of
        a round alike and cancels, where a ratio of medians would carry it."""
        ratios = [r / b for r, b in zip(self.samples[rival], self.samples[baseline], strict=True)]
        return Ratio(statistics.median(ratios), *median_interval(ratios))


def timings(functions: Mapping[str, Callable[[], object]], repeats: int = 7, min_seconds: float = 2.0) -> Timings:
    """Time each function ``repeats`` times, round-robin, after one warm-up call each.

    Round-robin, so drift in the machine's speed during the run affects a
    baseline and its rival alike; the order turns each round.  Fast functions
    get more rounds than ``repeats``: enough for about ``min_seconds`` of
    timing each.
    """
    started = time.perf_counter()
    for function in functions.values():
        function()
    warm_up = (time.perf_counter() - started) / len(functions)
    repeats = max(repeats, math.ceil(min_seconds / max(warm_up, 1e-6)))
    samples: dict[str, list[float]] = {name: [] for name in functions}
    names = list(functions)
    for round_ in range(repeats):
        # Each round starts with the next function, so no one always runs first (or after the same rival).
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            function = functions[name]
            _synchronise()  # CUDA runs asynchronously: time from an idle device to an idle device
            started = time.perf_counter()
            function()
            _synchronise()
            samples[name].append((time.perf_counter() - started) * 1e3)
    return Timings(samples)


def timings_apart(groups: Sequence[Mapping[str, Callable[[], object]]], repeats: int = 7) -> Timings:
    """:func:`timings` of each group on its own, merged: e.g. eval forwards apart from training steps,
    whose freshly freed buffers would otherwise skew the evals.  Ratios pair calls within one group."""
    return Timings({name: values for functions in groups
                    for name, values in timings(functions, repeats).samples.items()})


def machine() -> str:
    """CPU (and GPU) model with the CPU's relevant flags, torch version and thread count, for the heading of the
    results."""
    flags = " ".join(cpu_flags()) or "flags unknown"
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu_model()} ({flags}){gpu}; torch {torch.__version__}; {torch.get_num_threads()} threads"


def prepare_process() -> str:
    """Set this process up for timing and describe it: the machine, plus freed memory kept for reuse
    (:func:`gcnn.allocator.retain_freed_memory`), so every implementation runs on warm pages instead of paying
    for however many page faults its order of allocations happens to cause (up to a quarter of an eval pass)."""
    kept = retain_freed_memory()
    return machine() + ("; freed memory kept for reuse (glibc mallopt)" if kept else "; default memory allocator")


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]], note: str = "") -> str:
    """A Markdown section: heading, optional note, table.  Floats get 3 decimals below 10, else 1."""
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
        return str(value)

    lines = [f"### {title}", ""] + ([note, ""] if note else [])
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def takes_device(run: Callable[..., str]) -> bool:
    """Whether a benchmark's ``run`` accepts a ``device`` (the others run on the CPU only)."""
    return "device" in inspect.signature(run).parameters


def command_line(run: Callable[..., str], doc: str) -> None:
    """Run one benchmark script from the command line: ``--quick`` for a smoke test, ``--device`` where the
    script supports it; results to stdout."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches, few repeats: a smoke test")
    if takes_device(run):
        parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    args = parser.parse_args()
    print(prepare_process() + "\n")
    print(run(args.quick, args.device) if takes_device(run) else run(args.quick))
