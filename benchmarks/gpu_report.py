"""Helpers of ``benchmarks/gpu_check.sh``: evaluation on the GPU, the one-pixel shift table, the run summary.

    python -m benchmarks.gpu_report evaluate --device cuda CHECKPOINT.pt ... -- EVALUATE_ARGS
    python -m benchmarks.gpu_report shifts --device cuda --out shifts.json CHECKPOINT.pt ...
    python -m benchmarks.gpu_report summary RUNS_DIR PHASES_FILE --out summary.md

``evaluate`` runs ``python -m gcnn.evaluate`` with every model on the device, in exact float32
(:mod:`gcnn.precision`); ``shifts`` measures each model's test accuracy on MNIST's test digits moved by one pixel
in each of the 8 directions (issue 15: within 1 point of the unshifted digits); ``summary`` gathers every
training run's ``NAME.json`` under ``RUNS_DIR/s<seed>/<preset>/`` into one Markdown file: each run's device,
wall time and test accuracy, and mean ± std over the seeds of each preset.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from gcnn.checkpoint import atomic_write, load_model
from gcnn.data import load_mnist
from gcnn.precision import set_exact_float32
from gcnn.train import device_accuracy

SHIFTS = [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0)]


def shift(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Move ``images [N, C, H, W]`` by whole pixels (right and down positive), filling with black."""
    padded = F.pad(images, (1, 1, 1, 1))
    height, width = images.shape[-2:]
    return padded[..., 1 - dy:1 - dy + height, 1 - dx:1 - dx + width]


def shift_table(paths: Sequence[Path], device: str, data_dir: str | None,
                exact: bool = True) -> dict[str, dict[str, float]]:
    """Per model: accuracy on the unshifted test set and on each one-pixel shift, and the largest drop."""
    images, labels = load_mnist(train=False, data_dir=data_dir)
    images, labels = images.to(device), labels.to(device)
    table = {}
    for path in paths:
        model = load_model(path, map_location=device)
        row = {"none": device_accuracy(model, images, labels, exact=exact)}
        for dx, dy in SHIFTS:
            row[f"{dx:+d},{dy:+d}"] = device_accuracy(model, shift(images, dx, dy), labels, exact=exact)
        row["largest_drop"] = row["none"] - min(value for key, value in row.items() if key != "none")
        table[Path(path).stem] = row
    return table


def summary(runs_dir: Path, phases: Path, shifts: Path | None = None) -> str:
    """Markdown: the phases' status lines, one row per training run, mean ± std per preset, and the one-pixel
    shift table where ``shifts`` (written by :func:`shift_table`) exists."""
    lines = ["# gpu_check summary", "", "## Phases", "", "```", phases.read_text().strip() if phases.is_file()
             else "(no phase log)", "```", "", "## Training runs", "",
             "| preset | seed | device | epochs (best) | training s | whole run s | test upright | test rotated |",
             "|---|---|---|---|---|---|---|---|"]
    by_preset: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(runs_dir.glob("s*/*/*.json")):
        metadata = json.loads(path.read_text())
        if "metrics" not in metadata:
            continue
        seed = metadata["training"]["seed"]
        by_preset[metadata["name"]].append(metadata)
        metrics = metadata["metrics"]
        lines.append(f"| {metadata['name']} | {seed} | {metadata['device']} | {metadata['epochs_trained']} "
                     f"({metadata['best_epoch']}) | {metadata['wall_time_s']} | "
                     f"{metadata.get('run', {}).get('total_wall_time_s', '?')} | {metrics['test_upright']:.2%} | "
                     f"{metrics['test_rotated']:.2%} |")
    lines += ["", "## Mean ± std over seeds (sample std; seed 0 is the shipped checkpoint)", "",
              "| preset | seeds | test upright | test rotated |", "|---|---|---|---|"]
    for name, runs in sorted(by_preset.items()):
        cells = []
        for key in ("test_upright", "test_rotated"):
            values = [100 * run["metrics"][key] for run in runs]
            spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.2f}{spread}%")
        seeds = ", ".join(str(run["training"]["seed"]) for run in runs)
        lines.append(f"| {name} | {seeds} | {cells[0]} | {cells[1]} |")
    if shifts is not None and shifts.is_file():
        table = json.loads(shifts.read_text())
        keys = ["none", *(f"{dx:+d},{dy:+d}" for dx, dy in SHIFTS)]
        lines += ["", "## Test accuracy (%) with every digit moved by one pixel (dx, dy; seed-0 checkpoints)", "",
                  "| model | " + " | ".join(keys) + " | largest drop (points) |", "|---" * (len(keys) + 2) + "|"]
        lines += [f"| {name} | " + " | ".join(f"{100 * row[key]:.2f}" for key in keys)
                  + f" | {100 * row['largest_drop']:.2f} |" for name, row in table.items()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate = commands.add_parser("evaluate", help="python -m gcnn.evaluate with the models on --device")
    evaluate.add_argument("--device", default="cuda")
    evaluate.add_argument("--tf32", action="store_true", help="allow TF32 (accuracy runs; never for equivariance)")
    evaluate.add_argument("rest", nargs=argparse.REMAINDER, help="gcnn.evaluate's arguments")
    shifts = commands.add_parser("shifts", help="accuracy under one-pixel shifts")
    shifts.add_argument("checkpoints", nargs="+", type=Path)
    shifts.add_argument("--device", default="cuda")
    shifts.add_argument("--tf32", action="store_true", help="allow TF32 (accuracy runs; never for equivariance)")
    shifts.add_argument("--data-dir")
    shifts.add_argument("--out", type=Path, required=True)
    report = commands.add_parser("summary", help="one Markdown file for every training run")
    report.add_argument("runs_dir", type=Path)
    report.add_argument("phases", type=Path)
    report.add_argument("--shifts", type=Path, help="shift table JSON to include, if it exists")
    report.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    # Measurements: exact float32 unless --tf32 (accuracies only: several times faster for gcnn_best on an H100).
    set_exact_float32(not getattr(args, "tf32", False))
    if args.command == "evaluate":
        import gcnn.evaluate as evaluate_module

        load = evaluate_module.load_model
        # gcnn.evaluate loads every model on the CPU; predict_logits then runs wherever the model's weights are.
        evaluate_module.load_model = lambda path: load(path, map_location=args.device)
        return evaluate_module.main([a for a in args.rest if a != "--"])
    if args.command == "shifts":
        table = shift_table(args.checkpoints, args.device, args.data_dir, exact=not args.tf32)
        atomic_write(args.out, json.dumps(table, indent=1).encode())
        for name, row in table.items():
            print(f"{name}: unshifted {row['none']:.2%}, largest drop under a 1-px shift "
                  f"{100 * row['largest_drop']:.2f} points")
        return 0
    atomic_write(args.out, summary(args.runs_dir, args.phases, args.shifts).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
