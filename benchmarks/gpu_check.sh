#!/usr/bin/env bash
# One GPU session: retrain every preset (seed 0 = the shipped checkpoints, then seeds 1 and 2), evaluate them,
# run the CUDA tests and the GPU benchmarks, copying results into $OUT as they come.
#
# THE COMMAND FOR THE LEAD
#   1. here, from the repo root (MNIST gzipped + the e2cnn wheel into the git-ignored .gpu/, ~12 MiB):
#          bash benchmarks/gpu_prepare.sh
#   2. on the GPU machine, from the repo root, carrying .gpu (the device tool: carry [".gpu"], timeout_s 540):
#          bash benchmarks/gpu_check.sh
#   Results come back in $OUT (at most 8 files): summary.md (phases, every run's device, wall time and test
#   accuracy, mean ± std over seeds, the one-pixel shift table), evaluation.json (gcnn.evaluate over the seed-0
#   checkpoints), GPU.md (benchmarks), logs.tar.gz (every log, shifts.json, robustness output),
#   checkpoints.tar.gz.part-0, -1, ... (cat them, then tar -xzf: runs/s<seed>/<preset>/<preset>.{pt,json};
#   ship runs/s0/*/* as models/, which is seed 0, NOT the best seed).
#
# Smoke test on a CPU (every phase end to end: a tiny slice of MNIST, 1 epoch, quick benchmarks):
#       GPU_CHECK_SMOKE=1 OUT=/tmp/gpu_check_out bash benchmarks/gpu_check.sh
# Knobs: GPU_CHECK_BUDGET (overall seconds, default 480; 1800 in smoke mode), GPU_CHECK_EPOCHS (override every
# preset's epochs, e.g. for a short real run), GPU_CHECK_PHASES (default "a b c d e": e.g. "b c" for a second
# session that trains the other seeds), GPU_CHECK_BEST_ARGS (extra gcnn.train flags for gcnn_best, default
# "--amp"), GPU_CHECK_WORK (scratch folder, default /tmp/gpu_check).
#
# Robustness: no `set -e`. Every phase runs under `timeout` with a share of what is left of the budget (keeping
# a reserve for the phases after it), a failing or cut phase is noted and the next one starts, and after every
# phase everything produced so far is packed into $OUT. Phases in order of value: (a) seed 0 of cnn + gcnn_c4
# together, timed, then gcnn_best alone, timed; (b) cnn_rotaug and cnn_rotaug_tta seed 0 with gcnn_best seeds 1
# and 2, at once on the one GPU; (c) gcnn.evaluate and the one-pixel shift table on the GPU (TF32 allowed: these
# are accuracies), gcnn.app.robustness if present; (f) seeds 1 and 2 of the four small presets, at once; (d) the
# CUDA tests; (e) python -m benchmarks.run --device cuda.
#
# Measured on an H100 (torch 2.11; this branch before the "layers" branch's kernel-bank work), per epoch with
# validation: cnn 3.2 s and gcnn_c4 5.2 s (run together), gcnn_best 7.7 s with --amp (10 s without); plus
# 10-15 s per run for start-up and test metrics; gcnn.evaluate of 3 models 29 s; benchmarks 96 s. The full
# recipe (a: ~65 s + ~130 s, b: ~250 s, c: ~60 s, f: ~100 s, d: 15 s, e: ~100 s) needs ~720 s: with the default
# 480 s budget expect (a), (b) possibly cut short (then no gcnn_best seeds 1, 2) and (c). A second session with
# e.g. GPU_CHECK_PHASES="b f" picks up the rest (runs train afresh; nothing resumes across machines).
# `timeout --foreground` keeps every run in this script's process group, so stopping the script
# (kill -- -PGID) stops its runs too.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder the results go to}
SMOKE=${GPU_CHECK_SMOKE:-0}
if [ "$SMOKE" = 1 ]; then BUDGET=${GPU_CHECK_BUDGET:-1800}; else BUDGET=${GPU_CHECK_BUDGET:-480}; fi
WORK=${GPU_CHECK_WORK:-/tmp/gpu_check}
START=$(date +%s)
PRESETS="cnn gcnn_c4 cnn_rotaug cnn_rotaug_tta gcnn_best"
export PYTHONUNBUFFERED=1
rm -rf "$WORK"
mkdir -p "$OUT" "$WORK/logs" "$WORK/runs" "$WORK/data/MNIST/raw" "$WORK/site"
PHASES="$WORK/logs/phases.txt"
RUN_PHASES=" ${GPU_CHECK_PHASES:-a b c f d e} "
BEST_ARGS=${GPU_CHECK_BEST_ARGS---amp}
phase() { [[ "$RUN_PHASES" == *" $1 "* ]]; }

elapsed() { echo $(( $(date +%s) - START )); }
# limit CAP RESERVE: seconds for the next phase: at most CAP% of the budget, leaving RESERVE% of it for the
# phases after it (percentages, so a shorter or longer budget keeps the same shares).
limit() {
    local cap=$(( BUDGET * $1 / 100 )) left=$(( BUDGET - $(elapsed) - BUDGET * $2 / 100 ))
    if (( left < cap )); then echo $(( left > 1 ? left : 1 )); else echo "$cap"; fi
}
note() { echo "[$(elapsed) s] $*" | tee -a "$PHASES"; }
seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

