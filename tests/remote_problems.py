"""Small problems at module level, so that worker processes can import them by name.

Shared by tests/test_executors.py and tests/test_dask.py.
"""

from __future__ import annotations

import numpy as np

import gpucheck
from delta_cases import row_sse  # noqa: F401  (a row-wise kernel function the workers import)
from gpucheck.kernels import builtin

T = np.linspace(-1.0, 1.0, 24).reshape(4, 6)
X = np.cos(np.arange(24.0)).reshape(4, 6)
GRAD = 2 * (X - T) / 4


def loss(v):
    return float(np.sum((v - T) ** 2) / 4)


def loss_batched(xs):
    return ((xs - T) ** 2).reshape(len(xs), -1).sum(axis=1) / 4


def loss_bad_at_start(v):
    if v[0, 0] != X[0, 0]:
        raise ArithmeticError("planted failure in f")
    return loss(v)


FORMS = {
    "callable": loss,
    "batched": gpucheck.batched(loss_batched),
    "kernel": gpucheck.kernel(builtin.mse, T),
}


# Large enough that a batched check spans many batches (128 points each).
T64 = np.linspace(-1.0, 1.0, 64 * 64).reshape(64, 64)
X64 = np.sin(np.arange(64 * 64.0)).reshape(64, 64)


def batch_size_shows(xs):
    """MSE plus a trace of the batch size in the low bits: different batches, different bits."""
    return ((xs - T64) ** 2).reshape(len(xs), -1).sum(axis=1) / 64 + 1e-9 * len(xs)


def two_inputs(p):
    """A function of two named inputs."""
    return float(np.sum(np.tanh(p["W"] @ p["b"])))
