"""Built-in layers and row-wise functions for the delta-evaluation tests.

Every case is ``(name, form, x)`` with a form of f that is evaluated by
delta evaluation (a built-in layer or a :func:`gpucheck.rowwise`) and its
reference gradient, at small sizes.  Shapes are awkward on purpose: rows
that are not a multiple of 32, strides, padding, several heads.
"""

from __future__ import annotations

import math

import numpy as np

import gpucheck
from gpucheck import layers


def row_softmax_ce(row, label):
    """Softmax cross-entropy of one row of logits against its label (a scalar)."""
    m = row[0]
    for j in range(row.shape[0]):
        if row[j] > m:
            m = row[j]
    s = 0.0
    for j in range(row.shape[0]):
        s += math.exp(row[j] - m)
    return math.log(s) + m - row[label]


def row_sse(row, t):
    """Squared error of one row against the same row of a target."""
    s = 0.0
    for j in range(row.shape[0]):
        d = row[j] - t[j]
        s += d * d
    return s


def row_quartic(row, w):
    """A row-wise function with curvature and a whole (not row-aligned) param."""
    s = 0.0
    for j in range(row.shape[0]):
        s += w[j] * row[j] ** 4 + math.sin(row[j])
    return s


def row_tanh(row, w):
    """sum(w * tanh(row)) of one row, with the matching row of w."""
    s = 0.0
    for j in range(row.shape[0]):
        s += w[j] * math.tanh(row[j])
    return s


def block_energy(block, w):
    """A function of a 2-D row (x is 3-D): sum(w * tanh(block))."""
    s = 0.0
    for i in range(block.shape[0]):
        for j in range(block.shape[1]):
            s += w[i, j] * math.tanh(block[i, j])
    return s


def _softmax_grad(z, y):
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(z.shape[0]), y] -= 1.0
    return p


def layer_cases(dtype, seed=0):
    """``[(name, layer, x)]``: every built-in layer (and variant) at a small size."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)

    def a(*shape, s=1.0, shift=0.0):
        return (shift + s * rng.standard_normal(shape)).astype(dt)

    out = []
    t = a(5, 7)
    out.append(("mse", layers.mse(t), a(5, 7)))
    out.append(("mse_mean_half", layers.mse(t, reduction="mean", scale=0.5), a(5, 7)))
    out.append(("mse_sum_3d", layers.mse(a(2, 3, 4), reduction="sum"), a(2, 3, 4)))
    out.append(("softmax_ce", layers.softmax_cross_entropy(rng.integers(0, 6, 5)), a(5, 6, s=2.0)))
    A = a(9, 6)
    out.append(("dense_mse", layers.dense(A, a(9, 5)), a(6, 5, s=0.4)))
    out.append(("dense_mse_bias_mean", layers.dense(A, a(9, 5), bias=a(5), reduction="mean"),
                a(6, 5, s=0.4)))
    out.append(("dense_ce", layers.dense(A, labels=rng.integers(0, 5, 9), bias=a(5)),
                a(6, 5, s=0.4)))
    out.append(("layer_norm", layers.layer_norm(a(4, 6)), a(4, 6, s=2.0, shift=1.0)))
    out.append(("layer_norm_bcast", layers.layer_norm(a(6), eps=1e-3), a(2, 3, 6)))
    out.append(("tanh_sum", layers.tanh_sum(a(4, 5)), a(4, 5)))
    out.append(("logsumexp_large", layers.logsumexp(), a(4, 5, s=1.5, shift=60.0)))
    W = a(3, 2, 3, 3)
    out.append(("conv_input_cot", layers.conv2d(weight=W, cotangent=a(2, 3, 3, 3), stride=2,
                                                padding=1), a(2, 2, 5, 6)))
    out.append(("conv_input_mse", layers.conv2d(weight=W, target=a(2, 3, 3, 4), bias=a(3)),
                a(2, 2, 5, 6)))
    X = a(2, 2, 5, 6)
    out.append(("conv_weight_cot", layers.conv2d(inputs=X, cotangent=a(2, 3, 2, 2),
                                                 stride=(2, 3), padding=(0, 1)), a(3, 2, 3, 3)))
    out.append(("conv_weight_mse", layers.conv2d(inputs=X, target=a(2, 3, 3, 4), bias=a(3)),
                a(3, 2, 3, 3, s=0.5)))
    Q, K, V = a(2, 4, 3), a(2, 5, 3), a(2, 5, 2)
    C, T = a(2, 4, 2), a(2, 4, 2)
    out.append(("attention_q", layers.attention(k=K, v=V, cotangent=C), Q))
    out.append(("attention_k", layers.attention(q=Q, v=V, cotangent=C), K))
    out.append(("attention_v", layers.attention(q=Q, k=K, cotangent=C), V))
    out.append(("attention_q_mse", layers.attention(k=K, v=V, target=T, softmax_scale=0.8), Q))
    out.append(("attention_k_mse", layers.attention(q=Q, v=V, target=T), K))
    out.append(("attention_v_mse", layers.attention(q=Q, k=K, target=T), V))
    return out


def rowwise_cases(dtype, seed=0, *, delta=True):
    """``[(name, rowwise form, x, reference gradient)]``."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    out = []
    z = (2.0 * rng.standard_normal((6, 7))).astype(dt)
    y = rng.integers(0, 7, 6)
    out.append(("softmax_ce", gpucheck.rowwise(row_softmax_ce, y, scale=1 / 6, delta=delta), z,
                _softmax_grad(z.astype(np.float64), y) / 6))
    x = rng.standard_normal((5, 40)).astype(dt)  # rows of 32 entries or more: a warp per row
    t = rng.standard_normal((5, 40)).astype(dt)
    out.append(("sse_long_rows", gpucheck.rowwise(row_sse, t, scale=0.5, delta=delta), x,
                (x.astype(np.float64) - t)))
    x = rng.standard_normal(9).astype(dt)  # 1-D: rows of one element
    w = rng.standard_normal(1).astype(dt)
    out.append(("quartic_1d", gpucheck.rowwise(row_quartic, w, delta=delta), x,
                4 * w[0] * x.astype(np.float64) ** 3 + np.cos(x.astype(np.float64))))
    x = (0.8 * rng.standard_normal((3, 2, 4))).astype(dt)
    w = rng.standard_normal((2, 4)).astype(dt)
    out.append(("block_3d", gpucheck.rowwise(block_energy, w, aligned=(), delta=delta), x,
                w / np.cosh(x.astype(np.float64)) ** 2))
    return out
