"""Run every benchmark and write the results to ``benchmarks/README.md``.

    python -m benchmarks.run                 # the full run (about 10 minutes on 2 CPU cores) -> README.md
    python -m benchmarks.run --quick         # small batches, few repeats: checks that everything runs
    python -m benchmarks.run --device cuda   # the benchmarks that take a device, on the GPU -> GPU.md

Run it on an otherwise idle machine: every ratio compares timings taken in
the same process, round-robin, but a busy CPU still widens the spread.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from benchmarks.timing import prepare_process, takes_device
from gcnn.checkpoint import atomic_write

README = Path(__file__).resolve().parent / "README.md"

INTRO = """# Benchmarks

Written by `python -m benchmarks.run` (do not edit by hand). Each table shows
medians of repeated calls, timed round-robin in one process. A ratio is the
median of per-round ratios (rival over baseline, both timed in the same
round, so a slow spell of the machine hits both and cancels) with a 95%
interval for that median from order statistics: `0.970 [0.909, 0.991]` is
faster with 95% confidence, an interval across 1 is a draw at this run's
precision. The process keeps freed memory for reuse (`gcnn.allocator`), so
the timings measure computation, not page faults that depend on the order of
allocations. Optional rival: e2cnn (`pip install -r requirements-bench.txt`).

Scripts: `bench_layers.py` (layer overhead against `F.conv2d` with the same
expanded weights; cost against group order), `bench_networks.py` (one C4
network in four implementations: plain convolutions and gcnn, both also
channels-last, reference-style `grid_sample` banks, e2cnn; `torch.compile`),
`bench_app.py` (training throughput of every shipped design; the app's hot
path). Each also runs alone, e.g. `python -m benchmarks.bench_layers`.
GPU results: [GPU.md](GPU.md) (`python -m benchmarks.run --device cuda`).
"""

GPU_INTRO = """# Benchmarks on a GPU

Written by `python -m benchmarks.run --device cuda` (do not edit by hand); the CPU results and how to read
the tables are in [README.md](README.md). Every call is timed from an idle device to an idle device
(`torch.cuda.synchronize` before and after), round-robin, in float32 with PyTorch's default precision settings
for the device (TF32 convolutions on Ampere and later, see `gcnn.precision`).
"""


GPU_RESULTS = README.parent / "GPU.md"
MODULES = ("bench_layers", "bench_networks", "bench_app")


def _load(name: str) -> ModuleType | str:
    """The benchmark module, or why it cannot run here (bench_app needs streamlit, absent on GPU machines)."""
    try:
        return importlib.import_module(f"benchmarks.{name}")
    except ImportError as error:
        return f"### {name}\n\nNot run: {error}.\n"


def _sections(module: ModuleType, quick: bool, device: str) -> Iterator[str]:
    """A module's sections, one by one where it yields them; on a GPU only the modules that take a device."""
    if device == "cpu":
        yield from (module.sections(quick) if hasattr(module, "sections") else [module.run(quick)])
    elif takes_device(module.run):
        yield from (module.sections(quick, device) if hasattr(module, "sections") else [module.run(quick, device)])
    else:
        yield f"### {module.__name__}\n\nNot run on {device}: this benchmark runs on the CPU only.\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches, few repeats: a smoke test")
    parser.add_argument("--device", default="cpu", help="cpu (default) or a CUDA device: cuda, cuda:1, ...")
    parser.add_argument("--only", nargs="+", choices=MODULES,
                        help="run these benchmark scripts only (default: all)")
    parser.add_argument("--output", type=Path,
                        help="Markdown file to write (default: benchmarks/README.md on the CPU, benchmarks/GPU.md "
                             "on a GPU)")
    args = parser.parse_args()
    output = args.output or (README if args.device == "cpu" else GPU_RESULTS)
    quick = " (--quick: not representative)" if args.quick else ""
    header = f"Machine: {prepare_process()}. Device: {args.device}. Run {datetime.date.today()}{quick}."
    print(header + "\n", flush=True)
    intro = INTRO if args.device == "cpu" else GPU_INTRO
    sections = []
    for name in MODULES:
        if args.only and name not in args.only:
            continue
        module = _load(name)
        for section in [module] if isinstance(module, str) else _sections(module, args.quick, args.device):
            print(section, flush=True)
            sections.append(section)
            # Saved after every section, so a run cut short (a time limit on a lent GPU) keeps what it measured.
            atomic_write(output, "\n".join([intro, "## Results", "", header, "", *sections]).encode())
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
