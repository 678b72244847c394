"""Accuracy on upright, randomly rotated and fixed-angle MNIST: ``python -m gcnn.evaluate``.

Writes ``evaluation.json`` in the models folder (read by the app) and prints a table::

    python -m gcnn.evaluate                      # every checkpoint in the models folder
    python -m gcnn.evaluate --models-dir runs/   # ... in another folder (also: GCNN_MODELS_DIR)
    python -m gcnn.evaluate models/cnn.pt --curve-images 500 --out /tmp/eval.json

A checkpoint is a ``NAME.pt`` with its ``NAME.json`` beside it, so training
state such as ``NAME.resume.pt`` is not mistaken for one.  The models folder
is :func:`gcnn.shipped.models_dir`: ``--models-dir``, else
``$GCNN_MODELS_DIR``, else ``./models``, else the source checkout's.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import cli
from .allocator import retain_freed_memory
from .checkpoint import CheckpointError, checkpoint_paths, load_model, read_metadata, write_json
from .data import DatasetMissingError, curve_subset, load_mnist, rotate, rotated_test_set
from .extras import MissingExtraError
from .nn import eval_mode
from .shipped import EVALUATION_NAME, REFERENCE_ROTATED, models_dir

__all__ = ["predict_logits", "accuracy", "confusion_matrix", "angle_sweep", "evaluate_model", "curve_subset",
           "format_table", "find_checkpoints", "ANGLES", "main"]

ANGLES = list(range(0, 360, 5))
CURVE_IMAGES = 2_000

Progress = Callable[[float, str], None]


@torch.no_grad()
def predict_logits(model: nn.Module, images: Tensor, batch_size: int = 500) -> Tensor:
    """Logits ``[N, classes]`` (on the CPU) for ``images [N, 1, H, W]``, in eval mode on the model's device.

    The model's train/eval mode is restored afterwards.
    """
    with eval_mode(model):
        device = next(model.parameters(), torch.empty(0)).device  # a model without parameters runs on the CPU
        return torch.cat([model(images[i:i + batch_size].to(device)).cpu()
                          for i in range(0, len(images), batch_size)])


def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 500) -> float:
    """Fraction of ``images`` classified as ``labels`` (in eval mode; the model's mode is restored)."""
    return (predict_logits(model, images, batch_size).argmax(1) == labels).float().mean().item()


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int = 10) -> Tensor:
    """``[true class, predicted class]`` counts, ``LongTensor [num_classes, num_classes]``."""
    return torch.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, -1)


def angle_sweep(
    model: nn.Module, images: Tensor, labels: Tensor, angles: Sequence[float] = ANGLES,
    progress: Progress | None = None,
) -> dict[str, list]:
    """Accuracy and confusion matrix with every image rotated by each angle in turn."""
    accuracies, confusions = [], []
    for step, angle in enumerate(angles):
        predictions = predict_logits(model, rotate(images, float(angle))).argmax(1)
        accuracies.append((predictions == labels).float().mean().item())
        confusions.append(confusion_matrix(predictions, labels).tolist())
        if progress:
            progress((step + 1) / len(angles), f"{angle} degrees")
    return {"angles": list(angles), "accuracy": accuracies, "confusion": confusions}


def evaluate_model(
    model: nn.Module, test_images: Tensor, test_labels: Tensor, rotated_images: Tensor,
    curve_images: int = CURVE_IMAGES, angles: Sequence[float] = ANGLES, progress: Progress | None = None,
) -> dict[str, Any]:
    """Upright and rotated accuracy on the given test set, and the accuracy-against-angle sweep on a subset."""
    subset = curve_subset(len(test_images), curve_images)
    sweep = angle_sweep(model, test_images[subset], test_labels[subset], angles, progress)
    worst = min(range(len(sweep["angles"])), key=sweep["accuracy"].__getitem__)
    return {
        "upright": accuracy(model, test_images, test_labels),
        "rotated": accuracy(model, rotated_images, test_labels),
        "test_images": len(test_images),
        "curve_images": len(subset),
        "worst_angle": sweep["angles"][worst],
        "worst_accuracy": sweep["accuracy"][worst],
        **sweep,
    }


