"""Group axioms, conventions and subgroup structure, for every group the library ships."""

import math

import pytest
import torch

from gcnn import CyclicGroup, DihedralGroup, group_from_config
from gcnn.groups import base_grid, resample

GROUPS = [CyclicGroup(1), CyclicGroup(2), CyclicGroup(3), CyclicGroup(4), CyclicGroup(8), DihedralGroup(1),
          DihedralGroup(2), DihedralGroup(4), DihedralGroup(8)]


@pytest.mark.parametrize("group", GROUPS, ids=repr)
def test_axioms(group):
    g = group.elements()
    table = group.left_action_on_H(g, g)
    # closure, and every row/column of the Cayley table is a permutation
    assert table.min() >= 0 and table.max() < group.order
    assert all(len(set(row.tolist())) == group.order for row in table)
    assert all(len(set(col.tolist())) == group.order for col in table.T)
    # identity
    assert torch.equal(group.product(group.identity, g), g)
    assert torch.equal(group.product(g, group.identity), g)
    # inverses
    assert torch.all(group.product(g, group.inverse(g)) == group.identity)
    assert torch.all(group.product(group.inverse(g), g) == group.identity)
    # associativity over all triples
    a, b, c = torch.meshgrid(g, g, g, indexing="ij")
    assert torch.equal(group.product(group.product(a, b), c), group.product(a, group.product(b, c)))


@pytest.mark.parametrize("group", GROUPS, ids=repr)
def test_matrix_representation_is_a_homomorphism(group):
    g = group.elements()
    a, b = torch.meshgrid(g, g, indexing="ij")
    product_matrices = group.matrix_representation(group.product(a, b))
    composed = group.matrix_representation(a) @ group.matrix_representation(b)
    torch.testing.assert_close(product_matrices, composed, atol=1e-12, rtol=0)
    # orthogonal, with determinant -1 exactly for the mirrored elements
    det = torch.linalg.det(group.matrix_representation(g))
    torch.testing.assert_close(det, torch.where(group.is_mirrored(g), -1.0, 1.0).double())


def test_len_order_and_dihedral_layout():
    assert len(CyclicGroup(8)) == CyclicGroup(8).order == 8
    d4 = DihedralGroup(4)
    assert len(d4) == 8 and d4.rotation_order == 4
    assert not d4.is_mirrored(torch.arange(4)).any() and d4.is_mirrored(torch.arange(4, 8)).all()
    # index m*N + j is r^j s^m
    r, s = 1, 4
    assert int(d4.product(r, s)) == 5
    assert int(d4.product(s, r)) == 7  # s r = r^-1 s


def test_element_n_over_4_is_rot90():
    """Convention: element N/4 of C_N is torch.rot90(x, 1, dims=(-2, -1)), counter-clockwise as displayed."""
    image = torch.rand(2, 9, 9)
    for n in (4, 8, 12):
        group = CyclicGroup(n)
        assert torch.equal(group.transform_image(n // 4, image), torch.rot90(image, 1, dims=(-2, -1)))
        # the same rotation through the sampling grid and grid_sample agrees to round-off
        grid = group.left_action_on_R2(group.inverse(n // 4), base_grid(9, 9))
        torch.testing.assert_close(resample(image, grid), torch.rot90(image, 1, dims=(-2, -1)), atol=1e-6, rtol=0)


def test_counter_clockwise_as_displayed():
    """A pixel right of centre moves above centre (row index decreases) under a quarter turn."""
    image = torch.zeros(5, 5)
    image[2, 4] = 1
    turned = CyclicGroup(4).transform_image(1, image)
    assert turned[0, 2] == 1


def test_mirror_is_left_right_flip():
    image = torch.rand(6, 7)
    group = DihedralGroup(4)
    assert torch.equal(group.transform_image(4, image), torch.flip(image, dims=(-1,)))
    grid = group.left_action_on_R2(group.inverse(4), base_grid(6, 7))
    torch.testing.assert_close(resample(image, grid), torch.flip(image, dims=(-1,)), atol=1e-6, rtol=0)


def test_left_action_on_R2_batched_shape_and_values():
    group = CyclicGroup(8)
    grid = base_grid(4, 6)
    batched = group.left_action_on_R2(group.elements(), grid)
    assert batched.shape == (8, 4, 6, 2)
    torch.testing.assert_close(batched[3], group.left_action_on_R2(3, grid))
    # element 1 turns the point (1, 0) (right of centre) to 45 degrees above it (y down is negative)
    point = group.left_action_on_R2(1, torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(point, torch.tensor([math.sqrt(0.5), -math.sqrt(0.5)]))


def test_no_float_wraparound_in_c8():
    """The reference compared float angles and broke C8; integer elements cannot."""
    group = CyclicGroup(8)
    g = group.elements()
    assert torch.equal(group.product(g, group.inverse(g)), torch.zeros(8, dtype=torch.long))
    assert torch.equal(group.product(7, g), torch.remainder(g + 7, 8))


@pytest.mark.parametrize(
    "group, subgroup",
    [(CyclicGroup(8), CyclicGroup(4)), (CyclicGroup(8), CyclicGroup(1)), (CyclicGroup(4), CyclicGroup(2)),
     (DihedralGroup(4), CyclicGroup(4)), (DihedralGroup(4), DihedralGroup(2)), (DihedralGroup(4), DihedralGroup(1)),
     (DihedralGroup(8), CyclicGroup(2))],
    ids=repr,
)
def test_restriction_index_partitions_into_cosets(group, subgroup):
    embedded = group.embed(subgroup)
    # the embedding is a homomorphism
    h = subgroup.elements()
    a, b = torch.meshgrid(h, h, indexing="ij")
    assert torch.equal(embedded[subgroup.product(a, b)], group.product(embedded[a], embedded[b]))
    index = group.restriction_index(subgroup)
    assert index.shape == (group.order // subgroup.order, subgroup.order)
    assert sorted(index.flatten().tolist()) == list(range(group.order))


def test_not_a_subgroup():
    with pytest.raises(ValueError, match="not a subgroup"):
        CyclicGroup(8).embed(CyclicGroup(3))
    with pytest.raises(ValueError, match="not a subgroup"):
        CyclicGroup(8).embed(DihedralGroup(4))


@pytest.mark.parametrize("group", GROUPS, ids=repr)
def test_config_round_trip(group):
    assert group_from_config(group.config()) == group


def test_bad_orders_and_configs():
    with pytest.raises(ValueError):
        CyclicGroup(0)
    with pytest.raises(ValueError):
        DihedralGroup(0)
    with pytest.raises(ValueError, match="unknown group"):
        group_from_config({"name": "icosahedral", "order": 60})


@pytest.mark.parametrize("group_type", [CyclicGroup, DihedralGroup])
@pytest.mark.parametrize("order", [2.5, 4.0, True, "4", None])
def test_an_order_is_a_whole_number(group_type, order):
    """Floats used to be truncated (CyclicGroup(2.5) was C2) and True was C1."""
    with pytest.raises(TypeError, match="order must be a positive integer"):
        group_type(order)


def test_integer_orders_of_numpy_and_torch_are_accepted():
    import numpy as np
    import torch

    assert CyclicGroup(np.int64(4)) == CyclicGroup(torch.tensor(4)) == CyclicGroup(4)
    with pytest.raises(TypeError, match="got 2.5"):
        group_from_config({"name": "cyclic", "order": 2.5})
