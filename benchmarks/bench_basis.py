"""Equivariance between quarter turns: kernel bases, kernel sizes, anti-aliased pooling and upsampling compared.

For each design (the shipped gcnn_best network, or a narrower proxy of it, with one option changed at a time) the
relative equivariance error ``||f(g x) - g f(x)|| / ||g f(x)||`` at every group element that is *not* a quarter
turn (those are exact to float rounding whatever the design), measured on MNIST test digits padded to 36x36 so
that each digit lies inside the compared disc:

* ``lift``: the lifting convolution alone (on the normalised input), the largest error over those elements;
* ``block 0`` and ``all blocks``: the first block's and the last block's feature maps (largest error);
* ``logits 22.5`` and ``logits 45``: the classifier's logits at those turns (``-`` where not in the group).

``--train-images N`` first trains every design for one pass over N upright training digits (Adam, one-cycle,
the presets' rotation-free augmentation, seed 0) and adds validation accuracy upright and the worst over 72
angles (every 5 degrees) of 1,000 validation digits.  ``--seeds N`` repeats every design with seeds 0 to N-1
(initialisation, training order and augmentation) and gives each cell as mean and standard deviation: one
draw of a few hundred random coefficients is not a design's error.  ``--e2cnn`` adds the same C16 design built
from e2cnn's ``R2Conv`` over the regular representation (``pip install -r requirements-bench.txt``).
``--checkpoint PATH`` adds a trained GroupEquivariantCNN checkpoint (e.g. ``models/gcnn_best.pt``), measured as
it is, and with ``--checkpoint`` alone only that.  ``--functions`` instead measures the lifting error of every
harmonic basis function alone (which rings and frequencies carry the error).  ``--timing`` instead
times a training step and an eval pass (batch 128, 28x28) of every design, round-robin, as ratios against
the first design's, timed in the same rounds (median and 95% interval), so a busy machine slows both alike.

    python -m benchmarks.bench_basis [--images 64] [--widths 6 8 12 12 24] [--train-images 20000] [--e2cnn]
                                     [--seeds 3] [--timing] [--only NAME ...] [--checkpoint models/gcnn_best.pt]
                                     [--functions]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.timing import machine, prepare_process, table, timings_apart
from gcnn import CyclicGroup, DihedralGroup, GroupEquivariantCNN, HarmonicBasis, LiftingConvolution, load_model
from gcnn.augment import Augmentation
from gcnn.data import load_mnist, train_val_split
from gcnn.equivariance import check_equivariance
from gcnn.groups import Group
from gcnn.models import count_parameters
from gcnn.presets import AUGMENT, MNIST_MEAN, MNIST_STD, PRESETS
from gcnn.transforms import rotate

SHIPPED_WIDTHS = PRESETS["gcnn_best"]["model"]["hidden_channels"]

# One option changed at a time from the C16 pixel-basis design that shipped before the harmonic basis.
DESIGNS: dict[str, dict[str, Any]] = {
    "C16 pixel k5 (the earlier design)": {},
    "C16 harmonic k5 f<=1": {"basis": {"name": "harmonic", "max_frequency": 1}},
    "C16 harmonic k5 f<=2": {"basis": "harmonic"},
    "C16 harmonic k5 f<=3": {"basis": {"name": "harmonic", "max_frequency": 3}},
    "C16 harmonic k5 f<=1, sigma 0.4": {"basis": {"name": "harmonic", "max_frequency": 1, "sigma": 0.4}},
    "C16 pixel k7": {"kernel_size": 7, "padding": 3},
    "C16 harmonic k7 f<=2": {"kernel_size": 7, "padding": 3, "basis": "harmonic"},
    "C16 harmonic k7 f<=3": {"kernel_size": 7, "padding": 3, "basis": {"name": "harmonic", "max_frequency": 3}},
    "C16 pixel k5, anti-aliased pool": {"antialias": True},
    "C16 harmonic k5 f<=2, anti-aliased pool": {"basis": "harmonic", "antialias": True},
    "C16 harmonic k5 f<=1, anti-aliased pool": {"basis": {"name": "harmonic", "max_frequency": 1}, "antialias": True},
    "C16 harmonic k5 f<=2, anti-aliased pool, 2 input turns": {"basis": "harmonic", "antialias": True,
                                                              "input_rotations": 2},
    # Background 0: the input is scaled but not centred, so the convolutions' zero padding matches the background
    # (centred, MNIST's black is -0.42 and the padding draws a frame that does not turn with the digit).
    "C16 harmonic k5 f<=1, anti-aliased pool, background 0": {"basis": {"name": "harmonic", "max_frequency": 1},
                                                             "antialias": True, "input_mean": 0.0},
    "C16 harmonic k5 f<=2, anti-aliased pool, background 0": {"basis": "harmonic", "antialias": True,
                                                             "input_mean": 0.0},
    "C16 harmonic k5 f<=2, anti-aliased pool, background 0, 2 input turns": {
        "basis": "harmonic", "antialias": True, "input_mean": 0.0, "input_rotations": 2},
    # e2cnn's narrower outermost ring (gcnn.basis.HarmonicBasis's outer_sigma) on gcnn_best's design.
    "C16 harmonic k5 f<=2, anti-aliased pool, background 0, outer ring sigma 0.4": {
        "basis": {"name": "harmonic", "outer_sigma": 0.4}, "antialias": True, "input_mean": 0.0},
    # ... and ring 1 without m = 2 (cutoff 1.5 r: the function with the largest error of all at 22.5 degrees)
    "C16 harmonic k5 f<=2, cutoff 1.5r, anti-aliased pool, background 0, outer ring sigma 0.4": {
        "basis": {"name": "harmonic", "outer_sigma": 0.4, "frequency_cutoff": 1.5}, "antialias": True,
        "input_mean": 0.0},
    "C16 pixel k5, background 0": {"input_mean": 0.0},
    "C16 pixel k5, input upsampled x2": {"upsample": 2},
    "C16 harmonic k5 f<=2, input upsampled x2": {"basis": "harmonic", "upsample": 2},
    "C8 pixel k5": {"group": CyclicGroup(8)},
    "C8 harmonic k5 f<=2": {"group": CyclicGroup(8), "basis": "harmonic"},
    "C8 harmonic k5 f<=2, anti-aliased pool": {"group": CyclicGroup(8), "basis": "harmonic", "antialias": True},
    "D8 pixel k5": {"group": DihedralGroup(8)},
    "D8 harmonic k5 f<=2": {"group": DihedralGroup(8), "basis": "harmonic"},
}

# The same C16 network in e2cnn (--e2cnn): as it comes, and with gcnn_best's pooling and input.
E2CNN_DESIGNS: dict[str, dict[str, Any]] = {
    "e2cnn C16 R2Conv k5 (defaults)": {},
    "e2cnn C16 R2Conv k5, anti-aliased pool, background 0": {"antialias": True, "input_mean": 0.0},
}


def build(options: dict[str, Any], widths: list[int], seed: int = 0) -> GroupEquivariantCNN:
    """The gcnn_best network (C16, kernel 5, batch norm, pools after blocks 0 and 2, max over the group) with
    ``options`` changed, initialised with ``seed``; D8 halves the widths so the work per layer stays that of C16."""
    settings: dict[str, Any] = {"group": CyclicGroup(16), "kernel_size": 5, "padding": 2, "norm": "batch",
                                "pool_after": [0, 2], "group_pool": "max", "input_mean": MNIST_MEAN,
                                "input_std": MNIST_STD, **options}
    group = settings.pop("group")
    scale = 16 / group.order if isinstance(group, CyclicGroup) else 8 / group.order * 2
    channels = [max(1, round(w * scale)) for w in widths]
    torch.manual_seed(seed)
    return GroupEquivariantCNN(group, num_hidden=4, hidden_channels=channels, **settings)


class _Prefix(nn.Module):
    """The network up to and including block ``depth`` (``-1``: the lifting convolution alone)."""

    def __init__(self, model: GroupEquivariantCNN, depth: int) -> None:
        super().__init__()
        self.model, self.depth = model, depth

    def forward(self, x: Tensor) -> Tensor:
        if self.depth >= 0:
            return self.model.feature_maps(x)[self.depth].tensor
        x = self.model.normalise(x)
        if self.model.upsample > 1:
            x = F.interpolate(x, scale_factor=self.model.upsample, mode="bilinear", align_corners=False)
        return self.model.blocks[0][0](x)


def interpolated_errors(module: nn.Module, group: Group, x: Tensor) -> dict[float, float]:
    """``{angle: error}`` at the elements that are not quarter turns (mirrored ones under the angle + 1000)."""
    return {r.angle + 1000 * r.mirrored: r.error for r in check_equivariance(module, group, x) if not r.exact}


def function_errors(basis: HarmonicBasis, group: Group, digits: Tensor,
                    kernel_size: int = 5) -> list[tuple[tuple[float, int, str], float]]:
    """The lifting error (largest over the elements that are not quarter turns) of each of ``basis``'s functions
    alone, as the one kernel of a lifting layer of its own: which rings and frequencies the error comes from."""
    functions = basis.functions(kernel_size)
    errors = []
    for j, function in enumerate(functions):
        lift = LiftingConvolution(group, kernel_size, 1, 1, padding=kernel_size // 2, bias=False, basis=basis)
        with torch.no_grad():
            lift.weight.copy_(torch.eye(len(functions))[j])  # function j, coefficient 1
        errors.append((function, max(interpolated_errors(lift, group, digits).values())))
    return errors


def function_table(digits: Tensor) -> str:
    """:func:`function_errors` for the harmonic basis with e2cnn's outer ring width (sigma 0.4) and without, on C16."""
    bases = {"sigma 0.6": HarmonicBasis(), "outer ring sigma 0.4": HarmonicBasis(outer_sigma=0.4)}
    columns = {name: function_errors(basis, CyclicGroup(16), digits) for name, basis in bases.items()}
    first = next(iter(columns.values()))  # every basis has the same functions; only the outer ring differs
    rows = [[f"{radius:g}", m, part, *(f"{errors[j][1]:.3f}" for errors in columns.values())]
            for j, ((radius, m, part), _) in enumerate(first)]
    return table("Lifting error of each harmonic function alone, C16, kernel 5 (largest over the 12 elements "
                 "between quarter turns)", ["ring radius", "frequency m", "part", *bases], rows,
                 f"{len(digits)} MNIST test digits padded to 36x36, divided by MNIST's std (background 0); "
                 f"{machine()}")


