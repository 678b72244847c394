"""Train a model on upright MNIST: ``python -m gcnn.train``.

Examples::

    python -m gcnn.train --preset gcnn_c4                 # the reference GCNN -> ./models/gcnn_c4.{pt,json}
    python -m gcnn.train --preset gcnn_c4 --force         # ... replacing a checkpoint of that name
    python -m gcnn.train --preset cnn --epochs 3 --name cnn_short
    python -m gcnn.train --config my_model.json --name mine
    python -m gcnn.train --preset gcnn_c4 --resume        # continue an interrupted run
    python -m gcnn.train --preset gcnn_c4 --channels-last # faster group convolutions on CPU
    python -m gcnn.train --preset gcnn_best --amp         # bfloat16 autocast (GPUs; CPUs with AVX-512 BF16)
    python -m gcnn.train --preset cnn --augment none      # no rotation-free augmentation
    torchrun --nproc_per_node 4 -m gcnn.train --preset gcnn_best   # data-parallel (gcnn.distributed)

Defaults are the reference's: Adam, lr 1e-2, weight decay 1e-4, batch 128,
10 epochs; the presets add rotation-free augmentation (gcnn.augment).  The
data, the batches, the augmentation and the metrics all stay on the
training device (CUDA when present): one host sync per epoch.  On CUDA the
training steps and validation may use TF32 (--no-tf32 turns it off); the
test metrics always run in exact float32 (gcnn.precision).  5,000 training
images are held out for validation, which picks the checkpoint (best
epoch); the test set is only reported, computed on the training device.  After every
epoch the run state is saved atomically to ``NAME.resume.pt``, so a killed
run continues with ``--resume``; it is removed once the run completes.  On
Linux the command keeps freed memory for reuse
(:func:`gcnn.allocator.retain_freed_memory`: about 10% faster steps on CPU).

Checkpoints go to ``--out-dir``, else ``$GCNN_MODELS_DIR``, else ``./models``
under the current directory (:func:`gcnn.folders.output_dir`; never a source
checkout the command was not started in).  An existing ``NAME.pt`` or
``NAME.json`` there is never replaced without ``--force``; ``--name`` picks
another name.  Settings no run can use stop the command before any work,
with one line and exit code 2; a run whose training loss stops being finite
stops with a message (exit code 1), writing no checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import __version__, cli
from . import distributed as dist_
from .allocator import retain_freed_memory
from .augment import ROTATION_CENTRES, Augmentation, random_rotations
from .checkpoint import CheckpointError, check_device, checkpoint_paths, load_torch, save_model, save_torch
from .data import VAL_SIZE, DatasetMissingError, curve_subset, load_mnist, rotated_test_set, train_val_split
from .extras import MissingExtraError, require
from .folders import output_dir
from .machine import describe_device
from .models import GroupEquivariantCNN, count_parameters, model_from_config
from .modes import eval_mode
from .nn import set_memory_format
from .precision import exact_float32
from .presets import PRESETS, preset
from .strokes import centre_line_distances

__all__ = ["TrainSettings", "TrainingDiverged", "train", "device_accuracy", "build_model", "command_line",
           "settings_from_command_line", "main"]

REGRESSION_SUBSET = 1_000  # test images whose accuracy the regression tests re-measure


@dataclass
class TrainSettings:
    """Everything that determines a training run (recorded in ``NAME.json``)."""

    model: dict[str, Any]
    epochs: int = 10
    lr: float = 1e-2
    weight_decay: float = 1e-4
    batch_size: int = 128
    seed: int = 0
    augment_rotation: bool = False  # rotate each training image by a random angle (baselines only)
    rotation_centre: str = "image"  # ... about the image centre or MNIST's mass centre (augment.ROTATION_CENTRES)
    augment: dict[str, Any] | None = None  # rotation-free augmentation strengths (gcnn.augment.Augmentation)
    lr_schedule: str = "constant"  # constant (the reference) or onecycle (warm-up, then cosine decay)
    selection: str = "val_upright"  # validation metric that picks the best epoch: val_upright or val_rotated
    val_size: int = VAL_SIZE
    train_limit: int | None = None  # train on the first N images of the training split (for quick runs)

    def check(self) -> None:
        """Raise ``ValueError`` with a clear message for settings no run can use."""
        for name in ("epochs", "batch_size", "val_size", "train_limit"):
            value = getattr(self, name)
            if not (name == "train_limit" and value is None) and (
                    not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number above 0, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay)
                and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number of at least 0, got {self.weight_decay!r}")
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**63):
            raise ValueError(f"seed must be a whole number from 0 to 2**63 - 1, got {self.seed!r}")
        if self.selection not in ("val_upright", "val_rotated"):
            raise ValueError(f"selection must be val_upright or val_rotated, got {self.selection!r}")
        if self.rotation_centre not in ROTATION_CENTRES:
            raise ValueError(f"rotation_centre must be one of {', '.join(ROTATION_CENTRES)}, "
                             f"got {self.rotation_centre!r}")
        if self.lr_schedule not in ("constant", "onecycle"):
            raise ValueError(f"lr_schedule must be constant or onecycle, got {self.lr_schedule!r}")
        if self.augment is not None:
            Augmentation.from_dict(self.augment)

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> TrainSettings:
        """The settings a checkpoint's ``NAME.json`` records (its ``config`` and ``training``).  Settings added
        since it was written take their defaults, which are what runs before them did (no augmentation, a
        constant learning rate).  ``ValueError`` when it records a setting this version does not know."""
        training = metadata.get("training")
        known = {f.name for f in fields(cls)} - {"model"}
        if not isinstance(training, dict) or set(training) - known:
            raise ValueError(f"the recorded training settings are not this version's: {training!r}")
        return cls(model=metadata["config"], **training)


class TrainingDiverged(RuntimeError):
    """The training loss stopped being a finite number; no checkpoint was written."""


def _device(name: str) -> torch.device:
    """``auto``: CUDA when present, else the CPU; another name must be a device this machine has."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return check_device(name)


