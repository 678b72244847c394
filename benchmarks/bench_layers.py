"""Speed of gcnn's group convolution against baselines measured in the same run.

For each group, on a [B, C, |G|, H, W] input, it times (median of repeated runs):

* ``conv2d``: a plain ``F.conv2d`` with the already-expanded kernel bank: the floor.
* ``gcnn eval``: ``GroupConvolution`` in eval mode under ``no_grad`` (bank cached).
* ``gcnn train``: forward + backward in training mode (bank rebuilt every call).
* ``resample``: forward + backward with the bank rebuilt the way the reference
  does it, resampling every kernel with ``grid_sample`` on each call.

and prints ratios to ``conv2d`` (inference) and to ``resample`` (training).

    python benchmarks/bench_layers.py            # defaults: batch 64, 16 channels, 28x28
    python benchmarks/bench_layers.py --batch 8 --channels 8 --size 20
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from gcnn import CyclicGroup, DihedralGroup, GroupConvolution
from gcnn.groups import Group, base_grid


def resampled_bank(layer: GroupConvolution) -> torch.Tensor:
    """The reference approach: resample every kernel with grid_sample on every call, then roll the group axis."""
    group, k = layer.group, layer.kernel_size
    weight = layer.weight  # [C_out, C_in, |G|, k, k]
    grids = group.left_action_on_R2(group.inverse(group.elements()), base_grid(k, k))  # [|G|, k, k, 2]
    flat = weight.reshape(1, -1, k, k).expand(group.order, -1, -1, -1)
    spatial = F.grid_sample(flat, grids.to(weight.dtype), mode="bilinear", align_corners=True)
    spatial = spatial.reshape(group.order, *weight.shape).transpose(0, 1)  # [C_out, |G|, C_in, |G|, k, k]
    index = layer._permutation[None, :, None, :, None, None].expand_as(spatial)
    bank = torch.gather(spatial, 3, index)
    return bank.reshape(layer.out_channels * group.order, layer.in_channels * group.order, k, k)


def median_ms(statement: str, scope: dict, min_run_time: float) -> float:
    return Timer(statement, globals=scope).blocked_autorange(min_run_time=min_run_time).median * 1e3


def bench(group: Group, args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(0)
    layer = GroupConvolution(group, args.kernel, args.channels, args.channels, padding=args.kernel // 2)
    x = torch.randn(args.batch, args.channels, group.order, args.size, args.size)
    flat = x.flatten(1, 2)
    with torch.no_grad():
        bank = layer.kernel_bank().clone()
    scope = {"F": F, "layer": layer, "x": x, "flat": flat, "bank": bank, "pad": args.kernel // 2,
             "resampled_bank": resampled_bank, "torch": torch}
    t = args.min_run_time
    layer.eval()
    results = {
        "conv2d": median_ms("with torch.no_grad(): F.conv2d(flat, bank, padding=pad)", scope, t),
        "gcnn eval": median_ms("with torch.no_grad(): layer(x)", scope, t),
    }
    layer.train()
    results["gcnn train"] = median_ms("layer(x).sum().backward()", scope, t)
    results["resample"] = median_ms(
        "F.conv2d(flat, resampled_bank(layer), padding=pad).sum().backward()", scope, t)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--kernel", type=int, default=5)
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds of timing per measurement")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch}, {args.channels} "
          f"channels, {args.size}x{args.size}, kernel {args.kernel}; medians in ms")
    print(f"{'group':<24}{'conv2d':>9}{'eval':>9}{'eval/conv2d':>13}{'train':>9}{'resample':>10}{'train/resample':>16}")
    for group in (CyclicGroup(4), CyclicGroup(8), DihedralGroup(4), CyclicGroup(16)):
        r = bench(group, args)
        print(f"{group!r:<24}{r['conv2d']:>9.2f}{r['gcnn eval']:>9.2f}{r['gcnn eval'] / r['conv2d']:>13.3f}"
              f"{r['gcnn train']:>9.2f}{r['resample']:>10.2f}{r['gcnn train'] / r['resample']:>16.3f}")


if __name__ == "__main__":
    main()
