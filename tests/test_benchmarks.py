"""The benchmarks' baselines compute what they claim to, so their timings compare like with like."""

import pytest
import torch

from benchmarks.bench_networks import reference_style
from gcnn import CyclicGroup, DihedralGroup, GroupEquivariantCNN, export_plain


@pytest.mark.parametrize("group", [CyclicGroup(4), DihedralGroup(4)], ids=repr)
def test_reference_style_and_plain_networks_match_ours(group):
    """Pixel-exact groups: grid_sample at rotated pixel centres reproduces our permuted kernels exactly."""
    torch.manual_seed(0)
    ours = GroupEquivariantCNN(group, 5, 1, 10, 2, 3, padding=2, norm="none", group_pool="max").eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        expected = ours(x)
        for rival in (reference_style(ours), export_plain(ours)):
            assert torch.allclose(rival(x), expected, rtol=1e-5, atol=1e-6)


def test_reference_style_rebuilds_its_bank_on_every_call():
    torch.manual_seed(0)
    ours = GroupEquivariantCNN(CyclicGroup(4), 3, 1, 10, 1, 2).eval()
    rival = reference_style(ours)
    layer = rival.blocks[1][0]
    with torch.no_grad():
        assert layer.kernel_bank() is not layer.kernel_bank()
        assert torch.allclose(layer.kernel_bank(), ours.blocks[1][0].kernel_bank(), atol=1e-6)
