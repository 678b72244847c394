"""Drawings and uploads become MNIST-style 28x28 images; bad uploads get clear messages."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from gcnn.app.preprocess import (
    MAX_UPLOAD_BYTES,
    EmptyImageError,
    ImageInputError,
    ink_from_array,
    mnist_preprocess,
    read_upload,
    square_thumbnail,
)


def drawn_digit(size=(200, 280), ink=255, background=0) -> Image.Image:
    image = Image.new("L", size, background)
    ImageDraw.Draw(image).line([(60, 40), (150, 40), (90, 230)], fill=ink, width=18)
    return image


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def test_mnist_preprocess_fits_20x20_and_centres_mass():
    out = mnist_preprocess(np.asarray(drawn_digit()) / 255)
    assert out.shape == (1, 28, 28) and out.dtype == torch.float32
    assert out.max() == pytest.approx(1.0) and out.min() >= 0
    rows, cols = torch.nonzero(out[0] > 0.1, as_tuple=True)
    assert rows.max() - rows.min() + 1 <= 21 and cols.max() - cols.min() + 1 <= 21
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 >= 19  # longer side ~20 pixels
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = out[0].sum()
    assert abs((out[0] * ys).sum() / mass - 13.5) < 1 and abs((out[0] * xs).sum() / mass - 13.5) < 1


def test_empty_canvas_is_refused():
    with pytest.raises(EmptyImageError, match="empty"):
        mnist_preprocess(np.zeros((280, 280)))
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)  # what an untouched canvas sends
    with pytest.raises(EmptyImageError):
        mnist_preprocess(ink_from_array(canvas))


def test_canvas_rgba_white_strokes_on_transparent_layer():
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)
    stroke = np.asarray(drawn_digit((280, 280))) > 0
    canvas[stroke] = [255, 255, 255, 255]
    ink = ink_from_array(canvas)
    assert ink[stroke].min() == pytest.approx(1) and ink[~stroke].max() == 0


def test_dark_ink_on_white_is_inverted_and_matches():
    white_on_black = read_upload(encode(drawn_digit()))
    black_on_white = read_upload(encode(drawn_digit(ink=0, background=255)))
    assert np.allclose(white_on_black, black_on_white)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "LA", "I;16", "I", "F", "1", "CMYK"])
def test_odd_modes_give_the_same_digit(mode):
    reference = mnist_preprocess(read_upload(encode(drawn_digit())))
    image = drawn_digit()
    if mode == "I;16":
        converted = Image.fromarray(np.asarray(image, dtype=np.uint16) * 257)
    else:
        converted = image.convert(mode)
    fmt = "TIFF" if mode in ("I", "F", "CMYK") else "PNG"
    out = mnist_preprocess(read_upload(encode(converted, fmt)))
    assert (out - reference).abs().max() < 0.05, mode


def test_transparent_png_with_dark_ink():
    image = Image.new("RGBA", (200, 280), (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(60, 40), (150, 40), (90, 230)], fill=(0, 0, 0, 255), width=18)
    reference = mnist_preprocess(read_upload(encode(drawn_digit())))
    assert (mnist_preprocess(read_upload(encode(image))) - reference).abs().max() < 0.05


def test_not_an_image():
    with pytest.raises(ImageInputError, match="not an image"):
        read_upload(b"%PDF-1.4 this is a pdf")


def test_corrupt_image():
    data = encode(drawn_digit())
    with pytest.raises(ImageInputError, match="damaged|not an image"):
        read_upload(data[: len(data) // 2])


def test_huge_file_and_huge_dimensions():
    with pytest.raises(ImageInputError, match="under 10 MB"):
        read_upload(b"\0" * (MAX_UPLOAD_BYTES + 1))
    with pytest.raises(ImageInputError, match="at most"):
        read_upload(encode(Image.new("1", (5000, 5000))))


def test_square_thumbnail_pads_and_resizes():
    thumb = square_thumbnail(np.ones((10, 40)), 32)
    assert thumb.shape == (32, 32)
    assert thumb[0].max() == 0 and thumb[16].min() > 0.9  # padded above, content in the middle
