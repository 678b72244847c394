"""The trained models that ship in ``models/``, where to find them, and their evaluation results.

The models folder is never inside the installed package (a wheel ships no
checkpoints): :func:`models_dir` looks at an explicit path, then
``$GCNN_MODELS_DIR``, then ``./models`` under the current directory, then the
``models/`` folder of the source checkout this package runs from.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import CheckpointError, load_model, read_metadata

__all__ = ["models_dir", "evaluation_file", "EVALUATION_NAME", "REFERENCE_ROTATED", "SHIPPED", "ShippedModel",
           "load_shipped", "load_evaluation", "train_command"]

EVALUATION_NAME = "evaluation.json"
# The checkout this package runs from, when it runs from one (an installed package's parent is site-packages).
_CHECKOUT = Path(__file__).resolve().parent.parent


def models_dir(path: str | os.PathLike | None = None) -> Path:
    """The models folder: ``path`` if given, else ``$GCNN_MODELS_DIR``, else ``./models`` if it exists, else
    the source checkout's ``models/`` when running from a checkout, else ``./models`` (to be created)."""
    if path is not None:
        return Path(path)
    if os.environ.get("GCNN_MODELS_DIR"):
        return Path(os.environ["GCNN_MODELS_DIR"])
    local = Path("models")
    if not local.is_dir() and (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "models").is_dir():
        return _CHECKOUT / "models"
    return local


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


def train_command(name: str) -> str:
    """The command that (re)creates a shipped model."""
    return f"python -m gcnn.train --preset {name} && python -m gcnn.evaluate"


def load_shipped(folder: str | os.PathLike | None = None) -> tuple[dict[str, ShippedModel], dict[str, str]]:
    """Load every shipped checkpoint in ``folder`` (default :func:`models_dir`) that is present and sound.

    Returns ``(models, problems)``: ``problems[name]`` says what is wrong with
    a model that could not be loaded and how to recreate it.
    """
    models, problems = {}, {}
    for name, label in SHIPPED.items():
        path = models_dir(folder) / name
        try:
            models[name] = ShippedModel(name, label, load_model(path), read_metadata(path))
        except CheckpointError as error:
            problems[name] = f"{error}. Recreate it with `{train_command(name)}`."
    return models, problems


def load_evaluation(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The evaluation results written by ``python -m gcnn.evaluate`` (default :func:`evaluation_file`), or
    ``None`` if absent or unreadable."""
    try:
        results = json.loads(Path(path or evaluation_file()).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return results if isinstance(results, dict) and isinstance(results.get("models"), dict) else None
