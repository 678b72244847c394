"""Turn a drawing or an uploaded picture into the 28x28 image the networks see.

Two paths end in the same MNIST-style step, :func:`mnist_preprocess`:

- **Canvas** (transparent RGBA strokes): :func:`ink_from_array` reads the ink
  exactly from the alpha channel.
- **Upload** (photos, scans, screenshots): :func:`preprocess_upload` decodes
  the file and :func:`separate_ink` flattens the paper's lighting, separates
  ink from paper and keeps the digit's connected components, with warnings
  when the picture is unlikely to show one digit.

The MNIST step reproduces how MNIST itself was made (LeCun et al.): crop to
the ink, fit the longer side into 20 pixels (aspect ratio kept, anti-aliased),
and translate by whole pixels so the centre of mass lands on pixel (14, 14)
in row/column index coordinates.  Output: float tensor ``[1, 28, 28]`` in
[0, 1], white digit on black.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.measure import label, regionprops
from torch import Tensor

__all__ = ["ImageInputError", "EmptyImageError", "read_upload", "read_picture", "ink_from_array", "separate_ink",
           "mnist_preprocess", "digit_extent", "upload_ink", "preprocess_upload", "square_thumbnail",
           "UPLOAD_TYPES", "DIGIT_FIT", "FIT_LENGTH", "MNIST_CENTRE", "MAX_UPLOAD_BYTES", "MAX_UPLOAD_PIXELS"]

# For st.file_uploader(type=...): the formats people photograph, scan or screenshot into that PIL reads.
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096

# MNIST's digits fit a 20x20 box and have their centre of mass in [13.5, 14.5) on both axes, uniformly: the
# mean over the 10,000 test digits is (13.99, 14.01).  That is whole-pixel placement of the centre on 14.0;
# placing it on 14.0 exactly (sub-pixel shift) matched the shipped models worse (see tests/test_preprocess.py).
MNIST_BOX = 20
# The length in pixels that each way of measuring a digit (digit_extent) gives an MNIST digit: its box's longer
# side is 20 by construction; its greatest extent in any direction is 22.9 for the median test digit (21.6 for
# the median 1, 24.3 for the median 2 or 5), so that fit scales it to 23.
FIT_LENGTH = {"box": MNIST_BOX, "diameter": 23}
# How the app sizes every digit (see digit_extent).  The box, MNIST's own rule, returns MNIST digits unchanged; the
# greatest extent keeps a digit's size at every angle, but for the shipped models, trained with scale augmentation,
# it changed the answers to pictures turned before upload by about 1 point of 500 (README, "Pictures turned before
# upload"): within the noise, so the app keeps the box.
DIGIT_FIT = "box"
MNIST_CENTRE = 14.0
MIN_INK_PIXELS = 4

# Upload cleaning, in pixels of the working copy (longer side at most WORK_MAX, shorter side at least WORK_MIN).
WORK_MAX = 512
WORK_MIN = 112
PAPER_WINDOW = 0.25  # of the shorter side: wider than any stroke of a digit that fits the picture
MIN_INK_CONTRAST = 0.15  # darkness relative to the paper below which nothing is ink, even if Otsu says so
PART_OF_DIGIT = 0.1  # components this large relative to the digit's main stroke, and near it, belong to the digit
LARGE_BLOB = 0.4  # a distant component this large relative to the main stroke suggests a second object
MIN_DIGIT_SIZE = 0.05  # the digit's longer side, as a fraction of the picture's shorter side
FILLED_BOX = 0.65  # ink area / (longer side)^2 above this is a blob, not strokes (every MNIST test digit is below)

NO_DIGIT_IN_UPLOAD = ("No digit was found in the uploaded image. Upload a photo, scan or screenshot of one dark "
                      "digit on light paper (or a light digit on a dark background), large and in focus.")


class ImageInputError(ValueError):
    """An image cannot be used; the message says why and what to do."""


class EmptyImageError(ImageInputError):
    """The image holds no ink (for example an empty canvas)."""


def _decode(data: bytes, max_side: int | None = None) -> np.ndarray:
    """Pixels of an uploaded file, floats in [0, 1]: ``[H, W]``, ``[H, W, 3]`` or ``[H, W, 4]`` (with alpha).

    ``max_side``: shrink larger pictures to fit a square of that side while
    decoding (JPEG decodes at 1/2, 1/4 or 1/8 scale directly), so a 12-megapixel
    phone photo costs milliseconds instead of seconds.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageInputError(f"The file is {len(data) / 2**20:.1f} MB; please upload an image under "
                              f"{MAX_UPLOAD_BYTES // 2**20} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_UPLOAD_PIXELS:
                raise ImageInputError(f"The image is {image.width}x{image.height} pixels; please upload one with "
                                      f"at most {MAX_UPLOAD_PIXELS:,} pixels (e.g. 4096x4096).")
            image.seek(0)
            if max_side is not None:
                image.draft(image.mode, (max_side, max_side))
            image.load()
    except ImageInputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageInputError("This file is not an image that can be read (try a PNG or JPEG).") from error
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt data
        raise ImageInputError(f"This image is damaged and cannot be read ({error}).") from error
    image = ImageOps.exif_transpose(image)
    if max_side is not None and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BOX)
    return _to_float_array(image)


