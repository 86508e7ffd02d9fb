"""Losses of an array of predictions: mean squared error, softmax cross-entropy."""

from __future__ import annotations

import numpy as np

from .. import validate
from ..errors import GpuCheckError
from ..functions import batched, kernel
from ..kernels import builtin
from ..kernels import layers as points
from ._base import Delta, Layer, as_seen, reduction_factor, xp_of

__all__ = ["mse", "softmax_cross_entropy"]


def _scaled(s, divisor: int, scale: float):
    # divide first, as the loss is written: sum / count * scale
    s = s / divisor
    return s if scale == 1.0 else s * scale


def mse(target, *, reduction: str = "batchmean", scale: float = 1.0, delta: bool = True) -> Layer:
    """Squared error against a target: ``scale * sum((X - T)**2) / D``.

    ``D`` is X's number of rows (``reduction='batchmean'``, the default: the
    per-row sum averaged over rows), its number of entries (``'mean'``) or 1
    (``'sum'``).  The forum question's loss, half the mean over the features
    of each row averaged over the rows, is ``mse(T, reduction='mean',
    scale=0.5)``.  Its central differences have no truncation error (f is
    quadratic along every coordinate), which makes it the clearest case of
    rounding error.

    Delta evaluation: a perturbation of ``X[i]`` changes one term, O(1) per
    point, evaluated in float64 from the values the forward sees.

    Parameters
    ----------
    target : array_like
        T, the shape x must have (at least 1-D).
    reduction : {'batchmean', 'mean', 'sum'}
    scale : float
    delta : bool
        False evaluates the full forward at every point instead.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> from gpucheck.layers import mse
    >>> T = np.zeros((2, 3)); X = np.ones((2, 3))
    >>> layer = mse(T)
    >>> float(layer.f(X)), gpucheck.check_gradient(layer, X, layer.grad, backend="cpu").status
    (3.0, 'pass')
    >>> float(mse(T, reduction="mean", scale=0.5).f(X))
    0.5
    """
    t = validate.numeric_array(target, "target", min_ndim=1)
    if t.size == 0:
        raise GpuCheckError(f"`target` must be a non-empty array, got shape {t.shape}")
    scale = validate.finite_real(scale, "scale")
    rows = t.shape[0]
    factor = reduction_factor(reduction, scale, t.size, rows)
    divisor = {"sum": 1, "batchmean": rows, "mean": t.size}[reduction]
    t_on = builtin.bind(t)

    def check(x):
        if x.shape != t.shape:
            raise GpuCheckError(f"`x` must have the target's shape {t.shape}, got {x.shape}")

    def f(x):
        check(x)
        d = x - t_on(x)
        return _scaled((d * d).sum(), divisor, scale)

    def fb(xs):
        d = xs - t_on(xs)[None]
        return _scaled((d * d).reshape(xs.shape[0], -1).sum(axis=1), divisor, scale)

    def grad(x):
        check(x)
        return 2.0 * factor * (np.asarray(x, dtype=np.float64) - as_seen(t, x.dtype))

    def prepare(x):
        check(x)
        x64 = x.astype(np.float64).reshape(-1)
        t64 = as_seen(t, x.dtype).reshape(-1)
        d = x64 - t64
        # np.sum, not a BLAS dot: no worker threads for an O(N) reduction
        return factor * float(np.sum(np.multiply(d, d, out=d))), (x64, t64, np.array([factor]))

    if reduction == "batchmean" and scale == 1.0:
        k = kernel(builtin.mse, t)
    else:
        k = kernel(points.mse_scaled, t, np.array([factor]))
    return Layer("mse", f, batched(fb), grad, k, Delta(points.mse_point, prepare),
                 validate.flag(delta, "delta"), t.shape)


def softmax_cross_entropy(labels, *, reduction: str = "batchmean", scale: float = 1.0,
                          delta: bool = True) -> Layer:
    """Softmax cross-entropy of logits ``Z`` (B, C) against integer labels (B,).

    ``scale * sum_b (logsumexp(Z[b]) - Z[b, labels[b]]) / D`` with ``D = B``
    (``'batchmean'`` and ``'mean'``, the default: the mean over samples) or
    1 (``'sum'``).

    Delta evaluation: moving logit ``Z[b, k]`` by ``dz`` changes sample b's
    log-normaliser by ``log1p(p_bk * expm1(dz))``, p the softmax at Z: O(1)
    per point.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> from gpucheck.layers import softmax_cross_entropy
    >>> Z = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    >>> layer = softmax_cross_entropy(np.array([0, 2]))
    >>> round(float(layer.f(Z)), 6)
    0.160927
    >>> gpucheck.check_gradient(layer, Z, layer.grad, backend="cpu").status
    'pass'
    """
    y = validate.numeric_array(labels, "labels", ndim=1, integer=True)
    if y.size == 0 or y.min() < 0:
        raise GpuCheckError("`labels` must be a non-empty array of class indices >= 0")
    scale = validate.finite_real(scale, "scale")
    n = y.shape[0]
    factor = reduction_factor(reduction, scale, n, n)
    divisor = 1 if reduction == "sum" else n
    y64 = y.astype(np.int64)

    def check(z):
        if z.ndim != 2 or z.shape[0] != n or z.shape[1] <= int(y.max()):
            raise GpuCheckError(f"`x` must be logits of shape ({n}, C) with C > {int(y.max())} "
                                f"(the largest label), got {z.shape}")

    def fb(zs):
        xp = xp_of(zs)
        m = zs.max(axis=-1, keepdims=True)
        lse = xp.log(xp.exp(zs - m).sum(axis=-1)) + m[..., 0]
        picked = xp.take_along_axis(zs, xp.asarray(y)[None, :, None].repeat(zs.shape[0], 0),
                                    axis=-1)[..., 0]
        return _scaled((lse - picked).sum(axis=-1), divisor, scale)

    def f(z):
        check(z)
        return fb(z[None])[0]

    def softmax(z):
        z64 = z.astype(np.float64)
        m = z64.max(axis=1, keepdims=True)
        e = np.exp(z64 - m)
        s = e.sum(axis=1, keepdims=True)
        return z64, e / s, (np.log(s) + m)[:, 0]

    def grad(z):
        check(z)
        _, p, _ = softmax(z)
        p[np.arange(n), y] -= 1.0
        return factor * p

    def prepare(z):
        check(z)
        z64, p, lse = softmax(z)
        f0 = factor * float(np.sum(lse - z64[np.arange(n), y]))
        return f0, (z64, p, y64, np.array([factor]))

    return Layer("softmax_cross_entropy", f, batched(fb), grad, None,
                 Delta(points.softmax_ce_point, prepare), validate.flag(delta, "delta"))
