"""Shared cases for the backend agreement tests (cudasim, gpu, cpu kernel).

Every case is a kernel-contract function with its params, the batched NumPy
twin used as the reference ("the NumPy path"), and a point x.  Shapes are
chosen to be awkward: one element, sizes that are not a multiple of the
block size, three dimensions.
"""

from __future__ import annotations

import math

import numpy as np

from gpucheck.functions import as_function, batched, kernel
from gpucheck.kernels import builtin


def softplus_dot(x, w, k):
    """A user function of the kernel contract: math calls and an integer param."""
    s = 0.0
    xf = x.flat
    wf = w.flat
    for i in range(x.size):
        z = xf[i] * wf[i] * k[0]
        s += math.log(1.0 + math.exp(z))
    return s


def moved(x, base):
    """How many entries of x differ from base: 1 at every point if copies are restored."""
    c = 0.0
    for i in range(x.shape[0]):
        if x[i] != base[i]:
            c += 1.0
    return c


def softplus_dot_batched(w, k):
    """The batched twin of :func:`softplus_dot`, for NumPy and CuPy batches alike."""
    w_on = builtin.bind(np.asarray(w, dtype=np.float64).reshape(1, -1))

    def f(xs):
        xp = builtin.array_namespace(xs)
        z = xs.reshape(xs.shape[0], -1).astype(xp.float64)
        z = z * w_on(z) * float(k[0])
        return xp.log1p(xp.exp(z)).sum(axis=1)

    return f


SHAPES = {"n1": (1,), "n37": (37,), "3d": (2, 3, 5)}


def case(name: str, shape_name: str, dtype, seed: int = 0):
    """``(kernel Function, batched Function, x)`` for one case."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if name == "dense":
        fn, params, fb, x = builtin.workload("dense", 5, dt, batch=3, seed=seed)
        return as_function(kernel(fn, *params)), as_function(batched(fb)), x
    shape = SHAPES[shape_name]
    x = rng.standard_normal(shape).astype(dt)
    if name == "mse":
        t = rng.standard_normal(shape).astype(dt)
        return (as_function(kernel(builtin.mse, t)),
                as_function(batched(builtin.mse_batched(t))), x)
    if name == "softplus":
        w = rng.standard_normal(shape).astype(dt)
        k = np.array([2], dtype=np.int32)
        return (as_function(kernel(softplus_dot, w, k)),
                as_function(batched(softplus_dot_batched(w, k))), x)
    raise ValueError(name)


CASES = [("mse", s) for s in SHAPES] + [("softplus", "n37"), ("softplus", "3d"), ("dense", "")]


def central_points(x: np.ndarray):
    """idx and vals of a central difference over every element (2N points)."""
    n = x.size
    flat = x.reshape(-1).astype(np.float64)
    h = np.cbrt(np.finfo(x.dtype).eps) * np.maximum(1.0, np.abs(flat))
    idx = np.concatenate([np.arange(n), np.arange(n)]).astype(np.int64)
    vals = np.concatenate([flat - h, flat + h]).astype(x.dtype)
    return idx, vals


def tolerance(x: np.ndarray, values: np.ndarray) -> float:
    """Rounding allowed between two evaluations of the same f.

    Summation order and precision may differ between paths (the simulator
    runs the function as Python, where NumPy's rules sum float32 terms in
    float32), so allow a few units of x's dtype per term.
    """
    u = float(np.finfo(x.dtype).eps) / 2
    terms = max(1, x.size) * 8
    return 4 * terms * u * max(1.0, float(np.abs(values).max()))


def assert_agree(got: np.ndarray, want: np.ndarray, x: np.ndarray) -> None:
    assert got.dtype == np.float64 and got.shape == want.shape
    err = float(np.abs(got - want).max())
    tol = tolerance(x, want)
    assert err <= tol, f"max difference {err:.3g} exceeds rounding allowance {tol:.3g}"


def gradient(values: np.ndarray, x: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """Central-difference gradient from the values at :func:`central_points`."""
    n = x.size
    steps = vals[n:].astype(np.float64) - vals[:n].astype(np.float64)
    return (values[n:] - values[:n]) / steps