def read_upload(data: bytes) -> np.ndarray:
    """Decode an uploaded file into ink ``[H, W]`` (float, 0 = background, 1 = ink), without any cleaning.

    Any PIL-readable format and mode works: palette, 16-bit and float
    greyscale, RGBA (transparency is respected), CMYK; animations use their
    first frame.  Dark ink on a light background is inverted.  For the
    networks' input use :func:`preprocess_upload`, which also copes with photos.

    Raises:
        ImageInputError: not an image, corrupt, or too large.
    """
    return read_picture(data)[0]


def read_picture(data: bytes) -> tuple[np.ndarray, bool]:
    """Decode an uploaded picture into ink ``[H, W]`` (as :func:`read_upload`) and whether its ink is dark on a
    light background, so that a page can show the picture, and what it does to the ink, the way round it came.

    Raises:
        ImageInputError: not an image, corrupt, or too large.
    """
    grey, alpha = _grey_and_alpha(_decode(data))
    return _ink(grey, alpha), _dark_ink(grey, alpha)


def _to_float_array(image: Image.Image) -> np.ndarray:
    """Pixels as floats in [0, 1]: ``[H, W]`` for greyscale, ``[H, W, 4]`` with alpha, ``[H, W, 3]`` otherwise."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        span = values.max() - values.min()
        return (values - values.min()) / span if span > 0 else np.zeros_like(values)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    converted = image.convert("RGBA" if has_alpha else "RGB")
    return np.asarray(converted, dtype=np.float64) / 255


def _grey_and_alpha(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Luma ``[H, W]`` and alpha ``[H, W]`` (``None`` without an alpha channel), floats in [0, 1]."""
    pixels = np.asarray(pixels)
    pixels = pixels / 255 if np.issubdtype(pixels.dtype, np.integer) else pixels.astype(np.float64)
    if pixels.ndim == 2:
        return pixels, None
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        grey = pixels[..., :3] @ np.array([0.299, 0.587, 0.114])
        return grey, (pixels[..., 3] if pixels.shape[2] == 4 else None)
    raise ImageInputError(f"Expected a greyscale, RGB or RGBA image, got an array of shape {pixels.shape}.")


def ink_from_array(pixels: np.ndarray) -> np.ndarray:
    """Ink ``[H, W]`` in [0, 1] from greyscale ``[H, W]``, RGB ``[H, W, 3]`` or RGBA ``[H, W, 4]`` pixels.

    Integer arrays are read as 8-bit.  With transparency, ink is the opaque
    part (the canvas draws white strokes on a transparent layer); otherwise
    the brighter of ink and background is decided from the image border.
    """
    return _ink(*_grey_and_alpha(pixels))


