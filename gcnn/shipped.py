"""The trained models that ship in ``models/``, where to find them, and their evaluation results.

The models folder is never inside the installed package (a wheel ships no
checkpoints): :func:`models_dir` looks at an explicit path, then
``$GCNN_MODELS_DIR``, then ``./models`` under the current directory, then the
``models/`` folder of the source checkout this package runs from
(:mod:`gcnn.folders`).
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import CheckpointError, checkpoint_paths, load_model, read_metadata
from .folders import models_dir, output_dir
from .presets import preset
from .train import TrainSettings, command_line

__all__ = ["models_dir", "evaluation_file", "EVALUATION_NAME", "REFERENCE_ROTATED", "SHIPPED", "ShippedModel",
           "load_shipped", "load_evaluation", "train_command", "recreate_hint"]

EVALUATION_NAME = "evaluation.json"


def evaluation_file(folder: str | os.PathLike | None = None) -> Path:
    """``evaluation.json`` in :func:`models_dir` (``folder`` as its explicit path)."""
    return models_dir(folder) / EVALUATION_NAME


def __getattr__(name: str) -> Path:
    # MODELS_DIR and EVALUATION_FILE, the constants of earlier versions, resolved when read: the folder depends
    # on the environment and the working directory, so new code calls models_dir() / evaluation_file().
    if name == "MODELS_DIR":
        return models_dir()
    if name == "EVALUATION_FILE":
        return evaluation_file()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# Accuracy on randomly rotated MNIST reported by the reference tutorial (10 epochs).
REFERENCE_ROTATED = {"cnn": 0.448, "gcnn_c4": 0.855}

# name -> label, in the order the app shows them: one name per model everywhere in the app, short enough to be
# shown whole on a phone's answer card and unambiguous (what differs between two models is in their names).
SHIPPED = {
    "cnn": "Plain CNN",
    "cnn_rotaug": "CNN, rotated training",
    "gcnn_c4": "GCNN C4",
    "gcnn_best": "GCNN C16 (ours)",
    "cnn_rotaug_tta": "CNN, rotated training + 8 turns",
}


@dataclass
class ShippedModel:
    name: str
    label: str
    model: nn.Module
    metadata: dict[str, Any]

    @property
    def is_equivariant(self) -> bool:
        return self.metadata["config"]["type"] == "GroupEquivariantCNN"


def train_command(name: str, folder: str | os.PathLike | None = None) -> str:
    """The commands that recreate the shipped model ``name`` in ``folder`` (default :func:`models_dir`) as it was
    shipped, then evaluate it.

    The training command repeats the settings its ``NAME.json`` records (:func:`gcnn.train.command_line`): once
    they are its preset's, that is ``python -m gcnn.train --preset NAME`` alone.  Without a readable record it
    is the preset's, which :func:`recreate_hint` says is today's recipe rather than the shipped one.  ``--force``
    is added where a file of the checkpoint is there to be replaced, ``--out-dir`` / ``--models-dir`` where the
    folder is not the one ``python -m gcnn.train`` writes to by default.
    """
    folder = models_dir(folder)
    others = None if folder.resolve() == output_dir().resolve() else folder
    existing = any(path.exists() for path in checkpoint_paths(folder / name))
    settings = _recorded_settings(folder / name) or TrainSettings(**preset(name))
    evaluate = ["python", "-m", "gcnn.evaluate", *(["--models-dir", str(others)] if others else [])]
    return f"{command_line(settings, name, others, existing)} && {shlex.join(evaluate)}"


def recreate_hint(name: str, folder: str | os.PathLike | None = None) -> str:
    """One sentence: how to recreate the shipped model ``name`` (:func:`train_command`), and whether that repeats
    the shipped checkpoint's recorded settings or, with no readable record, trains today's preset."""
    if _recorded_settings(models_dir(folder) / name) is None:
        return (f"No readable {name}.json records how the shipped checkpoint was made; "
                f"`{train_command(name, folder)}` trains today's recipe for it (its preset, see the README).")
    return f"Recreate it with `{train_command(name, folder)}`."


def _recorded_settings(path: Path) -> TrainSettings | None:
    """The training settings the checkpoint's ``NAME.json`` records, or ``None`` where it records none readable."""
    try:
        return TrainSettings.from_metadata(read_metadata(path))
    except (CheckpointError, ValueError):  # no file, or a record of another version
        return None


def load_shipped(folder: str | os.PathLike | None = None) -> tuple[dict[str, ShippedModel], dict[str, str]]:
    """Load every shipped checkpoint in ``folder`` (default :func:`models_dir`) that is present and sound.

    Returns ``(models, problems)``: ``problems[name]`` says what is wrong with
    a model that could not be loaded and how to recreate it (:func:`recreate_hint`).
    """
    models, problems = {}, {}
    for name, label in SHIPPED.items():
        path = models_dir(folder) / name
        try:
            models[name] = ShippedModel(name, label, load_model(path), read_metadata(path))
        except CheckpointError as error:
            problems[name] = f"{error}. {recreate_hint(name, folder)}"
    return models, problems


def load_evaluation(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The evaluation results written by ``python -m gcnn.evaluate`` (default :func:`evaluation_file`), or
    ``None`` if absent or unreadable."""
    try:
        results = json.loads(Path(path or evaluation_file()).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return results if isinstance(results, dict) and isinstance(results.get("models"), dict) else None