def step_functions(model: nn.Module) -> tuple[Callable[[], None], Callable[[], None]]:
    """A training step (Adam, batch 128, 28x28) and an eval pass (no_grad) of ``model``, for :func:`timings`."""
    optimizer = torch.optim.Adam(model.parameters())
    x, y = torch.rand(128, 1, 28, 28), torch.randint(0, 10, (128,))

    def train_step() -> None:
        model.train()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def eval_pass() -> None:
        model.eval()
        with torch.no_grad():
            model(x)

    return train_step, eval_pass


def timing_table(models: dict[str, nn.Module], baseline: str, repeats: int) -> str:
    """Training-step and eval times of every model, and their ratios to ``baseline``'s in the same rounds."""
    steps = {name: step_functions(model) for name, model in models.items()}
    t = timings_apart([{f"{name} train": train for name, (train, _) in steps.items()},
                       {f"{name} eval": evaluate for name, (_, evaluate) in steps.items()}], repeats)
    rows = [[name, t[f"{name} train"] / 1e3, t.ratio(f"{name} train", f"{baseline} train"), t[f"{name} eval"],
             t.ratio(f"{name} eval", f"{baseline} eval")] for name in models]
    return table(f"Time per training step and eval pass, batch 128, 28x28 (against {baseline})",
                 ["design", "training step s", "ratio", "eval pass ms", "ratio"], rows,
                 "Medians of round-robin timings; ratios: median [95% interval] of the per-round ratios.")


