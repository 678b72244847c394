"""Kernel storage: groups that interpolate hold only the disc's weights, and checkpoints saved with ``k x k``
weights (before that change) load into the same layers exactly."""

import math
from pathlib import Path

import pytest
import torch

from gcnn import CyclicGroup, DihedralGroup, GroupConvolution, GroupEquivariantCNN, LiftingConvolution, load_model
from gcnn.nn import kernel_support, kernel_transform_matrices

FIXTURES = Path(__file__).resolve().parent / "fixtures"
INTERPOLATING = [CyclicGroup(8), CyclicGroup(16), DihedralGroup(8)]
PIXEL_EXACT = [CyclicGroup(1), CyclicGroup(4), DihedralGroup(4)]


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def old_bank(layer: LiftingConvolution | GroupConvolution, dense: torch.Tensor) -> torch.Tensor:
    """The kernel bank as the ``k x k`` code computed it: the full masked transform matrices applied to the
    dense weight, then the group-axis permutation; an independent reimplementation of commit e7f9557."""
    group, k = layer.group, layer.kernel_size
    basis = torch.eye(k * k, dtype=torch.float64).reshape(-1, k, k)
    matrices = torch.stack([group.transform_image(g, basis).reshape(k * k, -1).T for g in range(group.order)])
    if not group.all_pixel_exact:  # masked to the disc on both sides
        centre = (k - 1) / 2
        ys, xs = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
        disc = (((ys - centre) ** 2 + (xs - centre) ** 2) <= (k / 2) ** 2).flatten().double()
        matrices = disc[:, None] * matrices * disc[None, :]
    matrices = matrices.float()
    if isinstance(layer, LiftingConvolution):
        bank = torch.einsum("gpq,oiq->ogip", matrices, dense.flatten(-2))
    else:
        spatial = torch.einsum("gpq,oihq->ogihp", matrices, dense.flatten(-2))
        elements = group.elements()
        source = group.product(group.inverse(elements)[:, None], elements[None, :])  # [g, h] -> g^-1 h
        bank = torch.gather(spatial, 3, source[None, :, None, :, None].expand_as(spatial))
    return bank.reshape(layer.out_channels * group.order, -1, k, k)


def dense_state_dict(model: torch.nn.Module, corner_noise: bool) -> dict[str, torch.Tensor]:
    """``model``'s state dict in the ``k x k`` layout, with random corner weights if asked (old checkpoints had
    them: they were initialised, then masked)."""
    state = dict(model.state_dict())
    for name, layer in model.named_modules():
        if isinstance(layer, (LiftingConvolution, GroupConvolution)) and layer.vector_storage:
            dense = layer.dense_weight().detach()
            if corner_noise:
                outside = torch.ones(layer.kernel_size ** 2, dtype=torch.bool)
                outside[kernel_support(layer.group, layer.kernel_size)] = False
                dense = dense.flatten(-2)
                dense[..., outside] = torch.randn_like(dense[..., outside])
                dense = dense.unflatten(-1, (layer.kernel_size, layer.kernel_size))
            state[f"{name}.weight"] = dense
    return state


@pytest.mark.parametrize("group", INTERPOLATING + PIXEL_EXACT, ids=repr)
def test_weight_shapes_and_parameter_counts(group):
    lift = LiftingConvolution(group, 5, 2, 3)
    conv = GroupConvolution(group, 5, 3, 4)
    n = 21 if group in INTERPOLATING else None  # the disc of radius 5/2 inside a 5x5 kernel: 25 - 4 corners
    if n is None:
        assert lift.weight.shape == (3, 2, 5, 5) and conv.weight.shape == (4, 3, group.order, 5, 5)
    else:
        assert lift.weight.shape == (3, 2, n) and conv.weight.shape == (4, 3, group.order, n)
    assert len(kernel_support(group, 5)) == (n or 25)
    assert lift.dense_weight().shape == (3, 2, 5, 5) and conv.dense_weight().shape == (4, 3, group.order, 5, 5)
    assert conv.transformed_weight().shape == (4, group.order, 3, group.order, 5, 5)
    assert sum(p.numel() for p in conv.parameters()) == 4 * 3 * group.order * (n or 25) + 4


