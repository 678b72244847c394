"""Layer overhead against a plain ``conv2d``, and cost against group order.

1. ``LiftingConvolution`` and ``GroupConvolution`` (C4, C8, D4; C4 and C8 with the harmonic basis) against
   ``F.conv2d`` with the same expanded weights (the layer's own kernel bank):
   eval forward under ``no_grad`` and a training step (forward + backward,
   input and weights requiring gradients).
2. A ``GroupConvolution`` of fixed width per group element for C1 ... C16:
   time against the FLOP count, which grows as ``|G|^2``.

    python -m benchmarks.bench_layers [--quick]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from benchmarks.timing import command_line, table, timings_apart
from gcnn import CyclicGroup, DihedralGroup, GroupConvolution, LiftingConvolution
from gcnn.groups import Group


def _steps(layer: torch.nn.Module, x: torch.Tensor) -> list[dict[str, Callable[[], object]]]:
    """Eval forwards, then training steps, of ``layer`` and of a bare conv2d with the same expanded weights."""
    with torch.no_grad():
        bank, bias = (weight.clone() for weight in layer.conv_weights())
    flat = x.flatten(1, 2) if x.dim() == 5 else x
    flat_grad, x_grad = flat.clone().requires_grad_(), x.clone().requires_grad_()
    bank_grad, bias_grad = bank.clone().requires_grad_(), bias.clone().requires_grad_()

    def layer_eval() -> None:
        layer.eval()
        with torch.no_grad():
            layer(x)

    def conv_eval() -> None:
        with torch.no_grad():
            F.conv2d(flat, bank, bias, padding=layer.padding)

    def layer_train() -> None:
        layer.train()
        layer(x_grad).sum().backward()

    def conv_train() -> None:
        F.conv2d(flat_grad, bank_grad, bias_grad, padding=layer.padding).sum().backward()

    return [{"conv eval": conv_eval, "layer eval": layer_eval}, {"conv train": conv_train, "layer train": layer_train}]


def layer_overhead(batch: int, channels: int, size: int, kernel: int, repeats: int) -> str:
    rows = []
    # The harmonic basis only changes how the bank is built (one matmul of the coefficients, as for C8's pixels).
    cases = [(CyclicGroup(4), "pixel"), (CyclicGroup(8), "pixel"), (DihedralGroup(4), "pixel"),
             (CyclicGroup(4), "harmonic"), (CyclicGroup(8), "harmonic")]
    for group, basis in cases:
        for cls in (LiftingConvolution, GroupConvolution):
            torch.manual_seed(0)
            layer = cls(group, kernel, channels, channels, padding=kernel // 2, basis=basis)
            shape = (batch, channels, size, size) if cls is LiftingConvolution else \
                (batch, channels, group.order, size, size)
            t = timings_apart(_steps(layer, torch.randn(shape)), repeats)
            name = f"{cls.__name__} {group!r}" + (f", {basis} basis" if basis != "pixel" else "")
            rows.append([name, t["conv eval"], t["layer eval"], t.ratio("layer eval", "conv eval"), t["conv train"],
                         t["layer train"], t.ratio("layer train", "conv train")])
    return table(
        f"Layer overhead: {channels} -> {channels} channels, {kernel}x{kernel}, batch {batch}, {size}x{size}",
        ["layer", "conv2d eval ms", "layer eval ms", "eval ratio", "conv2d train ms", "layer train ms",
         "train ratio"], rows,
        "Baseline: `F.conv2d` with the layer's own expanded kernel bank and bias. Ratios: median [95% interval] of "
        "the per-round ratios. Goal: <= 1.01 in eval, <= 1.05 in training.")


def group_order_scaling(batch: int, channels: int, size: int, kernel: int, repeats: int) -> str:
    rows = []
    for order in (1, 2, 4, 8, 16):
        group: Group = CyclicGroup(order)
        torch.manual_seed(0)
        layer = GroupConvolution(group, kernel, channels, channels, padding=kernel // 2)
        t = timings_apart(_steps(layer, torch.randn(batch, channels, order, size, size)), repeats)
        flops = 2 * batch * size * size * (channels * order) ** 2 * kernel * kernel  # multiply-adds of the forward
        rows.append([repr(group), f"{flops / 1e9:.2f}", t["layer eval"], flops / t["layer eval"] / 1e6,
                     t["layer train"], 3 * flops / t["layer train"] / 1e6])
    return table(
        f"Cost against group order: GroupConvolution, {channels} channels per group element, {kernel}x{kernel}, "
        f"batch {batch}, {size}x{size}",
        ["group", "forward GFLOP", "eval ms", "eval GFLOP/s", "train ms", "train GFLOP/s (3x forward)"], rows,
        "Width is channels x |G| on both sides, so FLOPs grow as |G|^2; a flat GFLOP/s column means time follows "
        "the FLOP count.")


def run(quick: bool = False) -> str:
    repeats = 3 if quick else 15
    batch = 16 if quick else 128
    return "\n".join([layer_overhead(batch, 16, 28, 5, repeats),
                      group_order_scaling(max(batch // 4, 4), 8, 28, 5, repeats)])


if __name__ == "__main__":
    command_line(run, __doc__)
