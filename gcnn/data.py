"""MNIST, its train/validation split, and the rotated test protocol.

Images are float tensors ``[N, 1, 28, 28]`` in [0, 1] (white digit on black),
labels ``LongTensor [N]``.  The data folder is the ``--data-dir`` flag, else
the ``GCNN_DATA_DIR`` environment variable, else ``./data``; torchvision
reads ``<folder>/MNIST/raw/``.  Nothing is downloaded unless asked for.
torchvision is imported on first use, so ``import gcnn`` needs torch only; without it, reading MNIST says which
extra to install (:mod:`gcnn.extras`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from .extras import require

__all__ = [
    "DatasetMissingError",
    "resolve_data_dir",
    "load_mnist",
    "train_val_split",
    "rotation_angles",
    "rotate",
    "rotated_test_set",
    "curve_subset",
    "VAL_SIZE",
    "ROTATION_SEED",
]

VAL_SIZE = 5_000
SPLIT_SEED = 0
ROTATION_SEED = 2024  # fixes the per-image angles of the rotated test set
SUBSET_SEED = 7  # fixes curve_subset's choice


class DatasetMissingError(FileNotFoundError):
    """MNIST is not in the folder that was searched (``folder``: where its raw files were expected)."""

    def __init__(self, message: str, folder: Path) -> None:
        super().__init__(message)
        self.folder = folder


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: ``data_dir`` if given, else ``$GCNN_DATA_DIR``, else ``./data``."""
    return Path(data_dir or os.environ.get("GCNN_DATA_DIR") or "data")


def load_mnist(train: bool, data_dir: str | os.PathLike | None = None, download: bool = False) -> tuple[Tensor, Tensor]:
    """Load the MNIST training (60k) or test (10k) set as ``(images, labels)``.

    Raises:
        DatasetMissingError: the files are not under ``<data_dir>/MNIST/raw``
            (the message says where it looked and how to fix it).
    """
    MNIST = require("torchvision.datasets", "train", "reading MNIST").MNIST

    root = resolve_data_dir(data_dir)
    try:
        dataset = MNIST(root=str(root), train=train, download=download)
    except RuntimeError as error:  # torchvision's "Dataset not found" (or a failed download)
        folder = root.resolve() / "MNIST" / "raw"
        raise DatasetMissingError(
            f"MNIST was not found in {folder} ({error}). Point to the folder that contains MNIST/raw with "
            "--data-dir or the GCNN_DATA_DIR environment variable, or pass --download to fetch it there.",
            folder,
        ) from error
    images = dataset.data.unsqueeze(1).float().div_(255)
    return images, dataset.targets.long()


def train_val_split(num_images: int, val_size: int = VAL_SIZE, seed: int = SPLIT_SEED) -> tuple[Tensor, Tensor]:
    """Disjoint index sets ``(train, validation)`` of a seeded permutation of ``range(num_images)``."""
    if not 0 < val_size < num_images:
        raise ValueError(f"val_size must be between 1 and {num_images - 1}, got {val_size}")
    order = torch.randperm(num_images, generator=torch.Generator().manual_seed(seed))
    return order[val_size:], order[:val_size]


def rotation_angles(num_images: int, seed: int = ROTATION_SEED) -> Tensor:
    """Angles in degrees, uniform in [0, 360), one per image, the same for the same seed."""
    return torch.rand(num_images, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 360


def rotate(images: Tensor, angles: float | Tensor) -> Tensor:
    """Rotate ``images [N, C, H, W]`` counter-clockwise about their centre, bilinear, fill 0.

    ``angles`` is one angle in degrees for all images, or a tensor ``[N]`` of
    one angle per image.
    """
    TF = require("torchvision.transforms.v2.functional", "train", "torchvision's rotate")
    InterpolationMode = require("torchvision.transforms", "train", "torchvision's rotate").InterpolationMode

    if not isinstance(angles, Tensor) or angles.dim() == 0:
        return TF.rotate(images, float(angles), interpolation=InterpolationMode.BILINEAR, fill=0.0)
    if len(angles) != len(images):
        raise ValueError(f"got {len(angles)} angles for {len(images)} images")
    return torch.stack([
        TF.rotate(image, float(angle), interpolation=InterpolationMode.BILINEAR, fill=0.0)
        for image, angle in zip(images, angles, strict=True)
    ])


def rotated_test_set(images: Tensor, seed: int = ROTATION_SEED) -> tuple[Tensor, Tensor]:
    """The reference protocol: each image rotated by its own seeded angle in [0, 360).

    Returns ``(rotated images, angles in degrees)``.  Image ``i`` of the same
    set always gets the same angle; to evaluate a subset, rotate the whole set
    and index the result.
    """
    angles = rotation_angles(len(images), seed)
    return rotate(images, angles), angles


def curve_subset(num_images: int, size: int) -> Tensor:
    """A fixed, seeded choice of ``size`` test indices (all of them when ``size >= num_images``): the images of
    the accuracy-against-angle curves and of the regression checks."""
    order = torch.randperm(num_images, generator=torch.Generator().manual_seed(SUBSET_SEED))
    return order[:size]
