"""The Feature maps page's maths: transformations of digits and maps, the measured differences, the ring layout."""

from __future__ import annotations

import math

import pytest
import torch

from gcnn.app.feature_maps import (
    APPROXIMATE,
    ROUNDING,
    Transformation,
    _disc,
    _largest,
    act_on_maps,
    compare,
    describe,
    element_label,
    element_transformation,
    find_element,
    group_label,
    largest_differences,
    move_words,
    ring_layout,
    strongest_channel,
    transform_images,
    untrained_model,
)
from gcnn.groups import CyclicGroup, DihedralGroup
from gcnn.models import BaselineCNN, GroupEquivariantCNN
from gcnn.nn import transform_feature_map

GROUPS = [CyclicGroup(1), CyclicGroup(4), CyclicGroup(8), CyclicGroup(16), DihedralGroup(1), DihedralGroup(4),
          DihedralGroup(8)]


@pytest.fixture(scope="module")
def digit() -> torch.Tensor:
    """A smooth blob-and-bar picture, ``[1, 28, 28]``, zero near the border (turns keep it in view)."""
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    blob = torch.exp(-((ys - 10) ** 2 + (xs - 16) ** 2) / 8)
    bar = torch.exp(-((ys - 17) ** 2) / 3) * ((xs > 8) & (xs < 20)).float()
    return (blob + bar).clamp(max=1)[None]


@pytest.mark.parametrize("group", GROUPS, ids=repr)
def test_group_elements_act_on_maps_as_transform_feature_map(group):
    maps = torch.rand(2, 3, group.order, 12, 12, generator=torch.Generator().manual_seed(0))
    for g in range(group.order):
        transformation = element_transformation(group, g)
        assert find_element(group, transformation) == g
        expected = transform_feature_map(group, g, maps)
        assert (act_on_maps(group, transformation, maps) - expected).abs().max() < 1e-5, g


@pytest.mark.parametrize("group", [CyclicGroup(8), CyclicGroup(16)], ids=repr)
def test_images_turn_as_the_group_turns_them(group):
    images = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    for g in range(group.order):
        turned = transform_images(element_transformation(group, g), images)
        assert (turned - group.transform_image(g, images)).abs().max() < 1e-5, g
    mirrored = transform_images(Transformation(90, mirrored=True), images)
    assert torch.equal(mirrored, torch.rot90(torch.flip(images, dims=(-1,)), 1, dims=(-2, -1)))


def test_turns_between_elements_blend_the_two_neighbouring_ring_positions():
    group = CyclicGroup(4)
    values = torch.tensor([1.0, 2.0, 4.0, 8.0])
    maps = values.reshape(1, 1, 4, 1, 1).expand(1, 1, 4, 9, 9).clone()  # constant in space
    # A quarter of the way from 90 to 180 degrees: 3/4 of the shift by one element, 1/4 of the shift by two.
    moved = act_on_maps(group, Transformation(112.5), maps)[0, 0, :, 4, 4]  # the centre pixel stays in view
    by_one, by_two = values.roll(1), values.roll(2)
    assert torch.allclose(moved, 0.75 * by_one + 0.25 * by_two, atol=1e-5)
    assert find_element(group, Transformation(112.5)) is None


def test_mirror_needs_a_group_with_mirrors():
    with pytest.raises(ValueError, match="has no mirror"):
        act_on_maps(CyclicGroup(4), Transformation(0, mirrored=True), torch.zeros(1, 1, 4, 5, 5))
    with pytest.raises(ValueError, match=r"\[B, C, 4, H, W\]"):
        act_on_maps(CyclicGroup(4), Transformation(90), torch.zeros(1, 1, 8, 5, 5))


@pytest.mark.parametrize("group", [CyclicGroup(4), DihedralGroup(4)], ids=repr)
def test_an_equivariant_network_matches_exactly_at_exact_elements_only(group, digit):
    model = untrained_model(group)
    for g in range(group.order):
        transformation = element_transformation(group, g)
        layers = compare(model, digit, transformation)
        assert [layer.name for layer in layers] == ["lifting convolution", "layer 0", "layer 1", "layer 2"]
        assert max(layer.largest for layer in layers) < ROUNDING, transformation
    between = compare(model, digit, Transformation(45))
    assert min(layer.largest for layer in between) > 10 * ROUNDING  # only approximately equivariant there
    difference = between[0].difference
    assert difference.shape == between[0].maps.shape
    assert float(difference.abs().max()) > 0


def test_a_plain_cnn_is_not_equivariant(digit):
    torch.manual_seed(0)
    layers = compare(BaselineCNN(kernel_size=3, num_hidden=1, hidden_channels=4).eval(), digit, Transformation(90))
    assert all(layer.largest > APPROXIMATE for layer in layers)
    assert all(layer.group.order == 1 for layer in layers)


def test_a_mirror_has_no_counterpart_on_a_cyclic_group(digit):
    layers = compare(untrained_model(CyclicGroup(4)), digit, Transformation(0, mirrored=True))
    assert all(math.isnan(layer.largest) for layer in layers)
    assert describe(layers[0].largest).startswith("no counterpart")


def test_largest_differences_agree_with_compare(digit):
    torch.manual_seed(0)
    model = GroupEquivariantCNN(DihedralGroup(4), kernel_size=3, num_hidden=1, hidden_channels=3).eval()
    transformations = [Transformation(90), Transformation(30), Transformation(180, mirrored=True)]
    table = largest_differences(model, digit, transformations)
    assert table.shape == (3, 3)  # the lifting convolution and two blocks
    for row, transformation in enumerate(transformations):
        expected = [layer.largest for layer in compare(model, digit, transformation)]
        assert torch.allclose(table[row], torch.tensor(expected), rtol=1e-4, atol=1e-9)
    assert (table[[0, 2]] < ROUNDING).all() and (table[1] > 10 * ROUNDING).all()


