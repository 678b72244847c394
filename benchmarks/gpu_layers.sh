#!/usr/bin/env bash
# The layers' GPU checks in one call (run from the repository root on a CUDA machine, ~2 minutes):
# the CUDA cases of the layer and cache tests, the TF32 effect on equivariance, and benchmarks/bench_banks.py.
# Results go to stdout and, where $OUT is set, to files under it.
set -o pipefail
OUT=${OUT:-/tmp}
export PYTHONUNBUFFERED=1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
timeout 200 python3 -m pytest tests/test_layers.py tests/test_cache.py -q -p no:cacheprovider -k "cuda or gpu" 2>&1 \
    | tail -15 | tee "$OUT/cuda_tests.log"
python3 - <<'PY' 2>&1 | tee "$OUT/tf32.log"
import torch
from gcnn import CyclicGroup, GroupConvolution, LiftingConvolution
from gcnn.nn import transform_feature_map
torch.manual_seed(0)
group = CyclicGroup(4)
lift = LiftingConvolution(group, 5, 1, 16, padding=2).cuda()
conv = GroupConvolution(group, 5, 16, 16, padding=2).cuda()
x = torch.rand(8, 1, 28, 28, device="cuda")
for tf32 in (True, False):
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
    with torch.no_grad():
        y = conv(lift(x))
        turned = conv(lift(torch.rot90(x, 1, dims=(-2, -1))))
        error = ((turned - transform_feature_map(group, 1, y)).norm() / y.norm()).item()
    print(f"TF32 {tf32}: quarter-turn relative error {error:.2e}")
PY
timeout 240 python3 -m benchmarks.bench_banks --device cuda 2>&1 | tee "$OUT/bench_banks_cuda.md"
