"""Accuracy off MNIST: variants of the MNIST test set, and one-pixel shifts.

``python -m gcnn.app.robustness`` evaluates every shipped model on variants
of a seeded subset of the MNIST test set, built here from the test digits:

- ``original``, and ``recentred`` (through the canvas preprocessing,
  :func:`gcnn.app.preprocess.mnist_preprocess`);
- ``low_res_14``, ``low_res_8``: down-sampled to 14x14 or 8x8, then fitted
  back to 20x20 as an upload of that picture would be;
- ``blur``: Gaussian blur, sigma 1 pixel (an out-of-focus camera);
- ``thin``, ``thick``: strokes eroded by half a pixel or dilated by one on each side,
  then preprocessed as the canvas is;
- ``pen_10``, ``pen_20``, ``pen_30``: the digit redrawn on a 280x280 canvas
  as strokes of a round pen that many pixels wide (the app's pen is 20),
  along the digit's skeleton, then preprocessed as the canvas is;
- ``photo``: a photo-like JPEG (:mod:`gcnn.app.photo`) sent through the
  upload path (:func:`gcnn.app.preprocess.preprocess_upload`).

Each variant is evaluated upright and turned by each of ``--angles`` (the
turn is applied to the 28x28 result, as the app's slider does); ``worst`` is
the minimum over the angles.  Separately, each model's accuracy on the
original digits moved by one pixel in each of the 8 directions shows how
much it depends on the exact position (issue: centring).  ``--mistakes N``
adds, per variant and model, the N most frequent upright misreadings (true
class -> answer): which digits a variant costs a model; ``--apart 6,9`` splits
each variant's upright accuracy into those classes and the rest (a
rotation-invariant model can tell a 6 from a 9 only by handwriting detail).
``--parts`` runs only some of the three measurements (variants, shifts,
turned uploads): on all 10,000 digits the turned uploads take the longest.

Only torch, torchvision, numpy, scipy, scikit-image and Pillow are needed
(no Streamlit or Plotly), so it runs on a bare GPU machine::

    python -m gcnn.app.robustness --images 500 --markdown [--mistakes 3]
    python -m gcnn.app.robustness --images 10000 --device cuda --out models/robustness.json
    python -m gcnn.app.robustness --images 10000 --parts variants --angles 45 --apart 6,9
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from scipy import ndimage
from skimage.morphology import disk, skeletonize
from torch import Tensor, nn

from .. import cli
from ..checkpoint import write_json
from ..data import DatasetMissingError, load_mnist, rotate
from ..evaluate import accuracy, curve_subset, predict_logits
from ..shipped import load_shipped, models_dir
from .photo import photo_like
from .preprocess import EmptyImageError, mnist_preprocess, preprocess_upload, upload_ink

__all__ = ["SHIFTS", "ANGLES", "shift", "shift_accuracy", "low_resolution", "blur", "stroke_width",
           "pen_strokes", "recentred", "photo_uploads", "turned_photo_uploads", "evaluate_turned_uploads",
           "build_variants", "evaluate_variants", "format_tables",
           "PARTS", "main"]

ANGLES = [30, 45, 180]  # off the grid of C4, C8 and C16; the worst turn for C4; the worst for a plain CNN
SEED = 0
# (rows, columns) of each one-pixel move; rows grow downwards.
SHIFTS = {"up": (-1, 0), "up-right": (-1, 1), "right": (0, 1), "down-right": (1, 1), "down": (1, 0),
          "down-left": (1, -1), "left": (0, -1), "up-left": (-1, -1)}
PARTS = ("variants", "shifts", "uploads")  # what --parts chooses from, in the order they run
# A picture turned before upload: 12 turns, every 30 degrees, sized by both rules of digit_extent.
TURNS = tuple(float(angle) for angle in range(0, 360, 30))
FITS = ("box", "diameter")
CANVAS = 280  # the app's canvas: the 28x28 field drawn 10 times larger
SUPERSAMPLE = 4  # stroke thickness is changed at 4x resolution, in quarter pixels


def _each(images: Tensor, function: Callable[[np.ndarray], Tensor]) -> Tensor:
    """``function`` (ink ``[28, 28]`` -> ``[1, 28, 28]``) applied to every image of ``[N, 1, 28, 28]``."""
    return torch.stack([function(image[0].numpy()) for image in images])


def shift(images: Tensor, rows: int, cols: int) -> Tensor:
    """``images [N, C, H, W]`` moved by whole pixels (down by ``rows``, right by ``cols``), zero-filled."""
    height, width = images.shape[-2:]
    moved = torch.zeros_like(images)
    moved[..., max(rows, 0):height + min(rows, 0), max(cols, 0):width + min(cols, 0)] = \
        images[..., max(-rows, 0):height + min(-rows, 0), max(-cols, 0):width + min(-cols, 0)]
    return moved


def shift_accuracy(model: nn.Module, images: Tensor, labels: Tensor) -> dict[str, float]:
    """Accuracy unshifted (``"none"``) and moved by one pixel in each direction of :data:`SHIFTS`."""
    results = {"none": accuracy(model, images, labels)}
    for direction, (rows, cols) in SHIFTS.items():
        results[direction] = accuracy(model, shift(images, rows, cols), labels)
    return results


def low_resolution(images: Tensor, size: int) -> Tensor:
    """Down-sampled to ``size x size`` (anti-aliased), then fitted back into 20x20 and centred as uploads are."""
    small = TF.resize(images, [size, size], antialias=True).clamp(0, 1)
    return _each(small, mnist_preprocess)


def blur(images: Tensor, sigma: float = 1.0) -> Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel out to 3 sigma)."""
    return TF.gaussian_blur(images, [2 * int(3 * sigma) + 1] * 2, [sigma, sigma])


