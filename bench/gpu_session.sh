#!/usr/bin/env bash
# The GPU session: every figure gpucheck needs from a device, in one bounded run.
#
#   bash bench/gpu_session.sh [--simulate] OUT_DIR
#   bash bench/gpu_session.sh --fingerprint    (the sources' hash the log prints)
#
# Made for a machine with a CUDA device, no network and only the image's
# python3 (numpy, numba, numba-cuda, cupy, pytest): nothing is installed; the
# source tree runs with PYTHONPATH=. (gpucheck/_layout.py finds kernels/).
# Every step runs under `timeout`, and the whole run under a deadline of
# GPU_SESSION_SECONDS (default 280 s; steps that no longer fit are skipped
# and listed as such).  Cheapest and most important first:
#
#   env, info      versions, nvidia-smi, `gpucheck info` (compiles and launches
#                  the probe kernel)
#   gpu-tests      tests/gpu (the agreement tests on the device)
#   small          bench/gpu_table.py: MSE 8x8 and dense 32x32 b64, float32
#                  and float64, cpu vs cuda, full checks
#   cache-warm     the MSE 8x8 float32 row again in a new process: compile
#                  seconds with numba's on-disk cache warm
#   audit          bench/bench_audit.py, when it exists (the delta/row-wise
#                  audits): one more bounded step, see audit_step below
#   mse1m-f32 ...  the large full-forward rows, one step each, each bounded
#                  by a device budget (a prefix of the 2N points when a full
#                  check does not fit, extrapolated and marked as such)
#   wheel          does this tree build as a wheel with the image's pip and
#                  setuptools, offline (informational; nothing is installed)
#
# Each table row is printed and appended to OUT_DIR/rows.jsonl the moment it
# is measured.  OUT_DIR ends up with at most five files: session.log (every
# step's full output), rows.jsonl, gpu-tests.xml, audit.json (when the audit
# ran) and summary.md (steps, times and the table; also printed last).
#
# --simulate runs the same steps under NUMBA_ENABLE_CUDASIM=1 with the
# cudasim backend on tiny sizes (no device needed): CI runs it so that this
# script cannot rot between device sessions.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

source_fingerprint() {
    find gpucheck kernels bench tests -name '*.py' -o -name '*.sh' | LC_ALL=C sort \
        | xargs cat | sha1sum | cut -c1-12
}
if [ "${1:-}" = "--fingerprint" ]; then source_fingerprint; exit 0; fi

SIM=0
if [ "${1:-}" = "--simulate" ]; then SIM=1; shift; fi
if [ $# -lt 1 ]; then
    echo "usage: bash bench/gpu_session.sh [--simulate] OUT_DIR" >&2
    exit 2
fi
OUT=$1
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
DEADLINE=${GPU_SESSION_SECONDS:-$([ "$SIM" = 1 ] && echo 150 || echo 280)}
START=$(date +%s)
LOG=$OUT/session.log
ROWS=$OUT/rows.jsonl
SUMMARY=$OUT/summary.md
: >"$LOG"
: >"$ROWS"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
STEPS=$TMP/steps.tsv
: >"$STEPS"

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# A fresh kernel cache for this session, so 'small' compiles cold and
# 'cache-warm' measures a warm cache.
export GPUCHECK_CACHE_DIR=$TMP/kernel-cache

if [ "$SIM" = 1 ]; then
    export NUMBA_ENABLE_CUDASIM=1
    BACKEND=cudasim
    SMALL_ROWS="mse:8,dense:6:4"
    MSE_BIG="mse:12"
    DENSE_BIG="dense:8:8"
    SMALL_BUDGET=2
    BIG_BUDGET=2
else
    BACKEND=cuda
    SMALL_ROWS="mse:8,dense:32:64"
    MSE_BIG="mse:1024"
    DENSE_BIG="dense:512:64"
    SMALL_BUDGET=5
    BIG_BUDGET=15
fi

HAVE_TIMEOUT=1
command -v timeout >/dev/null 2>&1 || HAVE_TIMEOUT=0
status=0

say() { echo "$*" | tee -a "$LOG"; }

# step NAME LIMIT_SECONDS COMMAND...: run under min(LIMIT, time left), log
# everything, record rc and seconds; never stop the session.  A step named
# with a trailing '?' is informational: its failure does not fail the session.
step() {
    local name=$1 limit=$2 counts=1
    shift 2
    case $name in *\?) name=${name%\?}; counts=0 ;; esac
    local now left rc t0 t1
    now=$(date +%s)
    left=$((DEADLINE - (now - START) - 5))
    if [ "$left" -lt 10 ]; then
        say "== $name: skipped, ${left}s left of the ${DEADLINE}s deadline"
        printf '%s\tskipped\t0\n' "$name" >>"$STEPS"
        [ "$counts" = 1 ] && status=1
        return 0
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    say "== $name (limit ${limit}s): $*"
    t0=$(date +%s.%N)
    if [ "$HAVE_TIMEOUT" = 1 ]; then
        timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$LOG"
        rc=${PIPESTATUS[0]}
    else
        "$@" 2>&1 | tee -a "$LOG"
        rc=${PIPESTATUS[0]}
    fi
    t1=$(date +%s.%N)
    local secs
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    local what=ok
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then what="timed out"
    elif [ "$rc" -ne 0 ]; then what="exit $rc"; fi
    if [ "$rc" -ne 0 ]; then
        if [ "$counts" = 1 ]; then status=1; else what="$what (informational)"; fi
    fi
    say "== $name: $what after ${secs}s"
    printf '%s\t%s\t%s\n' "$name" "$what" "$secs" >>"$STEPS"
    return 0
}

