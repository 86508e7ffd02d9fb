"""Layers over the last axis or every entry of x: layer norm, tanh, logsumexp."""

from __future__ import annotations

import numpy as np

from .. import validate
from ..errors import GpuCheckError
from ..functions import batched
from ..kernels import builtin
from ..kernels import layers as points
from ._base import Delta, Layer, as_seen, xp_of

__all__ = ["layer_norm", "tanh_sum", "logsumexp"]


def _check_broadcast(w: np.ndarray, x, name: str) -> None:
    try:
        shape = np.broadcast_shapes(w.shape, x.shape)
    except ValueError:
        shape = None
    if shape != x.shape:
        raise GpuCheckError(f"`{name}` of shape {w.shape} must broadcast to x's shape {x.shape}")


def _broadcast_param(w: np.ndarray, x: np.ndarray, name: str) -> np.ndarray:
    _check_broadcast(w, x, name)
    return np.ascontiguousarray(np.broadcast_to(as_seen(w, x.dtype), x.shape))


def layer_norm(weights, eps: float = 1e-5, *, delta: bool = True) -> Layer:
    """Layer normalisation over the last axis, contracted with weights.

    ``f(x) = sum(w * (x - mean) / sqrt(var + eps))``, mean and (biased)
    variance over the last axis of x; w broadcasts to x's shape.  A
    per-feature scale of the normalised output folds into w, a shift adds a
    constant.

    Delta evaluation: moving ``x[r, i]`` updates row r's mean, squared
    deviations and weighted sum in O(1), in float64.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> from gpucheck.layers import layer_norm
    >>> rng = np.random.default_rng(0)
    >>> layer = layer_norm(rng.normal(size=(3, 4)))
    >>> x = rng.normal(size=(3, 4))
    >>> gpucheck.check_gradient(layer, x, layer.grad, backend="cpu").status
    'pass'
    """
    w = validate.numeric_array(weights, "weights")
    eps = validate.finite_real(eps, "eps")
    if eps < 0:
        raise GpuCheckError(f"`eps` must be non-negative, got {eps!r}")
    w_on = builtin.bind(w)

    def check(x):
        if x.ndim < 1:
            raise GpuCheckError("`x` must have at least one axis to normalise over")
        _check_broadcast(w, x, "weights")

    def fb(xs):
        xp = xp_of(xs)
        mu = xs.mean(axis=-1, keepdims=True)
        c = xs - mu
        var = (c * c).mean(axis=-1, keepdims=True)
        y = c / xp.sqrt(var + eps)
        return (y * w_on(xs)[None]).reshape(xs.shape[0], -1).sum(axis=1)

    def f(x):
        check(x)
        return fb(x[None])[0]

    def grad(x):
        check(x)
        g = _broadcast_param(w, x, "weights")
        x = np.asarray(x, dtype=np.float64)
        mu = x.mean(axis=-1, keepdims=True)
        c = x - mu
        s = np.sqrt((c * c).mean(axis=-1, keepdims=True) + eps)
        y = c / s
        return (g - g.mean(axis=-1, keepdims=True) - y * (g * y).mean(axis=-1, keepdims=True)) / s

    def prepare(x):
        check(x)
        n = x.shape[-1]
        x2 = x.astype(np.float64).reshape(-1, n)
        w2 = _broadcast_param(w, x, "weights").reshape(-1, n)
        mu = x2.mean(axis=1)
        c = x2 - mu[:, None]
        m2 = np.sum(c * c, axis=1)
        swc = np.sum(w2 * c, axis=1)
        stats = np.ascontiguousarray(np.stack([mu, m2, swc, w2.sum(axis=1)], axis=1))
        f0 = float(np.sum(swc / np.sqrt(m2 / n + eps)))
        return f0, (x2, w2, stats, np.array([eps]))

    return Layer("layer_norm", f, batched(fb), grad, None, Delta(points.layer_norm_point, prepare),
                 validate.flag(delta, "delta"))


def tanh_sum(weights, *, delta: bool = True) -> Layer:
    """``f(x) = sum(w * tanh(x))``: a smooth activation with curvature everywhere.

    Delta evaluation: one term changes, O(1) per point.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> from gpucheck.layers import tanh_sum
    >>> layer = tanh_sum(np.array([1.0, -2.0, 0.5]))
    >>> gpucheck.check_gradient(layer, np.array([0.3, -1.0, 2.0]), layer.grad, backend="cpu").status
    'pass'
    """
    w = validate.numeric_array(weights, "weights")
    w_on = builtin.bind(w)

    def fb(xs):
        xp = xp_of(xs)
        return (xp.tanh(xs) * w_on(xs)[None]).reshape(xs.shape[0], -1).sum(axis=1)

    def f(x):
        _check_broadcast(w, x, "weights")
        return fb(x[None])[0]

    def grad(x):
        g = _broadcast_param(w, x, "weights")
        return g / np.cosh(np.asarray(x, dtype=np.float64)) ** 2

    def prepare(x):
        w64 = _broadcast_param(w, x, "weights").reshape(-1)
        x64 = x.astype(np.float64).reshape(-1)
        return float(np.sum(w64 * np.tanh(x64))), (x64, w64)

    return Layer("tanh", f, batched(fb), grad, None, Delta(points.tanh_sum_point, prepare),
                 validate.flag(delta, "delta"))


def logsumexp(scale: float = 1.0, *, delta: bool = True) -> Layer:
    """``f(x) = scale * log(sum(exp(x)))`` over all of x, computed stably (large logits welcome).

    Delta evaluation: ``log1p(p_j * expm1(dx))`` with p the softmax at x,
    O(1) per point.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> from gpucheck.layers import logsumexp
    >>> layer = logsumexp()
    >>> x = np.array([100.0, 101.0, 99.5])
    >>> gpucheck.check_gradient(layer, x, layer.grad, backend="cpu").status
    'pass'
    """
    scale = validate.finite_real(scale, "scale")

    def fb(xs):
        xp = xp_of(xs)
        flat = xs.reshape(xs.shape[0], -1)
        m = flat.max(axis=1, keepdims=True)
        out = xp.log(xp.exp(flat - m).sum(axis=1)) + m[:, 0]
        return out if scale == 1.0 else out * scale

    def f(x):
        return fb(x[None])[0]

    def softmax(x):
        x64 = np.asarray(x, dtype=np.float64).reshape(-1)
        m = x64.max()
        e = np.exp(x64 - m)
        s = e.sum()
        return x64, e / s, float(np.log(s) + m)

    def grad(x):
        _, p, _ = softmax(x)
        return scale * p.reshape(np.shape(x))

    def prepare(x):
        x64, p, lse = softmax(x)
        return scale * lse, (x64, p, np.array([scale]))

    return Layer("logsumexp", f, batched(fb), grad, None, Delta(points.logsumexp_point, prepare),
                 validate.flag(delta, "delta"))