def stroke_width(images: Tensor, change: float) -> Tensor:
    """Strokes dilated (``change > 0``) or eroded (``< 0``) by ``|change|`` pixels on each side, then preprocessed.

    Grey-level morphology with a round footprint at 4x resolution, so the
    change can be a fraction of a pixel; the thicker or thinner digit is then
    fitted into 20x20 again, as the canvas preprocessing would.
    """
    radius = round(abs(change) * SUPERSAMPLE)
    morphology = ndimage.grey_dilation if change > 0 else ndimage.grey_erosion
    big = TF.resize(images, [28 * SUPERSAMPLE] * 2, antialias=True).clamp(0, 1)

    def one(ink: np.ndarray) -> Tensor:
        changed = morphology(ink, footprint=disk(radius)) if radius else ink
        small = TF.resize(torch.from_numpy(changed)[None], [28, 28], antialias=True).clamp(0, 1)[0]
        return mnist_preprocess(small.numpy())

    return torch.stack([one(image[0].numpy()) for image in big])


def _skeletons(images: Tensor) -> list[np.ndarray]:
    """Each digit's centre line on the 280x280 canvas: bool ``[280, 280]``."""
    big = TF.resize(images, [CANVAS, CANVAS], antialias=True)
    return [skeletonize(image[0].numpy() > 0.5) for image in big]


def pen_strokes(images: Tensor, pen_width: float, skeletons: Sequence[np.ndarray] | None = None) -> Tensor:
    """Digits redrawn as the canvas draws: a round pen ``pen_width`` canvas pixels wide along each skeleton.

    Every pixel within ``pen_width / 2`` of the skeleton is ink, with a
    one-pixel anti-aliased rim; the drawing then goes through the canvas
    preprocessing.  ``skeletons``: from :func:`_skeletons`, to reuse for
    several pen widths.
    """
    skeletons = _skeletons(images) if skeletons is None else skeletons

    def one(skeleton: np.ndarray) -> Tensor:
        if not skeleton.any():  # a digit too faint to trace: nothing drawn, the model sees a blank field
            return torch.zeros(1, 28, 28)
        distance = ndimage.distance_transform_edt(~skeleton)
        return mnist_preprocess(np.clip(pen_width / 2 + 0.5 - distance, 0, 1))

    return torch.stack([one(skeleton) for skeleton in skeletons])


