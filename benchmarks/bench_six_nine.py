"""How well can a rotation-invariant network tell a 6 from a 9?  The ceiling under ``gcnn_best``'s 6s and 9s.

A network that gives the same answer at every turn sees a 6 and a 9 as one shape turned, and can tell them apart
only by handwriting detail: which way the stem curls, how the loop closes.  Upright, on the robustness table's
variants, ``gcnn_best``'s whole gap to the plain CNN is its 6s and 9s (README, "Variants").  This benchmark asks
whether a better invariant network could close that gap.  Readers that answer only "6 or 9" are trained on the
training split's 6s and 9s alone, so that every parameter serves that one question: each with its preset's recipe
(:func:`benchmarks.bench_training.training_step`: augmentation, Adam, one-cycle to the preset's learning rate,
bfloat16 autocast, seed 0) for as many steps of 128 as its preset's epochs make over those digits:

* ``gcnn_best``'s design: C16, invariant up to resampling;
* the plain CNN's design trained on digits turned at random about their mass centre (``cnn_rotaug``'s recipe):
  as invariant as training makes it;
* the plain CNN's design on upright digits: not invariant, the yardstick.

Beside them every shipped model is read as the choice between its logits for 6 and for 9.  All are measured on
the validation split's 6s and 9s (never the test set): upright, on variants of them
(:func:`gcnn.app.robustness.build_variants`), and each turned by its own seeded angle.

    python -m benchmarks.bench_six_nine [--models-dir models] [--epochs-scale 1.0]

About 20 minutes on the 2-core CPU machine, alone (``gcnn_best``'s design takes most of it).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch
from torch import Tensor, nn

from benchmarks.bench_training import BATCH, training_step
from benchmarks.timing import machine, table
from gcnn import cli
from gcnn.app.robustness import build_variants
from gcnn.data import VAL_SIZE, load_mnist, rotated_test_set, train_val_split
from gcnn.evaluate import predict_logits
from gcnn.models import count_parameters
from gcnn.presets import PRESETS
from gcnn.shipped import load_shipped
from gcnn.train import build_model

SIX, NINE = 6, 9
# The readers trained here: name -> preset whose design and recipe it takes (with two outputs instead of ten).
READERS = {
    "gcnn_best's design (invariant)": "gcnn_best",
    "the plain CNN's design, turned training digits": "cnn_rotaug",
    "the plain CNN's design, upright training digits": "cnn",
}
# The robustness table's variants where gcnn_best is furthest below the plain CNN, and the original digits.
VARIANTS = ("original", "low_res_8", "blur", "pen_10", "pen_20", "pen_30", "photo")


def sixes_and_nines(images: Tensor, labels: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
    """The 6s and 9s among ``images[indices]``, with targets 0 for a 6 and 1 for a 9."""
    chosen = indices[(labels[indices] == SIX) | (labels[indices] == NINE)]
    return images[chosen], (labels[chosen] == NINE).long()


class SixOrNine(nn.Module):
    """A ten-class model read as a two-class one: its logits for 6 and for 9, in that order."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)[:, [SIX, NINE]]


def train_reader(preset: str, images: Tensor, targets: Tensor, epochs_scale: float = 1.0) -> tuple[nn.Module, float]:
    """A two-output reader of ``preset``'s design and recipe, trained on ``images``; returns it and the seconds."""
    recipe = PRESETS[preset]
    torch.manual_seed(0)
    model = build_model({**recipe["model"], "out_channels": 2})
    steps = max(1, round(recipe.get("epochs", 10) * epochs_scale * math.ceil(len(images) / BATCH)))
    step = training_step(model, recipe, images, targets, amp=True, total_steps=steps)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return model.eval(), time.perf_counter() - started


def reading_rows(readers: dict[str, tuple[nn.Module, str]], views: dict[str, Tensor], targets: Tensor) -> list[list]:
    """Per reader: parameters, its training time, and the share of 6s and 9s it reads right in every view."""
    rows = []
    for name, (model, trained) in readers.items():
        right = [(predict_logits(model, images).argmax(1) == targets).float().mean().item()
                 for images in views.values()]
        rows.append([name, f"{count_parameters(model):,}", trained, *(f"{r:.1%}" for r in right)])
        print(" | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)  # progress; the table goes to stdout
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=cli.existing_folder,
                        help="folder of the shipped checkpoints (default: gcnn.shipped.models_dir())")
    parser.add_argument("--epochs-scale", type=cli.positive_float, default=1.0,
                        help="train every reader for this fraction of its preset's epochs (default 1)")
    args = parser.parse_args(argv)
    images, labels = load_mnist(train=True)
    train_idx, val_idx = train_val_split(len(images), min(VAL_SIZE, len(images) // 2))
    train_images, train_targets = sixes_and_nines(images, labels, train_idx)
    val_images, val_targets = sixes_and_nines(images, labels, val_idx)
    variants = build_variants(val_images)
    views = {**{name: variants[name] for name in VARIANTS}, "turned": rotated_test_set(val_images)[0]}

    readers = {f"shipped {name}, its 6 and 9 logits": (SixOrNine(entry.model).eval(), "-")
               for name, entry in load_shipped(args.models_dir)[0].items()}
    for name, preset in READERS.items():
        model, seconds = train_reader(preset, train_images, train_targets, args.epochs_scale)
        readers[f"{name}, 6s and 9s only"] = (model, f"{seconds:.0f} s")
    print(table(f"6 or 9? The share of {len(val_images):,} validation 6s and 9s read right",
                ["reader", "parameters", "training", *views], reading_rows(readers, views, val_targets),
                note=f"Trained on the {len(train_images):,} 6s and 9s of the training split, "
                     f"{args.epochs_scale:g} x the preset's epochs; 'turned': each digit at its own seeded angle; "
                     f"{machine()}"))


if __name__ == "__main__":
    main()
