"""Prediction-time copies of a trained model: which turned copies of the input, combined how.

A trained checkpoint (default ``models/gcnn_best.pt``) is run with each prediction design below; its weights stay
as they are, since training ignores ``input_rotations``, ``input_step`` and ``input_pool``.  The designs differ in
the copies of the input the model looks at and in how their logits combine: averaged, or per class the largest.
For each design:

* accuracy on validation digits (``gcnn.data.train_val_split``'s, never the test set: this is where the shipped
  design is chosen) turned by 0, 5, ..., 85 degrees: upright, the mean over those angles, and the worst angle.
  One quarter is the whole circle for a model that ignores quarter turns (every shipped GCNN does, exactly);
* the time of one image and of 18 (the Draw page's turn, a quarter in 5-degree steps) on one thread, as a ratio
  against the first design timed in the same rounds (median and 95% interval);
* with ``--variants``, accuracy on the same validation digits, upright, as the robustness table's variants
  (:func:`gcnn.app.robustness.build_variants`: low resolution, blur, strokes, canvas pens, photos) and the
  largest drop under a one-pixel shift: the copies are resampled turns, and what they add at an angle they may
  cost on a digit that is already blurred or drawn with another pen.

    python -m benchmarks.bench_input_copies [--checkpoint models/gcnn_best.pt] [--images 600] [--repeats 15]
                                            [--variants]

About 8 minutes on the 2-core CPU machine with the defaults (7.5 measured, the machine otherwise idle), 14 with
``--variants``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from benchmarks.timing import machine, prepare_process, table, timings
from gcnn import load_model, model_from_config
from gcnn.app.inference import model_answers
from gcnn.app.robustness import build_variants, evaluate_variants, shift_accuracy
from gcnn.data import load_mnist, train_val_split
from gcnn.evaluate import angle_sweep

# The C16 candidates: the group's step is 22.5 degrees, and only quarter turns are exact on the pixel grid.
DESIGNS: dict[str, dict[str, Any]] = {
    "the network alone": {"input_rotations": 1},
    "0 and 11.25 degrees, logits averaged": {"input_rotations": 2, "input_step": 11.25, "input_pool": "mean"},
    "0, 22.5, 45, 67.5 degrees, logits averaged": {"input_rotations": 4, "input_step": 22.5, "input_pool": "mean"},
    "0, 22.5, 45, 67.5 degrees, largest logit per class": {"input_rotations": 4, "input_step": 22.5,
                                                           "input_pool": "max"},
    "8 turns 11.25 degrees apart, largest logit per class": {"input_rotations": 8, "input_step": 11.25,
                                                             "input_pool": "max"},
}
ANGLES = list(range(0, 90, 5))


def with_design(model: nn.Module, options: dict[str, Any]) -> nn.Module:
    """A copy of ``model`` (its weights) with other prediction-time options, in eval mode."""
    designed = model_from_config({**model.config(), "input_step": None, "input_pool": "mean", **options})
    designed.load_state_dict(model.state_dict())
    return designed.eval()


def accuracy_rows(model: nn.Module, images: Tensor, labels: Tensor, designs: dict[str, dict[str, Any]],
                  angles: list[int]) -> list[list[object]]:
    """Per design: copies, accuracy upright, mean over ``angles``, worst angle (percent)."""
    rows = []
    for name, options in designs.items():
        accuracies = angle_sweep(with_design(model, options), images, labels, angles)["accuracy"]
        worst = min(range(len(angles)), key=accuracies.__getitem__)
        rows.append([name, options["input_rotations"], f"{accuracies[0]:.2%}",
                     f"{sum(accuracies) / len(accuracies):.2%}", f"{accuracies[worst]:.2%} at {angles[worst]}"])
    return rows


def variant_rows(model: nn.Module, images: Tensor, labels: Tensor,
                 designs: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[object]]]:
    """The variants' names, and per design: accuracy upright on each variant of ``images`` (percent), then the
    largest drop under a one-pixel shift (points)."""
    variants = build_variants(images)
    built = {name: with_design(model, options) for name, options in designs.items()}
    results = evaluate_variants(built, variants, labels, angles=[])
    rows = []
    for name, designed in built.items():
        shifted = shift_accuracy(designed, images, labels)
        drop = 100 * (shifted["none"] - min(shifted.values()))
        rows.append([name, *(f"{results[variant][name]['upright']:.1%}" for variant in variants), f"{drop:.1f}"])
    return list(variants), rows


def timing_rows(model: nn.Module, designs: dict[str, dict[str, Any]], repeats: int) -> list[list[object]]:
    """Per design: ms for 1 and for 18 images on one thread, and the ratios against the first design."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the app's inference worker runs each model on one intra-op thread
    try:
        built = {name: with_design(model, options) for name, options in designs.items()}
        generator = torch.Generator().manual_seed(0)
        batches = {1: torch.rand(1, 1, 28, 28, generator=generator), 18: torch.rand(18, 1, 28, 28, generator=generator)}
        measured = {size: timings({name: (lambda m=m, x=x: model_answers(m, x)) for name, m in built.items()},
                                  repeats, min_seconds=0.5) for size, x in batches.items()}
    finally:
        torch.set_num_threads(threads)
    first = next(iter(designs))
    return [[name, measured[1][name], str(measured[1].ratio(name, first)), measured[18][name],
             str(measured[18].ratio(name, first))] for name in designs]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("models/gcnn_best.pt"),
                        help="a trained checkpoint (default models/gcnn_best.pt)")
    parser.add_argument("--images", type=int, default=600, help="validation digits (default 600)")
    parser.add_argument("--repeats", type=int, default=15, help="rounds of timing (default 15)")
    parser.add_argument("--variants", action="store_true",
                        help="also measure each design upright on the robustness variants and one-pixel shifts")
    args = parser.parse_args(argv)
    if args.images < 1 or args.repeats < 1:
        parser.error("--images and --repeats must be positive")
    print(prepare_process() + "\n")
    model = load_model(args.checkpoint)
    images, labels = load_mnist(train=True)
    validation = train_val_split(len(images))[1][: args.images]
    print(table(f"Accuracy by prediction design, {len(validation)} validation digits turned by 0-85 degrees",
                ["design", "copies", "upright", "mean over the angles", "worst (degrees)"],
                accuracy_rows(model, images[validation], labels[validation], DESIGNS, ANGLES),
                note=f"{args.checkpoint}, weights unchanged; {machine()}"))
    if args.variants:
        names, rows = variant_rows(model, images[validation], labels[validation], DESIGNS)
        print(table(f"Accuracy upright on variants of the same {len(validation)} validation digits",
                    ["design", *names, "largest shift drop (points)"], rows,
                    note="gcnn.app.robustness's variants and one-pixel shifts, on validation digits, not the test set"))
    print(table("Time on one thread (ms, median), as the app's inference worker runs it",
                ["design", "1 image", "ratio", "18 images", "ratio"], timing_rows(model, DESIGNS, args.repeats),
                note="ratio: median [95% interval] of per-round ratios against the first design"))


if __name__ == "__main__":
    main()
