"""A dense (affine) layer under a loss, as a function of its weights."""

from __future__ import annotations

import numpy as np

from .. import validate
from ..errors import GpuCheckError
from ..functions import batched, kernel
from ..kernels import builtin
from ..kernels import layers as points
from ._base import Delta, Layer, as_seen, reduction_factor, xp_of
from ._losses import _scaled

__all__ = ["dense"]


def _batch_cost(arrays):
    return arrays[1].shape[1]  # one output column: the batch


def dense(inputs, target=None, *, labels=None, bias=None, reduction: str = "batchmean",
          scale: float = 1.0, delta: bool = True) -> Layer:
    """A dense layer ``Z = A @ W + bias`` under a loss, as a function of its weights W.

    With ``target`` T (B, n_out): the squared error ``scale * sum((Z - T)**2) / D``,
    ``D`` = B (``'batchmean'``, the default), ``B * n_out`` (``'mean'``) or 1
    (``'sum'``).  With ``labels`` (B,) instead: the softmax cross-entropy of
    the logits Z, ``scale * sum_b CE(Z[b], labels[b]) / D``, ``D`` = B or 1.
    W has shape (n_in, n_out) for inputs A of shape (B, n_in).

    Delta evaluation: moving ``W[i, k]`` changes output column k only, by
    ``A[:, i] * dw``: O(B) per point, in float64, against Z computed once at W.

    Parameters
    ----------
    inputs : array_like
        A, (B, n_in).
    target : array_like, optional
        T, (B, n_out), for the squared error.
    labels : array_like, optional
        Integer classes (B,), for the cross-entropy (n_out classes).
    bias : array_like, optional
        (n_out,).
    reduction : {'batchmean', 'mean', 'sum'}
    scale : float
    delta : bool
        False evaluates the full forward at every point instead.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> from gpucheck.layers import dense
    >>> rng = np.random.default_rng(0)
    >>> A = rng.normal(size=(5, 3)); T = rng.normal(size=(5, 2)); W = rng.normal(size=(3, 2))
    >>> layer = dense(A, T)
    >>> gpucheck.check_gradient(layer, W, layer.grad, backend="cpu").status
    'pass'
    >>> ce = dense(A, labels=np.array([0, 1, 1, 0, 1]))
    >>> gpucheck.check_gradient(ce, W, ce.grad, backend="cpu").status
    'pass'
    """
    a = validate.numeric_array(inputs, "inputs", ndim=2)
    batch, n_in = a.shape
    if (target is None) == (labels is None):
        raise GpuCheckError("`dense` needs exactly one of `target` (squared error) and "
                            "`labels` (softmax cross-entropy)")
    scale = validate.finite_real(scale, "scale")
    if target is not None:
        t = validate.numeric_array(target, "target", ndim=2)
        if t.shape[0] != batch:
            raise GpuCheckError(f"`inputs` (B, n_in) and `target` (B, n_out) must share B, "
                                f"got {a.shape} and {t.shape}")
        n_out = t.shape[1]
    else:
        y = validate.numeric_array(labels, "labels", ndim=1, integer=True)
        if y.shape[0] != batch or y.min() < 0:
            raise GpuCheckError(f"`labels` must hold a class index >= 0 for each of the {batch} "
                                f"rows of `inputs`, got shape {y.shape}")
        n_out = None
    b = None
    if bias is not None:
        b = validate.numeric_array(bias, "bias", ndim=1)
        if n_out is not None and b.shape[0] != n_out:
            raise GpuCheckError(f"`bias` must have n_out = {n_out} entries, got {b.shape[0]}")
        n_out = b.shape[0] if n_out is None else n_out
    if n_out is not None and labels is not None and n_out <= int(y.max()):
        raise GpuCheckError(f"`labels` go up to {int(y.max())} but the layer has {n_out} outputs")
    shape = None if n_out is None else (n_in, n_out)
    a_on = builtin.bind(a)
    b_on = None if b is None else builtin.bind(b)

    def check(w):
        ok = w.ndim == 2 and w.shape[0] == n_in and (n_out is None or w.shape[1] == n_out)
        if ok and labels is not None:
            ok = w.shape[1] > int(y.max())
        if not ok:
            want = f"({n_in}, {n_out})" if n_out is not None else f"({n_in}, C), C > {int(y.max())}"
            raise GpuCheckError(f"`x` must be weights of shape {want}, got {w.shape}")

    def logits(w, batched_w):
        z = (a_on(w)[None] if batched_w else a_on(w)) @ w
        return z if b_on is None else z + b_on(w)

    def logits64(w):
        z = as_seen(a, w.dtype) @ w.astype(np.float64)
        return z if b is None else z + as_seen(b, w.dtype)

    if target is not None:
        factor = reduction_factor(reduction, scale, batch * n_out, batch)
        divisor = {"sum": 1, "batchmean": batch, "mean": batch * n_out}[reduction]
        t_on = builtin.bind(t)

        def f(w):
            check(w)
            r = logits(w, False) - t_on(w)
            return _scaled((r * r).sum(), divisor, scale)

        def fb(ws):
            r = logits(ws, True) - t_on(ws)[None]
            return _scaled((r * r).reshape(ws.shape[0], -1).sum(axis=1), divisor, scale)

        def grad(w):
            check(w)
            r = logits64(w) - as_seen(t, w.dtype)
            return 2.0 * factor * as_seen(a, w.dtype).T @ r

        def prepare(w):
            check(w)
            r = logits64(w) - as_seen(t, w.dtype)
            f0 = factor * float(np.sum(r * r))
            # transposed: a point's loop over the batch reads them contiguously
            return f0, (w.astype(np.float64), as_seen(a, w.dtype).T.copy(),
                        (2.0 * factor * r).T.copy(), np.array([factor]))

        if b is None and reduction == "batchmean" and scale == 1.0:
            k = kernel(builtin.dense_mse, a, t)
        else:
            zero = np.zeros(n_out, dtype=t.dtype) if b is None else b
            k = kernel(points.dense_mse_scaled, a, t, zero, np.array([factor]))
        return Layer("dense", f, batched(fb), grad, k, Delta(points.dense_point, prepare, _batch_cost),
                     validate.flag(delta, "delta"), shape)

    factor = reduction_factor(reduction, scale, batch, batch)
    divisor = 1 if reduction == "sum" else batch
    y64 = y.astype(np.int64)
    rows = np.arange(batch)

    def ce(z, batched_z):
        xp = xp_of(z)
        m = z.max(axis=-1, keepdims=True)
        lse = xp.log(xp.exp(z - m).sum(axis=-1)) + m[..., 0]
        if batched_z:
            lab = xp.asarray(y)[None, :, None].repeat(z.shape[0], 0)
        else:
            lab = xp.asarray(y)[:, None]
        return (lse - xp.take_along_axis(z, lab, axis=-1)[..., 0]).sum(axis=-1)

    def f(w):
        check(w)
        return _scaled(ce(logits(w, False), False), divisor, scale)

    def fb(ws):
        return _scaled(ce(logits(ws, True), True), divisor, scale)

    def softmax64(w):
        z = logits64(w)
        m = z.max(axis=1, keepdims=True)
        e = np.exp(z - m)
        s = e.sum(axis=1, keepdims=True)
        return z, e / s, (np.log(s) + m)[:, 0]

    def grad(w):
        check(w)
        _, p, _ = softmax64(w)
        p[rows, y] -= 1.0
        return factor * as_seen(a, w.dtype).T @ p

    def prepare(w):
        check(w)
        z, p, lse = softmax64(w)
        f0 = factor * float(np.sum(lse - z[rows, y]))
        return f0, (w.astype(np.float64), as_seen(a, w.dtype).T.copy(), p.T.copy(), y64,
                    np.array([factor]))

    return Layer("dense", f, batched(fb), grad, None, Delta(points.dense_ce_point, prepare, _batch_cost),
                 validate.flag(delta, "delta"), shape)