table() {  # table STEP_NAME ROWS DTYPES BUDGET LIMIT: one gpu_table.py process
    local name=$1 rows=$2 dtypes=$3 budget=$4 limit=$5
    step "$name" "$limit" "$PY" bench/gpu_table.py --backend "$BACKEND" --rows "$rows" \
        --dtypes "$dtypes" --budget "$budget" --sample 256 --jsonl "$ROWS"
}

# The hook for the delta/row-wise audit rows: bench/bench_audit.py takes
# --backend cuda|cudasim|cpu and --json FILE; it runs here as one more
# bounded step when it exists, and its rows land in OUT_DIR/audit.json.
AUDIT_SCRIPT=bench/bench_audit.py
AUDIT_LIMIT=${GPU_SESSION_AUDIT_SECONDS:-60}
audit_step() {
    if [ -f "$AUDIT_SCRIPT" ]; then
        step audit "$AUDIT_LIMIT" "$PY" "$AUDIT_SCRIPT" --backend "$BACKEND" --json "$OUT/audit.json"
    else
        say "== audit: $AUDIT_SCRIPT not present, skipped"
        printf '%s\t%s\t0\n' audit "not present" >>"$STEPS"
    fi
}

env_report() {
    date -u
    echo "mode: $([ "$SIM" = 1 ] && echo simulate || echo device); backend $BACKEND; deadline ${DEADLINE}s"
    echo "tree: $(git rev-parse --short HEAD 2>/dev/null || echo 'no git') (git metadata of this copy)"
    # what actually ran: a hash of the sources, which `bash bench/gpu_session.sh
    # --fingerprint` prints in any checkout to match a session to a commit
    echo "sources: $(source_fingerprint)"
    if [ "$SIM" = 0 ]; then
        nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.max.sm,clocks.max.mem \
            --format=csv 2>&1 || echo "nvidia-smi failed"
    fi
    "$PY" - <<'EOF'
import sys
print("python", sys.version.split()[0], sys.executable)
for mod in ("numpy", "numba", "numba_cuda", "cupy", "cuda.bindings", "cuda.core", "pytest",
            "setuptools", "pip"):
    try:
        m = __import__(mod, fromlist=["__version__"])
        print(f"  {mod} {getattr(m, '__version__', '?')}")
    except Exception as err:
        print(f"  {mod}: not importable ({type(err).__name__})")
EOF
}

export -f env_report source_fingerprint
export SIM BACKEND DEADLINE PY
step env 30 bash -c env_report
step info 60 "$PY" -m gpucheck info
step gpu-tests 120 "$PY" -m pytest -q -rfEs -p no:cacheprovider --junitxml="$OUT/gpu-tests.xml" tests/gpu
table small "$SMALL_ROWS" float32,float64 "$SMALL_BUDGET" 60
table cache-warm mse:8 float32 "$SMALL_BUDGET" 30
audit_step
table mse1m-f32 "$MSE_BIG" float32 "$BIG_BUDGET" 60
table dense512-f32 "$DENSE_BIG" float32 "$BIG_BUDGET" 60
table dense512-f64 "$DENSE_BIG" float64 "$((BIG_BUDGET * 3 / 4))" 50
table mse1m-f64 "$MSE_BIG" float64 "$((BIG_BUDGET * 3 / 4))" 50
step 'wheel?' 60 "$PY" -m pip wheel --quiet --no-deps --no-build-isolation --no-index \
    -w "$TMP/wheel" .

{
    echo "# GPU session $(date -u +%Y-%m-%dT%H:%MZ), $([ "$SIM" = 1 ] && echo 'simulate (cudasim)' || echo device)"
    echo
    echo "| step | result | seconds |"
    echo "|---|---|---:|"
    awk -F'\t' '{ printf "| %s | %s | %s |\n", $1, $2, $3 }' "$STEPS"
    echo
    echo "total: $(( $(date +%s) - START ))s of a ${DEADLINE}s deadline"
    echo
    "$PY" bench/gpu_table.py --report "$ROWS" 2>&1
} >"$SUMMARY"
cat "$SUMMARY" | tee -a "$LOG"
exit $status
