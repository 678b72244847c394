"""Whole networks: gcnn against a plain CNN, a reference-style implementation and e2cnn; torch.compile.

The network (as in the issue): C4, a lifting convolution and four group
convolutions with 16 regular fields each, kernel 5, padding 2, ReLU, max over
the group, mean over space, linear; batch 128 of 28x28 images.  Its
implementations:

* plain: ``gcnn.export_plain`` of ours, i.e. ``nn.Conv2d`` layers holding the
  same expanded weights: the floor; again in channels-last layout
  (``.to(memory_format=torch.channels_last)``), the floor of that layout;
* gcnn: ``GroupEquivariantCNN`` (banks rebuilt per training step, cached in
  eval); again with ``gcnn.set_memory_format(model, torch.channels_last)``;
* reference-style: the same model with every kernel resampled by
  ``grid_sample`` on every forward pass, as the reference tutorial does;
* e2cnn: ``R2Conv`` on ``Rot2dOnR2(4)`` regular fields (``pip install -r
  requirements-bench.txt``; skipped with a message when absent).

Then torch.compile (inductor) on the largest shipped design, ``gcnn_best``.
Everything runs on the device given (``--device cuda``: CUDA, timed with a
synchronisation before and after every call).

    python -m benchmarks.bench_networks [--quick] [--device cuda]
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.timing import command_line, table, timings, timings_apart
from gcnn import (
    CyclicGroup,
    GroupConvolution,
    GroupEquivariantCNN,
    export_plain,
    model_from_config,
    set_memory_format,
)
from gcnn.groups import base_grid
from gcnn.nn import LiftingConvolution
from gcnn.presets import preset

ORDER, FIELDS, KERNEL, LAYERS = 4, 16, 5, 5
PLAIN = "plain conv2d (same weights)"


def reference_style_bank(layer: LiftingConvolution | GroupConvolution) -> Tensor:
    """The reference's kernel bank: sampling grids and a bilinear ``grid_sample`` of every kernel, on every call."""
    group, k, weight = layer.group, layer.kernel_size, layer.dense_weight()
    grids = group.left_action_on_R2(group.inverse(group.elements()), base_grid(k, k)).to(weight)  # [|G|, k, k, 2]
    kernels = weight.reshape(1, -1, k, k).expand(group.order, -1, -1, -1)
    spatial = F.grid_sample(kernels, grids, mode="bilinear", align_corners=True)
    spatial = spatial.reshape(group.order, *weight.shape).transpose(0, 1)  # [C_out, |G|, C_in, (|G|,) k, k]
    if isinstance(layer, GroupConvolution):  # output element g reads the kernel's group axis at g^-1 h
        spatial = torch.gather(spatial, 3, layer._permutation[None, :, None, :, None, None].expand_as(spatial))
    return spatial.reshape(layer.out_channels * group.order, -1, k, k)


def reference_style_weights(layer: LiftingConvolution | GroupConvolution) -> tuple[Tensor, Tensor | None]:
    """The ``conv2d`` weight and bias the reference's way: bank and repeated bias made anew on every call."""
    bias = None if layer.bias is None else layer.bias.repeat_interleave(layer.group.order)
    return reference_style_bank(layer), bias


def reference_style(model: GroupEquivariantCNN) -> GroupEquivariantCNN:
    """A copy of ``model`` whose layers rebuild their banks the reference's way (no cache, interpolation)."""
    model = copy.deepcopy(model)
    for layer in model.modules():
        if isinstance(layer, (LiftingConvolution, GroupConvolution)):
            # every call builds the bank anew, in eval too: no cache in front of it
            layer.conv_weights = layer._forward_weights = functools.partial(reference_style_weights, layer)
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


