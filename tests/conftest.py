"""Shared fixtures: a tiny synthetic MNIST in IDX format, the real one when present, tiny checkpoints."""

from __future__ import annotations

import os
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from gcnn.checkpoint import save_model
from gcnn.groups import CyclicGroup
from gcnn.models import BaselineCNN, GroupEquivariantCNN
from gcnn.shipped import SHIPPED

ROOT = Path(__file__).resolve().parent.parent


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can react to a failure (screenshots)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in MNIST's IDX format."""
    magic = 0x0800 | array.ndim
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def synthetic_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable fake digits, 28x28 uint8: class k is a ring of radius 3 + k (any model can tell them apart)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    ys, xs = np.mgrid[0:28, 0:28] - 13.5
    images = np.zeros((count, 28, 28))
    for i, label in enumerate(labels):
        images[i] = (np.abs(np.hypot(xs, ys) - (3 + label)) < 1) * 255
    images = np.clip(images + rng.normal(0, 20, images.shape), 0, 255)
    return images.astype(np.uint8), labels.astype(np.uint8)


@pytest.fixture(scope="session")
def fake_mnist(tmp_path_factory) -> Path:
    """A data folder holding ``MNIST/raw`` with 600 training and 200 test synthetic images."""
    root = tmp_path_factory.mktemp("fake_data")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count, seed in (("train", 600, 0), ("t10k", 200, 1)):
        images, labels = synthetic_digits(count, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture(scope="session")
def real_mnist() -> Path:
    """The real MNIST folder from ``GCNN_DATA_DIR``; tests using it are skipped when it is absent."""
    folder = os.environ.get("GCNN_DATA_DIR")
    if not folder or not (Path(folder) / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file():
        pytest.skip("real MNIST not available: set GCNN_DATA_DIR to the folder holding MNIST/raw")
    return Path(folder)


def tiny_model(name: str):
    """A small, fast stand-in for a shipped model of the same kind."""
    if name.startswith("cnn"):
        return BaselineCNN(kernel_size=3, num_hidden=1, hidden_channels=4,
                           input_rotations=8 if name.endswith("_tta") else 1)
    group = CyclicGroup(8 if name == "gcnn_best" else 4)
    return GroupEquivariantCNN(group, kernel_size=3, num_hidden=1, hidden_channels=3, padding=1)


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """A models folder with untrained tiny models under the shipped names (no evaluation file)."""
    folder = tmp_path_factory.mktemp("tiny_models")
    for name in SHIPPED:
        model = tiny_model(name)
        save_model(model, folder / name, {"parameters": sum(p.numel() for p in model.parameters()),
                                          "epochs_trained": 0, "metrics": {}})
    return folder


@pytest.fixture(scope="session")
def evaluated_models_dir(tmp_path_factory, tiny_models_dir, fake_mnist) -> Path:
    """The tiny models with an ``evaluation.json`` (40 images, every 45 degrees), so the app draws its curves."""
    from gcnn.evaluate import main as evaluate_main

    models_dir = tmp_path_factory.mktemp("evaluated_models")
    for file in tiny_models_dir.iterdir():
        (models_dir / file.name).write_bytes(file.read_bytes())
    checkpoints = [str(models_dir / f"{name}.pt") for name in SHIPPED]
    assert evaluate_main([*checkpoints, "--data-dir", str(fake_mnist), "--curve-images", "40", "--angle-step", "45",
                          "--out", str(models_dir / "evaluation.json")]) == 0
    return models_dir


@pytest.fixture
def canvas(monkeypatch):
    """Replace the drawable canvas with a stand-in: ``canvas.drawings[key]`` is what the canvas with that key sends
    (none: nothing, as a canvas not drawn on yet), ``canvas.keys`` the keys it was drawn with and
    ``canvas.initial[key]`` the strokes it was built with; a drawing's strokes (``json_data``) are a marker naming
    the key.

    (The real component registers itself on import, which needs a running
    Streamlit; the browser tests cover it.)
    """
    state = types.SimpleNamespace(drawings={}, keys=[], initial={})

    def st_canvas(key, initial_drawing=None, **kwargs):
        state.keys.append(key)
        state.initial[key] = initial_drawing
        image = state.drawings.get(key)
        return types.SimpleNamespace(image_data=image, json_data=None if image is None else {"drawn on": key})

    fake = types.ModuleType("streamlit_drawable_canvas")
    fake.st_canvas = st_canvas
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", fake)
    return state


@pytest.fixture
def env(monkeypatch, tiny_models_dir, fake_mnist):
    """The app's folders pointed at the tiny checkpoints and the synthetic MNIST."""
    monkeypatch.setenv("GCNN_MODELS_DIR", str(tiny_models_dir))
    monkeypatch.setenv("GCNN_DATA_DIR", str(fake_mnist))
    return monkeypatch
