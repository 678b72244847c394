"""The benchmarks' baselines compute what they claim to, so their timings compare like with like; the
statistics behind their ratios."""

import math

import pytest
import torch

from benchmarks.bench_networks import reference_style
from benchmarks.bench_training import short_runs
from benchmarks.timing import Ratio, Timings, median_interval
from gcnn import CyclicGroup, DihedralGroup, GroupEquivariantCNN, export_plain


@pytest.mark.parametrize("group", [CyclicGroup(4), DihedralGroup(4)], ids=repr)
def test_reference_style_and_plain_networks_match_ours(group):
    """Pixel-exact groups: grid_sample at rotated pixel centres reproduces our permuted kernels exactly."""
    torch.manual_seed(0)
    ours = GroupEquivariantCNN(group, 5, 1, 10, 2, 3, padding=2, norm="none", group_pool="max").eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        expected = ours(x)
        for rival in (reference_style(ours), export_plain(ours)):
            assert torch.allclose(rival(x), expected, rtol=1e-5, atol=1e-6)


def test_reference_style_rebuilds_its_bank_on_every_call():
    torch.manual_seed(0)
    ours = GroupEquivariantCNN(CyclicGroup(4), 3, 1, 10, 1, 2).eval()
    rival = reference_style(ours)
    layer = rival.blocks[1][0]
    with torch.no_grad():
        assert layer.kernel_bank() is not layer.kernel_bank()
        assert torch.allclose(layer.kernel_bank(), ours.blocks[1][0].kernel_bank(), atol=1e-6)


def test_median_interval_uses_binomial_order_statistics():
    values = [float(v) for v in range(20, 0, -1)]  # unsorted on purpose
    assert median_interval(values) == (6.0, 15.0)  # the textbook 95% interval for n = 20: 6th and 15th smallest
    assert median_interval(values[:6]) == (15.0, 20.0)  # n = 6 is the smallest n that reaches 95%: the range
    assert median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0)  # below that the range is all there is
    # coverage of the interval chosen for n = 20: P(6 <= rank of the median's position <= 15) >= 95%
    n, k = 20, 6
    assert 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n >= 0.95
    assert 1 - 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n < 0.95  # and it is the tightest


def test_ratios_pair_the_calls_of_each_round():
    # The machine halves its speed in the second half: a ratio of medians would blur it, per-round ratios do not.
    timings = Timings({"baseline": [10, 10, 10, 20, 20, 20, 20], "rival": [9, 9, 9, 18, 18, 18, 18]})
    assert timings["baseline"] == 20 and timings.ratio("rival", "baseline") == Ratio(0.9, 0.9, 0.9)
    assert "faster" in Ratio(0.9, 0.85, 0.95).verdict("gcnn", "e2cnn")
    assert "slower" in Ratio(1.1, 1.05, 1.15).verdict("gcnn", "e2cnn")
    assert "level" in Ratio(0.99, 0.95, 1.02).verdict("gcnn", "e2cnn")


def test_short_runs_train_and_validate_each_chosen_design(fake_mnist, monkeypatch):
    monkeypatch.setenv("GCNN_DATA_DIR", str(fake_mnist))
    report = short_runs(["preset cnn"], steps=2)
    row = next(line for line in report.splitlines() if line.startswith("| preset cnn"))
    upright, rotated = (float(cell.strip(" %")) for cell in row.strip("|").split("|")[-2:])
    assert 0 <= upright <= 100 and 0 <= rotated <= 100 and "103,690" in row
    assert "preset gcnn_best" not in report


def test_function_errors_find_the_harmonics_that_break_equivariance():
    """bench_basis --functions: each harmonic function as a kernel alone.  Measured on a smooth 33x33 input (C16):
    the isotropic rings 0.008-0.011, m = 1 0.04-0.06, m = 2 0.12-0.24; narrowing the outer ring to sigma 0.4 lowers
    its three (0.011/0.064/0.218 -> 0.010/0.043/0.124) and leaves the inner rings' alone."""
    from benchmarks.bench_basis import function_errors
    from gcnn.basis import HarmonicBasis
    from gcnn.equivariance import sample_input

    x = sample_input((4, 1, 33, 33))
    wide, narrow = (dict(function_errors(basis, CyclicGroup(16), x))
                    for basis in (HarmonicBasis(), HarmonicBasis(outer_sigma=0.4)))
    assert list(wide) == HarmonicBasis().functions(5)
    by_frequency = [max(e for (_, m, _), e in wide.items() if m == f) for f in range(3)]
    assert by_frequency[0] < 0.5 * by_frequency[1] and by_frequency[1] < 0.5 * by_frequency[2], by_frequency
    for function, error in wide.items():
        if function[0] < 2:
            assert narrow[function] == error, function
        else:
            assert narrow[function] < 0.9 * error, (function, narrow[function], error)