def recentred(images: Tensor) -> Tensor:
    """Every digit through the canvas preprocessing (crop, fit into 20x20, centre of mass on 14)."""
    return _each(images, mnist_preprocess)


def photo_uploads(images: Tensor, seed: int = SEED) -> Tensor:
    """Every digit as a photo-like JPEG (seeded), sent through the upload path; a blank field where it finds none."""
    rng = np.random.default_rng(seed)

    def one(ink: np.ndarray) -> Tensor:
        try:
            return preprocess_upload(photo_like(ink, rng).data)[0]
        except EmptyImageError:
            return torch.zeros(1, 28, 28)

    return _each(images, one)


def turned_photo_uploads(images: Tensor, angles: Sequence[float] = TURNS, seed: int = SEED,
                         fits: Sequence[str] = FITS) -> dict[str, dict[float, Tensor]]:
    """Every digit photographed turned by each of ``angles`` and sent through the upload path, sized by each of
    ``fits`` (:func:`gcnn.app.preprocess.digit_extent`): ``uploads[fit][angle] [N, 1, 28, 28]``.

    The digit is turned at 4x resolution (so the turn loses no detail the photo would keep), then
    photographed by :func:`gcnn.app.photo.photo_like` with the same paper, lighting, size and place at every
    angle (one seed per digit): only the angle differs between a digit's pictures.  A blank field where the
    upload path finds no digit.
    """
    fine = TF.resize(images, [28 * SUPERSAMPLE] * 2, antialias=True).clamp(0, 1)
    uploads: dict[str, dict[float, Tensor]] = {fit: {} for fit in fits}
    for angle in angles:
        turned = rotate(fine, float(angle)).clamp(0, 1) if angle % 360 else fine
        by_fit: dict[str, list[Tensor]] = {fit: [] for fit in fits}
        for index, digit in enumerate(turned):
            picture = photo_like(digit, np.random.default_rng([seed, index]))
            try:
                ink, _ = upload_ink(picture.data)
                for fit in fits:
                    by_fit[fit].append(mnist_preprocess(ink, fit))
            except EmptyImageError:
                for fit in fits:
                    by_fit[fit].append(torch.zeros(1, 28, 28))
        for fit in fits:
            uploads[fit][float(angle)] = torch.stack(by_fit[fit])
    return uploads