def test_differences_in_words():
    """Plain words first, the number second."""
    assert describe(1.2e-7) == "equal, up to the computer's rounding (largest difference 1 × 10⁻⁷ of the maps' range)"
    assert describe(0.02) == "nearly equal, as any turn but a quarter turn blends pixels (largest difference 0.02 of " \
        "the maps' range)"
    assert describe(0.4) == "clearly different (largest difference 0.4 of the maps' range)"
    # against the yardstick of a turn that blends pixels: the maps turned there and back
    assert describe(0.2, 0.36) == "as close as blended pixels allow (largest difference 0.2 of the maps' range; " \
        "turning the upright digit's maps there and back alone changes them by 0.4)"
    assert describe(0.4, 0.2).startswith("further apart than blended pixels alone explain (largest difference 0.4")


def test_turning_blends_pixels_even_for_a_step_that_commutes_with_every_turn(digit):
    """Why the page needs a yardstick: ``relu(x - 0.5)`` commutes with any turn of the plane, yet on the pixel grid
    its two sides differ by a third of the range at 22.5 and 45 degrees, as much as its round trip changes it."""
    step = lambda x: torch.relu(x - 0.5)  # noqa: E731
    mask = _disc(28, 28)
    for angle in (22.5, 45):
        turn = Transformation(angle)
        both_sides = _largest(step(transform_images(turn, digit)), transform_images(turn, step(digit)), step(digit),
                              mask)
        round_trip = _largest(transform_images(turn.inverse, transform_images(turn, step(digit))), step(digit),
                              step(digit), mask)
        assert 0.25 < both_sides < 0.45 and 0.5 < both_sides / round_trip < 2, (angle, both_sides, round_trip)


def test_the_yardstick_is_for_the_groups_own_blending_rotations_only(digit):
    """C16 at 22.5 degrees (its own element, pixels blended): every layer gets a round trip, and the first
    block (after ReLU and pooling) is within it; at a quarter turn and between elements (30 degrees) none."""
    model = untrained_model(CyclicGroup(16))
    own = compare(model, digit, Transformation(22.5))
    assert all(layer.blending > APPROXIMATE for layer in own)
    assert own[1].largest <= own[1].blending and "as close as blended pixels allow" in describe(own[1].largest,
                                                                                                own[1].blending)
    for other in (Transformation(90), Transformation(30)):
        assert all(layer.blending == 0 for layer in compare(model, digit, other)), other
    assert Transformation(30).inverse == Transformation(-30)
    assert Transformation(30, mirrored=True).inverse == Transformation(30, mirrored=True)  # a reflection


def test_what_a_transformation_does_to_the_maps_in_words():
    assert move_words(CyclicGroup(4), Transformation(90)) == "turned by 90° and moved one step round the ring"
    assert move_words(CyclicGroup(16), Transformation(180)) == "turned by 180° and moved 8 steps round the ring"
    assert move_words(CyclicGroup(4), Transformation(45)) == \
        "turned by 45° and moved 0.5 steps round the ring (a blend of two neighbouring maps)"
    assert move_words(DihedralGroup(4), Transformation(270, True)) == \
        "mirrored, turned by 270° and moved 3 steps round the ring, to the other ring"
    assert move_words(CyclicGroup(1), Transformation(90)) == "turned by 90° (a plain CNN has no ring to move round)"


def test_groups_in_words():
    assert [group_label(g) for g in GROUPS] == [
        "C1, no rotations (a plain CNN)", "C4, 4 rotations by 90°", "C8, 8 rotations by 45°",
        "C16, 16 rotations by 22.5°", "D1, a mirror", "D4, 4 rotations by 90° and their mirror images",
        "D8, 8 rotations by 45° and their mirror images"]


def test_ring_layout_puts_elements_in_angle_order_with_the_identity_on_top():
    ring = ring_layout(CyclicGroup(4))
    assert torch.allclose(ring, torch.tensor([[0.0, 1], [-1, 0], [0, -1], [1, 0]], dtype=torch.float64), atol=1e-9)
    dihedral = ring_layout(DihedralGroup(4), inner_radius=0.5)
    radii = dihedral.norm(dim=1)
    assert torch.allclose(radii, torch.tensor([1.0] * 4 + [0.5] * 4, dtype=torch.float64))
    assert torch.allclose(dihedral[4:] * 2, dihedral[:4])  # r^j s sits inside r^j
    assert [element_label(DihedralGroup(4), g) for g in (1, 5)] == ["90°", "90° + mirror"]


def test_strongest_channel_is_the_one_that_varies_along_the_group_axis():
    maps = torch.ones(3, 4, 5, 5)
    maps[1, 2] = 3.0  # channel 1 depends on the group element
    assert strongest_channel(maps) == 1
    flat = torch.ones(3, 1, 5, 5)
    flat[2] = 2.0  # no group axis: the most active channel
    assert strongest_channel(flat) == 2


def test_untrained_model_is_seeded_and_leaves_the_global_random_state_alone():
    before = torch.random.get_rng_state()
    first, second = untrained_model(DihedralGroup(8)), untrained_model(DihedralGroup(8))
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(),
                                                  strict=True))
    assert not first.training