def test_kernel_support_is_the_disc():
    disc = [i for i in range(25) if i not in (0, 4, 20, 24)]
    assert torch.equal(kernel_support(CyclicGroup(8), 5), torch.tensor(disc))
    assert torch.equal(kernel_support(CyclicGroup(8), 3), torch.arange(9))  # radius 1.5 reaches the corners
    assert len(kernel_support(CyclicGroup(16), 4)) == 12  # 4x4: corners at distance 2.12 > 2 drop out
    assert torch.equal(kernel_support(DihedralGroup(4), 5), torch.arange(25))


@pytest.mark.parametrize("group", INTERPOLATING + PIXEL_EXACT, ids=repr)
def test_fan_in_counts_only_stored_weights(group):
    """Kaiming uniform with a = sqrt(5), as nn.Conv2d: weights and bias uniform in +-1/sqrt(fan_in)."""
    conv = GroupConvolution(group, 5, 16, 16)
    fan_in = 16 * group.order * (21 if group in INTERPOLATING else 25)
    bound = 1 / math.sqrt(fan_in)
    for tensor in (conv.weight, conv.bias):
        assert tensor.abs().max() <= bound
        assert tensor.abs().max() > 0.8 * bound  # the whole range is used, so the bound is not a looser one
    assert conv.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


@pytest.mark.parametrize("group", INTERPOLATING, ids=repr)
def test_dense_weight_is_the_identity_kernel_with_zero_corners(group):
    conv = GroupConvolution(group, 5, 2, 3)
    dense = conv.dense_weight()
    assert torch.equal(dense.flatten(-2)[..., [0, 4, 20, 24]], torch.zeros(3, 2, group.order, 4))
    assert torch.equal(dense.flatten(-2)[..., kernel_support(group, 5)], conv.weight)
    # the identity element's kernel (output element 0 reads the kernel's group axis unpermuted) is that weight
    assert torch.equal(conv.transformed_weight()[:, 0], dense)
    dense.zero_()  # a fresh tensor: the layer is untouched
    assert conv.weight.abs().sum() > 0
    dense = conv.dense_weight()
    dense.sum().backward()  # autograd reaches the stored weights
    assert torch.equal(conv.weight.grad, torch.ones_like(conv.weight))


@pytest.mark.parametrize("group", INTERPOLATING + PIXEL_EXACT, ids=repr)
@pytest.mark.parametrize("cls", [LiftingConvolution, GroupConvolution])
def test_bank_matches_the_k_by_k_implementation(group, cls):
    layer = cls(group, 5, 2, 3)
    with torch.no_grad():
        expected = old_bank(layer, layer.dense_weight())
        assert torch.allclose(layer.kernel_bank(), expected, rtol=0, atol=1e-6)
        # and the old layout's corner weights, whatever their value, never reached the bank
        noisy = layer.dense_weight()
        noisy[..., 0, 0] = 5.0
        assert torch.allclose(old_bank(layer, noisy), expected, atol=1e-6) == (group in INTERPOLATING)


@pytest.mark.parametrize("group", INTERPOLATING + PIXEL_EXACT, ids=repr)
def test_a_k_by_k_state_dict_loads_with_identical_outputs(group):
    torch.manual_seed(2)
    model = GroupEquivariantCNN(group, 5, 1, 10, 1, [3, 4], padding=2, norm="batch", pool_after=[0]).eval()
    x = torch.rand(2, 1, 28, 28)
    state = dense_state_dict(model, corner_noise=True)
    if group in INTERPOLATING:
        assert state["blocks.1.0.weight"].shape[-2:] == (5, 5) != model.blocks[1][0].weight.shape[-2:]
    torch.manual_seed(3)
    fresh = GroupEquivariantCNN(group, 5, 1, 10, 1, [3, 4], padding=2, norm="batch", pool_after=[0]).eval()
    fresh.load_state_dict(state)  # strict: every key fits after the conversion
    for name, parameter in model.named_parameters():
        assert torch.equal(fresh.get_parameter(name), parameter), name
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    # the caller's tensors are left alone, and a wrong size is still refused
    assert state["blocks.1.0.weight"].shape[-2:] == (5, 5)
    state["blocks.1.0.weight"] = torch.zeros(4, 3, group.order, 4, 4)
    with pytest.raises(RuntimeError, match="size mismatch"):
        fresh.load_state_dict(state)