def format_table(results: dict[str, dict[str, Any]], markdown: bool = False) -> str:
    """One row per model: parameters, epochs, training time and device, upright, rotated and worst-angle accuracy."""
    header = ["model", "parameters", "epochs", "training", "upright", "rotated", "worst angle", "reference rotated"]
    rows = [[name, f"{r.get('parameters') or 0:,}", str(r.get("epochs", "?")),
             f"{(r.get('wall_time_s') or 0) / 60:.0f} min, {r.get('device', '?')}", f"{r['upright']:.2%}",
             f"{r['rotated']:.2%}", f"{r['worst_accuracy']:.2%} at {r['worst_angle']}°",
             f"{REFERENCE_ROTATED[name]:.1%}" if name in REFERENCE_ROTATED else ""]
            for name, r in results.items()]
    if markdown:
        lines = [header, ["---"] * len(header), *rows]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                     for row in [header, *rows])


def find_checkpoints(folder: str | Path) -> list[Path]:
    """Every ``NAME.pt`` in ``folder`` that has its ``NAME.json`` beside it, sorted by name."""
    return sorted(path for path in Path(folder).glob("*.pt") if checkpoint_paths(path)[1].is_file())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gcnn.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", help="NAME.pt files (default: every model in the models folder)")
    parser.add_argument("--models-dir", type=cli.existing_folder,
                        help="folder of checkpoints to evaluate and of evaluation.json (default: $GCNN_MODELS_DIR, "
                             "else ./models, else the source checkout's models/)")
    parser.add_argument("--data-dir", help="folder holding MNIST/raw (default: $GCNN_DATA_DIR, else ./data)")
    parser.add_argument("--download", action="store_true", help="download MNIST into the data folder if missing")
    parser.add_argument("--curve-images", type=cli.positive_int, default=CURVE_IMAGES,
                        help=f"test images per angle of the sweep (default {CURVE_IMAGES}, a fixed seeded subset)")
    parser.add_argument("--angle-step", type=cli.positive_int, default=5,
                        help="degrees between sweep angles (default 5)")
    parser.add_argument("--out", type=cli.output_file,
                        help=f"results JSON, merged into if present (default: {EVALUATION_NAME} in the models folder)")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    args = parser.parse_args(argv)
    retain_freed_memory()  # see gcnn.allocator: no page faults on every fresh activation buffer

    folder = models_dir(args.models_dir)
    out = args.out or folder / EVALUATION_NAME
    try:  # before the long evaluation: results that could not be written would be lost
        results = _earlier_results(cli.output_file(str(out)))
    except (argparse.ArgumentTypeError, ValueError) as error:
        parser.error(f"--out: {error}")
    paths = [Path(p) for p in args.checkpoints] or find_checkpoints(folder)
    try:  # the models first: a bad one is found before MNIST is read
        models = {checkpoint_paths(p)[0].stem: (load_model(p), read_metadata(p)) for p in paths}
        images, labels = load_mnist(train=False, data_dir=args.data_dir, download=args.download)
    except (DatasetMissingError, CheckpointError, MissingExtraError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not models:
        print(f"error: no checkpoints given and none found in {folder}; train one with python -m gcnn.train",
              file=sys.stderr)
        return 1
    rotated, _ = rotated_test_set(images)
    angles = list(range(0, 360, args.angle_step))
    for name, (model, metadata) in models.items():
        print(f"evaluating {name} ...", file=sys.stderr)
        results[name] = {**evaluate_model(model, images, labels, rotated, args.curve_images, angles),
                         "parameters": metadata.get("parameters"), "epochs": metadata.get("epochs_trained"),
                         "wall_time_s": metadata.get("wall_time_s"), "device": metadata.get("device")}
    write_json({"format_version": 1, "models": results}, out)
    print(format_table({name: results[name] for name in models}, args.markdown))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _earlier_results(path: Path) -> dict[str, Any]:
    """The models already in the results file ``path`` (new results are merged into it); ``{}`` when there is none.
    ``ValueError`` when the file is there but is not one."""
    if not path.exists():
        return {}
    try:
        results = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is there but is not a readable JSON file ({error}); the results would be merged "
                         "into it: repair or remove it, or name another file") from error
    if not isinstance(results, dict) or not isinstance(results.get("models", {}), dict):
        raise ValueError(f"{path} is JSON but not a gcnn.evaluate results file (no 'models' object); the results "
                         "would be merged into it: remove it, or name another file")
    return results.get("models", {})


if __name__ == "__main__":
    raise SystemExit(main())
