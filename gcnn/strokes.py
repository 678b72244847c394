"""Digits redrawn with a round pen along their centre lines: training data that looks drawn, not written.

MNIST digits were written with pens of varying pressure and scanned: their strokes swell and thin, and their
ends are ragged.  The app's canvas draws with a round pen of one width: uniform strokes with round ends and
joins.  A network trained on MNIST alone reads such redrawings worse than the digits they came from (the README's
robustness table: upright, ``gcnn_best`` trained without them lost 1.8-2.4 points to its pen rows, the plain
CNN 0.6-1.0; most of ``gcnn_best``'s loss is 6s read as 9, which one epoch of redrawn training digits barely
helped, so the presets leave it off: see the README's Augmentation).  The augmentation's ``pen`` option
(:mod:`gcnn.augment`) redraws a share of the training digits so:

1. once, before training (:func:`centre_line_distances`): each digit at twice the resolution, thresholded
   at half its ink, thinned to its one-pixel centre line (scikit-image's ``skeletonize``), and every pixel's
   Euclidean distance to that line (scipy's ``distance_transform_edt``), kept as ``uint8``;
2. per batch, on the device (:func:`draw_with_pen`): ink wherever that distance is within half the pen's
   width, with a one-pixel soft rim, averaged back down to 28x28.

Thinning is sequential, per-image work that a library does well and a batched tensor program would only
imitate, while drawing from the distances is one elementwise expression and a pooling: so the first step runs
on the host once and the second inside the training step.  Skeletons are computed at twice MNIST's resolution
(where the 55,000 training digits take 6 s) rather than the 280x280 canvas that
:mod:`gcnn.app.robustness` redraws its test variant on, so training does not copy the measurement.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .extras import require

__all__ = ["UPSCALE", "DISTANCE_STEPS", "centre_line_distances", "draw_with_pen"]

UPSCALE = 2  # centre lines are traced and redrawn at this multiple of the images' resolution
DISTANCE_STEPS = 16  # the stored distances' unit: 1/16 of an up-scaled pixel (uint8 reaches 15.9 of them)
_FAR = 255  # no centre line within reach (or none at all): never inked


def centre_line_distances(images: Tensor) -> Tensor:
    """Every pixel's distance to its digit's centre line, at :data:`UPSCALE` times the resolution.

    Args:
        images: ``[N, 1, H, W]`` in [0, 1], white digit on black (any device; the work happens on the host).

    Returns:
        ``uint8 [N, 1, UPSCALE * H, UPSCALE * W]`` on ``images``' device, in units of ``1 / DISTANCE_STEPS``
        up-scaled pixels, capped at 255.  A digit too faint to trace (no pixel at half ink) is 255 everywhere,
        and :func:`draw_with_pen` leaves it blank; :class:`gcnn.augment.Augmentation` then keeps the original.
    """
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"expected images [N, 1, H, W], got shape {tuple(images.shape)}")
    purpose = "tracing digits' centre lines (the augmentation's pen)"
    np = require("numpy", "train", purpose)
    skeletonize = require("skimage.morphology", "train", purpose).skeletonize
    ndimage = require("scipy.ndimage", "train", purpose)
    big = F.interpolate(images.detach().float().cpu(), scale_factor=UPSCALE, mode="bilinear",
                        align_corners=False)[:, 0].numpy() > 0.5
    result = np.full(big.shape, _FAR, dtype=np.uint8)
    for index, ink in enumerate(big):
        line = skeletonize(ink)
        if line.any():
            distance = ndimage.distance_transform_edt(~line) * DISTANCE_STEPS
            result[index] = np.minimum(np.rint(distance), _FAR)
    return torch.from_numpy(result)[:, None].to(images.device)


def draw_with_pen(distances: Tensor, widths: Tensor) -> Tensor:
    """Digits drawn with a round pen along their centre lines.

    Args:
        distances: from :func:`centre_line_distances`, ``uint8 [N, 1, UPSCALE * H, UPSCALE * W]``.
        widths: ``[N]``, each digit's pen width in pixels of the ``H x W`` images (floating point; the output
            takes its dtype and device).

    Returns:
        ``[N, 1, H, W]`` in [0, 1]: 1 within ``width / 2`` of the centre line, falling to 0 over the next
        up-scaled pixel (the anti-aliased rim a canvas draws), then averaged over each ``UPSCALE x UPSCALE``
        block.
    """
    radius = (widths * UPSCALE / 2)[:, None, None, None]  # in up-scaled pixels
    distance = distances.to(widths.dtype) / DISTANCE_STEPS
    ink = (radius + 0.5 - distance).clamp_(0, 1)
    return F.avg_pool2d(ink, UPSCALE)
