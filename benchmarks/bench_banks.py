"""How a layer builds its kernel bank: launches and time per training step, on the CPU or a GPU.

Three ways to build the ``conv2d`` weight and bias of a lifting or group
convolution from its parameters:

* ``einsum + gather``: the code before commit "kernel banks in one op": an
  einsum with the ``[|G|, k*k, n]`` transform matrices, a gather along the
  group axis, ``repeat_interleave`` of the bias;
* ``index_select`` (gcnn's now): pixel-exact groups read the bank straight
  from the flat weight through one precomputed index; groups that
  interpolate make every transformed kernel with one matmul and then read
  the bank from it the same way; the bias by ``expand`` + ``reshape``;
* ``expanded gather``: one ``gather`` with a small index broadcast over the
  channels (no bank-sized index), on an expanded weight or on the matmul's
  output.

Measured: the bank alone (forward and backward), and a training step and an
eval pass of the benchmarks' C4 network and of the gcnn_best design against
the same network made of plain convolutions (``export_plain``); on CUDA with
CUDA events and TF32 off, plus the number of kernels a training step
launches.

    python -m benchmarks.bench_banks [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.timing import prepare_process, table
from gcnn import CyclicGroup, GroupEquivariantCNN, export_plain, model_from_config
from gcnn.nn import GroupConvolution, LiftingConvolution, kernel_transform_matrices
from gcnn.presets import preset

Layer = LiftingConvolution | GroupConvolution


def einsum_gather(layer: Layer) -> tuple[Tensor, Tensor | None]:
    """The previous implementation: einsum with the transform matrices, gather along the group axis."""
    if not hasattr(layer, "_old_transforms"):
        layer._old_transforms = kernel_transform_matrices(layer.group, layer.kernel_size).to(layer.weight)
    matrices, k, order = layer._old_transforms, layer.kernel_size, layer.group.order
    flat = layer._flat_weight()
    if isinstance(layer, LiftingConvolution):
        bank = torch.einsum("gpq,oiq->ogip", matrices, flat).reshape(layer.out_channels * order, -1, k, k)
    else:
        spatial = torch.einsum("gpq,oihq->ogihp", matrices, flat)
        index = layer._permutation[None, :, None, :, None].expand_as(spatial)
        bank = torch.gather(spatial, 3, index).reshape(layer.out_channels * order, -1, k, k)
    bias = None if layer.bias is None else layer.bias.repeat_interleave(order)
    return bank, bias


def expanded_gather(layer: Layer) -> tuple[Tensor, Tensor | None]:
    """One gather whose index is broadcast over the channels (no bank-sized index)."""
    o, i, order, k = layer.out_channels, layer.in_channels, layer.group.order, layer.kernel_size
    permutation = layer._permutation
    in_order = permutation.shape[1]
    if layer.vector_storage:
        spatial = (layer.weight.reshape(-1, layer.weight.shape[-1]) @ layer.transforms)
        spatial = spatial.view(o, i, in_order, order, k * k).permute(0, 3, 1, 2, 4)  # [o, g, i, h', p]
        index = permutation[None, :, None, :, None].expand(o, order, i, in_order, k * k)
        bank = torch.gather(spatial, 3, index)
    else:
        if not hasattr(layer, "_pixel_index"):
            source = kernel_transform_matrices(layer.group, k).argmax(-1).to(permutation.device)  # [|G|, k*k]
            layer._pixel_index = (permutation[:, :, None] * k * k + source[:, None, :]).flatten(1)  # [|G|, h*p]
        flat = layer.weight.reshape(o, 1, i, in_order * k * k).expand(o, order, i, in_order * k * k)
        bank = torch.gather(flat, 3, layer._pixel_index[None, :, None, :].expand(o, order, i, -1))
    bias = None if layer.bias is None else layer.bias[:, None].expand(-1, order).reshape(-1)
    return bank.reshape(o * order, i * in_order, k, k), bias


BUILDERS: dict[str, Callable[[Layer], tuple[Tensor, Tensor | None]] | None] = {
    "einsum + gather": einsum_gather, "index_select": None, "expanded gather": expanded_gather}


def with_builder(model: nn.Module, name: str) -> nn.Module:
    """``model`` (in place) with every convolution building its bank the named way."""
    for layer in model.modules():
        if isinstance(layer, (LiftingConvolution, GroupConvolution)):
            builder = BUILDERS[name]
            if builder is None:
                layer.__dict__.pop("_build_weights", None)
            else:
                layer._build_weights = functools.partial(builder, layer)
    return model


def time_ms(function: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls after warm-up; CUDA events on a GPU."""
    for _ in range(3):
        function()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            function()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end))
        else:

            started = time.perf_counter()
            function()
            samples.append((time.perf_counter() - started) * 1e3)
    return statistics.median(samples)


