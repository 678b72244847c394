#!/usr/bin/env bash
# Fill .gpu/ (git-ignored) with what benchmarks/gpu_check.sh needs on a GPU machine that has no internet:
# MNIST's four raw files gzipped, and the e2cnn wheel for the benchmark comparison. Run it HERE, from the repo root:
#
#     bash benchmarks/gpu_prepare.sh            # MNIST from $GCNN_DATA_DIR (default /work/shared/data)
#
# then carry .gpu to the GPU machine with the working tree (see the top of benchmarks/gpu_check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${GCNN_DATA_DIR:-/work/shared/data}
RAW="$DATA_DIR/MNIST/raw"
mkdir -p .gpu/MNIST/raw .gpu/wheels
for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [ -f "$RAW/$name" ]; then
        if [ ! -s ".gpu/MNIST/raw/$name.gz" ]; then
            gzip -9 -c "$RAW/$name" > ".gpu/MNIST/raw/$name.gz.tmp"
            mv ".gpu/MNIST/raw/$name.gz.tmp" ".gpu/MNIST/raw/$name.gz"
        fi
    elif [ -f "$RAW/$name.gz" ]; then
        cp "$RAW/$name.gz" ".gpu/MNIST/raw/$name.gz"
    else
        echo "error: $RAW/$name(.gz) not found; set GCNN_DATA_DIR to the folder holding MNIST/raw" >&2
        exit 1
    fi
done
# e2cnn 0.2.3 is pure Python (py3-none-any); its dependencies (numpy, scipy, sympy) are on the GPU machine.
if ! ls .gpu/wheels/e2cnn-0.2.3-*.whl > /dev/null 2>&1; then
    pip download --no-deps --only-binary :all: e2cnn==0.2.3 -d .gpu/wheels -q \
        || echo "warning: could not download e2cnn; the GPU benchmarks will run without its row" >&2
fi
if ls .gpu/wheels/e2cnn-0.2.3-*.whl > /dev/null 2>&1; then
    check=$(mktemp -d)
    pip install --no-index --no-deps --target "$check" .gpu/wheels/e2cnn-0.2.3-*.whl -q 2>/dev/null
    PYTHONPATH="$check" python -c "import e2cnn.nn, e2cnn.gspaces" && echo "e2cnn wheel installs and imports"
    rm -rf "$check"
fi
du -sh .gpu
size=$(du -sm .gpu | cut -f1)
if [ "$size" -gt 40 ]; then
    echo "error: .gpu is ${size} MiB; it must stay well under 45 MiB (the working tree travels too)" >&2
    exit 1
fi