def _dark_ink(grey: np.ndarray, alpha: np.ndarray | None) -> bool:
    """Whether the ink is darker than its background: judged on the opaque part with transparency, else from the
    image border (the background's median)."""
    if alpha is not None and alpha.min() < 1:
        opaque = alpha > 0.5
        return bool(opaque.any() and grey[opaque].mean() < 0.5)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return bool(np.median(border) > 0.5)


def _ink(grey: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Ink from luma and alpha (see :func:`ink_from_array`)."""
    ink = 1 - grey if _dark_ink(grey, alpha) else grey
    return alpha * ink if alpha is not None and alpha.min() < 1 else ink


def _resize(grey: np.ndarray, size: list[int], antialias: bool = True) -> np.ndarray:
    """``grey [H, W]`` (float64) resized to ``size`` with bilinear interpolation."""
    return TF.resize(torch.from_numpy(grey)[None], size, antialias=antialias)[0].double().numpy()


def _working_copy(grey: np.ndarray) -> np.ndarray:
    """``grey`` resized so its longer side is at most WORK_MAX and, within that, its shorter side at least WORK_MIN.

    Big photos are cleaned quickly at this size (the digit ends up 20 pixels
    tall anyway); tiny images are enlarged so the smoothing below stays
    small compared with a stroke.
    """
    height, width = grey.shape
    scale = min(WORK_MAX / max(height, width), max(1.0, WORK_MIN / min(height, width)))
    if scale == 1:
        return grey
    return np.clip(_resize(grey, [max(1, round(height * scale)), max(1, round(width * scale))]), 0, 1)


def _ink_is_dark(grey: np.ndarray) -> bool:
    """Whether the ink is darker than the paper (the usual photo), rather than light on a dark background.

    Light ink needs two signs, as neither alone survives real photos: a dark
    border (shadows and gradient lighting also darken it), and more contrast
    above the paper's level than below it after flattening the lighting
    (a median over windows a quarter of the picture wide, on a small copy
    for speed; a thick digit can fill such a window).
    """
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 0.5:
        return True
    small_side = 64
    scale = small_side / min(grey.shape)
    small = _resize(grey, [max(1, round(grey.shape[0] * scale)), max(1, round(grey.shape[1] * scale))])
    paper = _resize(ndimage.median_filter(small, size=small_side // 4 | 1, mode="nearest"), list(grey.shape), False)
    contrast = grey / np.maximum(paper, 1e-3) - 1
    margin = MIN_INK_CONTRAST / 2
    return np.clip(-contrast - margin, 0, None).sum() >= np.clip(contrast - margin, 0, None).sum()


def separate_ink(pixels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Ink of the one digit in a photo, scan or screenshot: ``(ink [h, w] in [0, 1], warnings)``.

    ``pixels``: greyscale ``[H, W]`` or RGB(A) ``[H, W, 3|4]`` (alpha is
    ignored).  ``h, w`` is a working size (longer side at most 512 pixels).
    Steps, each against a way real photos go wrong:

    1. Polarity: light ink on a dark background is inverted (see
       :func:`_ink_is_dark`).
    2. Paper: a grey closing (max then min filter) larger than any stroke
       wipes out the ink and keeps the paper's lighting, which varies slowly:
       gradients, grey paper and soft shadows.  Dividing by it (reflectance =
       brightness / illumination) leaves ink darkness relative to the paper.
    3. Ink: Otsu's threshold on the darkness, but never below
       ``MIN_INK_CONTRAST`` so JPEG noise on blank paper is not ink.
    4. Components (8-connected): the digit's main stroke is the largest one
       that does not touch the border (shadows and the paper's edge do);
       components at least ``PART_OF_DIGIT`` of its size within a quarter of
       its size from it are parts of the digit; specks and distant things
       are dropped.

    Warnings (strings for the page) say when the result is unlikely to be one
    digit: another large blob, or ink that fills its box.

    Raises:
        EmptyImageError: no ink, or nothing larger than a speck.
    """
    grey = _working_copy(_grey_and_alpha(pixels)[0])
    grey = ndimage.gaussian_filter(grey, 1.0)  # JPEG blocks and sensor noise
    if not _ink_is_dark(grey):
        grey = 1 - grey
    side = max(3, int(PAPER_WINDOW * min(grey.shape))) | 1
    paper = ndimage.grey_closing(grey, size=(side, side))
    darkness = np.clip(1 - grey / np.maximum(paper, 1e-3), 0, 1)
    if darkness.max() < MIN_INK_CONTRAST:
        raise EmptyImageError(NO_DIGIT_IN_UPLOAD)
    mask = darkness > max(threshold_otsu(darkness), MIN_INK_CONTRAST)
    labels = label(mask, connectivity=2)
    regions = regionprops(labels)
    if not regions:  # a uniform picture: all of it as dark as the darkest "ink", so nothing stands out
        raise EmptyImageError(NO_DIGIT_IN_UPLOAD)
    height, width = mask.shape

    def touches_border(region) -> bool:
        top, left, bottom, right = region.bbox
        return top == 0 or left == 0 or bottom == height or right == width

    inside = [region for region in regions if not touches_border(region)]
    main = max(inside or regions, key=lambda region: region.area)
    top, left, bottom, right = main.bbox
    if max(bottom - top, right - left) < MIN_DIGIT_SIZE * min(height, width):
        raise EmptyImageError(NO_DIGIT_IN_UPLOAD)
    reach = max(bottom - top, right - left) // 4
    kept, others = [main.label], []
    for region in inside if inside else regions:
        if region.label == main.label or region.area < PART_OF_DIGIT * main.area:
            continue
        r_top, r_left, r_bottom, r_right = region.bbox
        if r_top < bottom + reach and r_bottom > top - reach and r_left < right + reach and r_right > left - reach:
            kept.append(region.label)  # a stroke of the digit drawn apart (the bar of a 5) or broken by the pen
        elif region.area >= LARGE_BLOB * main.area:
            others.append(region)
    digit = np.isin(labels, kept)
    warnings_ = []
    if others:
        warnings_.append(f"The picture shows {len(others) + 1} large separate shapes; the models read only the "
                         "largest. Upload one digit per picture.")
    rows, cols = np.nonzero(digit)
    longer = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
    if digit.sum() > FILLED_BOX * longer**2:
        warnings_.append("The ink fills most of its box, which a handwritten digit does not: this may be a solid "
                         "shape, a dark patch or a shadow rather than a digit.")
    # Keep the strokes' anti-aliased rims, and put the paper's residual tone at exactly 0.
    rims = ndimage.binary_dilation(digit, iterations=2)
    paper_tone = float(np.median(darkness[~rims])) if (~rims).any() else 0.0
    ink_tone = float(np.quantile(darkness[digit], 0.9))
    ink = np.clip((darkness - paper_tone) / max(ink_tone - paper_tone, 1e-3), 0, 1) * rims
    return ink, warnings_


def upload_ink(data: bytes) -> tuple[np.ndarray, list[str]]:
    """An uploaded file's ink ``[H, W]`` (0 off the digit) and warnings for the user (possibly none).

    A picture with transparency is read as a drawing (ink = opaque part,
    exactly as the canvas); any other goes through :func:`separate_ink`.

    Raises:
        ImageInputError: not an image, corrupt, or too large.
    """
    pixels = _decode(data, max_side=WORK_MAX)
    _, alpha = _grey_and_alpha(pixels)
    if alpha is not None and alpha.min() < 1:
        return ink_from_array(pixels), []
    return separate_ink(pixels)


def preprocess_upload(data: bytes, fit: str = DIGIT_FIT) -> tuple[Tensor, list[str]]:
    """An uploaded file as the networks' input ``[1, 28, 28]``, and warnings for the user (possibly none):
    :func:`upload_ink`, then :func:`mnist_preprocess` (``fit``: how the digit is sized).

    Raises:
        ImageInputError: not an image, corrupt, or too large.
        EmptyImageError: no digit found (the message fits an upload).
    """
    ink, warnings_ = upload_ink(data)
    try:
        return mnist_preprocess(ink, fit), warnings_
    except EmptyImageError as error:
        raise EmptyImageError(NO_DIGIT_IN_UPLOAD) from error


def square_thumbnail(ink: np.ndarray, size: int = 64) -> Tensor:
    """Pad ``ink [H, W]`` to a square with zeros (centred) and resize it to ``[size, size]``."""
    ink = torch.from_numpy(np.asarray(ink, dtype=np.float32))
    height, width = ink.shape
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    square = torch.zeros(side, side)
    square[top:top + height, left:left + width] = ink
    return TF.resize(square[None], [size, size], antialias=True)[0].clamp(0, 1)


def digit_extent(ink: np.ndarray, fit: str = "box") -> float:
    """The length, in pixels of ``ink``, that :func:`mnist_preprocess` scales to :data:`FIT_LENGTH` ``[fit]``.

    ``"box"`` (MNIST's rule): the longer side of the ink's bounding box.  It
    changes when the digit turns: a 1 turned by 45 degrees has a box about
    0.7 times as long, so it comes out larger than upright (over 12 turns of
    MNIST digits, the longest box is 1.12x the shortest for the median
    digit).  ``"diameter"``: the digit's greatest extent in any direction
    (its maximum Feret diameter, from the convex hull of the ink), which a
    turn leaves alone (1.006x), so a picture turned before upload reaches the
    model at the size of the same picture turned after preprocessing.
    :func:`mnist_preprocess` scales it to :data:`FIT_LENGTH` ``["diameter"]``
    (23 px), the median MNIST digit's, so upright digits keep MNIST's size
    within the presets' scale augmentation.
    """
    mask = np.asarray(ink) > 0
    rows, cols = np.nonzero(mask)
    box = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
    if fit == "box":
        return float(box)
    if fit == "diameter":
        # regionprops measures between pixel centres on the hull: + 1 counts the end pixels, as the box does.
        return float(max(regionprops(mask.astype(np.uint8))[0].feret_diameter_max + 1, box))
    raise ValueError(f"fit must be 'box' or 'diameter', got {fit!r}")


def mnist_preprocess(ink: np.ndarray, fit: str = DIGIT_FIT) -> Tensor:
    """Crop to the ink, fit into 20x20, centre of mass on pixel (14, 14): ``[1, 28, 28]`` float in [0, 1].

    ``ink [H, W]`` must be exactly 0 off the digit (every non-zero pixel is
    cropped to): true of the canvas; photos go through :func:`separate_ink`
    first.  ``fit`` picks how the digit is measured (:func:`digit_extent`)
    and scaled (:data:`FIT_LENGTH`): with ``"box"`` (20 pixels) an MNIST
    digit passed through comes back unchanged.

    Raises:
        EmptyImageError: there is (almost) no ink.
    """
    ink = np.clip(np.asarray(ink, dtype=np.float64), 0, 1)
    rows, cols = np.nonzero(ink)
    if len(rows) < MIN_INK_PIXELS:
        raise EmptyImageError("The image is empty: draw a digit first.")
    cropped = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    extent = digit_extent(cropped, fit)  # the crop has the ink's box and hull; checks fit
    scale = FIT_LENGTH[fit] / extent
    crop = torch.from_numpy(cropped).float()
    size = [max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))]
    digit = TF.resize(crop[None], size, antialias=True).clamp(0, 1)[0]
    digit = digit / digit.max()  # full contrast, as in MNIST
    height, width = digit.shape
    ys, xs = torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64)
    mass = digit.double().sum()
    centre_y = float((digit.double().sum(1) * ys).sum() / mass)
    centre_x = float((digit.double().sum(0) * xs).sum() / mass)
    # Whole-pixel placement, as MNIST: no resampling blur, centre of mass within half a pixel of 14.
    top = int(np.clip(round(MNIST_CENTRE - centre_y), 0, 28 - height))
    left = int(np.clip(round(MNIST_CENTRE - centre_x), 0, 28 - width))
    field = torch.zeros(1, 28, 28)
    field[0, top:top + height, left:left + width] = digit
    return field
