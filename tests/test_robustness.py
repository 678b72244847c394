"""Variants of the MNIST test set and the one-pixel shifts: built as described, evaluated and reported."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from gcnn.app.photo import photo_like
from gcnn.app.preprocess import MNIST_CENTRE, mnist_preprocess
from gcnn.app.robustness import (
    SHIFTS,
    blur,
    build_variants,
    evaluate_turned_uploads,
    evaluate_variants,
    low_resolution,
    main,
    pen_strokes,
    shift,
    shift_accuracy,
    stroke_width,
    turned_photo_uploads,
)
from gcnn.evaluate import accuracy, predict_logits


def drawn_digits() -> torch.Tensor:
    """Four MNIST-style digits drawn with PIL (a 7, a 1, a 0 and an L-shape): ``[4, 1, 28, 28]``."""
    shapes = [[(60, 40), (150, 40), (90, 230)], [(120, 30), (110, 240)], None, [(70, 30), (70, 230), (190, 230)]]
    digits = []
    for points in shapes:
        image = Image.new("L", (280, 280), 0)
        draw = ImageDraw.Draw(image)
        if points is None:
            draw.ellipse([70, 30, 200, 240], outline=255, width=22)
        else:
            draw.line(points, fill=255, width=22, joint="curve")
        digits.append(mnist_preprocess(np.asarray(image) / 255))
    return torch.stack(digits)


def ink(images: torch.Tensor) -> torch.Tensor:
    return images.sum((1, 2, 3))


def test_shift_moves_by_one_pixel_and_fills_with_zeros():
    images = torch.rand(2, 1, 28, 28)
    moved = shift(images, 1, -1)  # down and left
    assert torch.equal(moved[..., 1:, :-1], images[..., :-1, 1:])
    assert moved[..., 0, :].abs().sum() == 0 and moved[..., :, -1].abs().sum() == 0
    assert set(SHIFTS) == {"up", "up-right", "right", "down-right", "down", "down-left", "left", "up-left"}
    assert all(max(abs(r), abs(c)) == 1 for r, c in SHIFTS.values())


class CornerReader(nn.Module):
    """Class 1 if pixel (14, 14) is ink, else class 0: as position-dependent as a model can be."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        on = (x[:, 0, 14, 14] > 0.5).float()
        return torch.stack([1 - on, on], 1) + self.dummy


def test_shift_accuracy_sees_position_dependence():
    images = torch.zeros(8, 1, 28, 28)
    images[:, :, 14, 14] = 1  # one ink pixel exactly where the model looks
    labels = torch.ones(8, dtype=torch.long)
    results = shift_accuracy(CornerReader(), images, labels)
    assert results == {"none": 1.0, **{direction: 0.0 for direction in SHIFTS}}
    images[:, :, 13:16, 13:16] = 1  # a 3x3 blob: every one-pixel move still covers (14, 14)
    assert set(shift_accuracy(CornerReader(), images, labels).values()) == {1.0}


def test_low_resolution_loses_detail_but_keeps_the_digit():
    digits = drawn_digits()
    similarity = {size: nn.functional.cosine_similarity(low_resolution(digits, size).flatten(1), digits.flatten(1))
                  for size in (14, 8)}
    assert (similarity[14] > 0.75).all() and (similarity[14] < 0.95).all(), similarity
    assert (similarity[8] > 0.5).all() and (similarity[8] < similarity[14]).all(), similarity


def test_blur_spreads_ink_and_keeps_its_mass():
    digits = drawn_digits()
    blurred = blur(digits, 1.0)
    assert torch.allclose(ink(blurred), ink(digits), rtol=0.01)
    assert (blurred.amax((1, 2, 3)) < digits.amax((1, 2, 3))).all()
    assert ((blurred > 0.05).sum((1, 2, 3)) > 1.3 * (digits > 0.05).sum((1, 2, 3))).all()


def test_stroke_width_thins_and_thickens():
    digits = drawn_digits()
    thin, thick = stroke_width(digits, -0.5), stroke_width(digits, 1.0)
    assert (ink(thin) < 0.95 * ink(digits)).all() and (ink(thick) > 1.2 * ink(digits)).all()
    for variant in (thin, thick):  # re-fitted and re-centred as the canvas preprocessing does
        assert torch.equal(variant, torch.stack([mnist_preprocess(image[0].numpy()) for image in variant]))