publish() {  # everything so far into $OUT; each file replaced whole (copy, then rename)
    python -m benchmarks.gpu_report summary "$WORK/runs" "$PHASES" --shifts "$WORK/logs/shifts.json" \
        --out "$WORK/summary.md" >> "$WORK/logs/report.log" 2>&1
    tar -czf "$WORK/logs.tar.gz" -C "$WORK" logs
    tar -czf "$WORK/checkpoints.tar.gz" -C "$WORK" --exclude='*.resume.pt' --exclude='*.tmp' runs
    for file in summary.md logs.tar.gz evaluation.json GPU.md; do
        [ -f "$WORK/$file" ] && cp "$WORK/$file" "$OUT/.$file.tmp" && mv "$OUT/.$file.tmp" "$OUT/$file"
    done
    # New parts are copied under temporary names first, so $OUT never lacks a complete set for long.
    rm -rf "$WORK/parts" && mkdir "$WORK/parts"
    split -b 15M -d -a 1 "$WORK/checkpoints.tar.gz" "$WORK/parts/checkpoints.tar.gz.part-"
    for part in "$WORK"/parts/*; do cp "$part" "$OUT/.$(basename "$part").tmp"; done
    rm -f "$OUT"/checkpoints.tar.gz.part-*
    for part in "$WORK"/parts/*; do mv "$OUT/.$(basename "$part").tmp" "$OUT/$(basename "$part")"; done
}

# train PRESET SEED SECONDS: one run in its own out-dir, its log in logs/.
train() {
    local name=$1 seed=$2 dir="$WORK/runs/s$2/$1" log="$WORK/logs/train-$1-s$2.log" started extra=""
    [ "$name" = gcnn_best ] && extra=$BEST_ARGS
    mkdir -p "$dir"
    started=$(date +%s.%N)
    # shellcheck disable=SC2086
    timeout --foreground -k 10 "$3" python -m gcnn.train --preset "$name" --seed "$seed" --out-dir "$dir" --data-dir "$DATA" \
        --no-progress $TRAIN_ARGS $extra > "$log" 2>&1
    local rc=$?
    note "train $name seed $seed: exit $rc after $(seconds_since "$started") s$( ((rc == 124 || rc == 137)) \
        && echo ' (timed out)'): $(tail -n 1 "$log")"
}

# --- set-up: device, data, e2cnn ---------------------------------------------------------------------------
{ nvidia-smi || true; python -c "import torch; print(torch.__version__, torch.cuda.is_available())"; } \
    > "$WORK/logs/machine.txt" 2>&1
DEVICE=$(python -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
note "budget ${BUDGET} s, device $DEVICE, smoke $SMOKE, $(nproc) cores, git $(git rev-parse --short HEAD 2>/dev/null)"
for file in .gpu/MNIST/raw/*.gz; do
    gunzip -c "$file" > "$WORK/data/MNIST/raw/$(basename "$file" .gz)"
done
DATA="$WORK/data"
TRAIN_ARGS=""
if [ "$SMOKE" = 1 ]; then
    # A slice of real MNIST (400 training, 100 test images) keeps every phase short on a CPU.
    python - "$WORK/data/MNIST/raw" "$WORK/smoke/MNIST/raw" <<'EOF'
import sys
from pathlib import Path

source, target = Path(sys.argv[1]), Path(sys.argv[2])
target.mkdir(parents=True)
for prefix, count in (("train", 400), ("t10k", 100)):
    for kind, header, item in (("images-idx3", 16, 784), ("labels-idx1", 8, 1)):
        data = (source / f"{prefix}-{kind}-ubyte").read_bytes()
        head = bytearray(data[:header])
        head[4:8] = count.to_bytes(4, "big")
        (target / f"{prefix}-{kind}-ubyte").write_bytes(bytes(head) + data[header:header + count * item])
EOF
    DATA="$WORK/smoke"
    TRAIN_ARGS="--epochs 1"
fi
[ -n "${GPU_CHECK_EPOCHS:-}" ] && TRAIN_ARGS="$TRAIN_ARGS --epochs $GPU_CHECK_EPOCHS"
if ls .gpu/wheels/e2cnn-*.whl > /dev/null 2>&1; then
    pip install --no-index --no-deps --target "$WORK/site" .gpu/wheels/e2cnn-*.whl > "$WORK/logs/e2cnn.log" 2>&1 \
        || note "e2cnn did not install (see logs/e2cnn.log): benchmarks without it"
fi
note "set-up done (data in $DATA, train args: ${TRAIN_ARGS:-none})"

# --- (a) seed 0, timed: cnn and gcnn_c4 together, then gcnn_best alone --------------------------------------
if phase a; then
T=$(limit 20 65)
started=$(date +%s.%N)
train cnn 0 "$T" &
train gcnn_c4 0 "$T" &
wait
note "phase a1: cnn + gcnn_c4 together, wall $(seconds_since "$started") s (target for 10 epochs each: < 60 s)"
publish
T=$(limit 35 35)
started=$(date +%s.%N)
train gcnn_best 0 "$T"
note "phase a2: gcnn_best alone ($BEST_ARGS) wall $(seconds_since "$started") s"
publish
fi

# --- (b) the rest of seed 0 and gcnn_best's other seeds (its mean ± std), at once on the one GPU -------------
if phase b; then
T=$(limit 70 15)
started=$(date +%s.%N)
train cnn_rotaug 0 "$T" &
train cnn_rotaug_tta 0 "$T" &
train gcnn_best 1 "$T" &
train gcnn_best 2 "$T" &
wait
note "phase b: cnn_rotaug, cnn_rotaug_tta seed 0 and gcnn_best seeds 1, 2 together, wall $(seconds_since "$started") s"
publish
fi

# --- (c) evaluation of the seed-0 checkpoints on the GPU ----------------------------------------------------
# Accuracies with TF32 allowed (--tf32): several times faster for gcnn_best; equivariance is measured by the
# CUDA tests in exact float32.
if phase c; then
SEED0=()
for name in $PRESETS; do
    [ -f "$WORK/runs/s0/$name/$name.pt" ] && SEED0+=("$WORK/runs/s0/$name/$name.pt")
done
if (( ${#SEED0[@]} )); then
    T=$(limit 10 6)
    CURVE=(); [ "$SMOKE" = 1 ] && CURVE=(--curve-images 50 --angle-step 90)
    timeout --foreground -k 5 "$T" python -m benchmarks.gpu_report evaluate --device "$DEVICE" --tf32 -- "${SEED0[@]}" \
        --data-dir "$DATA" --out "$WORK/evaluation.json" "${CURVE[@]}" > "$WORK/logs/evaluate.log" 2>&1
    note "phase c: gcnn.evaluate exit $? ($(wc -l < "$WORK/logs/evaluate.log") log lines)"
    T=$(limit 8 5)
    timeout --foreground -k 5 "$T" python -m benchmarks.gpu_report shifts --device "$DEVICE" --tf32 --data-dir "$DATA" \
        --out "$WORK/logs/shifts.json" "${SEED0[@]}" > "$WORK/logs/shifts.log" 2>&1
    note "phase c: one-pixel shifts exit $?"
    if python -c "import importlib.util as u, sys; sys.exit(u.find_spec('gcnn.app.robustness') is None)" 2>/dev/null
    then
        T=$(limit 5 4)
        GCNN_DATA_DIR="$DATA" timeout --foreground -k 5 "$T" python -m gcnn.app.robustness > "$WORK/logs/robustness.log" 2>&1
        note "phase c: gcnn.app.robustness exit $?"
    else
        note "phase c: gcnn.app.robustness not present, skipped"
    fi
else
    note "phase c: no seed-0 checkpoint to evaluate"
fi
publish
fi

# --- (f) seeds 1 and 2 of the small presets, at once ---------------------------------------------------------
if phase f; then
T=$(limit 30 6)
started=$(date +%s.%N)
export OMP_NUM_THREADS=2  # 8 processes on the machine's cores; their work is on the GPU
for seed in 1 2; do
    for name in cnn gcnn_c4 cnn_rotaug cnn_rotaug_tta; do train "$name" "$seed" "$T" & done
done
wait
unset OMP_NUM_THREADS
note "phase f: seeds 1, 2 of cnn, gcnn_c4, cnn_rotaug, cnn_rotaug_tta together, wall $(seconds_since "$started") s"
publish
fi

# --- (d) CUDA tests -----------------------------------------------------------------------------------------
if ! phase d; then
    :
elif python -c "import pytest" 2> /dev/null; then
    T=$(limit 5 2)
    TESTS=(tests/test_augment.py tests/test_precision.py tests/test_train_evaluate.py tests/test_layers.py)
    timeout --foreground -k 5 "$T" python -m pytest -q -p no:cacheprovider -k "cuda or gpu" -rs "${TESTS[@]}" \
        > "$WORK/logs/pytest-cuda.log" 2>&1
    note "phase d: CUDA tests exit $?: $(tail -n 1 "$WORK/logs/pytest-cuda.log")"
else
    note "phase d: pytest missing, CUDA tests skipped"
fi
publish

# --- (e) benchmarks on the device ---------------------------------------------------------------------------
if phase e; then
T=$(limit 100 2)
QUICK=(); [ "$SMOKE" = 1 ] && QUICK=(--quick --only bench_networks)  # the one that takes a device
PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}" timeout --foreground -k 5 "$T" python -m benchmarks.run --device "$DEVICE" \
    --output "$WORK/GPU.md" "${QUICK[@]}" > "$WORK/logs/benchmarks.log" 2>&1
note "phase e: benchmarks exit $? ($(grep -c '^###' "$WORK/GPU.md" 2>/dev/null || echo 0) sections saved)"
publish
fi
note "done"
publish
