"""Timing and reporting shared by the benchmarks: interleaved medians, machine description, Markdown tables."""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import torch


def _synchronise() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_ms(functions: Mapping[str, Callable[[], object]], repeats: int = 7,
              min_seconds: float = 2.0) -> dict[str, float]:
    """Median wall time of one call of each function, in milliseconds.

    The functions run round-robin (after one warm-up call each), so drift in
    the machine's speed during the run affects a baseline and its rival
    alike; the order turns each round.
    Fast functions get more rounds than ``repeats``: enough for about
    ``min_seconds`` of timing each.
    """
    started = time.perf_counter()
    for function in functions.values():
        function()
    warm_up = (time.perf_counter() - started) / len(functions)
    repeats = max(repeats, math.ceil(min_seconds / max(warm_up, 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in functions}
    names = list(functions)
    for round_ in range(repeats):
        # Each round starts with the next function, so no one always runs first (or after the same rival).
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            function = functions[name]
            _synchronise()
            started = time.perf_counter()
            function()
            _synchronise()
            times[name].append((time.perf_counter() - started) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def median_ms_apart(groups: Sequence[Mapping[str, Callable[[], object]]], repeats: int = 7) -> dict[str, float]:
    """:func:`median_ms` of each group on its own, merged: e.g. eval forwards apart from training steps,
    whose freshly freed buffers would otherwise skew the evals."""
    return {name: ms for functions in groups for name, ms in median_ms(functions, repeats).items()}


def machine() -> str:
    """CPU (and GPU) model, torch version and thread count, for the heading of the results."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}{gpu}; torch {torch.__version__}; {torch.get_num_threads()} threads"


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


def command_line(run: Callable[[bool], str], doc: str) -> None:
    """Run one benchmark script from the command line: ``--quick`` for a smoke test, results to stdout."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches, few repeats: a smoke test")
    print(machine() + "\n")
    print(run(parser.parse_args().quick))
