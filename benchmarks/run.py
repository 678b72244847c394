"""Run every benchmark and write the results to ``benchmarks/README.md``.

    python -m benchmarks.run            # the full run (about 10 minutes on 2 CPU cores)
    python -m benchmarks.run --quick    # small batches, few repeats: checks that everything runs

Run it on an otherwise idle machine: every ratio compares timings taken in
the same process, round-robin, but a busy CPU still widens the spread.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from benchmarks import bench_app, bench_layers, bench_networks
from benchmarks.timing import prepare_process
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
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches, few repeats: a smoke test")
    parser.add_argument("--output", type=Path, default=README, help="Markdown file to write (default: %(default)s)")
    args = parser.parse_args()
    quick = " (--quick: not representative)" if args.quick else ""
    header = f"Machine: {prepare_process()}. Run {datetime.date.today()}{quick}."
    print(header + "\n", flush=True)
    sections = []
    for module in (bench_layers, bench_networks, bench_app):
        section = module.run(args.quick)
        print(section, flush=True)
        sections.append(section)
    atomic_write(args.output, "\n".join([INTRO, "## Results", "", header, "", *sections]).encode())
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
