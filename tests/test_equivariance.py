"""check_equivariance: per-element errors for layers and models, and it catches modules that are not equivariant."""

import pytest
import torch
from model_configs import LAYER_GROUPS as GROUPS  # the groups every layer is tested on
from torch import nn

from gcnn import (
    BaselineCNN,
    CyclicGroup,
    GroupConvolution,
    GroupEquivariantCNN,
    LiftingConvolution,
    check_equivariance,
)
from gcnn.equivariance import EquivarianceError, sample_input


@pytest.mark.parametrize("group", GROUPS, ids=repr)
@pytest.mark.parametrize("layer_type", [LiftingConvolution, GroupConvolution])
def test_layers_report_every_element(group, layer_type):
    torch.manual_seed(0)
    layer = layer_type(group, kernel_size=5, in_channels=3, out_channels=4, padding=2)
    results = layer.check_equivariance()
    assert [r.element for r in results] == list(range(group.order))
    assert results[0] == EquivarianceError(0, 0.0, False, True, 0.0)  # the identity changes nothing
    for r in results:
        assert r.angle == pytest.approx(float(group.angle(r.element)) * 180 / torch.pi)
        assert r.exact == group.is_pixel_exact(r.element) and r.mirrored == bool(group.is_mirrored(r.element))
        # Exact elements: float rounding.  Interpolated ones (random 5x5 kernels, resampled bilinearly): tens
        # of percent, as large as the measure makes plain.
        assert r.error < 1e-5 if r.exact else 0.05 < r.error < 0.6, r


def test_default_inputs_are_seeded_smooth_and_zero_outside_the_disc():
    x = sample_input((2, 3, 29, 29))
    assert torch.equal(x, sample_input((2, 3, 29, 29))) and not torch.equal(x, sample_input((2, 3, 29, 29), seed=1))
    assert x.min() >= 0 and x.max() <= 1 and x[..., 0, 0].abs().max() == 0 and x[..., 14, 14].abs().min() > 0
    assert (x[..., 1:, :] - x[..., :-1, :]).abs().mean() < 0.1  # neighbours are close: no pixel noise
    assert sample_input((2, 3, 4, 29, 29)).shape == (2, 3, 4, 29, 29)


def test_a_broken_layer_is_caught():
    """Reversing the group axis (g -> g^-1) breaks equivariance under the quarter turns; the half turn, its own
    inverse, is untouched, and the check says exactly that."""
    group = CyclicGroup(4)
    layer = LiftingConvolution(group, 3, 1, 2, padding=1)
    broken = nn.Sequential(layer, type("Flip", (nn.Module,), {"forward": lambda self, y: y.flip(2)})())
    errors = [r.error for r in check_equivariance(broken, group, sample_input((2, 1, 15, 15)))]
    assert errors[0] == 0 and errors[2] < 1e-5 and min(errors[1], errors[3]) > 0.5


def test_model_errors_per_element_and_angle():
    torch.manual_seed(0)
    model = GroupEquivariantCNN(CyclicGroup(8), kernel_size=3, num_hidden=1, hidden_channels=4, padding=1).train()
    results = model.check_equivariance(angles=[90, 10])
    assert model.training  # the caller's mode is restored
    assert [(r.element, r.angle, r.exact) for r in results] == (
        [(g, 45.0 * g, g % 2 == 0) for g in range(8)] + [(None, 90.0, True), (None, 10.0, False)])
    for r in results:
        assert r.error < 1e-5 if r.exact else 1e-5 < r.error < 0.5, r


def test_baseline_is_checked_against_the_trivial_group():
    model = BaselineCNN(kernel_size=3, num_hidden=1, hidden_channels=4)
    results = model.check_equivariance(angles=[90])
    assert [r.element for r in results] == [0, None]
    assert results[0].error == 0 and results[1].error > 1e-3


def test_batch_norm_statistics_do_not_move():
    model = GroupEquivariantCNN(CyclicGroup(4), kernel_size=3, num_hidden=1, hidden_channels=4, norm="batch")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.check_equivariance()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_arguments():
    group = CyclicGroup(4)
    layer = GroupConvolution(group, 3, 2, 2)
    with pytest.raises(ValueError, match=r"\[B, C, 4, H, W\]"):
        check_equivariance(layer, group, torch.rand(1, 2, 8, 9, 9))
    with pytest.raises(ValueError, match="extra angles need"):
        check_equivariance(layer, group, torch.rand(1, 2, 4, 9, 9), angles=[10])
    with pytest.raises(ValueError, match="returned shape"):
        check_equivariance(nn.Identity(), group, torch.rand(1, 2, 9, 9))