def evaluate_turned_uploads(models: dict[str, nn.Module], uploads: dict[str, dict[float, Tensor]],
                            labels: Tensor) -> dict[str, dict[str, dict[str, Any]]]:
    """``results[fit][model]``: accuracy ``by_angle``, ``worst``/``worst_angle``, ``largest_drop`` in points from
    the first angle's accuracy (upright, with :data:`TURNS`), and ``consistent``: the fraction of digits given
    the same answer at every angle."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for fit, by_angle in uploads.items():
        results[fit] = {}
        for name, model in models.items():
            answers = {angle: predict_logits(model, batch).argmax(1) for angle, batch in by_angle.items()}
            accuracies = {angle: (found == labels).float().mean().item() for angle, found in answers.items()}
            stacked = torch.stack(list(answers.values()))
            worst_angle = min(accuracies, key=accuracies.__getitem__)
            results[fit][name] = {
                "by_angle": {f"{angle:g}": value for angle, value in accuracies.items()},
                "worst": accuracies[worst_angle], "worst_angle": worst_angle,
                "largest_drop": (next(iter(accuracies.values())) - accuracies[worst_angle]) * 100,
                "consistent": (stacked == stacked[0]).all(0).float().mean().item(),
            }
    return results


def build_variants(images: Tensor, seed: int = SEED) -> dict[str, Tensor]:
    """Every variant of ``images [N, 1, 28, 28]``, by name, in the order of the tables."""
    skeletons = _skeletons(images)
    return {
        "original": images,
        "recentred": recentred(images),
        "low_res_14": low_resolution(images, 14),
        "low_res_8": low_resolution(images, 8),
        "blur": blur(images),
        "thin": stroke_width(images, -0.5),
        "thick": stroke_width(images, 1.0),
        "pen_10": pen_strokes(images, 10, skeletons),
        "pen_20": pen_strokes(images, 20, skeletons),
        "pen_30": pen_strokes(images, 30, skeletons),
        "photo": photo_uploads(images, seed),
    }


def evaluate_variants(
    models: dict[str, nn.Module], variants: dict[str, Tensor], labels: Tensor, angles: Sequence[float] = ANGLES,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``results[variant][model]``: ``upright``, ``by_angle`` (angle -> accuracy), ``worst``, ``worst_angle``,
    ``mistakes`` and ``by_class``.

    ``worst`` is the minimum over upright and every angle in ``angles``; ``mistakes``, the upright misreadings as
    ``[true class, answer, count]``, most frequent first (which digits a variant costs, e.g. 6s read as 9 by a
    rotation-invariant model once the strokes no longer tell them apart); ``by_class``, per true class (its digit
    as a string key) ``[read right upright, digits]``.
    """
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for variant, images in variants.items():
        turned = {float(angle): rotate(images, float(angle)) for angle in angles}
        results[variant] = {}
        for name, model in models.items():
            answers = predict_logits(model, images).argmax(1)
            by_angle = {0.0: (answers == labels).float().mean().item()}
            by_angle.update({angle: accuracy(model, batch, labels) for angle, batch in turned.items()})
            worst_angle = min(by_angle, key=by_angle.__getitem__)
            results[variant][name] = {"upright": by_angle[0.0], "by_angle": {f"{a:g}": v for a, v in by_angle.items()},
                                      "worst": by_angle[worst_angle], "worst_angle": worst_angle,
                                      "mistakes": _mistakes(labels, answers), "by_class": _by_class(labels, answers)}
    return results


def _mistakes(labels: Tensor, answers: Tensor) -> list[list[int]]:
    """``[true class, answer, count]`` of every pair where they differ, most frequent first (ties by class)."""
    pairs = Counter(zip(labels.tolist(), answers.tolist(), strict=True))
    return sorted(([t, a, n] for (t, a), n in pairs.items() if t != a), key=lambda m: (-m[2], m[0], m[1]))


def _by_class(labels: Tensor, answers: Tensor) -> dict[str, list[int]]:
    """``{true class: [read right, digits]}`` for every class among ``labels``."""
    return {str(c): [int((answers[labels == c] == c).sum()), int((labels == c).sum())]
            for c in labels.unique().tolist()}


def _accuracy_of_classes(by_class: dict[str, list[int]], classes: set[str]) -> str:
    right, total = (sum(by_class[c][i] for c in by_class if c in classes) for i in (0, 1))
    return f"{right / total:.1%}" if total else "-"


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, ["---"] * len(header), *rows])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])


def _model_names(results: dict[str, Any]) -> list[str]:
    """The models in ``results``, in their order, from whichever part was run."""
    for part in ("variants", "turned_uploads"):  # {variant or fit: {model: ...}}
        if results.get(part):
            return list(next(iter(results[part].values())))
    return list(results.get("shifts", {}))  # {model: ...}


