#!/usr/bin/env bash
# The issue-3 GPU session: run on a machine with a CUDA device and no network
# (its image has numpy, numba, numba-cuda, cupy, pytest, hypothesis).
#
#   bash bench/gpu_session.sh [OUT_DIR]
#
# 1. installs gpucheck from this tree without touching the network (or falls
#    back to PYTHONPATH=.), 2. reports what gpucheck sees, 3. runs the GPU
#    tests and the PTX compile tests, 4. runs `gpucheck bench` (cpu vs cuda
#    side by side) on the 8x8 MSE, and bench/gpu_table.py on the 8x8 MSE, a
#    1024x1024 MSE (N ~ 1M) and a dense layer with 512x512 weights and batch
#    64, in float32 and float64: floor, time, achieved/peak, agreement.
# Everything printed is also written to OUT_DIR (default bench/out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench/out}
mkdir -p "$OUT"
PY=${PYTHON:-python}

if ! $PY -m pip install --quiet --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1; then
    echo "pip install failed (see $OUT/install.log); running from the tree"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

status=0
run() {  # run a step, keep its output, remember a failure, go on
    local name=$1; shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$OUT/$name.txt"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || { echo "== $name exited $rc"; status=1; }
}

run info $PY -m gpucheck info
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt"
run gpu-tests $PY -m pytest -q -rs -p no:cacheprovider tests/gpu
run ptx-tests $PY -m pytest -q -rs -p no:cacheprovider tests/test_ptx.py
for dt in float32 float64; do
    run "bench-mse8-$dt" $PY -m gpucheck bench --layer mse --size 8 --dtype "$dt"
    run "bench-dense32-$dt" $PY -m gpucheck bench --layer dense --size 32 --batch 64 --dtype "$dt"
done
run gpu-table $PY bench/gpu_table.py --repeat 2 --sample 512 --json "$OUT/gpu_table.json"
exit $status
