"""Whole networks: gcnn against a plain CNN, a reference-style implementation and e2cnn; torch.compile.

The network (as in the issue): C4, a lifting convolution and four group
convolutions with 16 regular fields each, kernel 5, padding 2, ReLU, max over
the group, mean over space, linear; batch 128 of 28x28 images.  Four
implementations of it:

* plain: ``gcnn.export_plain`` of ours, i.e. ``nn.Conv2d`` layers holding the
  same expanded weights: the floor;
* gcnn: ``GroupEquivariantCNN`` (banks rebuilt per training step, cached in eval);
* reference-style: the same model with every kernel resampled by
  ``grid_sample`` on every forward pass, as the reference tutorial does;
* e2cnn: ``R2Conv`` on ``Rot2dOnR2(4)`` regular fields (``pip install -r
  requirements-bench.txt``; skipped with a message when absent).

Then torch.compile (inductor) on the largest shipped design, ``gcnn_best``.

    python -m benchmarks.bench_networks [--quick]
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.timing import command_line, median_ms, median_ms_apart, table
from gcnn import CyclicGroup, GroupConvolution, GroupEquivariantCNN, export_plain, model_from_config
from gcnn.groups import base_grid
from gcnn.nn import LiftingConvolution
from gcnn.presets import preset

ORDER, FIELDS, KERNEL, LAYERS = 4, 16, 5, 5


def reference_style_bank(layer: LiftingConvolution | GroupConvolution) -> Tensor:
    """The reference's kernel bank: sampling grids and a bilinear ``grid_sample`` of every kernel, on every call."""
    group, k, weight = layer.group, layer.kernel_size, layer.weight
    grids = group.left_action_on_R2(group.inverse(group.elements()), base_grid(k, k)).to(weight)  # [|G|, k, k, 2]
    kernels = weight.reshape(1, -1, k, k).expand(group.order, -1, -1, -1)
    spatial = F.grid_sample(kernels, grids, mode="bilinear", align_corners=True)
    spatial = spatial.reshape(group.order, *weight.shape).transpose(0, 1)  # [C_out, |G|, C_in, (|G|,) k, k]
    if isinstance(layer, GroupConvolution):  # output element g reads the kernel's group axis at g^-1 h
        spatial = torch.gather(spatial, 3, layer._permutation[None, :, None, :, None, None].expand_as(spatial))
    return spatial.reshape(layer.out_channels * group.order, -1, k, k)


def reference_style(model: GroupEquivariantCNN) -> GroupEquivariantCNN:
    """A copy of ``model`` whose layers rebuild their banks the reference's way (no cache, interpolation)."""
    model = copy.deepcopy(model)
    for layer in model.modules():
        if isinstance(layer, (LiftingConvolution, GroupConvolution)):
            layer.kernel_bank = functools.partial(reference_style_bank, layer)
    return model


