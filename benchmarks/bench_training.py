"""What a training run costs on this machine: seconds a step, an epoch and a whole run, per preset and candidate.

Every design is timed the way ``python -m gcnn.train`` runs it: batch 128 of 28x28 MNIST digits, the presets'
rotation-free augmentation (and random rotations where the recipe has them) drawn for every step, Adam, one
forward and backward pass, in float32 and under bfloat16 autocast (``--amp``).  The steps of all designs run
round-robin (:func:`benchmarks.timing.timings`), so a busy spell of the machine slows them alike; the table gives
the median step with its 95% interval.  An epoch is 430 steps (55,000 training digits) plus validation: one eval
pass over 5,000 upright and 5,000 rotated digits, timed the same way, in the steps' precision (``gcnn.train``
validates an ``--amp`` run under the same autocast).

    python -m benchmarks.bench_training [--designs NAME ...] [--repeats 5]
    python -m benchmarks.bench_training --short-run 200 [--designs NAME ...]

``--short-run STEPS`` instead trains every design for the same STEPS steps (seed 0, bfloat16 autocast, its
recipe's augmentation, Adam with a one-cycle schedule to its recipe's learning rate over those steps) and gives
its validation accuracy upright and on the rotated validation set (2,000 of the 5,000 held-out digits, each at its
own seeded angle, as ``gcnn.train`` validates): how far each design gets for the same short training, next to its
wall time on this machine.

Run it alone: another process on the two cores doubles every figure.  The heading names the CPU and its flags
(``avx512_bf16`` is what makes autocast pay).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.timing import median_interval, prepare_process, table, timings
from gcnn import model_from_config
from gcnn.augment import ROTATION_CENTRES, Augmentation, random_rotations
from gcnn.data import VAL_SIZE, load_mnist, rotated_test_set, train_val_split
from gcnn.evaluate import accuracy
from gcnn.models import count_parameters
from gcnn.presets import MNIST_MEAN, PRESETS

TRAIN_DIGITS, VAL_DIGITS, BATCH = 55_000, 10_000, 128

_BEST = PRESETS["gcnn_best"]["model"]
_HARMONIC = {"basis": "harmonic", "antialias": True}
# The design before the harmonic basis: pixel kernels, plain max pooling, the input centred on MNIST's mean.
_PIXEL = {**_BEST, "basis": "pixel", "antialias": False, "input_mean": MNIST_MEAN}
# Candidate gcnn_best designs: the preset's layout with one thing changed at a time.
CANDIDATES: dict[str, dict[str, Any]] = {
    "C16 [16,24,32,32,64] pixel (old preset)": {**_PIXEL, "hidden_channels": [16, 24, 32, 32, 64]},
    "C16 [8,12,16,16,32] pixel (shipped before)": {**_PIXEL, "hidden_channels": [8, 12, 16, 16, 32]},
    "C16 [8,12,16,16,32] harmonic, anti-aliased": {**_BEST, "hidden_channels": [8, 12, 16, 16, 32], **_HARMONIC},
    "C16 [6,8,12,12,24] harmonic, anti-aliased": {**_BEST, "hidden_channels": [6, 8, 12, 12, 24], **_HARMONIC},
    "C8 [12,16,24,24,48] harmonic, anti-aliased": {**_BEST, "group": {"name": "cyclic", "order": 8},
                                                  "hidden_channels": [12, 16, 24, 24, 48], **_HARMONIC},
    "C16 [8,12,16,16,32] harmonic, anti-aliased, pool after 0 and 1": {
        **_BEST, "hidden_channels": [8, 12, 16, 16, 32], "pool_after": [0, 1], **_HARMONIC},
}


def designs() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Every preset (its model config and recipe) and every candidate (with gcnn_best's recipe), by name."""
    found = {f"preset {name}": (recipe["model"], recipe) for name, recipe in PRESETS.items()
             if name != "cnn_rotaug_tta"}  # the same training as cnn_rotaug
    found.update({name: (config, PRESETS["gcnn_best"]) for name, config in CANDIDATES.items()})
    return found


def training_step(model: nn.Module, recipe: dict[str, Any], digits: Tensor, labels: Tensor,
                  amp: bool, total_steps: int | None = None) -> Callable[[], None]:
    """One step as gcnn.train takes it: a batch drawn and augmented, forward, loss, backward, Adam (with
    ``total_steps``, under a one-cycle schedule to the recipe's learning rate over that many steps)."""
    augmentation = Augmentation.from_dict(recipe["augment"]) if recipe.get("augment") else None
    lr = recipe.get("lr", 1e-2)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=recipe.get("weight_decay", 1e-4))
    schedule = (torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=total_steps)
                if total_steps else None)
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        model.train()
        batch = torch.randint(len(digits), (BATCH,), generator=generator)
        images = digits[batch]
        if augmentation is not None:
            images = augmentation(images, generator)
        if recipe.get("augment_rotation"):
            images = random_rotations(images, generator, ROTATION_CENTRES[recipe.get("rotation_centre", "image")])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(images), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
    return step