def format_tables(results: dict[str, Any], markdown: bool = False, mistakes: int = 0,
                  apart: Sequence[int] = ()) -> str:
    """The parts ``results`` holds: variants x models (upright / worst over angles), models x one-pixel shifts, the
    turned uploads; with ``mistakes`` the most frequent upright misreadings (that many per variant and model), and
    with ``apart`` (classes) each variant's upright accuracy on those classes and on the rest."""
    sections: list[str] = []
    variants = results.get("variants", {})
    names = _model_names(results)
    if variants:
        angles = ", ".join(f"{a:g}" for a in results["angles"])
        variant_rows = [[variant, *(f"{r[n]['upright']:.1%} / {r[n]['worst']:.1%}" for n in names)]
                        for variant, r in variants.items()]
        sections += [f"Accuracy upright / worst of 0, {angles} degrees; {results['images']:,} MNIST test digits, "
                     f"seed {results['seed']}:", "", _table(["variant", *names], variant_rows, markdown)]
    if "shifts" in results:
        shift_rows = [[name, *(f"{r[key]:.1%}" for key in ["none", *SHIFTS]),
                       f"{(r['none'] - min(r[key] for key in SHIFTS)) * 100:.1f} points"]
                      for name, r in results["shifts"].items()]
        sections += ["", f"Accuracy with the digits moved by one pixel ({results['images']:,} digits):", "",
                     _table(["model", "none", *SHIFTS, "largest drop"], shift_rows, markdown)]
    if "turned_uploads" in results:  # absent from results written before it existed, and without --parts uploads
        turn_rows = [[name, fit, f"{r[name]['by_angle']['0']:.1%}", f"{r[name]['worst']:.1%} "
                      f"({r[name]['worst_angle']:g})", f"{r[name]['largest_drop']:.1f}", f"{r[name]['consistent']:.1%}"]
                     for name in names for fit, r in results["turned_uploads"].items()]
        sections += ["", f"Photo-like pictures turned before upload, {len(results['turns'])} turns every "
                         f"{results['turns'][1]:g} degrees, sized by the box or by the greatest extent:", "",
                     _table(["model", "fit", "upright", "worst (angle)", "largest drop (points)",
                             "same answer at every turn"], turn_rows, markdown)]
    entries = [r for by_model in variants.values() for r in by_model.values()]
    if mistakes and entries and all("mistakes" in r for r in entries):
        mistake_rows = [[variant, *(", ".join(f"{t}->{a} x{n}" for t, a, n in r[name]["mistakes"][:mistakes])
                                    or "none" for name in names)] for variant, r in variants.items()]
        sections += ["", f"The {mistakes} most frequent upright misreadings (true class -> answer x count):", "",
                     _table(["variant", *names], mistake_rows, markdown)]
    if apart and entries and all("by_class" in r for r in entries):
        chosen = {str(c) for c in apart}
        listed = " and ".join(str(c) for c in sorted(apart))
        split_rows = [[variant, *(f"{_accuracy_of_classes(r[n]['by_class'], set(r[n]['by_class']) - chosen)} / "
                                  f"{_accuracy_of_classes(r[n]['by_class'], chosen)}" for n in names)]
                      for variant, r in variants.items()]
        plural = " and ".join(f"{c}s" for c in sorted(apart))
        sections += ["", f"Upright accuracy on the digits other than {listed} / on the {plural}:", "",
                     _table(["variant", *names], split_rows, markdown)]
    return "\n".join(sections).strip("\n")


def _classes(text: str) -> list[int]:
    """Comma-separated digits 0-9, not all ten (the rest must not be empty)."""
    try:
        classes = sorted({int(c) for c in text.split(",")})
    except ValueError:
        classes = []
    if not classes or not all(0 <= c <= 9 for c in classes) or len(classes) == 10:
        raise argparse.ArgumentTypeError(f"must be comma-separated digits 0-9, not all ten, e.g. 6,9; got {text!r}")
    return classes


