"""Checkpoints: ``NAME.pt`` (a state dict, nothing else) beside ``NAME.json`` (how to rebuild it).

``NAME.json`` holds ``format_version``, the model ``config`` and whatever the
trainer records (settings, wall time, metrics).  Files are written
atomically (temporary file, then rename), and loaded with
``torch.load(..., weights_only=True)``, so a checkpoint can never run code.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .folders import models_dir
from .models import model_from_config

__all__ = ["FORMAT_VERSION", "CheckpointError", "atomic_write", "save_torch", "load_torch", "write_json",
           "read_metadata", "save_model", "load_model", "checkpoint_paths", "check_device"]

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not fit its model; the message names the file."""


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(NAME.pt, NAME.json)`` for ``NAME``, ``NAME.pt`` or ``NAME.json``."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".pt", ".json") else path
    return stem.with_name(stem.name + ".pt"), stem.with_name(stem.name + ".json")


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` made atomic."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, buffer.getvalue())


def write_json(data: Any, path: str | os.PathLike) -> None:
    """Pretty JSON, written atomically."""
    atomic_write(path, (json.dumps(data, indent=2) + "\n").encode())


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``; ``RuntimeError`` saying so when this machine does not have it."""
    try:
        device = torch.device(device)
        torch.empty(0, device=device)  # the cheapest question that every backend answers truthfully
    except (RuntimeError, AssertionError) as error:  # CPU-only builds assert; a missing driver is a RuntimeError
        raise RuntimeError(f"device {str(device)!r} is not available on this machine "
                           f"({str(error).strip().splitlines()[0]}); use 'cpu' instead") from error
    return device


def load_torch(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with every failure of the file turned into a :class:`CheckpointError`.

    Raises ``RuntimeError`` (not a :class:`CheckpointError`: the file is fine) when ``map_location`` names a
    device this machine does not have.
    """
    path = Path(path)
    check_device(map_location)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: holds objects other than tensors and plain values, so it was not loaded "
            f"(checkpoints must be state dicts): {str(error).splitlines()[0]}"
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {error}") from error


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``NAME.json`` beside a checkpoint, checked for a known format version and a config."""
    _, json_path = checkpoint_paths(path)
    if not json_path.is_file():
        raise CheckpointError(f"{json_path}: metadata file not found (it must sit beside the .pt file)")
    try:
        metadata = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{json_path}: not valid JSON ({error})") from error
    if not isinstance(metadata, dict) or not isinstance(metadata.get("config"), dict):
        raise CheckpointError(f"{json_path}: has no model 'config' object")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{json_path}: format_version {version!r} is not supported by this gcnn (reads up to "
            f"{FORMAT_VERSION}); upgrade gcnn or retrain the model"
        )
    return metadata


def save_model(model: nn.Module, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``NAME.pt`` (state dict) and ``NAME.json`` (config + ``metadata``); returns both paths."""
    pt_path, json_path = checkpoint_paths(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch(state, pt_path)
    write_json({"format_version": FORMAT_VERSION, "config": model.config(), **(metadata or {})}, json_path)
    return pt_path, json_path


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from ``NAME.json`` and load ``NAME.pt`` into it; returned in eval mode.

    ``path`` is ``NAME``, ``NAME.pt`` or ``NAME.json``, with or without a folder.  A bare name whose files are not
    in the current directory is looked for in the models folder (:func:`gcnn.folders.models_dir`), so
    ``load_model("gcnn_best")`` finds a shipped model.  The model takes ``[B, 1, 28, 28]`` floats in [0, 1]
    (MNIST layout) and returns logits.

    Raises:
        CheckpointError: a file is missing (the message says where it looked), empty, truncated, not valid JSON,
            of a newer format, names an unknown model type, holds more than
            weights, or its tensors do not fit the model.
        RuntimeError: ``map_location`` is a device this machine does not have
            (e.g. ``"cuda"`` without a GPU).
    """
    pt_path, json_path = checkpoint_paths(_find(path))
    if not pt_path.exists() and not json_path.exists():
        raise CheckpointError(f"{pt_path.with_suffix('')}: no checkpoint there (neither {pt_path.name} nor "
                              f"{json_path.name})")
    metadata = read_metadata(json_path)
    try:
        model = model_from_config(metadata["config"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{json_path}: cannot build the model: {error}") from error
    state = load_torch(pt_path, map_location)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{pt_path}: is not a state dict (a mapping of names to tensors)")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(f"{pt_path}: does not fit the model described in {json_path.name}: {error}") from error
    return model.to(map_location).eval()


def _find(path: str | os.PathLike) -> Path:
    """``path``, or for a bare name whose files are not here, the same name in the models folder."""
    given = Path(path)
    if len(given.parts) != 1 or any(file.exists() for file in checkpoint_paths(given)):
        return given
    found = models_dir() / given.name
    if any(file.exists() for file in checkpoint_paths(found)):
        return found
    stem = checkpoint_paths(given)[0].stem
    raise CheckpointError(f"{stem}: no {stem}.pt / {stem}.json in the current directory ({Path.cwd()}) or in the "
                          f"models folder {found.parent.resolve()} (gcnn.folders.models_dir(): $GCNN_MODELS_DIR, else "
                          "./models, else the source checkout's models/); pass a path, or set GCNN_MODELS_DIR")
