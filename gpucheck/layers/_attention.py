"""Scaled dot-product attention as a function of its queries, keys or values."""

from __future__ import annotations

import math

import numpy as np

from .. import validate
from ..errors import GpuCheckError
from ..functions import batched
from ..kernels import builtin
from ..kernels import layers as points
from ._base import Delta, Layer, as_seen, xp_of
from ._outputs import output_loss

__all__ = ["attention"]


def _sdpa(xp, q, k, v, s):
    scores = (q @ xp.swapaxes(k, -1, -2)) * s
    e = xp.exp(scores - scores.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)) @ v


def attention(*, q=None, k=None, v=None, cotangent=None, target=None, softmax_scale=None,
              reduction: str = "batchmean", scale: float = 1.0, delta: bool = True) -> Layer:
    """Scaled dot-product attention ``softmax(s * Q @ K^T) @ V`` under a loss, as a function of x.

    Give two of ``q`` (..., Lq, d), ``k`` (..., Lk, d) and ``v`` (..., Lk, dv);
    x is the third (the same leading axes: batch, heads).  ``s`` is
    ``softmax_scale``, by default ``1 / sqrt(d)``.  The loss of the output O
    (..., Lq, dv) is ``scale * sum(cotangent * O)`` or, with ``target``, the
    squared error ``scale * sum((O - target)**2) / D``, D as for :func:`mse`.

    Delta evaluation, in float64 against the weights P and output O at x:
    moving ``V[j, e]`` changes column e of O by ``P[:, j] * dv``, O(Lq);
    moving ``Q[i, m]`` reweights row i of P, O(Lk * dv); moving ``K[j, m]``
    moves column j of every row's scores, O(Lq * dv) per point.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> from gpucheck.layers import attention
    >>> rng = np.random.default_rng(0)
    >>> Q, K, V = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 2))
    >>> C = rng.normal(size=(2, 4, 2))
    >>> by_q = attention(k=K, v=V, cotangent=C)
    >>> gpucheck.check_gradient(by_q, Q, by_q.grad, backend="cpu").status
    'pass'
    >>> by_k = attention(q=Q, v=V, cotangent=C)
    >>> gpucheck.check_gradient(by_k, K, by_k.grad, backend="cpu").status
    'pass'
    """
    given = {name: a for name, a in (("q", q), ("k", k), ("v", v)) if a is not None}
    if len(given) != 2:
        raise GpuCheckError("`attention` needs exactly two of `q`, `k` and `v`; x is the third "
                            f"(got {', '.join(given) or 'none'})")
    wrt = ({"q", "k", "v"} - set(given)).pop()
    arrs = {name: validate.numeric_array(a, name, min_ndim=2) for name, a in given.items()}
    loss, loss_on = output_loss(cotangent, target, reduction, scale)
    out = loss.array
    if out.ndim < 2:
        raise GpuCheckError(f"the cotangent or target must be (..., Lq, dv), got shape {out.shape}")
    lead = out.shape[:-2]
    for name, a in arrs.items():
        if a.shape[:-2] != lead:
            raise GpuCheckError(f"`{name}` must have the leading axes {lead} of the output, "
                                f"got shape {a.shape}")
    lq, dv = out.shape[-2:]
    if wrt == "q":
        lk, d = arrs["k"].shape[-2:]
        shape = lead + (lq, d)
        sizes_ok = arrs["v"].shape[-2:] == (lk, dv)
    elif wrt == "k":
        lk, d = arrs["v"].shape[-2], arrs["q"].shape[-1]
        shape = lead + (lk, d)
        sizes_ok = arrs["q"].shape[-2] == lq and arrs["v"].shape[-1] == dv
    else:
        lk, d = arrs["k"].shape[-2:]
        shape = lead + (lk, dv)
        sizes_ok = arrs["q"].shape[-2:] == (lq, d)
    if not sizes_ok:
        raise GpuCheckError("q (..., Lq, d), k (..., Lk, d), v (..., Lk, dv) and the output "
                            f"(..., Lq, dv) do not fit: {', '.join(f'{n} {a.shape}' for n, a in arrs.items())}, "
                            f"output {out.shape}")
    s = 1.0 / math.sqrt(d) if softmax_scale is None else validate.finite_real(softmax_scale,
                                                                             "softmax_scale")
    bound = {name: builtin.bind(a) for name, a in arrs.items()}

    def parts(x, on):
        """(q, k, v) with x in its place; ``on`` converts the fixed ones like x."""
        return tuple(x if name == wrt else on(name) for name in ("q", "k", "v"))

    def fb(xs):
        qq, kk, vv = parts(xs, lambda name: bound[name](xs))
        return loss.batched(_sdpa(xp_of(xs), qq, kk, vv, s), loss_on)

    def check(x):
        if x.shape != shape:
            raise GpuCheckError(f"`x` ({wrt}) must have shape {shape}, got {x.shape}")

    def f(x):
        check(x)
        return fb(x[None])[0]

    def forward64(x):
        check(x)
        qq, kk, vv = (a.reshape((-1,) + a.shape[-2:]) for a in parts(
            x.astype(np.float64), lambda name: as_seen(arrs[name], x.dtype)))
        scores = s * (qq @ kk.transpose(0, 2, 1))
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
        o = p @ vv
        g = loss.derivative(o.reshape(out.shape), x.dtype).reshape(o.shape)
        return qq, kk, vv, p, o, g

    def grad(x):
        qq, kk, vv, p, o, g = forward64(x)
        if wrt == "v":
            return (p.transpose(0, 2, 1) @ g).reshape(shape)
        dp = g @ vv.transpose(0, 2, 1)
        ds = p * (dp - np.sum(dp * p, axis=-1, keepdims=True))
        if wrt == "q":
            return (s * ds @ kk).reshape(shape)
        return (s * ds.transpose(0, 2, 1) @ qq).reshape(shape)

    def prepare(x):
        qq, kk, vv, p, o, g = forward64(x)
        f0 = loss.value64(o.reshape(out.shape), x.dtype)
        curv = loss.curvature
        g = np.ascontiguousarray(g)
        if wrt == "q":
            return f0, (qq, kk, vv, p, g, np.array([s, curv]))
        if wrt == "k":
            return f0, (kk, qq, vv, p, o, g, np.array([s, curv]))
        return f0, (vv, p, g, np.array([curv]))

    point, cost = {
        "q": (points.attention_q_point, lambda a: 2 * a[1].shape[1] * a[2].shape[2]),
        "k": (points.attention_k_point, lambda a: a[1].shape[1] * a[2].shape[2]),
        "v": (points.attention_v_point, lambda a: a[1].shape[1]),
    }[wrt]
    return Layer(f"attention_{wrt}", f, batched(fb), grad, None, Delta(point, prepare, cost),
                 validate.flag(delta, "delta"), shape)
