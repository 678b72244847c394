"""Argument types shared by the command-line programs (``python -m gcnn.train``, ``gcnn.evaluate``,
``gcnn.app.robustness``): they refuse nonsense when the command line is read, so that it ends in argparse's
one-line error and exit code 2, not in a traceback or after a long run."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from .checkpoint import check_device

__all__ = ["positive_int", "seed", "positive_float", "non_negative_float",
           "device", "device_or_auto", "output_folder", "output_file", "existing_folder"]


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    value = _parse(int, text, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed(text: str) -> int:
    """A random seed: a whole number in [0, 2**63)."""
    value = _parse(int, text, "a whole number")
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 2**63 - 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (``inf`` and ``nan`` are refused: a learning rate of ``inf`` trains nothing)."""
    value = _parse(float, text, "a number")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number of at least 0."""
    value = _parse(float, text, "a number")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0, got {text}")
    return value


def device(text: str) -> str:
    """A torch device this machine has: ``cpu``, ``cuda``, ``cuda:1``, ..."""
    try:
        check_device(text)
    except RuntimeError as error:
        raise argparse.ArgumentTypeError(str(error).splitlines()[0]) from error
    return text


def device_or_auto(text: str) -> str:
    """``auto`` (the caller picks), or a torch device this machine has."""
    return text if text == "auto" else device(text)


def output_folder(text: str) -> Path:
    """A folder that exists or can be made, and can be written to."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file, not a folder")
    _check_writable_parent(path if path.is_dir() else path.parent, path)
    return path


def output_file(text: str) -> Path:
    """A file path that can be written: not a folder, in a folder that exists or can be made."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; name a file in it")
    _check_writable_parent(path.parent, path)
    return path


def existing_folder(text: str) -> Path:
    """A folder that exists."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is not a folder" if path.exists() else f"{path} does not exist")
    return path


def _check_writable_parent(folder: Path, path: Path) -> None:
    """Refuse ``path`` when ``folder``, or the nearest part of it that exists, is a file or cannot be written."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{path} cannot be made: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{path} cannot be written: no permission to write in {existing}")


def _parse(kind: type, text: str, what: str) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
