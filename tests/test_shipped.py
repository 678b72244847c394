"""The checkpoints committed in models/: they load, stay accurate, stay equivariant, and stay small."""

import json

import pytest
import torch

from gcnn import GroupEquivariantCNN, load_model
from gcnn.data import load_mnist, rotated_test_set
from gcnn.evaluate import accuracy, curve_subset
from gcnn.shipped import EVALUATION_FILE, MODELS_DIR, SHIPPED, load_evaluation

TOLERANCE = 0.003  # re-measured accuracy on the 1,000-image subset vs the value recorded at training time


@pytest.mark.parametrize("name", SHIPPED)
def test_checkpoint_loads_and_is_small(name):
    pt, js = MODELS_DIR / f"{name}.pt", MODELS_DIR / f"{name}.json"
    assert pt.stat().st_size < 5 * 2**20 and js.stat().st_size < 2**20
    model = load_model(pt)
    metadata = json.loads(js.read_text())
    assert sum(p.numel() for p in model.parameters()) == metadata["parameters"]
    # the shipped interface: [B, 1, 28, 28] floats in [0, 1] -> logits [B, 10]
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name", [n for n in SHIPPED if n.startswith("gcnn")])
def test_shipped_gcnn_is_invariant_to_quarter_turns(name):
    model = load_model(MODELS_DIR / name)
    assert isinstance(model, GroupEquivariantCNN)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        y = model(x)
        for k in (1, 2, 3):
            assert ((model(torch.rot90(x, k, dims=(-2, -1))) - y).norm() / y.norm()) < 1e-5


@pytest.fixture(scope="module")
def test_subset(real_mnist):
    images, labels = load_mnist(train=False, data_dir=real_mnist)
    rotated, _ = rotated_test_set(images)
    subset = curve_subset(len(images), 1_000)
    return images[subset], rotated[subset], labels[subset]


@pytest.mark.parametrize("name", SHIPPED)
def test_accuracy_matches_what_was_recorded(name, test_subset):
    images, rotated, labels = test_subset
    model = load_model(MODELS_DIR / name)
    recorded = json.loads((MODELS_DIR / f"{name}.json").read_text())["metrics"]["subset"]
    assert recorded["size"] == 1_000
    assert accuracy(model, images, labels) == pytest.approx(recorded["upright"], abs=TOLERANCE)
    assert accuracy(model, rotated, labels) == pytest.approx(recorded["rotated"], abs=TOLERANCE)


def test_evaluation_file_covers_every_shipped_model():
    results = load_evaluation(EVALUATION_FILE)
    assert results is not None, "run python -m gcnn.evaluate"
    for name in SHIPPED:
        entry = results["models"][name]
        assert entry["angles"] == list(range(0, 360, 5))
        assert len(entry["accuracy"]) == len(entry["confusion"]) == 72
        assert entry["worst_accuracy"] == min(entry["accuracy"])
        assert 0 <= entry["rotated"] <= entry["upright"] + 0.02
