"""Delta evaluators of the built-in layers: what one perturbation changes.

Each ``*_point`` function gives, for one perturbed point (flat index ``j``
of the checked array takes the value ``v``), the change of the loss
``f(point) - f(x)``, computed from intermediates that
:mod:`gpucheck.layers` prepares once at x, in float64.  The functions are
written once in the subset of Python that numba compiles for the CPU (a
parallel loop over points, :mod:`gpucheck.backends.cpu_layers`) and for
CUDA (one thread per point, :mod:`gpucheck.kernels.points`), so both paths
run the same source.  Every argument after ``v`` is an array; scalar
constants travel as 1-element arrays.

``v`` holds a value of x's dtype; the backends pass it as float64, and
the functions widen it with ``np.float64(v)`` all the same (numba's
``float()`` keeps a float32, and ``math.cosh`` of a float32 is single
precision).  The change is written so that it does not cancel:
``v - x[j]`` is exact for two values of x's dtype, and a change of output
``dy`` enters a loss that is quadratic in the outputs as
``dy * (g + q * dy)``, where ``g`` is the loss's derivative with respect to
that output at x and ``q`` its curvature (0 for a linear loss
``sum(cotangent * y)``, the loss's factor for a squared error): the exact
change of the loss, not a linearisation.  A softmax whose logit ``k`` moves
by ``dz`` changes its log-normaliser by
``log1p(p_k * expm1(dz))``.  At ``v == x[j]`` every function returns
exactly 0.

The module also holds the kernel-contract forms of the scaled MSE and dense
losses (:func:`mse_scaled`, :func:`dense_mse_scaled`): the full-forward path
of those layers.

Examples
--------
>>> import numpy as np
>>> x = np.array([1.0, 2.0]); t = np.zeros(2)
>>> float(mse_point(1, 3.0, x, t, np.array([1.0])))   # 3**2 - 2**2
5.0
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["mse_point", "softmax_ce_point", "dense_point", "dense_ce_point", "layer_norm_point",
           "conv2d_input_point", "conv2d_weight_point", "attention_q_point",
           "attention_k_point", "attention_v_point", "tanh_sum_point", "logsumexp_point",
           "mse_scaled", "dense_mse_scaled", "POINTS"]


def mse_point(j, v, x, t, c):
    """``c * ((v - t_j)**2 - (x_j - t_j)**2)``; x, t flat float64, ``c = [factor]``.

    Examples
    --------
    >>> import numpy as np
    >>> float(mse_point(0, 1.0, np.array([0.0]), np.array([0.0]), np.array([0.5])))
    0.5
    """
    xj = x[j]
    vv = np.float64(v)
    return c[0] * (vv - xj) * ((vv - t[j]) + (xj - t[j]))


def softmax_ce_point(j, v, z, p, y, c):
    """Softmax cross-entropy of logits z (B, C) against labels y (B,): logit j moves.

    ``p`` is the softmax at x; ``c = [factor]``.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.zeros((1, 2)); p = np.full((1, 2), 0.5); y = np.array([0])
    >>> round(float(softmax_ce_point(1, 1.0, z, p, y, np.array([1.0]))), 6)   # log((1+e)/2)
    0.620115
    """
    n_cls = z.shape[1]
    b = j // n_cls
    k = j - b * n_cls
    dz = np.float64(v) - z[b, k]
    d = math.log1p(p[b, k] * math.expm1(dz))
    if y[b] == k:
        d -= dz
    return c[0] * d


def dense_point(j, v, w, at, gt, c):
    """Dense layer ``z = a @ w (+ bias)`` under a loss quadratic in z; ``w[i, k]`` moves.

    Output column k changes by ``a[:, i] * dw``.  ``at`` is the inputs
    transposed (n_in, B), ``gt`` the loss's derivative in z at x transposed
    (n_out, B): the loop over the batch reads both contiguously.
    ``c = [q]``, the curvature.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.zeros((1, 1)); at = np.ones((1, 2)); gt = np.zeros((1, 2))
    >>> float(dense_point(0, 2.0, w, at, gt, np.array([1.0])))   # two outputs 0 -> 2
    8.0
    """
    n_out = w.shape[1]
    i = j // n_out
    k = j - i * n_out
    dw = np.float64(v) - w[i, k]
    q = c[0]
    s = 0.0
    for b in range(at.shape[1]):
        dy = at[i, b] * dw
        s += dy * (gt[k, b] + q * dy)
    return s


def dense_ce_point(j, v, w, at, pt, y, c):
    """Dense layer under softmax cross-entropy: logits z[:, k] move by ``a[:, i] * dw``.

    ``pt`` is the softmax at x transposed (n_out, B), ``y`` the labels (B,).

    Examples
    --------
    >>> import numpy as np
    >>> w = np.zeros((1, 2)); at = np.ones((1, 1)); pt = np.full((2, 1), 0.5)
    >>> round(float(dense_ce_point(1, 1.0, w, at, pt, np.array([0]), np.array([1.0]))), 6)
    0.620115
    """
    n_out = w.shape[1]
    i = j // n_out
    k = j - i * n_out
    dw = np.float64(v) - w[i, k]
    s = 0.0
    for b in range(at.shape[1]):
        dz = at[i, b] * dw
        s += math.log1p(pt[k, b] * math.expm1(dz))
        if y[b] == k:
            s -= dz
    return c[0] * s


def layer_norm_point(j, v, x, w, stats, c):
    """``sum(w * (x - mean) / sqrt(var + eps))`` per row of x (R, n); ``x[r, i]`` moves.

    ``stats[r] = (mean, sum of squared deviations, sum(w * (x - mean)), sum(w))``
    of row r at x; ``c = [eps]``.  The row's statistics are updated for the
    move, O(1) per point.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0, 1.0, 2.0]]); w = np.array([[1.0, 0.0, 0.0]])
    >>> stats = np.array([[1.0, 2.0, -1.0, 1.0]])
    >>> round(float(layer_norm_point(0, 1.0, x, w, stats, np.array([0.0]))), 6)
    0.517638
    """
    n = x.shape[1]
    r = j // n
    i = j - r * n
    xi = x[r, i]
    d = np.float64(v) - xi
    mu = stats[r, 0]
    m2 = stats[r, 1]
    swc = stats[r, 2]
    sw = stats[r, 3]
    eps = c[0]
    m2n = m2 + d * (2.0 * (xi - mu) + d * (1.0 - 1.0 / n))
    if m2n < 0.0:  # rounding below an exact zero
        m2n = 0.0
    swcn = swc + w[r, i] * d - (d / n) * sw
    old = swc / math.sqrt(m2 / n + eps)
    new = swcn / math.sqrt(m2n / n + eps)
    return new - old


def conv2d_input_point(j, v, x, wt, g, ci, c):
    """2-D convolution (NCHW) as a function of its input x; ``x[n, ch, h, w]`` moves.

    Every output whose window covers (h, w) changes by ``wt[o, ch, kh, kw] *
    dx``.  ``ci = [stride_h, stride_w, pad_h, pad_w]``; ``g`` (N, O, OH, OW)
    is the loss's derivative in the outputs, ``c = [q]`` its curvature.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((1, 1, 1, 1)); wt = np.full((1, 1, 1, 1), 3.0); g = np.ones((1, 1, 1, 1))
    >>> float(conv2d_input_point(0, 2.0, x, wt, g, np.array([1, 1, 0, 0]), np.array([0.0])))
    6.0
    """
    width = x.shape[3]
    height = x.shape[2]
    chans = x.shape[1]
    iw = j % width
    t = j // width
    ih = t % height
    t = t // height
    ch = t % chans
    n = t // chans
    d = np.float64(v) - x[n, ch, ih, iw]
    sh = ci[0]
    sw = ci[1]
    ph = ci[2]
    pw = ci[3]
    q = c[0]
    n_out = wt.shape[0]
    out_h = g.shape[2]
    out_w = g.shape[3]
    s = 0.0
    for kh in range(wt.shape[2]):
        th = ih + ph - kh
        if th < 0 or th % sh != 0:
            continue
        oh = th // sh
        if oh >= out_h:
            continue
        for kw in range(wt.shape[3]):
            tw = iw + pw - kw
            if tw < 0 or tw % sw != 0:
                continue
            ow = tw // sw
            if ow >= out_w:
                continue
            for o in range(n_out):
                dy = wt[o, ch, kh, kw] * d
                s += dy * (g[n, o, oh, ow] + q * dy)
    return s


def conv2d_weight_point(j, v, wt, xp, g, ci, c):
    """2-D convolution (NCHW) as a function of its weights; ``wt[o, ch, kh, kw]`` moves.

    Output channel o changes at every position by the input under that tap:
    ``xp`` is the zero-padded input (N, C, H + 2 pad_h, W + 2 pad_w),
    ``ci = [stride_h, stride_w]``.

    Examples
    --------
    >>> import numpy as np
    >>> wt = np.zeros((1, 1, 1, 1)); xp = np.full((1, 1, 1, 1), 3.0); g = np.ones((1, 1, 1, 1))
    >>> float(conv2d_weight_point(0, 2.0, wt, xp, g, np.array([1, 1]), np.array([0.0])))
    6.0
    """
    kw_n = wt.shape[3]
    kh_n = wt.shape[2]
    chans = wt.shape[1]
    kw = j % kw_n
    t = j // kw_n
    kh = t % kh_n
    t = t // kh_n
    ch = t % chans
    o = t // chans
    d = np.float64(v) - wt[o, ch, kh, kw]
    sh = ci[0]
    sw = ci[1]
    q = c[0]
    s = 0.0
    for n in range(g.shape[0]):
        for oh in range(g.shape[2]):
            for ow in range(g.shape[3]):
                dy = xp[n, ch, oh * sh + kh, ow * sw + kw] * d
                s += dy * (g[n, o, oh, ow] + q * dy)
    return s


def attention_q_point(j, v, q, k, vv, p, g, c):
    """Scaled dot-product attention ``softmax(s q k^T) vv`` as a function of q.

    Shapes: q (H, Lq, d), k (H, Lk, d), vv (H, Lk, dv), p the attention
    weights at x (H, Lq, Lk), g the loss's derivative in the output
    (H, Lq, dv); ``c = [s, curvature]``.  Moving ``q[h, i, m]`` changes row
    i of the weights to ``p (1 + t) / (1 + z)``, ``t = expm1(s dq k[:, m])``,
    ``z = sum(p t)``: O(Lk * dv) per point.

    Examples
    --------
    >>> import numpy as np
    >>> q = np.zeros((1, 1, 1)); k = np.array([[[0.0], [1.0]]]); vv = np.array([[[0.0], [1.0]]])
    >>> p = np.full((1, 1, 2), 0.5); g = np.ones((1, 1, 1))
    >>> round(float(attention_q_point(0, 1.0, q, k, vv, p, g, np.array([1.0, 0.0]))), 6)
    0.231059
    """
    lq = q.shape[1]
    dk = q.shape[2]
    h = j // (lq * dk)
    t = j - h * (lq * dk)
    i = t // dk
    m = t - i * dk
    a = c[0] * (np.float64(v) - q[h, i, m])
    curv = c[1]
    lk = k.shape[1]
    z = 0.0
    for jj in range(lk):
        z += p[h, i, jj] * math.expm1(a * k[h, jj, m])
    zp = 1.0 + z
    s = 0.0
    for e in range(vv.shape[2]):
        dy = 0.0
        for jj in range(lk):
            dy += p[h, i, jj] * (math.expm1(a * k[h, jj, m]) - z) * vv[h, jj, e]
        dy = dy / zp
        s += dy * (g[h, i, e] + curv * dy)
    return s


def attention_k_point(j, v, k, q, vv, p, o, g, c):
    """Scaled dot-product attention as a function of k; ``k[h, jj, m]`` moves.

    Column jj of every row's scores moves by ``s dk q[:, m]``; row i's
    output becomes ``(o_i + p_ij t vv_jj) / (1 + p_ij t)``: O(Lq * dv) per
    point.  ``o`` is the output at x; ``c = [s, curvature]``.

    Examples
    --------
    >>> import numpy as np
    >>> k = np.zeros((1, 2, 1)); q = np.ones((1, 1, 1)); vv = np.array([[[0.0], [1.0]]])
    >>> p = np.full((1, 1, 2), 0.5); o = np.full((1, 1, 1), 0.5); g = np.ones((1, 1, 1))
    >>> round(float(attention_k_point(1, 1.0, k, q, vv, p, o, g, np.array([1.0, 0.0]))), 6)
    0.231059
    """
    lk = k.shape[1]
    dk = k.shape[2]
    h = j // (lk * dk)
    t = j - h * (lk * dk)
    jj = t // dk
    m = t - jj * dk
    a = c[0] * (np.float64(v) - k[h, jj, m])
    curv = c[1]
    s = 0.0
    for i in range(q.shape[1]):
        pt = p[h, i, jj] * math.expm1(a * q[h, i, m])
        zp = 1.0 + pt
        for e in range(vv.shape[2]):
            dy = pt * (vv[h, jj, e] - o[h, i, e]) / zp
            s += dy * (g[h, i, e] + curv * dy)
    return s


def attention_v_point(j, v, vv, p, g, c):
    """Scaled dot-product attention as a function of v; ``vv[h, jj, e]`` moves.

    Output column e of every row i changes by ``p[h, i, jj] * dv``: O(Lq).
    ``c = [curvature]``.

    Examples
    --------
    >>> import numpy as np
    >>> vv = np.zeros((1, 2, 1)); p = np.full((1, 1, 2), 0.5); g = np.ones((1, 1, 1))
    >>> float(attention_v_point(1, 1.0, vv, p, g, np.array([0.0])))
    0.5
    """
    lk = vv.shape[1]
    dv = vv.shape[2]
    h = j // (lk * dv)
    t = j - h * (lk * dv)
    jj = t // dv
    e = t - jj * dv
    d = np.float64(v) - vv[h, jj, e]
    curv = c[0]
    s = 0.0
    for i in range(p.shape[1]):
        dy = p[h, i, jj] * d
        s += dy * (g[h, i, e] + curv * dy)
    return s


def tanh_sum_point(j, v, x, w):
    """``w_j (tanh(v) - tanh(x_j))``, as ``sinh(v - x_j) / (cosh v cosh x_j)``.

    Examples
    --------
    >>> import numpy as np
    >>> round(float(tanh_sum_point(0, 1.0, np.zeros(1), np.ones(1))), 6)
    0.761594
    """
    xj = x[j]
    vv = np.float64(v)
    return w[j] * math.sinh(vv - xj) / (math.cosh(vv) * math.cosh(xj))


def logsumexp_point(j, v, x, p, c):
    """``c * (lse(x') - lse(x)) = c * log1p(p_j expm1(v - x_j))``; p the softmax at x.

    Examples
    --------
    >>> import numpy as np
    >>> round(float(logsumexp_point(0, 1.0, np.zeros(2), np.full(2, 0.5), np.array([1.0]))), 6)
    0.620115
    """
    return c[0] * math.log1p(p[j] * math.expm1(np.float64(v) - x[j]))


def mse_scaled(x, t, c):
    """``c[0] * sum((x - t)**2)``: the full forward of a scaled MSE, kernel contract.

    Examples
    --------
    >>> import numpy as np
    >>> float(mse_scaled(np.array([1.0, 3.0]), np.zeros(2), np.array([0.5])))
    5.0
    """
    s = 0.0
    xf = x.flat
    tf = t.flat
    for i in range(x.size):
        d = xf[i] - tf[i]
        s += d * d
    return s * c[0]


def dense_mse_scaled(w, xb, y, bias, c):
    """``c[0] * sum((xb @ w + bias - y)**2)``: the full forward of a dense MSE with bias.

    Examples
    --------
    >>> import numpy as np
    >>> float(dense_mse_scaled(np.eye(2), np.ones((1, 2)), np.zeros((1, 2)), np.ones(2),
    ...                        np.array([1.0])))
    8.0
    """
    s = 0.0
    for b in range(xb.shape[0]):
        for k in range(w.shape[1]):
            z = 0.0
            for j in range(w.shape[0]):
                z += xb[b, j] * w[j, k]
            d = z + bias[k] - y[b, k]
            s += d * d
    return s * c[0]


#: Every point function, for the compile tests.
POINTS = (mse_point, softmax_ce_point, dense_point, dense_ce_point, layer_norm_point,
          conv2d_input_point, conv2d_weight_point, attention_q_point, attention_k_point,
          attention_v_point, tanh_sum_point, logsumexp_point)
