"""CPU only: the numba-parallel kernel path vs the NumPy batched path vs a loop.

The same workloads (MSE and a dense layer, float32 and float64) evaluated at
every point of a central-difference check (2N points) three ways, in one
process, side by side:

* ``kernel``: the kernel-contract function compiled by numba into one
  parallel loop (backend ``cpu``, kind ``kernel``); compile time apart.
* ``batched``: the batched NumPy twin on the cpu backend's thread pool.
* ``loop``: a plain callable doing the same NumPy forward pass once per
  point (the usual hand-written check).

Times are the best of ``--repeat`` runs (the loop runs once); the ratios are
what to read.  Usage::

    python bench/bench_cpu_kernels.py [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numba
import numpy as np

from gpucheck import plan
from gpucheck.backends import cpu
from gpucheck.functions import as_function, batched, kernel
from gpucheck.kernels.builtin import workload
from gpucheck.stencils import get_scheme

# (layer, size, batch, run the loop?)
WORKLOADS = [
    ("mse", 8, 0, True),
    ("mse", 128, 0, True),
    ("mse", 256, 0, False),  # the loop takes minutes here (DESIGN.md: 92 s)
    ("dense", 32, 64, True),
    ("dense", 64, 64, True),
]
QUICK = [("mse", 8, 0, True), ("mse", 64, 0, True), ("dense", 16, 16, True)]


def _one_at_a_time(layer, params):
    if layer == "mse":
        (t,) = params
        t64 = t.astype(np.float64)
        return lambda z: float(np.mean((z.astype(np.float64) - t64) ** 2))
    xb, y = (p.astype(np.float64) for p in params)
    return lambda w: float(0.5 * np.mean((xb @ w.astype(np.float64) - y) ** 2))


def _best(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run(workloads, repeat):
    rows = []
    for layer, size, batch, with_loop in workloads:
        for dtype in ("float32", "float64"):
            fn, params, fb, x = workload(layer, size, dtype, batch=max(batch, 1))
            st = plan.points(x, scheme=get_scheme("central"))
            idx, vals = st.idx, st.vals.reshape(-1)
            kf = as_function(kernel(fn, *params))
            first = cpu.evaluate(kf, x, idx, vals)
            t_kernel, ev = _best(lambda: cpu.evaluate(kf, x, idx, vals), repeat)
            bf = as_function(batched(fb))
            t_batched, evb = _best(lambda: cpu.evaluate(bf, x, idx, vals), repeat)
            diff = float(np.max(np.abs(ev.values - evb.values)) / np.max(np.abs(evb.values)))
            t_loop = np.nan
            if with_loop:
                lf = as_function(_one_at_a_time(layer, params))
                t_loop, _ = _best(lambda: cpu.evaluate(lf, x, idx, vals), 1)
            name = f"{layer} {size}x{size}" + (f" b{batch}" if layer == "dense" else "")
            rows.append((name, dtype, x.size, idx.size, first.compile_seconds, t_kernel,
                         t_batched, t_loop, diff))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small sizes only")
    args = p.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"# {platform.processor() or platform.machine()}, {cores} cores, numba "
          f"{numba.__version__} ({numba.get_num_threads()} threads), numpy {np.__version__}")
    rows = run(QUICK if args.quick else WORKLOADS, args.repeat)
    head = ("workload", "dtype", "N", "points", "compile s", "kernel s", "batched s", "loop s",
            "batched/kernel", "loop/kernel", "max rel diff")
    table = [head]
    for name, dt, n, pts, comp, tk, tb, tl, diff in rows:
        table.append((name, dt, str(n), str(pts), f"{comp:.2f}", f"{tk:.4g}", f"{tb:.4g}",
                      "-" if np.isnan(tl) else f"{tl:.4g}", f"{tb / tk:.3g}",
                      "-" if np.isnan(tl) else f"{tl / tk:.3g}", f"{diff:.1e}"))
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for r in table:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if r is head:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


if __name__ == "__main__":
    main()
