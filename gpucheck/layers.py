"""Built-in layers with known-correct gradients: for the demo, the CLI, tests and benchmarks.

Each constructor returns a :class:`Layer`: the loss as a plain callable, the
same loss as a batched array function (NumPy or CuPy), the analytic
gradient, and, where the loss has a compact scalar form, a numba-compatible
kernel (the one in :mod:`gpucheck.kernels.builtin`, which the benchmarks and
backend tests use too).  The callable and batched forms compute in x's
dtype, as a user's own NumPy layer would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .errors import GpuCheckError
from .functions import Batched, Kernel, batched, kernel
from .kernels import builtin

__all__ = ["Layer", "mse", "dense", "softmax_cross_entropy", "tanh_sum", "layer_norm",
           "logsumexp", "LAYERS"]


@dataclass(frozen=True)
class Layer:
    """A loss with its analytic gradient.

    Attributes
    ----------
    name : str
    f : callable
        ``f(x) -> scalar`` on one sample.
    batched : Batched
        ``f(xs) -> (B,)`` for a stack of samples.
    grad : callable
        ``grad(x) -> array`` of x's shape, the correct gradient.
    kernel : Kernel or None
        A numba-compatible scalar form, for the kernel contract.
    """

    name: str
    f: Callable
    batched: Batched
    grad: Callable
    kernel: Optional[Kernel] = None


_xp = builtin.array_namespace


def mse(target) -> Layer:
    """Mean squared error averaged over rows: ``f(X) = sum((X - T)**2) / X.shape[0]``.

    Its central differences have no truncation error (f is quadratic along
    every coordinate), which makes it the clearest case of rounding error.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> from gpucheck.layers import mse
    >>> T = np.zeros((2, 3)); X = np.ones((2, 3))
    >>> layer = mse(T)
    >>> float(layer.f(X)), gpucheck.check_gradient(layer.f, X, layer.grad).status
    (3.0, 'pass')
    """
    t = np.ascontiguousarray(target)
    if t.ndim < 1 or t.size == 0:
        raise GpuCheckError(f"`target` must be a non-empty array, got shape {t.shape}")

    t_on = builtin.bind(t)

    def f(x):
        if x.shape != t.shape:
            raise GpuCheckError(f"`x` must have the target's shape {t.shape}, got {x.shape}")
        d = x - t_on(x)
        return (d * d).sum() / x.shape[0]

    def fb(xs):
        d = xs - t_on(xs)[None]
        return (d * d).reshape(xs.shape[0], -1).sum(axis=1) / xs.shape[1]

    def grad(x):
        return 2.0 * (np.asarray(x, dtype=np.float64) - t) / x.shape[0]

    return Layer("mse", f, batched(fb), grad, kernel(builtin.mse, t))


def dense(inputs, target) -> Layer:
    """A dense layer with a squared loss, as a function of its weights W.

    ``f(W) = sum((A @ W - T)**2) / B`` for inputs A of shape (B, n_in) and
    targets T of shape (B, n_out); W has shape (n_in, n_out).
    """
    a = np.ascontiguousarray(inputs)
    t = np.ascontiguousarray(target)
    if a.ndim != 2 or t.ndim != 2 or a.shape[0] != t.shape[0]:
        raise GpuCheckError(f"`inputs` (B, n_in) and `target` (B, n_out) must share B, "
                            f"got {a.shape} and {t.shape}")
    B = a.shape[0]

    a_on, t_on = builtin.bind(a), builtin.bind(t)

    def f(w):
        z = a_on(w) @ w - t_on(w)
        return (z * z).sum() / B

    def fb(ws):
        z = a_on(ws)[None] @ ws - t_on(ws)[None]
        return (z * z).reshape(ws.shape[0], -1).sum(axis=1) / B

    def grad(w):
        w = np.asarray(w, dtype=np.float64)
        return 2.0 * a.T.astype(np.float64) @ (a @ w - t) / B

    return Layer("dense", f, batched(fb), grad, kernel(builtin.dense_mse, a, t))


def softmax_cross_entropy(labels) -> Layer:
    """Mean softmax cross-entropy of logits (B, C) against integer labels (B,)."""
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise GpuCheckError(f"`labels` must be a 1-D integer array, got {y.dtype} {y.shape}")

    def fb(zs):
        xp = _xp(zs)
        m = zs.max(axis=-1, keepdims=True)
        lse = xp.log(xp.exp(zs - m).sum(axis=-1)) + m[..., 0]
        picked = xp.take_along_axis(zs, xp.asarray(y)[None, :, None].repeat(zs.shape[0], 0), axis=-1)[..., 0]
        return (lse - picked).mean(axis=-1)

    def f(z):
        return fb(z[None])[0]

    def grad(z):
        z = np.asarray(z, dtype=np.float64)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(z.shape[0]), y] -= 1.0
        return p / z.shape[0]

    return Layer("softmax_cross_entropy", f, batched(fb), grad)


def tanh_sum(weights) -> Layer:
    """``f(x) = sum(w * tanh(x))``: a smooth activation with curvature everywhere."""
    w = np.ascontiguousarray(weights)
    w_on = builtin.bind(w)

    def fb(xs):
        xp = _xp(xs)
        return (xp.tanh(xs) * w_on(xs)[None]).reshape(xs.shape[0], -1).sum(axis=1)

    def f(x):
        return fb(x[None])[0]

    def grad(x):
        return w / np.cosh(np.asarray(x, dtype=np.float64)) ** 2

    return Layer("tanh", f, batched(fb), grad)


def layer_norm(weights, eps: float = 1e-5) -> Layer:
    """``f(x) = sum(w * (x - mean) / sqrt(var + eps))`` over the last axis of x."""
    w = np.ascontiguousarray(weights)
    w_on = builtin.bind(w)

    def fb(xs):
        xp = _xp(xs)
        mu = xs.mean(axis=-1, keepdims=True)
        c = xs - mu
        var = (c * c).mean(axis=-1, keepdims=True)
        y = c / xp.sqrt(var + eps)
        return (y * w_on(xs)[None]).reshape(xs.shape[0], -1).sum(axis=1)

    def f(x):
        return fb(x[None])[0]

    def grad(x):
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[-1]
        mu = x.mean(axis=-1, keepdims=True)
        c = x - mu
        var = (c * c).mean(axis=-1, keepdims=True)
        s = np.sqrt(var + eps)
        y = c / s
        g = w
        return (g - g.mean(axis=-1, keepdims=True) - y * (g * y).mean(axis=-1, keepdims=True)) / s

    return Layer("layer_norm", f, batched(fb), grad)


def logsumexp(scale: float = 1.0) -> Layer:
    """``f(x) = log(sum(exp(x)))`` over all of x, computed stably (large logits welcome)."""

    def fb(xs):
        xp = _xp(xs)
        flat = xs.reshape(xs.shape[0], -1)
        m = flat.max(axis=1, keepdims=True)
        return xp.log(xp.exp(flat - m).sum(axis=1)) + m[:, 0]

    def f(x):
        return fb(x[None])[0]

    def grad(x):
        x = np.asarray(x, dtype=np.float64)
        p = np.exp(x - x.max())
        return p / p.sum()

    return Layer("logsumexp", f, batched(fb), grad)


#: Layers the command line can build by name.
LAYERS = ("mse", "dense")