def train_briefly(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 128, seed: int = 0) -> None:
    """One pass over ``images`` with Adam (one-cycle, peak 3e-3) and the presets' augmentation; ``seed`` draws
    the order and the augmentation (seed 0 keeps the tables measured before ``--seeds`` existed)."""
    augmentation = Augmentation.from_dict(AUGMENT)
    generator = torch.Generator().manual_seed(1 + seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = math.ceil(len(images) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=steps)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    model.train()
    for start in range(0, len(images), batch_size):
        batch = order[start:start + batch_size]
        loss = F.cross_entropy(model(augmentation(images[batch], generator)), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()


@torch.no_grad()
def accuracy_curve(model: nn.Module, images: Tensor, labels: Tensor, step: int = 5) -> dict[int, float]:
    """Accuracy at every ``step`` degrees (torchvision's bilinear rotation, as the rotated test set)."""
    model.eval()
    return {angle: (model(rotate(images, float(angle))).argmax(1) == labels).float().mean().item()
            for angle in range(0, 360, step)}


def spread(values: list[float | None], form: str) -> str:
    """One cell: the value (``form``, e.g. ``"{:.3f}"``), or mean ± sample standard deviation of several seeds'
    values; ``-`` where the design has no such element."""
    if values[0] is None:
        return "-"
    if len(values) == 1:
        return form.format(values[0])
    t = torch.tensor(values, dtype=torch.float64)
    return f"{form.format(t.mean().item())} ± {form.format(t.std().item())}"


def measure(model: nn.Module, group: Group, digits: Tensor, lift: nn.Module,
            blocks: list[nn.Module]) -> dict[str, float | None]:
    """The error columns of one network (``lift``/``blocks`` are its prefixes)."""
    row: dict[str, float | None] = {}
    row["lift"] = max(interpolated_errors(lift, group, digits).values())
    row["block 0"] = max(interpolated_errors(blocks[0], group, digits).values())
    row["all blocks"] = max(interpolated_errors(blocks[-1], group, digits).values())
    logits = interpolated_errors(model, group, digits)
    row["logits 22.5"], row["logits 45"] = logits.get(22.5), logits.get(45.0)
    return row


def e2cnn_design(widths: list[int], antialias: bool = False, input_mean: float = MNIST_MEAN,
                 seed: int = 0) -> nn.Module:
    """gcnn_best's C16 design in e2cnn: R2Conv over regular fields (e2cnn's default basis), inner batch norm,
    pointwise max pool (``antialias``: e2cnn's anti-aliased one, blur then max), the input less ``input_mean``
    (0: background 0, as gcnn_best), initialised with ``seed``."""
    from e2cnn import gspaces
    from e2cnn import nn as enn

    space = gspaces.Rot2dOnR2(N=16)

    class E2Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.in_type = enn.FieldType(space, [space.trivial_repr])
            layers, current = [], self.in_type
            self.blocks = nn.ModuleList()
            for index, width in enumerate(widths):
                out = enn.FieldType(space, [space.regular_repr] * width)
                layers = [enn.R2Conv(current, out, 5, padding=2), enn.InnerBatchNorm(out), enn.ReLU(out)]
                if index in (0, 2):
                    layers.append(enn.PointwiseMaxPoolAntialiased(out, 2) if antialias
                                  else enn.PointwiseMaxPool(out, 2))
                self.blocks.append(enn.SequentialModule(*layers))
                current = out
            self.group_pool = enn.GroupPooling(current)
            self.final_linear = nn.Linear(widths[-1], 10)

        def lift(self, x: Tensor) -> Tensor:
            y = next(self.blocks[0].children())(enn.GeometricTensor((x - input_mean) / MNIST_STD, self.in_type))
            return y.tensor.unflatten(1, (-1, 16))

        def feature_maps(self, x: Tensor) -> list[Tensor]:
            y = enn.GeometricTensor((x - input_mean) / MNIST_STD, self.in_type)
            maps = []
            for block in self.blocks:
                y = block(y)
                maps.append(y.tensor.unflatten(1, (-1, 16)))
            return maps

        def forward(self, x: Tensor) -> Tensor:
            y = enn.GeometricTensor((x - input_mean) / MNIST_STD, self.in_type)
            for block in self.blocks:
                y = block(y)
            return self.final_linear(self.group_pool(y).tensor.mean(dim=(-2, -1)))

    torch.manual_seed(seed)
    return E2Net()


class _E2Prefix(nn.Module):
    """An e2cnn network's block ``depth`` (``-1``: the lifting convolution alone) as ``[B, C, 16, H, W]``, its
    group axis read in gcnn's orientation (``reverse``: e2cnn's regular fields may turn the other way round the
    ring than gcnn's)."""

    def __init__(self, model: nn.Module, depth: int, reverse: bool) -> None:
        super().__init__()
        self.model, self.depth, self.reverse = model, depth, reverse

    def forward(self, x: Tensor) -> Tensor:
        y = self.model.lift(x) if self.depth < 0 else self.model.feature_maps(x)[self.depth]
        return y[:, :, (-torch.arange(16)) % 16] if self.reverse else y


def e2cnn_prefixes(model: nn.Module, digits: Tensor) -> list[nn.Module]:
    """The lifting convolution, then every block prefix, of the e2cnn network, oriented so that quarter turns
    are exact (checked)."""
    group = CyclicGroup(16)
    for reverse in (False, True):
        first = _E2Prefix(model, 0, reverse)
        quarter = [r.error for r in check_equivariance(first, group, digits[:4]) if r.exact]
        if max(quarter) < 1e-4:
            return [_E2Prefix(model, depth, reverse) for depth in range(-1, len(model.blocks))]
    raise RuntimeError("e2cnn's feature maps match neither orientation of gcnn's group axis at quarter turns")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64, help="MNIST test digits for the error (default 64)")
    parser.add_argument("--widths", type=int, nargs=5, default=SHIPPED_WIDTHS,
                        help=f"fields per layer of the C16 designs (default: gcnn_best's {SHIPPED_WIDTHS})")
    parser.add_argument("--train-images", type=int, default=0, help="train each design on this many digits first")
    parser.add_argument("--e2cnn", action="store_true", help="add e2cnn's C16 design")
    parser.add_argument("--seeds", type=int, default=1,
                        help="repeat every design with seeds 0..N-1; cells become mean ± std (default 1)")
    parser.add_argument("--timing", action="store_true", help="time the designs instead of measuring errors")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of timing (default 5)")
    parser.add_argument("--only", nargs="*", help="design names to run (default: all)")
    parser.add_argument("--checkpoint", type=Path, help="also measure this trained GroupEquivariantCNN checkpoint")
    parser.add_argument("--functions", action="store_true",
                        help="instead: the lifting error of each harmonic basis function alone")
    args = parser.parse_args()
    if args.images < 1 or args.train_images < 0 or args.repeats < 1 or args.seeds < 1 or min(args.widths) < 1:
        parser.error("--images, --widths, --seeds and --repeats must be positive, --train-images non-negative")
    prepare_process()
    widths = args.widths
    test_images, _ = load_mnist(train=False)
    digits = F.pad(test_images[: args.images], (4, 4, 4, 4))  # 36x36: every digit inside the compared disc
    if args.functions:
        print(function_table(digits / MNIST_STD))
        return
    if args.train_images:
        images, labels = load_mnist(train=True)
        train_idx, val_idx = train_val_split(len(images))
        train_images, train_labels = images[train_idx[: args.train_images]], labels[train_idx[: args.train_images]]
        val_images, val_labels = images[val_idx[:1000]], labels[val_idx[:1000]]

    designs: dict[str, Callable[[int], tuple[nn.Module, Group, nn.Module, list[nn.Module]]]]
    designs = {}
    for name, options in DESIGNS.items():
        def ours(seed: int, options: dict[str, Any] = options) -> tuple:
            model = build(options, widths, seed)
            blocks = [_Prefix(model, depth) for depth in range(len(model.blocks))]
            return model, model.group, _Prefix(model, -1), blocks
        designs[name] = ours
    if args.e2cnn:
        for name, options in E2CNN_DESIGNS.items():
            def theirs(seed: int, options: dict[str, Any] = options) -> tuple:
                model = e2cnn_design(widths, **options, seed=seed)
                lift, *blocks = e2cnn_prefixes(model, digits)
                return model, CyclicGroup(16), lift, blocks
            designs[name] = theirs
    trained_name = f"{args.checkpoint.name} (trained)" if args.checkpoint else None
    if args.checkpoint:
        trained = load_model(args.checkpoint)
        if not isinstance(trained, GroupEquivariantCNN):
            parser.error(f"{args.checkpoint} is not a GroupEquivariantCNN checkpoint")

        def checkpoint(seed: int) -> tuple:
            return (trained, trained.group, _Prefix(trained, -1),
                    [_Prefix(trained, depth) for depth in range(len(trained.blocks))])
        designs[trained_name] = checkpoint
    if args.only is None and args.checkpoint:  # the checkpoint alone
        names = [trained_name]
    else:
        names = [n for n in designs if not args.only or n in args.only or n == trained_name]
    if args.timing:
        models = {name: designs[name](0)[0] for name in names}
        print(timing_table(models, names[0], args.repeats) + f"\n{machine()}")
        return

    columns = ["lift", "block 0", "all blocks", "logits 22.5", "logits 45"]
    rows = []
    for name in names:
        runs: list[dict[str, float | None]] = []
        for seed in range(1 if name == trained_name else args.seeds):  # a checkpoint is measured as it is
            model, group, lift, blocks = designs[name](seed)
            started = time.perf_counter()
            if args.train_images and name != trained_name:
                train_briefly(model, train_images, train_labels, seed=seed)
                if name.startswith("e2cnn"):  # the orientation, checked again after training
                    lift, *blocks = e2cnn_prefixes(model, digits)
            run = {**measure(model, group, digits, lift, blocks), "training s": time.perf_counter() - started}
            if args.train_images:
                curve = accuracy_curve(model, val_images, val_labels)
                run["worst angle"] = min(curve, key=curve.get)
                run["val upright"], run["val worst"] = curve[0], curve[run["worst angle"]]
            runs.append(run)
        cells = [name, f"{count_parameters(model):,}", *(spread([r[k] for r in runs], "{:.3f}") for k in columns)]
        if args.train_images:
            angles = ", ".join(f"{r['worst angle']:g}" for r in runs)
            cells += [spread([r["val upright"] for r in runs], "{:.1%}"),
                      f"{spread([r['val worst'] for r in runs], '{:.1%}')} at {angles}",
                      spread([r["training s"] for r in runs], "{:.0f}")]
        rows.append(cells)
        print(" | ".join(cells), flush=True)

    header = ["design", "parameters", *columns]
    if args.train_images:
        header += ["val upright", "val worst of 72 angles", "training s"]
    seeds = "seed 0" if args.seeds == 1 else f"seeds 0-{args.seeds - 1}, mean ± std"
    state = (f"after one pass over {args.train_images:,} upright training digits ({seeds})" if args.train_images
             else f"randomly initialised ({seeds})")
    title = f"C16 widths {widths}, {state}" if any(n != trained_name for n in names) else ""
    title = "; ".join(filter(None, [title, f"{args.checkpoint} as trained" if args.checkpoint else ""]))
    print(table(f"Equivariance error between quarter turns, {title}", header, rows,
                note=f"{args.images} MNIST test digits padded to 36x36; {machine()}"))


if __name__ == "__main__":
    main()