def test_bench_basis_seeds_change_the_draw_and_cells_give_their_spread():
    """--seeds: seed s initialises every design differently (seed 0 as before), and a cell of several seeds is
    mean ± sample standard deviation."""
    from benchmarks.bench_basis import build, spread

    first, again, other = (build({"basis": "harmonic"}, [1, 1, 1, 1, 2], seed) for seed in (0, 0, 1))
    weights = [m.blocks[0][0].weight for m in (first, again, other)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    assert spread([0.1234], "{:.3f}") == "0.123"
    assert spread([0.1, 0.3], "{:.3f}") == "0.200 ± 0.141"
    assert spread([0.5, 0.7, 0.9], "{:.1%}") == "70.0% ± 20.0%"
    assert spread([None, None], "{:.3f}") == "-"


def test_input_copy_designs_keep_the_weights_and_measure_each_design():
    from benchmarks.bench_input_copies import DESIGNS, accuracy_rows, timing_rows, variant_rows, with_design

    torch.manual_seed(0)
    model = GroupEquivariantCNN(CyclicGroup(16), 3, 1, 10, 1, 2, padding=1, norm="batch", group_pool="max",
                                input_rotations=2).eval()
    shipped_before = {"input_rotations": 2, "input_step": 11.25, "input_pool": "mean"}
    chosen = with_design(model, DESIGNS["0, 22.5, 45, 67.5 degrees, largest logit per class"])
    assert chosen.input_angles() == [0, 22.5, 45, 67.5] and chosen.input_pool == "max" and not chosen.training
    assert all(torch.equal(a, b) for a, b in zip(chosen.state_dict().values(), model.state_dict().values(),
                                                  strict=True))
    images = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        labels = model(images).argmax(1)  # its own upright answers: right by definition at 0 degrees
        assert torch.equal(with_design(model, shipped_before)(images), model(images))
    rows = accuracy_rows(model, images, labels, {"before": shipped_before, "alone": {"input_rotations": 1}}, [0, 45])
    assert [row[:3] for row in rows][0] == ["before", 2, "100.00%"] and rows[1][1] == 1
    names, rows = variant_rows(model, images, labels, {"before": shipped_before, "alone": {"input_rotations": 1}})
    assert names[0] == "original" and "pen_30" in names and "photo" in names
    assert [row[0] for row in rows] == ["before", "alone"] and all(len(row) == len(names) + 2 for row in rows)
    assert rows[0][1] == "100.0%" and 0 <= float(rows[0][-1]) <= 100  # its own upright answers; a drop in points
    timing = timing_rows(model, {"alone": {"input_rotations": 1}, "before": shipped_before}, repeats=1)
    assert [row[0] for row in timing] == ["alone", "before"] and timing[0][2].startswith("1.000")


def test_six_nine_readers_train_and_read_every_view(fake_mnist, tiny_models_dir, monkeypatch, capsys):
    """Every shipped model and every trained reader gets a row with a share for each view; a shipped model is read
    through its own 6 and 9 logits."""
    from benchmarks.bench_six_nine import READERS, VARIANTS, SixOrNine, main, sixes_and_nines

    monkeypatch.setenv("GCNN_DATA_DIR", str(fake_mnist))
    images, labels = torch.rand(5, 1, 28, 28), torch.tensor([6, 1, 9, 9, 0])
    chosen, targets = sixes_and_nines(images, labels, torch.arange(5))
    assert torch.equal(chosen, images[[0, 2, 3]]) and targets.tolist() == [0, 1, 1]
    ten = torch.nn.Linear(28 * 28, 10)
    flat = torch.nn.Sequential(torch.nn.Flatten(), ten)
    with torch.no_grad():
        assert torch.equal(SixOrNine(flat)(images), flat(images)[:, [6, 9]])

    main(["--models-dir", str(tiny_models_dir), "--epochs-scale", "0.01"])
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| shipped") or "only |" in line]
    assert len(rows) == 5 + len(READERS) and all(line.startswith("| ") for line in rows)
    assert all(row.split(" | ")[1] != "0" for row in rows)  # a shipped model's parameters are counted too
    header = next(line for line in printed.splitlines() if line.startswith("| reader"))
    assert all(view in header for view in (*VARIANTS, "turned"))
    assert all(row.count("%") == len(VARIANTS) + 1 for row in rows)


@pytest.mark.parametrize("option, message", [
    ("--epochs-scale 0", "argument --epochs-scale: must be a finite number above 0, got 0"),
    ("--epochs-scale nan", "argument --epochs-scale: must be a finite number above 0, got nan"),
    ("--models-dir {tmp}/nowhere", "argument --models-dir: {tmp}/nowhere does not exist"),
])
def test_six_nine_refuses_nonsense_in_one_line(tmp_path, capsys, option, message):
    from benchmarks.bench_six_nine import main

    with pytest.raises(SystemExit) as exit_info:
        main(option.format(tmp=tmp_path).split(" "))
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and message.format(tmp=tmp_path) in error.strip().splitlines()[-1]


def test_training_step_turns_about_the_recipes_centre(monkeypatch):
    """cnn_rotaug's recipe turns its training digits about MNIST's mass centre; the timed step must too."""
    import benchmarks.bench_training as bench_training
    from gcnn.augment import ROTATION_CENTRES

    centres = []
    monkeypatch.setattr(bench_training, "random_rotations",
                        lambda images, generator, centre=None: centres.append(centre) or images)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    digits, labels = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    for centre in ("mass", "image"):
        recipe = {"augment": None, "augment_rotation": True, "rotation_centre": centre}
        bench_training.training_step(model, recipe, digits, labels, amp=False)()
    bench_training.training_step(model, {"augment_rotation": True}, digits, labels, amp=False)()
    assert centres == [ROTATION_CENTRES["mass"], ROTATION_CENTRES["image"], ROTATION_CENTRES["image"]]