@pytest.mark.parametrize("name", ["old_layout_c8", "old_layout_d8"])
def test_checkpoints_saved_by_the_k_by_k_code_load_with_their_logits(name):
    """Files written by commit e7f9557 (tests/fixtures/make_old_layout.py), with the logits that code gave."""
    reference = torch.load(FIXTURES / "old_layout_reference.pt", weights_only=True)
    saved = torch.load(FIXTURES / f"{name}.pt", weights_only=True)
    assert saved["blocks.1.0.weight"].shape[-2:] == (5, 5)  # really the old layout, corners not zero
    assert saved["blocks.1.0.weight"][..., 0, 0].abs().sum() > 0
    model = load_model(FIXTURES / name)
    assert model.blocks[1][0].weight.shape[-1] == 21
    with torch.no_grad():
        logits = model(reference["images"])
    # not bit-identical: the bank's sums skip the zero corner terms, so float32 rounding differs
    assert torch.allclose(logits, reference[name], rtol=1e-5, atol=1e-6)
    assert (logits - reference[name]).abs().max() < 1e-6 * reference[name].abs().max() * 10


def test_gcnn_best_design_with_pixel_kernels_matches_the_k_by_k_implementation():
    """The gcnn_best layout in the pixel basis (the shipped checkpoint uses the harmonic one, whose kernels are not
    turned pixel by pixel): every layer's bank equals the old k x k code's."""
    from gcnn import model_from_config
    from gcnn.presets import preset

    torch.manual_seed(0)
    model = model_from_config({**preset("gcnn_best")["model"], "basis": "pixel"})
    layers = [m for m in model.modules() if isinstance(m, (LiftingConvolution, GroupConvolution))]
    assert len(layers) == 5 and all(layer.vector_storage for layer in layers)
    with torch.no_grad():
        for layer in layers:
            expected = old_bank(layer, layer.dense_weight())
            assert (layer.kernel_bank() - expected).abs().max() <= 1e-6 * expected.abs().max()


def test_transform_matrices_map_stored_weights():
    group = CyclicGroup(8)
    matrices = kernel_transform_matrices(group, 5)
    assert matrices.shape == (8, 25, 21)
    support = kernel_support(group, 5)
    assert torch.equal(matrices[0][support], torch.eye(21))  # the identity puts each weight at its pixel
    assert torch.all(matrices[:, [0, 4, 20, 24]] == 0)  # and no element reaches a corner


def autograd_ops(tensor: torch.Tensor) -> list[str]:
    """The operations autograd recorded from the parameters to ``tensor``, views left out (they launch nothing)."""
    views = {"ViewBackward0", "UnsafeViewBackward0", "ExpandBackward0", "UnsqueezeBackward0", "AccumulateGrad"}
    names, stack = [], [tensor.grad_fn]
    while stack:
        function = stack.pop()
        if function is not None:
            names += [] if type(function).__name__ in views else [type(function).__name__]
            stack += [next_function for next_function, _ in function.next_functions]
    return names


@pytest.mark.parametrize("group", INTERPOLATING + PIXEL_EXACT, ids=repr)
@pytest.mark.parametrize("cls", [LiftingConvolution, GroupConvolution])
def test_bank_takes_one_operation_or_two(group, cls):
    """A training step on a GPU is bound by kernel launches: the bank is one index_select of the weight (with its
    spatial and group-axis permutation) for pixel-exact groups, one matmul and one index_select otherwise; the
    bias one copy."""
    bank, bias = cls(group, 5, 3, 4).conv_weights()
    assert autograd_ops(bank) == (["IndexSelectBackward0", "MmBackward0"] if group in INTERPOLATING
                                  else ["IndexSelectBackward0"])
    assert autograd_ops(bias) == ["CloneBackward0"]
