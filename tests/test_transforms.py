"""gcnn.transforms.rotate / RotateImages equal torchvision's rotate, and script, trace and export."""

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from gcnn.transforms import RotateImages, rotate, rotation_grid, turns_exactly

ANGLES = [0, 11.25, 30, 45, 90, 135, 180, 270, -30, 359.5, 720.5]


def torchvision_rotate(images, angle):
    return TF.rotate(images, float(angle), interpolation=InterpolationMode.BILINEAR, fill=0.0)


@pytest.mark.parametrize("shape", [(3, 1, 28, 28), (2, 2, 20, 33), (1, 1, 7, 7)], ids=str)
def test_rotate_equals_torchvision(shape):
    torch.manual_seed(0)
    x = torch.rand(shape)
    for angle in ANGLES:
        assert (rotate(x, angle) - torchvision_rotate(x, angle)).abs().max() < 1e-6, angle
    per_image = torch.rand(shape[0], dtype=torch.float64) * 360
    expected = torch.stack([torchvision_rotate(image, angle) for image, angle in zip(x, per_image, strict=True)])
    assert (rotate(x, per_image) - expected).abs().max() < 1e-6


def test_quarter_turns_are_exact():
    x = torch.rand(2, 1, 9, 9)
    assert torch.equal(rotate(x, 90), torch.rot90(x, 1, dims=(-2, -1)))
    assert torch.equal(RotateImages([270, 180])(x)[0], torch.rot90(x, 3, dims=(-2, -1)))
    assert turns_exactly(180, 5, 7) and not turns_exactly(90, 5, 7) and not turns_exactly(45, 9, 9)


def test_rotate_images_caches_grids_per_size():
    module = RotateImages([11.25, 90])
    assert module.state_dict() == {}  # nothing joins a model's checkpoint
    for size in (28, 20, 28):
        x = torch.rand(2, 3, size, size)
        out = module(x)
        assert out.shape == (2, 2, 3, size, size)
        assert (out[0] - torchvision_rotate(x, 11.25)).abs().max() < 1e-6
    assert sorted(key[:2] for key in module._grids) == [(20, 20), (28, 28)]


def test_grid_and_mask():
    grid, mask = rotation_grid([0.0, 45.0], 8, 8)
    assert grid.shape == (2, 8, 8, 2) and mask.shape == (2, 1, 8, 8)
    assert torch.allclose(mask[0], torch.ones(1, 8, 8))  # no turn: every pixel fully inside
    assert mask[1, 0, 0, 0] == 0 and mask[1, 0, 4, 4] == 1  # a 45-degree turn: corners come from outside


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_rotate_images_scripts_and_traces():
    module = RotateImages([11.25, 90])
    x = torch.rand(4, 1, 28, 28)
    expected = module(x)
    assert torch.equal(torch.jit.script(module)(x), expected)
    assert torch.equal(torch.jit.trace(module, x[:1], check_inputs=[(x,)])(x), expected)


def test_bad_input():
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        rotate(torch.rand(28, 28), 10)
    with pytest.raises(ValueError, match="2 angles for 3 images"):
        rotate(torch.rand(3, 1, 5, 5), [1.0, 2.0])
    with pytest.raises(ValueError, match="at least one angle"):
        RotateImages([])