def test_pen_strokes_redraw_the_digit_at_each_width():
    digits = drawn_digits()
    strokes = {width: pen_strokes(digits, width) for width in (10, 20, 30)}
    assert (ink(strokes[10]) < ink(strokes[20])).all() and (ink(strokes[20]) < ink(strokes[30])).all()
    near_original = nn.functional.max_pool2d((digits > 0.5).float(), 3, stride=1, padding=1) > 0  # within 1 px
    for drawn in strokes.values():  # the pen follows the digit's strokes: its ink lies on or next to them
        on_digit = ((drawn > 0.5) & near_original).sum((1, 2, 3)) / (drawn > 0.5).sum((1, 2, 3))
        assert (on_digit > 0.9).all(), on_digit
    # The stroke's width in the 28x28 field grows with the pen: about pen / 10 pixels for a 200-pixel digit.
    assert ((strokes[30] > 0.5).sum((1, 2, 3)) > 1.8 * (strokes[10] > 0.5).sum((1, 2, 3))).all()


def test_build_variants_shapes_and_centring():
    digits = drawn_digits()
    variants = build_variants(digits, seed=0)
    assert list(variants) == ["original", "recentred", "low_res_14", "low_res_8", "blur", "thin", "thick", "pen_10",
                              "pen_20", "pen_30", "photo"]
    for name, images in variants.items():
        assert images.shape == digits.shape and images.min() >= 0 and images.max() <= 1, name
        assert (ink(images) > 10).all(), name
    photo_overlap = ((variants["photo"] > 0.5) & (digits > 0.5)).sum() / ((variants["photo"] > 0.5)
                                                                           | (digits > 0.5)).sum()
    assert photo_overlap > 0.6
    index = torch.arange(28, dtype=torch.float64)
    for name in ("recentred", "low_res_8", "thick", "pen_20", "photo"):
        images = variants[name][:, 0].double()
        rows = (images.sum(2) * index).sum(1) / images.sum((1, 2))
        assert ((rows - MNIST_CENTRE).abs() <= 0.5 + 1e-9).all(), name
    assert torch.equal(build_variants(digits, seed=0)["photo"], variants["photo"])  # seeded


def test_photo_like_is_seeded_and_places_the_ink():
    digit = drawn_digits()[0]
    first, again = photo_like(digit, np.random.default_rng(5)), photo_like(digit, np.random.default_rng(5))
    assert first.data == again.data and np.array_equal(first.ink, again.ink)
    assert first.data != photo_like(digit, np.random.default_rng(6)).data
    picture = np.asarray(Image.open(io.BytesIO(first.data)).convert("L")) / 255
    assert picture.shape == first.ink.shape and 192 <= min(picture.shape) and max(picture.shape) <= 320
    # Dark ink: where the clean digit has ink, the picture is darker than the paper around it.
    assert picture[first.ink > 0.5].mean() < picture[first.ink == 0].mean() - 0.25


def test_photo_like_takes_a_finer_field_and_refuses_other_shapes():
    fine = torch.nn.functional.interpolate(drawn_digits()[:1], size=112, mode="bilinear")[0]
    picture = photo_like(fine, np.random.default_rng(1))
    assert picture.ink.max() > 0.9
    with pytest.raises(ValueError, match="square digit field"):
        photo_like(np.zeros((28, 20)), np.random.default_rng(1))


def test_turned_photo_uploads_differ_only_by_the_angle():
    """Same paper, lighting and place at every turn: a half turn of the picture gives the upright upload turned
    by 180 degrees, for both fits (up to JPEG, and a pixel of placement: rot90 turns about pixel 13.5, while
    the centre of mass is placed on pixel 14)."""
    digits = drawn_digits()
    uploads = turned_photo_uploads(digits, angles=[0, 180, 45], seed=3)
    assert set(uploads) == {"box", "diameter"}
    for by_angle in uploads.values():
        assert all(batch.shape == (4, 1, 28, 28) for batch in by_angle.values())
        half_turned = torch.rot90(by_angle[180.0], 2, (-2, -1))
        similarity = torch.stack([
            torch.nn.functional.cosine_similarity(shift(half_turned, rows, cols).flatten(1),
                                                  by_angle[0.0].flatten(1))
            for rows in (0, 1) for cols in (0, 1)]).amax(0)
        assert (similarity > 0.7).all() and similarity.median() > 0.95, similarity
    # At 45 degrees the 1 (index 1) is measured as a shorter box, so the box fit draws it larger.
    assert ink(uploads["box"][45.0][1:2]) > 1.15 * ink(uploads["diameter"][45.0][1:2])