def eval_pass(model: nn.Module, digits: Tensor, amp: bool) -> Callable[[], None]:
    """Validation's unit of work: one no-grad eval batch of 1,000 digits (under bfloat16 autocast with ``amp``)."""
    def evaluate() -> None:
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            model(digits[:1000])
    return evaluate


def run(names: list[str], repeats: int) -> str:
    digits, labels = load_mnist(train=True)
    digits, labels = digits[:4096], labels[:4096]
    chosen = {name: spec for name, spec in designs().items() if not names or name in names}
    models = {name: model_from_config(config) for name, (config, _) in chosen.items()}
    steps: dict[str, Callable[[], None]] = {}
    for name, (_, recipe) in chosen.items():
        for amp in (False, True):
            steps[f"{name}|{amp}"] = training_step(models[name], recipe, digits, labels, amp)
    step_times = timings(steps, repeats)
    eval_times = timings({f"{name}|{amp}": eval_pass(model, digits, amp) for name, model in models.items()
                          for amp in (False, True)}, repeats)

    rows = []
    for name, (_, recipe) in chosen.items():
        epochs = recipe.get("epochs", 10)
        row: list[object] = [name, f"{count_parameters(models[name]):,}"]
        for amp in (False, True):
            samples = step_times.samples[f"{name}|{amp}"]
            low, high = median_interval(samples)
            validation_s = eval_times[f"{name}|{amp}"] / 1e3 * VAL_DIGITS / 1000
            epoch_s = step_times[f"{name}|{amp}"] / 1e3 * math.ceil(TRAIN_DIGITS / BATCH) + validation_s
            row += [f"{step_times[f'{name}|{amp}'] / 1e3:.3f} [{low / 1e3:.3f}, {high / 1e3:.3f}]",
                    f"{epoch_s:.0f}", f"{epochs * epoch_s / 60:.0f}"]
        rows.append(row)
    header = ["design", "parameters", "step s fp32 [95%]", "epoch s", "run min", "step s bf16 [95%]", "epoch s",
              "run min"]
    note = (f"Batch {BATCH}, augmentation drawn every step; an epoch is {math.ceil(TRAIN_DIGITS / BATCH)} steps "
            f"plus validation of {VAL_DIGITS:,} digits in the same precision; a run is the recipe's epochs "
            f"(presets) or gcnn_best's ({PRESETS['gcnn_best']['epochs']}) for the candidates.")
    return table("Training cost", header, rows, note)


def short_runs(names: list[str], steps: int) -> str:
    """Every design trained for ``steps`` steps, then validated upright and rotated."""
    images, labels = load_mnist(train=True)
    train_idx, val_idx = train_val_split(len(images), min(VAL_SIZE, len(images) // 2))
    val_idx = val_idx[:2000]
    val_images, val_labels = images[val_idx], labels[val_idx]
    val_rotated = rotated_test_set(val_images)[0]
    rows = []
    for name, (config, recipe) in designs().items():
        if names and name not in names:
            continue
        torch.manual_seed(0)
        model = model_from_config(config)
        step = training_step(model, recipe, images[train_idx], labels[train_idx], amp=True, total_steps=steps)
        started = time.perf_counter()
        for _ in range(steps):
            step()
        seconds = time.perf_counter() - started
        with torch.autocast("cpu", dtype=torch.bfloat16):
            upright, rotated = (accuracy(model, batch, val_labels) for batch in (val_images, val_rotated))
        rows.append([name, f"{count_parameters(model):,}", f"{seconds / steps:.2f}", f"{upright:.1%}",
                     f"{rotated:.1%}"])
        print(" | ".join(rows[-1]), flush=True)
    return table(f"Validation accuracy after {steps} steps of batch {BATCH} ({steps * BATCH:,} digits)",
                 ["design", "parameters", "s a step (bf16, this run)", "val upright", "val rotated"], rows,
                 "Seed 0; validated under bfloat16 autocast on 2,000 held-out digits, upright and each turned by "
                 "its own seeded angle.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", nargs="+", default=[], metavar="NAME", help="only these (default: all)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of timing (default 5)")
    parser.add_argument("--short-run", type=int, default=0, metavar="STEPS",
                        help="train every design for STEPS steps and validate it, instead of timing")
    args = parser.parse_args()
    if args.repeats < 1 or args.short_run < 0:
        parser.error("--repeats must be positive and --short-run non-negative")
    unknown = set(args.designs) - set(designs())
    if unknown:
        parser.error(f"unknown design(s): {', '.join(sorted(unknown))}; known: {', '.join(designs())}")
    print(prepare_process() + "\n")
    print(short_runs(args.designs, args.short_run) if args.short_run else run(args.designs, args.repeats))


if __name__ == "__main__":
    main()