def implementations(batch: int, repeats: int, device: torch.device) -> str:
    torch.manual_seed(0)
    ours = GroupEquivariantCNN(CyclicGroup(ORDER), KERNEL, 1, 10, LAYERS - 1, FIELDS, padding=KERNEL // 2,
                               norm="none", group_pool="max")
    plain = export_plain(ours)
    networks: dict[str, nn.Module] = {
        PLAIN: plain,
        f"{PLAIN}, channels_last": copy.deepcopy(plain).to(memory_format=torch.channels_last),
        "gcnn": ours,
        "gcnn, channels_last": set_memory_format(copy.deepcopy(ours), torch.channels_last),
        "reference-style (grid_sample per call)": reference_style(ours),
    }
    e2cnn = e2cnn_network(ORDER, FIELDS, KERNEL, LAYERS)
    if e2cnn is not None:
        networks["e2cnn"] = e2cnn
    networks = {name: network.to(device) for name, network in networks.items()}
    x, labels = torch.rand(batch, 1, 28, 28, device=device), torch.randint(0, 10, (batch,), device=device)
    evals, trains = {}, {}
    for name, network in networks.items():
        evals[f"{name} eval"], trains[f"{name} train"] = _eval_and_train(network, x, labels)
    t = timings_apart([evals, trains], repeats)
    steps = ("eval", "train")
    rows = []
    for name in networks:
        row: list[object] = [name]
        for step in steps:
            row += [t[f"{name} {step}"], t.ratio(f"{name} {step}", f"{PLAIN} {step}")]
            if e2cnn is not None:
                row.append(t.ratio(f"{name} {step}", f"e2cnn {step}"))
        rows.append(row)
    header = ["implementation"]
    for step in ("eval", "train step"):
        header += [f"{step} ms", "vs plain"] + (["vs e2cnn"] if e2cnn is not None else [])
    if e2cnn is None:
        findings = "e2cnn is not installed (`pip install -r requirements-bench.txt`): its row is missing."
    else:
        findings = " ".join(
            f"{step.capitalize()}: " + "; ".join(t.ratio(f"{name} {step}", f"e2cnn {step}").verdict(name, "e2cnn")
                                                 for name in ("gcnn", "gcnn, channels_last")) + "."
            for step in steps)
    return table(
        f"The same C{ORDER} network, four implementations, two of them also channels-last ({LAYERS} convolutions, "
        f"{FIELDS} regular fields, {KERNEL}x{KERNEL}, batch {batch}, 28x28)",
        header, rows,
        "Train step: forward, cross-entropy, backward. Eval: forward under `no_grad`. Ratios: median [95% "
        "interval] of the per-round ratios. channels_last: the plain network through "
        "`.to(memory_format=torch.channels_last)`, gcnn through `gcnn.set_memory_format`. " + findings)


def compiled(batch: int, repeats: int, device: torch.device) -> str:
    """torch.compile (default inductor backend) against eager, for inference and for a training step."""
    torch.manual_seed(0)
    model = model_from_config(preset("gcnn_best")["model"]).to(device)
    x, labels = torch.rand(batch, 1, 28, 28, device=device), torch.randint(0, 10, (batch,), device=device)
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
    t = timings(candidates, repeats)
    rows = []
    for key in compile_seconds:
        compiled_key = f"{key} compiled"
        if compiled_key in t:
            rows.append([key, t[key], t[compiled_key], t.ratio(key, compiled_key), compile_seconds[key]])
        else:
            rows.append([key, t[key], "-", "-", compile_seconds[key]])
    return table(
        f"torch.compile on the gcnn_best design (C16, {batch} images)",
        ["model, step", "eager ms", "compiled ms", "speed-up", "first call (compile) s"], rows,
        f"Default inductor backend on this machine's {device.type.upper()}; the first call includes compilation. "
        "Speed-up: eager time over compiled, median [95% interval] of the per-round ratios.")


def sections(quick: bool = False, device: str | torch.device = "cpu") -> Iterator[str]:
    """The Markdown sections, one at a time (a caller can save each before the next, slower one starts)."""
    device = torch.device(device)
    repeats = 3 if quick else 25
    batch = 16 if quick else 128
    yield implementations(batch, repeats, device)
    yield compiled(batch, repeats, device)


def run(quick: bool = False, device: str | torch.device = "cpu") -> str:
    return "\n".join(sections(quick, device))


if __name__ == "__main__":
    command_line(run, __doc__)