def kernel_launches(function: Callable[[], object]) -> int:
    """GPU kernels (and memsets/copies) one call launches, from torch.profiler."""
    function()
    torch.cuda.synchronize()
    activities = [torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as profile:
        function()
        torch.cuda.synchronize()
    return sum(1 for event in profile.events() if event.device_type == torch.autograd.DeviceType.CUDA)


def bank_alone(device: torch.device, repeats: int) -> str:
    rows = []
    cases = [("lifting C4 1 -> 16", LiftingConvolution(CyclicGroup(4), 5, 1, 16)),
             ("group conv C4 16 -> 16", GroupConvolution(CyclicGroup(4), 5, 16, 16)),
             ("group conv C8 16 -> 16", GroupConvolution(CyclicGroup(8), 5, 16, 16)),
             ("group conv C16 16 -> 32 (gcnn_best's last)", GroupConvolution(CyclicGroup(16), 5, 16, 32))]
    for label, layer in cases:
        layer = layer.to(device)
        row: list[object] = [label]
        expected = layer._build_weights()[0].detach()
        for name in BUILDERS:
            with_builder(layer, name)
            if not torch.allclose(layer._build_weights()[0], expected, atol=1e-6):
                raise AssertionError(f"{name} builds another bank for {label}")

            def step(layer: Layer = layer) -> None:
                bank, bias = layer._build_weights()
                (bank.sum() + bias.sum()).backward()

            row.append(time_ms(step, device, repeats))
            if device.type == "cuda":
                row.append(kernel_launches(step))
        rows.append(row)
    header = ["layer"]
    for name in BUILDERS:
        header += [f"{name} ms"] + (["kernels"] if device.type == "cuda" else [])
    return table(f"Building the bank and bias, forward + backward ({device.type})", header, rows,
                 "Median of the repeats; backward through `sum()`, so it includes the bank's gradient.")


def networks(device: torch.device, batch: int, repeats: int) -> str:
    torch.manual_seed(0)
    designs = {
        "C4 network (5 convolutions, 16 fields)": GroupEquivariantCNN(
            CyclicGroup(4), 5, 1, 10, 4, 16, padding=2, norm="none", group_pool="max"),
        "gcnn_best design (C16)": model_from_config(preset("gcnn_best")["model"]),
    }
    x = torch.rand(batch, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    rows = []
    for label, model in designs.items():
        model = model.to(device)
        plain = export_plain(model.eval()).to(device)

        def train(network: nn.Module) -> Callable[[], None]:
            def step() -> None:
                network.train()
                F.cross_entropy(network(x), labels).backward()
            return step

        def evaluate(network: nn.Module) -> Callable[[], None]:
            def step() -> None:
                network.eval()
                with torch.no_grad():
                    network(x)
            return step

        plain_train, plain_eval = time_ms(train(plain), device, repeats), time_ms(evaluate(plain), device, repeats)
        row: list[object] = [label, plain_eval, plain_train]
        if device.type == "cuda":
            row.append(kernel_launches(train(plain)))
        for name in BUILDERS:
            with_builder(model, name)
            train_ms, eval_ms = time_ms(train(model), device, repeats), time_ms(evaluate(model), device, repeats)
            row += [eval_ms / plain_eval, train_ms, train_ms / plain_train]
            if device.type == "cuda":
                row.append(kernel_launches(train(model)))
        rows.append(row)
    header = ["network", "plain eval ms", "plain train ms"] + (["plain kernels"] if device.type == "cuda" else [])
    for name in BUILDERS:
        header += [f"{name} eval vs plain", f"{name} train ms", f"{name} train vs plain"]
        header += ["kernels"] if device.type == "cuda" else []
    return table(f"Networks, batch {batch}, 28x28 ({device.type})", header, rows,
                 "Plain: `export_plain` of the same model (nn.Conv2d layers holding the banks). Train: forward, "
                 "cross-entropy, backward (no optimiser step). Eval: forward under `no_grad` (the bank cached). "
                 "Medians of the repeats.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    repeats = 5 if args.quick else 30
    print(f"# Kernel banks\n\n{prepare_process()}\n")
    print(bank_alone(device, repeats))
    print(networks(device, 16 if args.quick else 128, repeats))


if __name__ == "__main__":
    main()
