"""The ring pictures of the Feature maps page: where the maps and labels go, and their colours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import ImageColor

from gcnn.app.ring_picture import MIRRORED_FRAME, RingLayout, ring_picture
from gcnn.groups import CyclicGroup, DihedralGroup

GROUPS = [CyclicGroup(1), CyclicGroup(4), CyclicGroup(8), CyclicGroup(16), DihedralGroup(1), DihedralGroup(4),
          DihedralGroup(8)]


@pytest.mark.parametrize("size", [280, 360])
@pytest.mark.parametrize("group", GROUPS, ids=repr)
def test_labels_overlap_nothing(group, size):
    """No label covers a map, the centre, another label, or runs off the picture (the D4 demo's once did)."""
    layout = RingLayout.of(group, size)
    assert layout.overlaps() == []
    assert len(layout.maps) == group.order
    assert all(0 <= box[0] < box[2] <= layout.width and 0 <= box[1] < box[3] <= layout.height
               for box in [*layout.maps, layout.centre])


def test_every_rotation_is_labelled_in_small_groups_and_quarter_turns_in_large_ones():
    assert [text for text, _ in RingLayout.of(DihedralGroup(4)).labels] == ["0°", "90°", "180°", "270°"]
    assert [text for text, _ in RingLayout.of(CyclicGroup(16)).labels] == ["0°", "90°", "180°", "270°"]
    assert len(RingLayout.of(CyclicGroup(8)).labels) == 8


def test_the_identity_sits_on_top_and_turns_go_counter_clockwise():
    layout = RingLayout.of(CyclicGroup(4))
    centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in layout.maps]
    top, left, bottom, right = centres
    assert top[1] < left[1] < bottom[1] and left[0] < top[0] < right[0]


def test_colours_and_the_mirrored_ring():
    group = DihedralGroup(4)
    layout = RingLayout.of(group)
    maps = torch.zeros(group.order, 6, 6)
    maps[1] = 2.0  # one map at +limit
    digit = torch.zeros(28, 28)
    digit[10:18, 10:18] = 1.0
    picture = ring_picture(maps, layout, limit=2.0, centre=digit)
    assert picture.shape == (layout.height, layout.width, 3) and layout.height > layout.width  # a line underneath

    def middle(box) -> np.ndarray:
        return picture[(box[1] + box[3]) // 2, (box[0] + box[2]) // 2]

    assert (middle(layout.maps[0]) >= 245).all()  # zero is (the colour scale's) white
    red, green, blue = middle(layout.maps[1])
    assert red > 80 and red > 3 * green and red > 3 * blue  # +limit is dark red
    assert (middle(layout.centre) == 255).all()  # the digit's ink, white on black
    mirrored = layout.maps[group.rotation_order]  # the first element of the inner ring
    assert tuple(picture[mirrored[1] - 1, (mirrored[0] + mirrored[2]) // 2]) == ImageColor.getrgb(MIRRORED_FRAME)
