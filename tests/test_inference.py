"""Single-image helpers behind the app: rotation sweeps."""

import pytest
import torch

from gcnn import BaselineCNN, CyclicGroup, GroupEquivariantCNN
from gcnn.app.inference import rotation_sweep
from gcnn.app.samples import sample_digit


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {
        "cnn": BaselineCNN(kernel_size=3, num_hidden=1, hidden_channels=4).eval(),
        "c4": GroupEquivariantCNN(CyclicGroup(4), kernel_size=3, num_hidden=1, hidden_channels=4).eval(),
        "c8": GroupEquivariantCNN(CyclicGroup(8), kernel_size=5, num_hidden=1, hidden_channels=4, padding=2).eval(),
    }


def test_rotation_sweep(models):
    image = sample_digit()
    angles = [0, 45, 90, 180, 270]
    sweeps = rotation_sweep(models, image, angles)
    assert set(sweeps) == set(models)
    for name, model in models.items():
        p = sweeps[name].probabilities
        assert p.shape == (5, 10) and torch.allclose(p.sum(1), torch.ones(5))
        # Row i is the model's answer for the image turned by angles[i] alone.
        expected = torch.softmax(model(torch.rot90(image, 1, dims=(-2, -1))[None]), dim=1)[0]
        assert torch.allclose(p[angles.index(90)], expected, atol=1e-6)
    c4 = sweeps["c4"]
    quarter = [angles.index(a) for a in (0, 90, 180, 270)]
    assert len({c4.predicted[i] for i in quarter}) == 1
    assert max(c4.confidence[i] for i in quarter) - min(c4.confidence[i] for i in quarter) < 1e-5  # exactly invariant


def test_sweep_index_wraps_and_rejects_angles_not_swept(models):
    sweep = rotation_sweep({"c4": models["c4"]}, sample_digit(), [0, 90, 180, 270])["c4"]
    assert sweep.index(360) == 0 and sweep.index(-90) == 3
    with pytest.raises(ValueError, match="45"):
        sweep.index(45)
