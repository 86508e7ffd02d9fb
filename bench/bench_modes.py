"""`gpucheck audit` on a million entries: every mode, side by side with the full check.

Rows, each the real command line run as a subprocess (interpreter start,
imports, loading the .npy files, compiled loops from numba's disk cache,
the check, the JSON report), best of ``--repeat`` wall times, with the
check's own seconds from the report:

* ``mse``: the built-in MSE layer, 1024x1024 float32 (N = 2^20);
* ``dense``: the built-in dense layer with 512x512 float32 weights, batch 64;
* ``mse kernel``: the same MSE as a black-box ``--kernel`` user function
  (every point a full forward pass), whose full check would take hours.

Modes: ``auto`` (the default: the layers' delta evaluation fits, so it runs
the full check; the black box does not, so it samples and projects),
``sample``, ``project`` and ``sample+project``.  The baseline of each row
is the full check of the same problem: measured for the layers (their
``auto`` row), estimated for the black box from its first second (the
scheduler's estimate, which the progress bar also prints), as ``vs full``.

Usage::

    python bench/bench_modes.py [--repeat 3] [--quick] [--json FILE]

``--quick``: 64x64 and 32x32 sizes, one repeat (checks the script).
``check s`` includes ``compile``: a user's kernel function from a file is
compiled in every process (its module cannot be fingerprinted for the disk
cache); the library's loops load from the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import gpucheck  # noqa: E402
from gpucheck import layers  # noqa: E402

MODES = ("auto", "sample", "project", "sample+project")

USER = '''
def mse_k(x, t):
    s = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            d = x[i, j] - t[i, j]
            s += d * d
    return s / x.shape[0]
'''


def make_data(d: str, n: int, n_dense: int, batch: int) -> None:
    rng = np.random.default_rng(0)
    T = rng.normal(size=(n, n)).astype(np.float32)
    X = rng.normal(size=(n, n)).astype(np.float32)
    np.save(f"{d}/T.npy", T)
    np.save(f"{d}/X.npy", X)
    np.save(f"{d}/G.npy", layers.mse(T).grad(X).astype(np.float32))
    A = rng.normal(size=(batch, n_dense)).astype(np.float32)
    Y = rng.normal(size=(batch, n_dense)).astype(np.float32)
    W = (rng.normal(size=(n_dense, n_dense)) / np.sqrt(n_dense)).astype(np.float32)
    np.save(f"{d}/A.npy", A)
    np.save(f"{d}/Y.npy", Y)
    np.save(f"{d}/W.npy", W)
    np.save(f"{d}/dW.npy", layers.dense(A, Y).grad(W).astype(np.float32))
    with open(f"{d}/userloss.py", "w") as fh:
        fh.write(USER)


PROBLEMS = {
    "mse": ["--layer", "mse", "--target", "T.npy", "--x", "X.npy", "--grad", "G.npy"],
    "dense": ["--layer", "dense", "--inputs", "A.npy", "--target", "Y.npy", "--x", "W.npy",
              "--grad", "dW.npy"],
    "mse kernel": ["userloss.py:mse_k", "--kernel", "--param", "T.npy", "--x", "X.npy",
                   "--grad", "G.npy"],
}


def run_audit(d: str, args, repeat: int):
    """Best wall time of the command over ``repeat`` runs, and the report of that run."""
    cmd = [sys.executable, "-m", "gpucheck", "audit", *args, "--backend", "cpu", "--quiet",
           "--json", "report.json"]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode not in (0, 1, 3):
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr}")
        with open(f"{d}/report.json") as fh:
            rep = json.load(fh)
        if best is None or wall < best[0]:
            best = (wall, rep)
    return best


class _Stop(KeyboardInterrupt):
    pass


def estimate_full(d: str) -> float:
    """Seconds the full check of the black-box MSE would take: the scheduler's estimate."""
    import sys as _sys

    _sys.path.insert(0, d)
    from userloss import mse_k  # noqa: E402

    T, X, G = (np.load(f"{d}/{n}.npy") for n in ("T", "X", "G"))
    got = {}

    class Hear:
        def __call__(self, done, total):
            if "seconds" in got:
                raise _Stop

        def estimate(self, seconds, done, total):
            got["seconds"] = seconds + (time.perf_counter() - got["t0"])

    got["t0"] = time.perf_counter()
    try:
        gpucheck.check_gradient(gpucheck.kernel(mse_k, T), X, G, backend="cpu", mode="full",
                                progress=Hear())
    except _Stop:
        pass
    return got.get("seconds", float("nan"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", metavar="FILE", help="append one JSON line per row")
    args = p.parse_args(argv)
    n, n_dense, batch = (64, 32, 8) if args.quick else (1024, 512, 64)
    repeat = 1 if args.quick else args.repeat
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {platform.node()} {os.cpu_count()} cores, load {load:.1f}, Python "
          f"{platform.python_version()}, NumPy {np.__version__}; best of {repeat}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"| {'workload':<12} | {'mode':<15} | {'ran':<15} | status | {'nfev':>9} | "
          f"{'check s':>8} | {'compile':>7} | {'wall s':>7} | {'vs full':>9} |")
    print("|" + "|".join("-" * w for w in (14, 17, 17, 8, 11, 10, 9, 9, 11)) + "|")
    with tempfile.TemporaryDirectory() as d:
        make_data(d, n, n_dense, batch)
        for name, problem in PROBLEMS.items():
            full = None
            if name == "mse kernel":
                full = estimate_full(d)
            for mode in MODES:
                try:
                    wall, rep = run_audit(d, problem + ["--mode", mode], repeat)
                except Exception as err:  # a failing row is reported; the others still run
                    print(f"| {name:<12} | {mode:<15} | error: {err}")
                    continue
                if mode == "auto" and rep["mode"] == "full":
                    full = rep["seconds"]
                ratio = full / rep["seconds"] if full else float("nan")
                est = " (est.)" if name == "mse kernel" else ""
                print(f"| {name:<12} | {mode:<15} | {rep['mode']:<15} | {rep['status']:<6} | "
                      f"{rep['nfev']:>9,} | {rep['seconds']:>8.3f} | "
                      f"{rep['compile_seconds']:>7.3f} | {wall:>7.2f} | "
                      f"{ratio:>8.3g}x |" + (f" full {full:,.0f} s{est}" if mode == "auto" and est
                                              else ""), flush=True)
                if args.json:
                    with open(args.json, "a") as fh:
                        fh.write(json.dumps({"workload": name, "mode": mode, "ran": rep["mode"],
                                             "status": rep["status"], "nfev": rep["nfev"],
                                             "check_seconds": rep["seconds"], "wall": wall,
                                             "full_seconds": full, "reason": rep["mode_reason"],
                                             "n": n, "n_dense": n_dense, "batch": batch}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