def e2cnn_network(order: int, fields: int, kernel: int, layers: int) -> nn.Module | None:
    """The same network built from e2cnn, or ``None`` when e2cnn is not installed."""
    try:
        from e2cnn import gspaces
        from e2cnn import nn as enn
    except ImportError:
        return None
    space = gspaces.Rot2dOnR2(order)
    image, regular = enn.FieldType(space, [space.trivial_repr]), enn.FieldType(space, fields * [space.regular_repr])
    modules = []
    for index in range(layers):
        modules += [enn.R2Conv(image if index == 0 else regular, regular, kernel, padding=kernel // 2),
                    enn.ReLU(regular)]
    body = enn.SequentialModule(*modules, enn.GroupPooling(regular))

    class E2CNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.head = body, nn.Linear(fields, 10)

        def forward(self, x: Tensor) -> Tensor:
            return self.head(self.body(enn.GeometricTensor(x, image)).tensor.mean(dim=(-2, -1)))

    return E2CNN()


def _eval_and_train(model: nn.Module, x: Tensor, labels: Tensor) -> tuple[Callable[[], object], Callable[[], object]]:
    def evaluate() -> None:
        model.eval()
        with torch.no_grad():
            model(x)

    def train_step() -> None:
        model.train()
        F.cross_entropy(model(x), labels).backward()

    return evaluate, train_step


def implementations(batch: int, repeats: int) -> str:
    torch.manual_seed(0)
    ours = GroupEquivariantCNN(CyclicGroup(ORDER), KERNEL, 1, 10, LAYERS - 1, FIELDS, padding=KERNEL // 2,
                               norm="none", group_pool="max")
    networks = {"plain conv2d (same weights)": export_plain(ours), "gcnn": ours,
                "reference-style (grid_sample per call)": reference_style(ours)}
    e2cnn = e2cnn_network(ORDER, FIELDS, KERNEL, LAYERS)
    if e2cnn is not None:
        networks["e2cnn"] = e2cnn
    x, labels = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    evals, trains = {}, {}
    for name, network in networks.items():
        evals[f"{name} eval"], trains[f"{name} train"] = _eval_and_train(network, x, labels)
    t = median_ms_apart([evals, trains], repeats)
    floor_eval, floor_train = t["plain conv2d (same weights) eval"], t["plain conv2d (same weights) train"]
    gcnn_eval, gcnn_train = t["gcnn eval"], t["gcnn train"]
    rows = [[name, t[f"{name} eval"], t[f"{name} eval"] / floor_eval, t[f"{name} eval"] / gcnn_eval,
             t[f"{name} train"], t[f"{name} train"] / floor_train, t[f"{name} train"] / gcnn_train]
            for name in networks]
    missing = "" if e2cnn is not None else " e2cnn is not installed (`pip install -r requirements-bench.txt`): " \
                                           "its row is missing."
    return table(
        f"The same C{ORDER} network, four implementations ({LAYERS} convolutions, {FIELDS} regular fields, "
        f"{KERNEL}x{KERNEL}, batch {batch}, 28x28)",
        ["implementation", "eval ms", "vs plain", "vs gcnn", "train step ms", "vs plain", "vs gcnn"], rows,
        "Train step: forward, cross-entropy, backward. Eval: forward under `no_grad`." + missing)


def compiled(batch: int, repeats: int) -> str:
    """torch.compile (default inductor backend) against eager, for inference and for a training step."""
    torch.manual_seed(0)
    model = model_from_config(preset("gcnn_best")["model"])
    x, labels = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    plain = export_plain(model.eval())
    candidates: dict[str, Callable[[], object]] = {}
    compile_seconds: dict[str, str] = {}
    for name, network in {"GroupEquivariantCNN": model, "export_plain": plain}.items():
        eager_eval, eager_train = _eval_and_train(network, x, labels)
        compiled_network = torch.compile(network)
        compiled_eval, compiled_train = _eval_and_train(compiled_network, x, labels)
        candidates[f"{name} eval"], candidates[f"{name} eval compiled"] = eager_eval, compiled_eval
        if name == "GroupEquivariantCNN":
            candidates[f"{name} train"], candidates[f"{name} train compiled"] = eager_train, compiled_train
        for step, function in (("eval", compiled_eval), ("train", compiled_train)):
            if f"{name} {step} compiled" in candidates:
                started = time.perf_counter()
                try:
                    function()
                    compile_seconds[f"{name} {step}"] = f"{time.perf_counter() - started:.0f}"
                except Exception as error:  # a missing C++ toolchain, for one: report it, keep benchmarking
                    compile_seconds[f"{name} {step}"] = f"failed: {type(error).__name__}"
                    del candidates[f"{name} {step} compiled"]
    t = median_ms(candidates, repeats)
    rows = []
    for key in compile_seconds:
        eager, fast = t[key], t.get(f"{key} compiled")
        rows.append([key, eager, "-" if fast is None else fast, "-" if fast is None else eager / fast,
                     compile_seconds[key]])
    return table(
        f"torch.compile on the gcnn_best design (C16, {batch} images)",
        ["model, step", "eager ms", "compiled ms", "speed-up", "first call (compile) s"], rows,
        "Default inductor backend on this machine's CPU; the first call includes compilation.")


def run(quick: bool = False) -> str:
    repeats = 3 if quick else 7
    batch = 16 if quick else 128
    return "\n".join([implementations(batch, repeats), compiled(batch, repeats)])


if __name__ == "__main__":
    command_line(run, __doc__)
