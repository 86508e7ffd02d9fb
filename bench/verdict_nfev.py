"""Evaluations of f (nfev) for correct gradients on representative cases, and the verdict.

Run against two trees to compare them, in one process each on the same host:

    PYTHONPATH=/path/to/tree python bench/verdict_nfev.py

Prints one line per case: N, nfev, nfev - 2N, status.  Only gpucheck's public
API is used, so any version of the tree can run it.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np

import gpucheck
from gpucheck import layers as L


sys.path.insert(0, "tests")
from corpus import readme_mse_k as loss_k  # noqa: E402
from delta_cases import row_sse as row_mse  # noqa: E402


def cases():
    rng = np.random.default_rng(0)
    for dt in (np.float64, np.float32):
        name = np.dtype(dt).name
        t = rng.normal(size=(8, 8)).astype(dt)
        x = rng.normal(size=(8, 8)).astype(dt)
        lay = L.mse(t)
        yield f"mse 8x8 batched {name}", lay.batched, x, lay.grad(x)
        lay = L.tanh_sum(rng.normal(size=(16, 16)).astype(dt))
        x = rng.normal(size=(16, 16)).astype(dt)
        yield f"tanh 16x16 batched {name}", lay.batched, x, lay.grad(x)
        lay = L.softmax_cross_entropy(rng.integers(0, 8, size=8))
        x = (3 * rng.normal(size=(8, 8))).astype(dt)
        yield f"softmax CE 8x8 batched {name}", lay.batched, x, lay.grad(x)
        lay = L.layer_norm(rng.normal(size=(8, 8)).astype(dt))
        x = (2 * rng.normal(size=(8, 8)) + 1).astype(dt)
        yield f"layer norm 8x8 batched {name}", lay.batched, x, lay.grad(x)
        a, tt = rng.normal(size=(16, 8)).astype(dt), rng.normal(size=(16, 8)).astype(dt)
        lay = L.dense(a, tt)
        x = (rng.normal(size=(8, 8)) / 3).astype(dt)
        yield f"dense 8x8 batched {name}", lay.batched, x, lay.grad(x)
    for n in (8, 32, 64):
        T = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
        X = np.random.default_rng(1).normal(size=(n, n)).astype(np.float32)
        yield f"README kernel MSE {n}x{n} float32", gpucheck.kernel(loss_k, T), X, 2 * (X - T) / n
    # the other forms: built-in layers by delta, a row-wise function, two inputs
    for dt in (np.float64, np.float32):
        name = np.dtype(dt).name
        t = rng.normal(size=(32, 32)).astype(dt)
        x = rng.normal(size=(32, 32)).astype(dt)
        lay = L.mse(t)
        yield f"mse 32x32 layer {name}", lay, x, lay.grad(x)
        yield f"mse 32x32 rowwise {name}", gpucheck.rowwise(row_mse, t, scale=1 / 32), x, lay.grad(x)
        lay = L.tanh_sum(rng.normal(size=(32, 32)).astype(dt))
        x = rng.normal(size=(32, 32)).astype(dt)
        yield f"tanh 32x32 layer {name}", lay, x, lay.grad(x)
        lay = L.softmax_cross_entropy(rng.integers(0, 32, size=32))
        x = (3 * rng.normal(size=(32, 32))).astype(dt)
        yield f"softmax CE 32x32 layer {name}", lay, x, lay.grad(x)
        a, tt = rng.normal(size=(16, 8)).astype(dt), rng.normal(size=(16, 8)).astype(dt)
        w, b = (rng.normal(size=(8, 8)) / 3).astype(dt), rng.normal(size=8).astype(dt)
        z = a.astype(float) @ w + 1e-3 * b - tt
        dz = 2 * z / 16
        fb = gpucheck.batched(lambda ws, bs, a=a, tt=tt, dt=dt: (
            (np.einsum("ri,bik->brk", a, ws) + dt(1e-3) * bs[:, None, :] - tt) ** 2
        ).reshape(len(ws), -1).sum(axis=1) / dt(16))
        yield f"dense + bias/1000 batched {name}", fb, (w, b), (a.T.astype(float) @ dz, 1e-3 * dz.sum(0))


def main():
    warnings.simplefilter("ignore")
    print(f"{'case':<34} {'N':>6} {'nfev':>7} {'nfev-2N':>8}  status")
    for name, f, x, g in cases():
        r = gpucheck.check_gradient(f, x, g, backend="cpu")
        size = sum(v.size for v in x) if isinstance(x, tuple) else x.size
        print(f"{name:<34} {size:6d} {r.nfev:7d} {r.nfev - 2 * size:8d}  {r.status}")


if __name__ == "__main__":
    main()
