"""Whole-model invariance, parameter counts of the reference models, config round trips."""

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from model_configs import CONFIGS

from gcnn import (
    BaselineCNN,
    CyclicGroup,
    DihedralGroup,
    GroupEquivariantCNN,
    count_parameters,
    model_from_config,
    set_memory_format,
)
from gcnn.data import rotate
from gcnn.nn import is_channels_last
from gcnn.presets import PRESETS, preset


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_reference_parameter_counts():
    """The reference: CNN with 32 channels vs C4 GCNN with 16, both about 103k parameters."""
    assert count_parameters(BaselineCNN(5, 1, 10, 4, 32)) == 103_690
    assert count_parameters(GroupEquivariantCNN(CyclicGroup(4), 5, 1, 10, 4, 16)) == 103_050
    assert count_parameters(model_from_config(preset("cnn")["model"])) == 103_690
    assert count_parameters(model_from_config(preset("gcnn_c4")["model"])) == 103_050


@pytest.mark.parametrize("memory_format", [None, torch.channels_last], ids=["default layout", "channels last"])
@pytest.mark.parametrize("name", CONFIGS)
def test_gcnn_output_is_invariant(name, memory_format):
    torch.manual_seed(0)
    model = set_memory_format(GroupEquivariantCNN(**CONFIGS[name]), memory_format).eval()
    # the last group of the network decides which transformations leave the output unchanged
    group = model.output_group
    x = torch.rand(3, 1, 28, 28)
    y = model(x)
    assert y.shape == (3, 10)
    transforms = [lambda t, k=k: torch.rot90(t, k, dims=(-2, -1)) for k in range(1, 4)
                  if any(group.quarter_turns(g) == k and not group.is_mirrored(g) for g in range(group.order))]
    if isinstance(group, DihedralGroup):
        transforms.append(lambda t: torch.flip(t, dims=(-1,)))
    if group.order == 1:
        assert not transforms
        return
    assert transforms
    for transform in transforms:
        assert relative_error(model(transform(x)), y) < 1e-5


@pytest.mark.parametrize("name", CONFIGS)
def test_channels_last_models_match_the_default_layout(name):
    """set_memory_format changes only the storage: logits, feature maps and gradients agree."""
    torch.manual_seed(0)
    default = GroupEquivariantCNN(**CONFIGS[name])
    channels_last = set_memory_format(copy.deepcopy(default), torch.channels_last)
    x, labels = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    for model in (default, channels_last):
        F.cross_entropy(model.train()(x), labels).backward()
    # The whole gradient at once: a bias followed by batch norm has a gradient of zero, up to round-off.
    gradients = [torch.cat([p.grad.flatten() for p in model.parameters()]) for model in (default, channels_last)]
    assert relative_error(gradients[1], gradients[0]) < 1e-5
    with torch.no_grad():
        logits, maps = default.eval().forward_with_maps(x)
        logits_cl, maps_cl = channels_last.eval().forward_with_maps(x)
    assert relative_error(logits_cl, logits) < 1e-5
    for expected, actual in zip(maps, maps_cl, strict=True):
        assert relative_error(actual.tensor, expected.tensor) < 1e-5
        assert is_channels_last(actual.tensor)


def test_plain_cnn_is_not_invariant():
    """The invariance tests can fail: a plain CNN's output changes under a quarter turn."""
    torch.manual_seed(0)
    model = BaselineCNN().eval()
    x = torch.rand(2, 1, 28, 28)
    assert relative_error(model(torch.rot90(x, 1, dims=(-2, -1))), model(x)) > 1e-2


def test_d4_model_is_mirror_invariant():
    torch.manual_seed(0)
    model = GroupEquivariantCNN(DihedralGroup(4), kernel_size=3, num_hidden=1, hidden_channels=3).eval()
    x = torch.rand(2, 1, 20, 20)
    assert relative_error(model(torch.flip(x, dims=(-1,))), model(x)) < 1e-5
    assert relative_error(model(torch.flip(x, dims=(-2,))), model(x)) < 1e-5  # flip = mirror + half turn