def test_evaluate_turned_uploads_counts_same_answers():
    digits, labels = drawn_digits(), torch.tensor([7, 1, 0, 4])
    uploads = {"box": {0.0: digits, 90.0: torch.rot90(digits, 1, (-2, -1))}}

    class Always(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.one_hot(torch.full((len(x),), 7), 10).float()

    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    results = evaluate_turned_uploads({"linear": model, "always 7": Always()}, uploads, labels)["box"]
    assert results["always 7"]["consistent"] == 1.0 and results["always 7"]["by_angle"] == {"0": 0.25, "90": 0.25}
    assert results["always 7"]["largest_drop"] == 0.0
    answers = [predict_logits(model, batch).argmax(1) for batch in uploads["box"].values()]
    assert results["linear"]["consistent"] == (answers[0] == answers[1]).float().mean().item()


def test_evaluate_variants_worst_is_the_minimum_over_angles():
    digits = drawn_digits()
    labels = torch.tensor([7, 1, 0, 4])
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    results = evaluate_variants({"linear": model}, {"original": digits}, labels, angles=[90, 180])
    entry = results["original"]["linear"]
    assert set(entry["by_angle"]) == {"0", "90", "180"}
    assert entry["upright"] == accuracy(model, digits, labels)
    assert entry["by_angle"]["180"] == accuracy(model, torch.rot90(digits, 2, (-2, -1)), labels)
    assert entry["worst"] == min(entry["by_angle"].values())
    answers = predict_logits(model, digits).argmax(1)
    wrong = [(t, a) for t, a in zip(labels.tolist(), answers.tolist(), strict=True) if t != a]
    assert sum(n for _, _, n in entry["mistakes"]) == len(wrong)  # every misreading counted once
    assert sorted((t, a) for t, a, _ in entry["mistakes"]) == sorted(set(wrong))
    assert [n for _, _, n in entry["mistakes"]] == sorted((n for _, _, n in entry["mistakes"]), reverse=True)
    right = answers == labels
    assert entry["by_class"] == {str(c): [int(right[labels == c].sum()), 1] for c in (7, 1, 0, 4)}


def test_format_tables_splits_the_chosen_classes_from_the_rest():
    """``apart``: right / digits summed over the chosen classes and over the others, per variant and model."""
    from gcnn.app.robustness import format_tables

    entry = {"upright": 0.8, "worst": 0.5, "by_angle": {"0": 0.8}, "worst_angle": 0.0, "mistakes": [[6, 9, 2]],
             "by_class": {"1": [3, 3], "6": [1, 3], "7": [4, 4], "9": [2, 2]}}
    results = {"images": 12, "seed": 0, "angles": [45.0], "variants": {"original": {"m": entry}}}
    printed = format_tables(results, markdown=True, apart=[6, 9])
    assert "| original | 100.0% / 60.0% |" in printed  # 7 of 7 other digits; 3 of 5 sixes and nines
    assert "other than 6 and 9 / on the 6s and 9s" in printed
    assert "moved by one pixel" not in printed and "turned before upload" not in printed  # parts not run
    assert "other than" not in format_tables(results, markdown=True)
    uploads = {"turns": [0.0, 30.0], "turned_uploads": {"box": {"m": {"by_angle": {"0": 0.9}, "worst": 0.7,
                                                                       "worst_angle": 30.0, "largest_drop": 20.0,
                                                                       "consistent": 0.6}}}}
    assert "| m | box | 90.0% | 70.0% (30) | 20.0 | 60.0% |" in format_tables(uploads, markdown=True)


def test_mistakes_are_listed_most_frequent_first():
    from gcnn.app.robustness import _mistakes

    labels, answers = torch.tensor([6, 6, 6, 9, 1, 7, 6]), torch.tensor([9, 9, 7, 6, 1, 7, 6])
    assert _mistakes(labels, answers) == [[6, 9, 2], [6, 7, 1], [9, 6, 1]]
    assert _mistakes(labels, labels) == []


def test_cli_writes_json_and_markdown(fake_mnist, tiny_models_dir, tmp_path, capsys):
    out = tmp_path / "robustness.json"
    assert main(["--models-dir", str(tiny_models_dir), "--data-dir", str(fake_mnist), "--images", "6",
                 "--angles", "90", "--out", str(out), "--markdown", "--mistakes", "2"]) == 0
    results = json.loads(out.read_text())
    assert results["images"] == 6 and results["angles"] == [90.0]
    names = set(results["shifts"])
    assert names and all(set(by_model) == names for by_model in results["variants"].values())
    assert set(results["shifts"][next(iter(names))]) == {"none", *SHIFTS}
    assert set(results["turned_uploads"]) == {"box", "diameter"} and len(results["turns"]) == 12
    printed = capsys.readouterr().out
    assert "| model | fit | upright |" in printed
    assert "| variant |" in printed and "| pen_20 |" in printed and "| model | none | up |" in printed
    misreadings = printed[printed.index("most frequent upright misreadings"):]
    assert misreadings.count("| pen_20 |") == 1 and ("->" in misreadings or "none" in misreadings)


def test_cli_runs_only_the_parts_asked_for(fake_mnist, tiny_models_dir, tmp_path, capsys):
    out = tmp_path / "robustness.json"
    assert main(["--models-dir", str(tiny_models_dir), "--data-dir", str(fake_mnist), "--images", "6",
                 "--angles", "90", "--parts", "variants", "--apart", "6,9", "--out", str(out), "--markdown"]) == 0
    results = json.loads(out.read_text())
    assert results["parts"] == ["variants"] and "variants" in results
    assert "shifts" not in results and "turned_uploads" not in results
    printed = capsys.readouterr().out
    assert "| pen_20 |" in printed and "other than 6 and 9" in printed
    assert "moved by one pixel" not in printed and "turned before upload" not in printed
    assert main(["--models-dir", str(tiny_models_dir), "--data-dir", str(fake_mnist), "--images", "6",
                 "--parts", "shifts", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert set(results) >= {"shifts"} and "variants" not in results
    assert "moved by one pixel" in capsys.readouterr().out


def test_cli_refuses_missing_data(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path), "--images", "4"]) == 1
    assert "MNIST was not found" in capsys.readouterr().err


@pytest.mark.parametrize("option, message", [
    ("--device bogus", "argument --device: device 'bogus' is not available on this machine"),
    ("--images 0", "argument --images: must be at least 1, got 0"),
    ("--angles 30,x", "argument --angles: must be comma-separated finite angles in degrees"),
    ("--angles nan", "argument --angles: must be comma-separated finite angles in degrees"),
    ("--seed -1", "argument --seed: must be a whole number from 0"),
    ("--apart 6,x", "argument --apart: must be comma-separated digits 0-9, not all ten"),
    ("--apart 0,1,2,3,4,5,6,7,8,9", "argument --apart: must be comma-separated digits 0-9, not all ten"),
    ("--apart 10", "argument --apart: must be comma-separated digits 0-9, not all ten"),
    ("--parts variants,bogus", "argument --parts: must be comma-separated names from variants, shifts, uploads"),
    ("--out {tmp}/file/r.json", "argument --out: {tmp}/file/r.json cannot be made: {tmp}/file is a file"),
    ("--models-dir {tmp}/nowhere", "argument --models-dir: {tmp}/nowhere does not exist"),
], ids=lambda value: value.split(" ")[0] + value.split(" ")[1][:3] if value.startswith("--") else "")
def test_cli_refuses_nonsense_in_one_line(tmp_path, capsys, option, message):
    """Before any work (the evaluation takes minutes), with argparse's exit code 2 and no traceback."""
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(option.format(tmp=tmp_path).split(" "))
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in error
    assert message.format(tmp=tmp_path) in error.strip().splitlines()[-1]


def test_robustness_needs_neither_streamlit_nor_plotly():
    code = ("import sys, gcnn.app.robustness; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('streamlit', 'plotly')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