def build_model(config: dict[str, Any], channels_last: bool = False, image_size: int = 28) -> nn.Module:
    """The model ``config`` describes, checked by one eval-mode pass over two blank ``image_size`` square images:
    ``ValueError`` saying why when the config cannot be built or the model cannot take such images (e.g. too
    many unpadded layers for 28 x 28 pixels)."""
    model = model_from_config(config)
    if channels_last:
        if not isinstance(model, GroupEquivariantCNN):
            raise ValueError("channels-last layout applies to GroupEquivariantCNN models, not "
                             f"{type(model).__name__}")
        set_memory_format(model, torch.channels_last)
    try:
        with torch.no_grad(), eval_mode(model):
            logits = model(torch.zeros(2, model.in_channels, image_size, image_size))
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"the model cannot take {image_size}x{image_size} images: "
                         f"{str(error).strip().splitlines()[0]}") from error
    if logits.shape != (2, model.out_channels):
        raise ValueError(f"the model gives logits of shape {tuple(logits.shape)} for 2 images, not (2, "
                         f"{model.out_channels})")
    return model


@torch.no_grad()
def count_correct(model: torch.nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1_000,
                  exact: bool = True, amp: bool = False) -> Tensor:
    """How many ``images`` are classified as ``labels``: a tensor on their device (no host sync), computed in
    eval mode.  ``exact``: IEEE float32 on CUDA; otherwise the process's setting (TF32 where enabled: several
    times faster for the widest designs, e.g. gcnn_best).  ``amp``: under bfloat16 autocast (validation of a
    run trained with ``--amp``; reported metrics never use it)."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=labels.device)
    with (exact_float32(exact) if exact else contextlib.nullcontext(),
          torch.autocast(labels.device.type, dtype=torch.bfloat16, enabled=amp)):
        for start in range(0, len(images), batch_size):
            logits = model(images[start:start + batch_size])
            correct += (logits.argmax(1) == labels[start:start + batch_size]).sum()
    return correct


def device_accuracy(model: torch.nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1_000,
                    exact: bool = True) -> float:
    """Fraction of ``images`` classified as ``labels``, computed where the tensors are (see
    :func:`count_correct`), with one host sync."""
    return count_correct(model, images, labels, batch_size, exact).item() / len(images)


def train(
    settings: TrainSettings, name: str, out_dir: str | Path | None = None, data_dir: str | Path | None = None,
    download: bool = False, resume: bool = False, device: str = "auto", show_progress: bool = True,
    compile_model: bool = False, channels_last: bool = False, amp: bool = False, tf32: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train, keep the best epoch by validation, write ``out_dir/NAME.{pt,json}``; return the metadata.

    The whole pipeline stays on ``device``: the training, validation and test
    images are moved there once, every epoch draws a permutation there (from
    a seeded generator on the device) and a batch is an index slice of it;
    the augmentation (``settings.augment``, :mod:`gcnn.augment`) runs there
    too, and loss and accuracy accumulate there, so the host waits for the
    device once per epoch, not once per step.

    ``amp`` runs the training steps and the validation that picks the best
    epoch under bfloat16 autocast: on GPUs, and on CPUs with AVX-512 BF16
    (1.4-1.7x faster steps on a 2-core EPYC, ``benchmarks/bench_training.py``;
    time it there before using it on CPUs without them).  ``tf32`` lets CUDA use TF32 for float32
    convolutions and matmuls during the training steps and that validation;
    the reported test metrics always run in exact float32
    (:mod:`gcnn.precision`).
    ``compile_model`` runs the training steps through ``torch.compile`` (on a
    2-core CPU 0.97-1.10x the eager speed for the shipped designs, after
    up to 30 s of compilation: see ``benchmarks/README.md``); validation and
    the saved weights are the same model's.  ``channels_last`` runs the group
    convolutions of a :class:`GroupEquivariantCNN` in channels-last layout
    (:func:`gcnn.set_memory_format`): on a 2-core CPU about 0.96x the step
    time for gcnn_c4 and 0.92x for a wider C4 network without normalisation,
    level with batch norm (gcnn_best); the weights saved are the same.

    Under ``torchrun`` the run is data-parallel over the processes
    (:mod:`gcnn.distributed`: ``batch_size`` stays the global batch); only
    rank 0 writes files, and only its return value holds the test metrics.

    ``out_dir`` defaults to :func:`gcnn.folders.output_dir` (``$GCNN_MODELS_DIR``, else ``./models``).  An
    existing ``NAME.pt`` or ``NAME.json`` there is replaced only with ``overwrite``.  Everything that can be
    checked before the data is read is: the settings, the name, the folder, the device, and the model on one
    28 x 28 image.

    Raises:
        ValueError: unusable settings (e.g. ``epochs`` below 1), a ``name`` with a folder in it, a model config
            that cannot be built or cannot take 28 x 28 images.
        FileExistsError: the checkpoint exists and ``overwrite`` is off.
        RuntimeError: ``device`` is not on this machine.
        DatasetMissingError: MNIST is not in the data folder.
        MissingExtraError: torchvision (MNIST) or tqdm (``show_progress``) is not installed.
        CheckpointError: ``resume`` was asked for but the saved state is unusable or from other settings.
        TrainingDiverged: the training loss stopped being finite (e.g. too high a learning rate).
    """
    run_started = time.perf_counter()
    settings.check()
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"the name {name!r} must be a file name, without a folder (--out-dir, out_dir, names "
                         "the folder)")
    out_dir = output_dir(out_dir)
    existing = [path for path in checkpoint_paths(out_dir / name) if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{' and '.join(map(str, existing))} already exist{'s' * (len(existing) == 1)}: "
                              "training would replace that checkpoint; pass --force (overwrite=True) to replace it, "
                              "or choose another --name")
    resume_path = out_dir / f"{name}.resume.pt"
    dev = _device(device)
    torch.manual_seed(settings.seed)  # the same initial weights in every process
    model = build_model(settings.model, channels_last)
    if (model.in_channels, model.out_channels) != (1, 10):
        raise ValueError(f"MNIST has 1 channel and 10 classes, but the model takes {model.in_channels} channels and "
                         f"gives {model.out_channels} logits")
    context = dist_.from_environment()
    if context.active and dev.type == "cuda":
        dev = torch.device("cuda", context.local_rank)
    if context.active and settings.batch_size < context.world_size:
        raise ValueError(f"batch_size {settings.batch_size} is the global batch: it needs at least one image for "
                         f"each of the {context.world_size} processes")
    started_group = dist_.start(context, dev)
    try:
        return _train(settings, name, model, out_dir, resume_path, dev, context, data_dir, download, resume,
                      show_progress, compile_model, channels_last, amp, tf32, run_started)
    finally:
        if started_group:
            dist_.stop()


