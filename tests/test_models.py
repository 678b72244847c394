"""Whole-model invariance, parameter counts of the reference models, config round trips, input rotations."""

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
from gcnn.data import rotate  # torchvision's rotate: the reference the models' own rotation must equal
from gcnn.nn import is_channels_last, transform_feature_map
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
    """Exact invariance under the pixel-exact elements of the network's last group, measured per element."""
    torch.manual_seed(0)
    model = set_memory_format(GroupEquivariantCNN(**CONFIGS[name]), memory_format).eval()
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    # The last group of the network decides which transformations leave the output unchanged: the check runs on it.
    results = model.check_equivariance(x)
    assert [r.element for r in results] == list(range(model.output_group.order))
    assert any(r.exact and r.element for r in results) or model.output_group.order == 1
    for r in results:
        if r.exact:
            assert r.error < 1e-5, r
        else:  # 45-degree turns resample the input: approximate, and measurably so
            assert 1e-5 < r.error < 1, r
    kept = model.group.embed(model.output_group).tolist()
    with torch.no_grad():
        for g in range(model.group.order):
            if model.group.is_pixel_exact(g) and g not in kept:  # given up by a restriction: the logits change
                turned = model(model.group.transform_image(g, x))
                assert relative_error(turned, model(x)) > 1e-4, g  # three orders above float rounding


def test_restriction_to_the_trivial_group_keeps_early_equivariance_only():
    """C8 -> C4 -> C1: the maps before the restriction to C1 are C4-equivariant; the logits are not invariant."""
    torch.manual_seed(0)
    model = GroupEquivariantCNN(**CONFIGS["C8 -> C4 -> C1"]).eval()
    assert model.output_group.order == 1
    x = torch.rand(2, 1, 28, 28)
    turned = torch.rot90(x, 1, dims=(-2, -1))
    with torch.no_grad():
        maps, maps_turned = model.feature_maps(x), model.feature_maps(turned)
        y, y_turned = model(x), model(turned)
    for index in (1, 2):  # on C4: a quarter turn is element 1
        expected = transform_feature_map(maps[index].group, 1, maps[index].tensor)
        assert relative_error(maps_turned[index].tensor, expected) < 1e-5
    # Block 3 runs on C1: nothing constrains it, and a quarter turn changes the logits.
    assert relative_error(y_turned, y) > 1e-3
    assert [(r.element, r.error) for r in model.check_equivariance(x)] == [(0, 0.0)]  # checked on C1, what holds


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


@pytest.mark.parametrize("upsample", [1, 2])
def test_the_lifting_map_is_the_first_convolution_alone_and_follows_quarter_turns(upsample):
    """``lifting_map``: the lifting convolution of the input as the network prepares it (normalised, upsampled),
    before the first block's norm, ReLU and pooling; a quarter turn turns it and moves it round the ring."""
    torch.manual_seed(0)
    model = GroupEquivariantCNN(CyclicGroup(4), kernel_size=5, num_hidden=1, hidden_channels=[3, 4], padding=2,
                                norm="batch", pool_after=[0], upsample=upsample).eval()
    x = torch.rand(2, 1, 20, 20)
    lifted = model.lifting_map(x)
    prepared = model.normalise(x)
    if upsample > 1:
        prepared = F.interpolate(prepared, scale_factor=upsample, mode="bilinear", align_corners=False)
    assert lifted.name == "lifting convolution" and lifted.group == CyclicGroup(4)
    assert torch.equal(lifted.tensor, model.blocks[0][0](prepared))
    assert lifted.tensor.shape == (2, 3, 4, 20 * upsample, 20 * upsample)
    turned = model.lifting_map(torch.rot90(x, 1, dims=(-2, -1))).tensor
    assert torch.allclose(turned, transform_feature_map(CyclicGroup(4), 1, lifted.tensor), atol=1e-5)


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
    single.load_state_dict(averaging.state_dict())  # input rotations add nothing to the state dict
    assert averaging.input_angles() == pytest.approx([0, 15, 30])  # thirds of the 45-degree step
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(averaging.train()(x), single.train()(x))  # training sees the input as it is
        averaging.eval(), single.eval()
        # The reference: torchvision's rotate, one copy at a time.
        expected = torch.stack([single(rotate(x, angle)) for angle in (0, 15, 30)]).mean(dim=0)
        assert relative_error(averaging(x), expected) < 1e-6
        assert relative_error(averaging.forward_with_maps(x)[0], expected) < 1e-6
        assert relative_error(averaging(x), single(x)) > 1e-4  # the averaging does something
    assert model_from_config(averaging.config()).input_rotations == 3
    with pytest.raises(ValueError, match="input_rotations"):
        GroupEquivariantCNN(CyclicGroup(4), input_rotations=0)


