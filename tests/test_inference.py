"""Single-image helpers behind the app: probabilities, sweeps, rotation read-out, equivariance report."""

import pytest
import torch

from gcnn import BaselineCNN, CyclicGroup, DihedralGroup, GroupEquivariantCNN
from gcnn.inference import equivariance_report, estimate_rotation, probabilities, rotation_sweep
from gcnn.samples import sample_digit


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {
        "cnn": BaselineCNN(kernel_size=3, num_hidden=1, hidden_channels=4).eval(),
        "c4": GroupEquivariantCNN(CyclicGroup(4), kernel_size=3, num_hidden=1, hidden_channels=4).eval(),
        "c8": GroupEquivariantCNN(CyclicGroup(8), kernel_size=5, num_hidden=1, hidden_channels=4, padding=2).eval(),
    }


def test_probabilities_sum_to_one(models):
    p = probabilities(models["c4"], torch.rand(3, 1, 28, 28))
    assert p.shape == (3, 10) and torch.allclose(p.sum(1), torch.ones(3))


def test_rotation_sweep(models):
    sweeps = rotation_sweep(models, sample_digit(), [0, 90, 180, 270])
    assert set(sweeps) == set(models)
    c4 = sweeps["c4"]
    assert len(c4.predicted) == len(c4.confidence) == 4
    assert len(set(c4.predicted)) == 1 and max(c4.confidence) - min(c4.confidence) < 1e-5  # exactly invariant


@pytest.mark.parametrize("name", ["c4", "c8"])
@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_rotation_is_read_off_the_group_axis(models, name, quarter_turns):
    image = sample_digit()
    turned = torch.rot90(image, quarter_turns, dims=(-2, -1))
    assert estimate_rotation(models[name], image, turned) == pytest.approx(90 * quarter_turns, abs=1e-3)
    assert estimate_rotation(models[name], image, image) == pytest.approx(0, abs=1e-3) or \
        estimate_rotation(models[name], image, image) == pytest.approx(360, abs=1e-3)


def test_no_rotation_read_out_without_a_cyclic_group_axis(models):
    image = sample_digit()
    assert estimate_rotation(models["cnn"], image, torch.rot90(image, 1, dims=(-2, -1))) is None
    d1 = GroupEquivariantCNN(DihedralGroup(1), kernel_size=3, num_hidden=1, hidden_channels=2).eval()
    assert estimate_rotation(d1, image, image) is None


def test_equivariance_report(models):
    image = sample_digit()
    gcnn = equivariance_report(models["c8"], image)
    assert max(gcnn.map_errors.values()) < 1e-5 and gcnn.invariant_error < 1e-5
    cnn = equivariance_report(models["cnn"], image)
    assert min(cnn.map_errors.values()) > 1e-3 and cnn.invariant_error > 1e-3
