"""The trained models that ship in ``models/``, and their evaluation results."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import CheckpointError, load_model, read_metadata

__all__ = ["MODELS_DIR", "EVALUATION_FILE", "REFERENCE_ROTATED", "SHIPPED", "ShippedModel", "load_shipped",
           "load_evaluation", "train_command"]

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
EVALUATION_FILE = MODELS_DIR / "evaluation.json"

# Accuracy on randomly rotated MNIST reported by the reference tutorial (10 epochs).
REFERENCE_ROTATED = {"cnn": 0.448, "gcnn_c4": 0.855}

# name -> label, in the order the app shows them.
SHIPPED = {
    "cnn": "CNN (reference)",
    "cnn_rotaug": "CNN + rotation augmentation",
    "gcnn_c4": "GCNN C4 (reference)",
    "gcnn_best": "GCNN best (ours)",
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


def load_shipped(models_dir: Path = MODELS_DIR) -> tuple[dict[str, ShippedModel], dict[str, str]]:
    """Load every shipped checkpoint that is present and sound.

    Returns ``(models, problems)``: ``problems[name]`` says what is wrong with
    a model that could not be loaded and how to recreate it.
    """
    models, problems = {}, {}
    for name, label in SHIPPED.items():
        path = Path(models_dir) / name
        try:
            models[name] = ShippedModel(name, label, load_model(path), read_metadata(path))
        except CheckpointError as error:
            problems[name] = f"{error}. Recreate it with `{train_command(name)}`."
    return models, problems


def load_evaluation(path: Path = EVALUATION_FILE) -> dict[str, Any] | None:
    """The evaluation results written by ``python -m gcnn.evaluate``, or ``None`` if absent or unreadable."""
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return results if isinstance(results, dict) and isinstance(results.get("models"), dict) else None