def test_batch_size_one_and_non_square():
    torch.manual_seed(0)
    model = GroupEquivariantCNN(CyclicGroup(4), kernel_size=3, num_hidden=2, hidden_channels=4).eval()
    assert model(torch.rand(1, 1, 28, 28)).shape == (1, 10)
    x = torch.rand(1, 1, 20, 33)
    assert model(x).shape == (1, 10)
    assert relative_error(model(torch.rot90(x, 1, dims=(-2, -1))), model(x)) < 1e-5
    assert BaselineCNN(kernel_size=3, num_hidden=1)(torch.rand(1, 1, 17, 25)).shape == (1, 10)


@pytest.mark.parametrize("name", CONFIGS)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = GroupEquivariantCNN(**CONFIGS[name])
    model(torch.rand(2, 1, 28, 28)).square().sum().backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, parameter_name


@pytest.mark.parametrize("name", CONFIGS)
def test_config_round_trip(name):
    model = GroupEquivariantCNN(**CONFIGS[name])
    config = json.loads(json.dumps(model.config()))  # JSON-serialisable
    rebuilt = model_from_config(config)
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.config() == model.config()
    x = torch.rand(2, 1, 28, 28)
    model.eval(), rebuilt.eval()
    assert torch.equal(rebuilt(x), model(x))


@pytest.mark.parametrize("name", PRESETS)
def test_presets_build(name):
    model = model_from_config(preset(name)["model"])
    assert model(torch.rand(1, 1, 28, 28)).shape == (1, 10)


def test_input_normalisation_lives_in_the_model():
    model = model_from_config(preset("gcnn_c4")["model"])
    assert model.config()["input_mean"] == pytest.approx(0.1307)
    assert model.normalise(torch.full((1, 1, 2, 2), 0.1307)).abs().max() < 1e-6


def test_feature_maps_cover_every_block():
    model = GroupEquivariantCNN(**CONFIGS["C8 -> C4 -> C1"]).eval()
    maps = model.feature_maps(torch.rand(1, 1, 28, 28))
    assert [m.group.order for m in maps] == [8, 4, 4, 1]
    assert all(m.tensor.dim() == 5 and m.tensor.shape[2] == m.group.order for m in maps)
    cnn_maps = BaselineCNN(kernel_size=3, num_hidden=1).feature_maps(torch.rand(1, 1, 28, 28))
    assert [m.tensor.shape[2] for m in cnn_maps] == [1, 1]


def test_bad_configs():
    with pytest.raises(ValueError, match="unknown model type"):
        model_from_config({"type": "Transformer"})
    with pytest.raises(ValueError, match="bad BaselineCNN config"):
        model_from_config({"type": "BaselineCNN", "layers": 3})
    with pytest.raises(ValueError, match="hidden_channels needs 5 values"):
        GroupEquivariantCNN(CyclicGroup(4), hidden_channels=[4, 4])
    with pytest.raises(ValueError, match="norm"):
        GroupEquivariantCNN(CyclicGroup(4), norm="group")


def test_input_rotations_average_turned_inputs_in_eval_only():
    torch.manual_seed(0)
    config = dict(group=CyclicGroup(8), kernel_size=3, num_hidden=1, hidden_channels=3, padding=1)
    averaging = GroupEquivariantCNN(**config, input_rotations=3)
    single = GroupEquivariantCNN(**config)
    single.load_state_dict(averaging.state_dict())
    assert averaging.input_angles() == pytest.approx([0, 15, 30])  # thirds of the 45-degree step
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(averaging.train()(x), single.train()(x))  # training sees the input as it is
        averaging.eval(), single.eval()
        expected = torch.stack([single(rotate(x, angle)) for angle in (0, 15, 30)]).mean(dim=0)
        assert torch.allclose(averaging(x), expected, atol=1e-6)
        assert torch.allclose(averaging.forward_with_maps(x)[0], expected, atol=1e-6)
    assert model_from_config(averaging.config()).input_rotations == 3
    with pytest.raises(ValueError, match="input_rotations"):
        GroupEquivariantCNN(CyclicGroup(4), input_rotations=0)
