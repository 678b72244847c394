"""Rotation-free augmentation: each transform does what it says, stays in range, is seeded, never rotates; the
pen's redrawing along the digits' centre lines (gcnn.strokes)."""

import math

import pytest
import torch

from gcnn.augment import (
    PEN_WIDTHS,
    ROTATION_CENTRES,
    Augmentation,
    dilate,
    down_up,
    erode,
    gaussian_blur,
    random_rotations,
    rotate_batch,
    warp,
)
from gcnn.data import rotate
from gcnn.strokes import UPSCALE, centre_line_distances, draw_with_pen


def centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    """``[N, 2]`` (x, y) in pixels."""
    height, width = images.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(height, dtype=images.dtype), torch.arange(width, dtype=images.dtype),
                            indexing="ij")
    mass = images.sum(dim=(1, 2, 3))
    return torch.stack([(images * xs).sum(dim=(1, 2, 3)) / mass, (images * ys).sum(dim=(1, 2, 3)) / mass], 1)


def principal_axis_degrees(images: torch.Tensor) -> torch.Tensor:
    """Orientation in [0, 180) of each image's long axis, from its second moments (y pointing up)."""
    height, width = images.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(height, dtype=images.dtype), torch.arange(width, dtype=images.dtype),
                            indexing="ij")
    centre = centre_of_mass(images)
    dx = xs - centre[:, 0, None, None, None]
    dy = -(ys - centre[:, 1, None, None, None])
    mass = images.sum(dim=(1, 2, 3))
    mxx, myy = (images * dx * dx).sum(dim=(1, 2, 3)) / mass, (images * dy * dy).sum(dim=(1, 2, 3)) / mass
    mxy = (images * dx * dy).sum(dim=(1, 2, 3)) / mass
    return torch.rad2deg(0.5 * torch.atan2(2 * mxy, mxx - myy)) % 180


def ellipse(angle: float, count: int = 1) -> torch.Tensor:
    """A soft elongated blob (semi-axes 9 and 2.5 px) at ``angle`` degrees, counter-clockwise from the x axis."""
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    u, v = xs - 13.5, -(ys - 13.5)
    a = math.radians(angle)
    along, across = u * math.cos(a) + v * math.sin(a), -u * math.sin(a) + v * math.cos(a)
    blob = torch.sigmoid(4 * (1 - (along / 9) ** 2 - (across / 2.5) ** 2))
    return blob.expand(count, 1, 28, 28).clone()