def test_input_step_and_max_pool_take_the_strongest_copy_of_the_group_elements():
    """gcnn_best's design: copies turned by the C16 elements between quarter turns, per class the largest logit."""
    torch.manual_seed(0)
    config = dict(group=CyclicGroup(16), kernel_size=3, num_hidden=1, hidden_channels=3, padding=1,
                  norm="batch", group_pool="max")
    pooled = GroupEquivariantCNN(**config, input_rotations=4, input_step=22.5, input_pool="max")
    single = GroupEquivariantCNN(**config)
    single.load_state_dict(pooled.state_dict())
    assert pooled.input_angles() == pytest.approx([0, 22.5, 45, 67.5])  # not fractions of the 22.5-degree step
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(pooled.train()(x), single.train()(x))  # training sees the input as it is
        pooled.eval(), single.eval()
        copies = torch.stack([single(rotate(x, angle)) for angle in (0, 22.5, 45, 67.5)])
        expected = copies.amax(dim=0)
        assert relative_error(pooled(x), expected) < 1e-6
        assert relative_error(pooled.forward_with_maps(x)[0], expected) < 1e-6
        assert relative_error(expected, copies.mean(dim=0)) > 1e-3  # the maximum is not the mean
    rebuilt = model_from_config(pooled.config())
    assert (rebuilt.input_step, rebuilt.input_pool) == (22.5, "max")
    old = single.config()
    del old["input_step"], old["input_pool"]  # checkpoints written before the options existed
    assert (model_from_config(old).input_step, model_from_config(old).input_pool) == (None, "mean")
    with pytest.raises(ValueError, match="input_pool"):
        GroupEquivariantCNN(CyclicGroup(4), input_pool="median")
    with pytest.raises(ValueError, match="input_step"):
        BaselineCNN(input_rotations=2, input_step=0)


def test_baseline_input_rotations_average_eight_turns():
    """cnn_rotaug_tta's design: logits averaged over 8 turns of 45 degrees, exactly invariant to quarter turns."""
    torch.manual_seed(0)
    averaging = BaselineCNN(kernel_size=3, num_hidden=1, hidden_channels=6, input_rotations=8)
    single = BaselineCNN(kernel_size=3, num_hidden=1, hidden_channels=6)
    single.load_state_dict(averaging.state_dict())
    assert averaging.input_angles() == pytest.approx([45 * k for k in range(8)])
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(averaging.train()(x), single.train()(x))
        averaging.eval(), single.eval()
        expected = torch.stack([single(rotate(x, 45.0 * k)) for k in range(8)]).mean(dim=0)
        assert relative_error(averaging(x), expected) < 1e-6
        assert relative_error(averaging.forward_with_maps(x)[0], expected) < 1e-6
    errors = {r.angle: r.error for r in averaging.check_equivariance(x, angles=[90, 180, 270, 22.5, 45])}
    assert max(errors[a] for a in (90, 180, 270)) < 1e-5  # quarter turns permute the 8 copies
    # Other turns are approximate: a 45-degree turn of a copy turned by 45 degrees is resampled twice.
    assert errors[45] > 1e-4 and errors[22.5] > 1e-4
    plain = {r.angle: r.error for r in single.check_equivariance(x, angles=[90])}
    assert plain[90] > 1e-3  # without the averaging: hundreds of times the error
    config = averaging.config()
    assert config["input_rotations"] == 8 and model_from_config(config).input_rotations == 8
    del config["input_rotations"]  # checkpoints written before the option existed
    assert model_from_config(config).input_rotations == 1
