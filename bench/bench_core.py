"""Batched CPU check against one-perturbation-at-a-time loops, in one process.

Workload: f(X) = sum((X - T)**2) / rows for a 128x128 float64 X (N = 16,384),
the numerical gradient by central differences (2N forward passes).

Baselines, all computing the same 2N passes:
  loop     the usual hand-written perturb / evaluate / restore loop in NumPy
  callable gpucheck with f as a plain callable (one call per point)
Measured:
  batched  gpucheck with f marked batched (chunks of perturbed copies)
  check    the full check_gradient (batched), noise probes and verdict included

Floor: each forward pass reads X and T (2 x N x 8 bytes) and does 3N flops;
2N passes are 6 N^2 flops = 1.6 GFLOP and 4 N^2 x 8 bytes = 8.6 GB if nothing
stayed in cache.

Usage: python bench/bench_core.py [--size 128] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import gpucheck
from gpucheck.layers import mse


def loop_gradient(f, x, h):
    g = np.empty_like(x)
    flat = x.reshape(-1)
    gf = g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h[i]
        fp = f(x)
        flat[i] = old - h[i]
        fm = f(x)
        flat[i] = old
        gf[i] = (fp - fm) / (2 * h[i])
    return g


def best(fn, repeat):
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128, help="X is size x size")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    n = args.size
    T = rng.normal(size=(n, n))
    X = rng.normal(size=(n, n))
    layer = mse(T)
    h = np.cbrt(np.finfo(np.float64).eps / 2) * np.maximum(1, np.abs(X.ravel()))
    N = X.size
    flops = 6.0 * N * N

    rows = []
    t_loop, g_loop = best(lambda: loop_gradient(layer.f, X.copy(), h), 1)
    rows.append(("loop (perturb/restore, NumPy)", t_loop, g_loop))
    t_call, g_call = best(lambda: gpucheck.numerical_gradient(layer.f, X, backend="cpu"), 1)
    rows.append(("gpucheck callable", t_call, g_call))
    t_b, g_b = best(lambda: gpucheck.numerical_gradient(layer.batched, X, backend="cpu"), args.repeat)
    rows.append(("gpucheck batched", t_b, g_b))
    t_c, r = best(lambda: gpucheck.check_gradient(layer.batched, X, layer.grad(X), backend="cpu"),
                  args.repeat)
    rows.append(("gpucheck check_gradient (batched)", t_c, r.numeric))

    exact = layer.grad(X)
    print(f"MSE {n}x{n} float64, N = {N}, {2 * N} forward passes; floor {flops / 1e9:.2f} GFLOP")
    print(f"{'path':36} {'seconds':>9} {'GFLOP/s':>8} {'speed-up vs loop':>17} {'max |g - exact|':>16}")
    for name, t, g in rows:
        err = float(np.max(np.abs(np.asarray(g) - exact)))
        print(f"{name:36} {t:9.3f} {flops / t / 1e9:8.2f} {t_loop / t:16.1f}x {err:16.2e}")
    print(f"check_gradient verdict: {r.status}, nfev {r.nfev}")


if __name__ == "__main__":
    main()