def digits(count: int = 64, seed: int = 0) -> torch.Tensor:
    """Random stroke-like images: a few thick line segments each, in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    images = torch.zeros(count, 1, 28, 28)
    for _ in range(3):
        p, q = 6 + 16 * torch.rand(2, count, 2, generator=generator)
        d = q - p
        t = (((xs - p[:, 0, None, None]) * d[:, 0, None, None] + (ys - p[:, 1, None, None]) * d[:, 1, None, None])
             / (d**2).sum(1)[:, None, None]).clamp(0, 1)
        dist = torch.hypot(xs - p[:, 0, None, None] - t * d[:, 0, None, None],
                           ys - p[:, 1, None, None] - t * d[:, 1, None, None])
        images[:, 0] = torch.maximum(images[:, 0], (1.5 - dist).clamp(0, 1))
    return images


@pytest.mark.parametrize("dx, dy", [(1, 0), (0, 1), (-1, -1), (0.5, -1.5)])
def test_shift_moves_the_centre_of_mass_by_that_many_pixels(dx, dy):
    images = digits(16)
    moved = warp(images, torch.ones(16), torch.tensor([[float(dx), float(dy)]] * 16))
    expected = torch.tensor([dx, dy], dtype=torch.float32)
    assert torch.allclose(centre_of_mass(moved) - centre_of_mass(images), expected, atol=1e-3)
    if float(dx).is_integer() and float(dy).is_integer():  # whole pixels: a pure roll of the content
        assert torch.allclose(moved, torch.roll(images, (int(dy), int(dx)), dims=(-2, -1)), atol=1e-5)


def test_zoom_scales_the_spread_about_the_centre():
    blob = ellipse(0.0)
    for zoom in (0.85, 1.15):
        scaled = warp(blob, torch.tensor([zoom]), torch.zeros(1, 2))
        spread = lambda x: ((x * (torch.arange(28.0) - 13.5) ** 2).sum() / x.sum()).sqrt()  # noqa: E731
        assert spread(scaled) / spread(blob) == pytest.approx(zoom, rel=0.02)
        assert torch.allclose(centre_of_mass(scaled), centre_of_mass(blob), atol=1e-3)


def test_displacement_field_is_read_in_pixels():
    """A constant field of (+1, 0) reads one pixel to the right: the content moves one pixel left."""
    images = digits(4)
    field = torch.zeros(4, 2, 28, 28)
    field[:, 0] = 1
    assert torch.allclose(warp(images, torch.ones(4), torch.zeros(4, 2), field),
                          torch.roll(images, -1, dims=-1), atol=1e-5)


def test_dilation_adds_ink_and_erosion_removes_it():
    images = digits(32)
    ink = images.sum(dim=(1, 2, 3))
    assert (dilate(images).sum(dim=(1, 2, 3)) > 1.3 * ink).all()
    assert (erode(images).sum(dim=(1, 2, 3)) < 0.7 * ink).all()
    assert (erode(dilate(images)) >= images - 1e-6).all()  # closing never removes ink
    dot = torch.zeros(1, 1, 28, 28)
    dot[0, 0, 10, 10] = 1
    assert dilate(dot).sum() == 5 and erode(dot).sum() == 0  # the cross: the pixel and its 4 neighbours
    assert dilate(dot)[0, 0, 9:12, 9:12].tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]


def test_blur_keeps_ink_and_lowers_the_peaks():
    images = digits(8)
    sigma = torch.tensor([0.0, 0.5, 0.8, 1.0, 0.0, 0.3, 0.6, 0.9])
    blurred = gaussian_blur(images, sigma)
    assert torch.allclose(blurred[sigma == 0], images[sigma == 0], atol=1e-6)
    assert torch.allclose(blurred.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)), rtol=1e-4)  # ink far from edges
    # neighbouring pixels differ less: the image is smoother the larger sigma
    roughness = (blurred.diff(dim=-1) ** 2).sum(dim=(1, 2, 3))
    assert (roughness[sigma > 0] < (images.diff(dim=-1) ** 2).sum(dim=(1, 2, 3))[sigma > 0]).all()
    assert roughness[3] < roughness[1]


def test_low_resolution_loses_detail_more_the_smaller():
    images = digits(16)
    errors = [(down_up(images, size) - images).abs().mean().item() for size in (20, 14, 10)]
    assert 0 < errors[0] < errors[1] < errors[2]
    assert down_up(images, 10).shape == images.shape


def test_augmentation_shapes_ranges_and_seeding():
    augment = Augmentation()
    images = digits(64)
    first = augment(images, torch.Generator().manual_seed(3))
    again = augment(images, torch.Generator().manual_seed(3))
    other = augment(images, torch.Generator().manual_seed(4))
    assert first.shape == images.shape and first.dtype == images.dtype
    assert first.min() >= 0 and first.max() <= 1
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.equal(images, digits(64))
    # every image changed, each differently
    assert ((first - images).abs().amax(dim=(1, 2, 3)) > 0.05).all()
    # the digit stays recognisably where it was: centres move by at most the shift, scale and field allow
    moved = (centre_of_mass(first) - centre_of_mass(images)).abs()
    assert moved.max() < 4.5 and moved.mean() > 0.3


def test_augmentation_off_is_the_identity():
    off = Augmentation(translate=0, scale=(1, 1), elastic=0, thickness=0, low_resolution=0, blur=0)
    images = digits(8)
    assert torch.equal(off(images, torch.Generator().manual_seed(0)), images)


def test_augmentation_never_rotates():
    """The long axis of an elongated blob keeps its direction (the GCNNs see upright digits only): exactly up to
    resampling without the elastic field, within the few degrees a smooth 1-pixel field can shear it with."""
    for angle in (0.0, 30.0, 100.0):
        blobs = ellipse(angle, 256)
        for augment, mean, most in ((Augmentation(elastic=0), 0.5, 1.5), (Augmentation(), 4.0, 12.0)):
            turn = (principal_axis_degrees(augment(blobs, torch.Generator().manual_seed(1))) - angle + 90) % 180 - 90
            assert turn.abs().mean() < mean and turn.abs().max() < most
            assert abs(turn.mean()) < mean / 2  # no systematic turn either way
    # while random_rotations does spread it over the half circle
    turned = principal_axis_degrees(random_rotations(ellipse(0.0, 256), torch.Generator().manual_seed(1)))
    assert turned.std() > 40


def test_rotate_batch_turns_counter_clockwise_like_the_test_protocol():
    images = digits(4)
    assert torch.allclose(rotate_batch(images, torch.full((4,), 90.0)), torch.rot90(images, 1, dims=(-2, -1)),
                          atol=1e-5)
    angles = torch.tensor([10.0, 45.0, 200.0, 300.0])
    # the same convention as gcnn.data.rotate (torchvision), up to interpolation detail
    assert (rotate_batch(images, angles) - rotate(images, angles)).abs().mean() < 0.01


def test_turns_about_the_mass_centre_leave_the_ink_where_mnist_puts_it():
    """A blob centred at (14, 14), MNIST's centre of mass: turned about the image centre its ink moves (a half turn
    puts it at (13, 13), a pixel up-left), turned about ROTATION_CENTRES["mass"] it stays, at every angle."""
    grid = torch.arange(28.0)
    blob = torch.exp(-((grid[None, :] - 14) ** 2 + (grid[:, None] - 14) ** 2) / 8)[None, None].repeat(6, 1, 1, 1)
    angles = torch.tensor([0.0, 30.0, 90.0, 135.0, 180.0, 270.0])
    about_image = centre_of_mass(rotate_batch(blob, angles))
    assert torch.allclose(about_image[4], torch.tensor([13.0, 13.0]), atol=0.02)
    about_mass = centre_of_mass(rotate_batch(blob, angles, ROTATION_CENTRES["mass"]))
    assert torch.allclose(about_mass, torch.full_like(about_mass, 14.0), atol=0.02)
    turned = random_rotations(blob, torch.Generator().manual_seed(0), ROTATION_CENTRES["mass"])
    assert torch.allclose(centre_of_mass(turned), torch.full((6, 2), 14.0), atol=0.02)


@pytest.mark.parametrize("bad, message", [
    ({"scale": [1.2, 0.8]}, "scale"), ({"thickness": 2}, "probability"), ({"translate": -1}, "translate"),
    ({"rotation": 1}, "unknown augmentation settings"), ([1, 2], "dict of strengths"),
    ({"blur": float("nan")}, "blur must be a finite number"), ({"elastic": "1"}, "elastic must be a number"),
    ({"scale": 5}, "scale must be"), ({"scale": [0.9, float("inf")]}, "scale must be"),
])
def test_bad_strengths_are_refused_clearly(bad, message):
    with pytest.raises(ValueError, match=message):
        Augmentation.from_dict(bad)


def test_strengths_round_trip_through_json_dicts():
    augment = Augmentation(translate=1.5, scale=(0.9, 1.1))
    assert Augmentation.from_dict(augment.to_dict()) == augment
    assert augment.to_dict()["scale"] == [0.9, 1.1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augmentation_runs_on_cuda_with_a_cuda_generator():
    images = digits(32).cuda()
    out = Augmentation()(images, torch.Generator(device="cuda").manual_seed(0))
    again = Augmentation()(images, torch.Generator(device="cuda").manual_seed(0))
    assert out.device == images.device and torch.equal(out, again)


def bar(thickness: int) -> torch.Tensor:
    """A horizontal bar ``thickness`` pixels thick and 16 long, centred on row 14: ``[1, 1, 28, 28]``."""
    image = torch.zeros(1, 1, 28, 28)
    top = 14 - thickness // 2
    image[..., top:top + thickness, 6:22] = 1.0
    return image


@pytest.mark.parametrize("width", [1.0, 2.0, 3.0])
def test_a_bar_redrawn_has_the_pen_width_whatever_its_own(width):
    """Ink per column across the bar's middle equals the pen's width (to the soft rim's quarter pixel), for a
    thin and a thick original alike: the stroke's width comes from the pen, not from the scan."""
    for thickness in (2, 5):
        drawn = draw_with_pen(centre_line_distances(bar(thickness)), torch.tensor([width]))
        across = drawn[0, 0, :, 10:18].sum(0)  # columns away from the round ends
        assert torch.allclose(across, torch.full_like(across, width), atol=0.3), (thickness, across)
        assert drawn.min() >= 0 and drawn.max() <= 1


def test_centre_lines_are_stored_up_scaled_and_a_blank_image_is_never_inked():
    images = torch.cat([bar(3), torch.zeros(1, 1, 28, 28)])
    distances = centre_line_distances(images)
    assert distances.shape == (2, 1, 28 * UPSCALE, 28 * UPSCALE) and distances.dtype == torch.uint8
    # the traced line: the bar's length, less about its thickness where thinning pulls the ends in
    assert (16 - 3) * UPSCALE <= (distances[0] == 0).sum() <= 16 * UPSCALE
    assert (distances[1] == 255).all()
    assert draw_with_pen(distances, torch.tensor([2.0, 3.5]))[1].eq(0).all()
    with pytest.raises(ValueError, match=r"\[N, 1, H, W\]"):
        centre_line_distances(torch.zeros(2, 28, 28))


def test_pen_redraws_every_chosen_digit_and_keeps_what_cannot_be_traced():
    images = torch.cat([digits(15), torch.zeros(1, 1, 28, 28)])
    images[-1, 0, 10, 10] = 0.3  # too faint to trace: kept as it is
    lines = centre_line_distances(images)
    pen_only = Augmentation(translate=0, scale=(1, 1), elastic=0, thickness=0, low_resolution=0, blur=0, pen=1.0)
    out = pen_only(images, torch.Generator().manual_seed(0), lines)
    assert torch.equal(out[-1], images[-1])
    redrawn = out[:-1]
    assert not torch.equal(redrawn, images[:-1]) and redrawn.min() >= 0 and redrawn.max() <= 1
    # each digit drawn with one pen, of a width in PEN_WIDTHS: found by bisection on the ink's mass (which grows
    # with the width), that width's drawing is the output
    widths = []
    for image, line in zip(redrawn, lines[:-1], strict=True):
        low, high = 0.5, 5.0
        for _ in range(40):
            middle = (low + high) / 2
            low, high = (middle, high) if draw_with_pen(line[None], torch.tensor([middle])).sum() < image.sum() \
                else (low, middle)
        assert torch.allclose(draw_with_pen(line[None], torch.tensor([low]))[0], image, atol=1e-4)
        widths.append(low)
    assert PEN_WIDTHS[0] - 1e-4 <= min(widths) and max(widths) <= PEN_WIDTHS[1] + 1e-4, widths
    assert torch.tensor(widths).std() > 0.3  # a width per digit, not one for all
    # seeded like every transform; pen 0.5 redraws about half
    again = pen_only(images, torch.Generator().manual_seed(0), lines)
    assert torch.equal(out, again)
    half = Augmentation(translate=0, scale=(1, 1), elastic=0, thickness=0, low_resolution=0, blur=0, pen=0.5)
    many = torch.cat([images[:-1]] * 8)
    changed = (half(many, torch.Generator().manual_seed(1), torch.cat([lines[:-1]] * 8)) != many).flatten(1).any(1)
    assert 0.3 < changed.float().mean() < 0.7


def test_pen_off_draws_no_random_numbers_and_pen_on_needs_the_centre_lines():
    """pen = 0 (the default) leaves the generator where it was, so the presets trained before the option existed
    draw exactly what they drew; pen > 0 without the centre lines says what to compute."""
    images, generator = digits(4), torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert Augmentation().redraw_with_pen(images, generator, None) is images
    assert torch.equal(generator.get_state(), state)
    with pytest.raises(ValueError, match="centre_line_distances"):
        Augmentation(pen=0.5)(images, generator)
    with pytest.raises(ValueError, match="probability"):
        Augmentation.from_dict({"pen": 1.5})