def _parts(text: str) -> list[str]:
    """Comma-separated names from :data:`PARTS`."""
    parts = [part.strip() for part in text.split(",")]
    if not parts or not all(part in PARTS for part in parts):
        raise argparse.ArgumentTypeError(f"must be comma-separated names from {', '.join(PARTS)}; got {text!r}")
    return [part for part in PARTS if part in parts]


def _angles(text: str) -> list[float]:
    """Comma-separated finite angles in degrees."""
    try:
        angles = [float(angle) for angle in text.split(",")]
    except ValueError:
        angles = []
    if not angles or not all(math.isfinite(angle) for angle in angles):
        raise argparse.ArgumentTypeError(f"must be comma-separated finite angles in degrees, e.g. 30,45,180; "
                                         f"got {text!r}")
    return angles


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gcnn.app.robustness", description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=cli.existing_folder,
                        help="folder of the shipped checkpoints (default: gcnn.shipped.models_dir())")
    parser.add_argument("--data-dir", help="folder holding MNIST/raw (default: $GCNN_DATA_DIR, else ./data)")
    parser.add_argument("--images", type=cli.positive_int, default=500,
                        help="test digits (a fixed seeded subset; default 500)")
    parser.add_argument("--angles", type=_angles, default=ANGLES,
                        help="comma-separated turns in degrees besides upright (default 30,45,180)")
    parser.add_argument("--seed", type=cli.seed, default=SEED, help="seed of the photo-like pictures (default 0)")
    parser.add_argument("--device", default="cpu", type=cli.device,
                        help="torch device for the models, e.g. cuda (default cpu)")
    parser.add_argument("--out", type=cli.output_file,
                        help="write the results as JSON here (e.g. models/robustness.json)")
    parser.add_argument("--markdown", action="store_true", help="print the tables in Markdown")
    parser.add_argument("--mistakes", type=cli.positive_int, default=0, metavar="N",
                        help="also print the N most frequent upright misreadings per variant and model")
    parser.add_argument("--apart", type=_classes, default=[], metavar="CLASSES",
                        help="also print each variant's upright accuracy on these classes and on the rest, e.g. 6,9")
    parser.add_argument("--parts", type=_parts, default=list(PARTS),
                        help=f"comma-separated measurements to run (default all: {','.join(PARTS)})")
    args = parser.parse_args(argv)

    try:
        images, labels = load_mnist(train=False, data_dir=args.data_dir)
    except DatasetMissingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    args.models_dir = models_dir(args.models_dir)
    shipped, problems = load_shipped(args.models_dir)
    for name, problem in problems.items():
        print(f"skipping {name}: {problem}", file=sys.stderr)
    if not shipped:
        print(f"error: no shipped model could be loaded from {args.models_dir}", file=sys.stderr)
        return 1
    models = {name: entry.model.to(args.device) for name, entry in shipped.items()}
    subset = curve_subset(len(images), args.images)
    images, labels = images[subset], labels[subset]

    start = time.perf_counter()
    results: dict[str, Any] = {"format_version": 1, "images": len(images), "seed": args.seed,
                               "angles": args.angles, "device": args.device, "parts": args.parts}
    if "variants" in args.parts:
        variants = build_variants(images, args.seed)
        print(f"built {len(variants)} variants of {len(images)} digits in {time.perf_counter() - start:.0f} s",
              file=sys.stderr)
        results["variants"] = evaluate_variants(models, variants, labels, args.angles)
    if "shifts" in args.parts:
        results["shifts"] = {name: shift_accuracy(model, images, labels) for name, model in models.items()}
    if "uploads" in args.parts:
        results["turns"] = list(TURNS)
        results["turned_uploads"] = evaluate_turned_uploads(
            models, turned_photo_uploads(images, seed=args.seed), labels)
    results["wall_time_s"] = time.perf_counter() - start
    print(f"evaluated in {results['wall_time_s']:.0f} s", file=sys.stderr)
    if args.out:
        write_json(results, args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    print(format_tables(results, args.markdown, args.mistakes, args.apart))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