def _train(
    settings: TrainSettings, name: str, model: nn.Module, out_dir: Path, resume_path: Path, dev: torch.device,
    context: dist_.Context, data_dir: str | Path | None, download: bool, resume: bool, show_progress: bool,
    compile_model: bool, channels_last: bool, amp: bool, tf32: bool, run_started: float,
) -> dict[str, Any]:
    augmentation = Augmentation.from_dict(settings.augment) if settings.augment is not None else None
    progress = (require("tqdm", "train", "the training progress bar (--no-progress does without)").tqdm
                if show_progress and context.is_main else None)

    images, labels = load_mnist(train=True, data_dir=data_dir, download=download)
    train_idx, val_idx = train_val_split(len(images), min(settings.val_size, len(images) // 2))
    if settings.train_limit:
        train_idx = train_idx[: settings.train_limit]
    train_images, train_labels = images[train_idx].to(dev), labels[train_idx].to(dev)
    # Traced once on the host (a few seconds), redrawn per batch on the device: only where the pen is used.
    centre_lines = (centre_line_distances(train_images) if augmentation is not None and augmentation.pen > 0
                    else None)
    val_images, val_labels = images[val_idx], labels[val_idx].to(dev)
    val_rotated = rotated_test_set(val_images)[0].to(dev)
    val_images = val_images.to(dev)
    # Validation is sharded over the processes too; the counts are summed.
    val_share = torch.tensor_split(torch.arange(len(val_images), device=dev), context.world_size)[context.rank]
    steps_per_epoch = math.ceil(len(train_images) / settings.batch_size)

    model = model.to(dev)
    step_model = model
    if context.active:
        step_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None)
    step_model = torch.compile(step_model) if compile_model else step_model  # shares model's parameters
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = (torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.lr, epochs=settings.epochs,
                                                    steps_per_epoch=steps_per_epoch)
                if settings.lr_schedule == "onecycle" else torch.optim.lr_scheduler.ConstantLR(optimizer, 1.0))
    # Generators on the device, so permutations and augmentation never leave it.
    shuffle_generator = torch.Generator(device=dev).manual_seed(settings.seed)
    # The same permutation in every process (each takes its share of every batch); augmentation differs per rank.
    augment_generator = torch.Generator(device=dev).manual_seed(settings.seed + 1 + 1_000_003 * context.rank)
    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"metric": -1.0, "epoch": 0, "state": None}
    wall_time = 0.0
    if resume and resume_path.exists():
        state = load_torch(resume_path, dev)
        if state.get("settings") != json.dumps(asdict(settings), sort_keys=True):
            raise CheckpointError(f"{resume_path}: was saved with other settings; delete it or drop --resume")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        history, wall_time = state["history"], state["wall_time"]
        best = {"metric": state["best_metric"], "epoch": state["best_epoch"], "state": state["best_state"]}
        torch.set_rng_state(state["rng"])
        shuffle_generator.set_state(state["shuffle_rng"].cpu())
        if len(state["augment_rng"]) != context.world_size:
            raise CheckpointError(f"{resume_path}: was saved by {len(state['augment_rng'])} processes, not "
                                  f"{context.world_size}; resume with as many")
        augment_generator.set_state(state["augment_rng"][context.rank].cpu())
        if context.is_main:
            print(f"resuming {name} after epoch {len(history)}", file=sys.stderr)

    with exact_float32(not tf32):
        for epoch in range(len(history) + 1, settings.epochs + 1):
            started = time.perf_counter()
            model.train()
            order = torch.randperm(len(train_images), generator=shuffle_generator, device=dev)
            loss_sum = torch.zeros((), device=dev)
            correct = torch.zeros((), dtype=torch.long, device=dev)
            starts = range(0, len(order), settings.batch_size)
            if progress:
                starts = progress(starts, desc=f"{name} epoch {epoch}/{settings.epochs}", leave=False)
            for start in starts:
                batch = dist_.shard(order[start:start + settings.batch_size], context)
                batch_images, batch_labels = train_images[batch], train_labels[batch]
                if augmentation is not None:
                    batch_images = augmentation(batch_images, augment_generator,
                                                None if centre_lines is None else centre_lines[batch])
                if settings.augment_rotation:
                    batch_images = random_rotations(batch_images, augment_generator,
                                                    ROTATION_CENTRES[settings.rotation_centre])
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                    logits = step_model(batch_images)
                    loss = F.cross_entropy(logits, batch_labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                loss_sum += loss.detach().float() * len(batch)
                correct += (logits.argmax(1) == batch_labels).sum()
            # Validation picks the epoch, it is not a reported measurement: it runs with the training steps'
            # precision, TF32 and autocast (exact float32 would double gcnn_best's epoch on an H100, and take a
            # tenth of its epoch on a 2-core CPU with bfloat16 steps).
            dist_.broadcast_buffers(model, context)
            val_upright = count_correct(model, val_images[val_share], val_labels[val_share], exact=not tf32, amp=amp)
            val_rotated_correct = count_correct(model, val_rotated[val_share], val_labels[val_share],
                                                exact=not tf32, amp=amp)
            sums = dist_.all_sum(torch.stack([loss_sum, correct.float(), val_upright.float(),
                                              val_rotated_correct.float()]), context)
            train_loss, train_correct, upright, rotated = sums.tolist()  # the epoch's one sync
            if not math.isfinite(train_loss):  # the same sums in every process: all stop together
                raise TrainingDiverged(f"{name}: the training loss was {train_loss / len(order)} in epoch {epoch}, "
                                       f"so training stopped and no checkpoint was written; a lower learning rate "
                                       f"(--lr, now {settings.lr:g}) may keep it finite")
            record = {
                "epoch": epoch,
                "train_loss": train_loss / len(order),
                "train_accuracy": train_correct / len(order),
                "val_upright": upright / len(val_images),
                "val_rotated": rotated / len(val_images),
            }
            wall_time += time.perf_counter() - started
            history.append(record)
            if record[settings.selection] > best["metric"]:
                best = {"metric": record[settings.selection], "epoch": epoch,
                        "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            augment_states = dist_.gather_objects(augment_generator.get_state(), context)
            if not context.is_main:
                continue
            print(json.dumps(record), file=sys.stderr)
            save_torch({
                "settings": json.dumps(asdict(settings), sort_keys=True), "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "history": history,
                "wall_time": wall_time,
                "best_metric": best["metric"], "best_epoch": best["epoch"], "best_state": best["state"],
                "rng": torch.get_rng_state(), "shuffle_rng": shuffle_generator.get_state(),
                "augment_rng": augment_states,
            }, resume_path)

    if not context.is_main:
        dist_.barrier(context)  # until rank 0 has written the checkpoint
        return {"name": name, "history": history, "rank": context.rank}
    model.load_state_dict(best["state"])
    metrics = _test_metrics(model, data_dir, dev)
    model.cpu()
    metadata = {
        "name": name,
        "gcnn_version": __version__,
        "training": {k: v for k, v in asdict(settings).items() if k != "model"},  # config is stored once
        "epochs_trained": len(history),
        "best_epoch": best["epoch"],
        "wall_time_s": round(wall_time, 1),  # training and validation epochs (summed over resumed runs)
        "device": describe_device(dev),
        "run": {"total_wall_time_s": round(time.perf_counter() - run_started, 1), "amp": amp, "tf32": tf32,
                "compile": compile_model, "channels_last": channels_last, "processes": context.world_size,
                "torch": torch.__version__},
        "parameters": count_parameters(model),
        "history": history,
        "metrics": metrics,
    }
    save_model(model, out_dir / name, metadata)
    resume_path.unlink(missing_ok=True)
    dist_.barrier(context)
    return metadata


def _test_metrics(model: torch.nn.Module, data_dir: str | Path | None, device: torch.device) -> dict[str, Any]:
    """Reported test accuracies (never used for selection), and the regression subset's; on ``device``."""
    images, labels = load_mnist(train=False, data_dir=data_dir)
    rotated = rotated_test_set(images)[0].to(device)
    subset = curve_subset(len(images), REGRESSION_SUBSET).to(device)
    images, labels = images.to(device), labels.to(device)
    return {
        "test_upright": device_accuracy(model, images, labels),
        "test_rotated": device_accuracy(model, rotated, labels),
        "subset": {"size": len(subset), "upright": device_accuracy(model, images[subset], labels[subset]),
                   "rotated": device_accuracy(model, rotated[subset], labels[subset])},
    }


# TrainSettings fields given by a flag that takes their value: _parser reads them, command_line writes them.
_FLAGS = {"epochs": "--epochs", "lr": "--lr", "weight_decay": "--weight-decay", "batch_size": "--batch-size",
          "seed": "--seed", "lr_schedule": "--lr-schedule", "selection": "--selection", "val_size": "--val-size",
          "train_limit": "--train-limit", "rotation_centre": "--rotation-centre"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gcnn.train", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--preset", choices=sorted(PRESETS), help="a shipped model's design and settings")
    which.add_argument("--config", help="a model config: a JSON file, or JSON text")
    parser.add_argument("--name", help="output name (default: the preset's name)")
    parser.add_argument("--out-dir", type=cli.output_folder,
                        help="where NAME.pt/NAME.json go (default: $GCNN_MODELS_DIR, else ./models here)")
    parser.add_argument("--force", action="store_true", help="replace an existing NAME.pt/NAME.json")
    parser.add_argument("--data-dir", help="folder holding MNIST/raw (default: $GCNN_DATA_DIR, else ./data)")
    parser.add_argument("--download", action="store_true", help="download MNIST into the data folder if missing")
    parser.add_argument("--epochs", type=cli.positive_int)
    parser.add_argument("--lr", type=cli.positive_float)
    parser.add_argument("--weight-decay", type=cli.non_negative_float)
    parser.add_argument("--batch-size", type=cli.positive_int)
    parser.add_argument("--seed", type=cli.seed)
    parser.add_argument("--lr-schedule", choices=["constant", "onecycle"])
    parser.add_argument("--selection", choices=["val_upright", "val_rotated"],
                        help="the validation accuracy that picks the best epoch")
    parser.add_argument("--val-size", type=cli.positive_int, help=f"held-out validation images (default {VAL_SIZE})")
    parser.add_argument("--augment-rotation", action=argparse.BooleanOptionalAction,
                        help="rotate each training image by a random angle")
    parser.add_argument("--rotation-centre", choices=sorted(ROTATION_CENTRES),
                        help="what --augment-rotation turns about: the image centre or MNIST's centre of mass, half "
                             "a pixel away, so the ink does not move with the angle (default: the preset's, mass for "
                             "the cnn_rotaug presets; else the image centre)")
    parser.add_argument("--augment", help="rotation-free augmentation: JSON strengths, e.g. '{\"translate\": 1}' "
                        "(unnamed ones take gcnn.augment's defaults), or none")
    parser.add_argument("--train-limit", type=cli.positive_int, help="train on this many images only")
    parser.add_argument("--device", default="auto", type=cli.device_or_auto,
                        help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    parser.add_argument("--resume", action="store_true", help="continue from NAME.resume.pt if it exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training steps")
    parser.add_argument("--channels-last", action="store_true",
                        help="run the group convolutions in channels-last layout (faster without batch norm)")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast for the training steps")
    parser.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True,
                        help="TF32 float32 maths on CUDA for the training steps (default on; metrics never use it)")
    return parser


def _settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[TrainSettings, str]:
    """The run the arguments ask for; ``parser.error`` (exit code 2) for any no run can use."""
    if args.preset:
        chosen, name = preset(args.preset), args.name or args.preset
    else:
        if not args.name:
            parser.error("--config needs --name")
        # JSON text starts with "{"; anything else is a file (Path.is_file() raises on text longer than a name).
        try:
            text = args.config if args.config.lstrip().startswith("{") else Path(args.config).read_text()
            chosen, name = {"model": json.loads(text)}, args.name
        except OSError as error:
            parser.error(f"--config: cannot read {args.config}: {error}")
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            parser.error(f"--config is not valid JSON: {error}")
        if not isinstance(chosen["model"], dict):
            parser.error(f"--config must hold a JSON object (a model config), not {type(chosen['model']).__name__}")
    overrides = {field: getattr(args, field) for field in [*_FLAGS, "augment_rotation"]}
    if args.augment is not None:
        try:
            chosen["augment"] = None if args.augment == "none" else json.loads(args.augment)
        except json.JSONDecodeError as error:
            parser.error(f"--augment is neither none nor valid JSON: {error}")
    settings = TrainSettings(**(chosen | {k: v for k, v in overrides.items() if v is not None}))
    try:
        settings.check()
    except ValueError as error:
        parser.error(str(error))
    return settings, name


def settings_from_command_line(argv: Sequence[str]) -> tuple[TrainSettings, str]:
    """What ``python -m gcnn.train ARGV`` would train, and under which name (``SystemExit`` as argparse's on
    arguments no run can use)."""
    parser = _parser()
    return _settings(parser, parser.parse_args(argv))


def command_line(settings: TrainSettings, name: str, out_dir: str | Path | None = None, force: bool = False) -> str:
    """The shortest ``python -m gcnn.train`` command that trains ``settings`` as ``name``: ``--preset NAME``
    alone when they are that preset's, else the preset and the settings that differ from it, else the model's
    config as JSON (``--config``) and the settings that differ from the defaults."""
    same_design = name in PRESETS and _same_model(settings.model, PRESETS[name]["model"])
    base = TrainSettings(**preset(name)) if same_design else TrainSettings(model=settings.model)
    arguments = (["--preset", name] if same_design else
                 ["--config", json.dumps(settings.model, separators=(",", ":")), "--name", name])
    for field, flag in _FLAGS.items():
        if getattr(settings, field) != getattr(base, field):
            arguments += [flag, str(getattr(settings, field))]
    if settings.augment != base.augment:
        arguments += ["--augment", "none" if settings.augment is None else json.dumps(settings.augment)]
    if settings.augment_rotation != base.augment_rotation:
        arguments.append("--augment-rotation" if settings.augment_rotation else "--no-augment-rotation")
    if out_dir is not None:
        arguments += ["--out-dir", str(out_dir)]
    if force:
        arguments.append("--force")
    return shlex.join(["python", "-m", "gcnn.train", *arguments])


def _same_model(config: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two configs describe the same model (a preset names fewer fields than a checkpoint records)."""
    return model_from_config(config).config() == model_from_config(other).config()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    settings, name = _settings(parser, args)
    retain_freed_memory()
    try:
        metadata = train(settings, name, args.out_dir, args.data_dir, args.download, args.resume, args.device,
                         show_progress=not args.no_progress, compile_model=args.compile,
                         channels_last=args.channels_last, amp=args.amp, tf32=args.tf32, overwrite=args.force)
    except (DatasetMissingError, CheckpointError, MissingExtraError, TrainingDiverged) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (ValueError, FileExistsError) as error:  # a name, model or folder no run can use: found before any work
        parser.error(str(error))
    if "metrics" not in metadata:  # a process other than rank 0: rank 0 reports
        return 0
    metrics = metadata["metrics"]
    print(f"{name}: {metadata['parameters']} parameters, {metadata['epochs_trained']} epochs "
          f"(best {metadata['best_epoch']}), {metadata['wall_time_s']} s; test upright "
          f"{metrics['test_upright']:.2%}, rotated {metrics['test_rotated']:.2%} ({metadata['device']}, "
          f"{metadata['run']['total_wall_time_s']} s in all); wrote {Path(args.out_dir or output_dir()) / name}.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
