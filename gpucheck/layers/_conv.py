"""2-D convolution (NCHW, stride, zero padding) as a function of its input or its weights."""

from __future__ import annotations

import numbers

import numpy as np

from .. import validate
from ..errors import GpuCheckError
from ..functions import batched
from ..kernels import builtin
from ..kernels import layers as points
from ._base import Delta, Layer, as_seen, xp_of
from ._outputs import output_loss

__all__ = ["conv2d"]


def _pair(value, name: str, least: int) -> tuple:
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                              or v < least for v in items):
        raise GpuCheckError(f"`{name}` must be an integer >= {least} or a pair of them, "
                            f"got {value!r}")
    return int(items[0]), int(items[1])


def _pad(xp, a, ph: int, pw: int):
    if ph == 0 and pw == 0:
        return a
    return xp.pad(a, [(0, 0)] * (a.ndim - 2) + [(ph, ph), (pw, pw)])


def _window(a, kh, kw, sh, sw, oh, ow):
    """The inputs under tap (kh, kw) for every output position: (..., C, oh, ow)."""
    return a[..., kh:kh + sh * (oh - 1) + 1:sh, kw:kw + sw * (ow - 1) + 1:sw]


def _input_cost(arrays) -> int:
    o, _, kh, kw = arrays[1].shape  # every output channel and tap over the moved input
    return o * kh * kw


def _weight_cost(arrays) -> int:
    n, _, oh, ow = arrays[2].shape  # every output position of one channel
    return n * oh * ow


def _out_size(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def conv2d(*, weight=None, inputs=None, bias=None, stride=1, padding=0, cotangent=None,
           target=None, reduction: str = "batchmean", scale: float = 1.0,
           delta: bool = True) -> Layer:
    """A 2-D convolution (cross-correlation, NCHW) under a loss, as a function of x.

    ``Y[n, o] = bias[o] + sum_c sum_kh,kw W[o, c, kh, kw] * Xpad[n, c, oh*s + kh, ow*s + kw]``
    with zero padding.  Give ``weight`` (O, C, KH, KW) to check the gradient
    with respect to the input X (N, C, H, W), or ``inputs`` X to check it with
    respect to the weights W.  The loss of the output Y (N, O, OH, OW) is
    ``scale * sum(cotangent * Y)`` (the usual way to check a backward pass:
    the cotangent is the incoming gradient) or, with ``target``, the squared
    error ``scale * sum((Y - target)**2) / D``, D as for :func:`mse`.

    Delta evaluation: moving one input entry changes the outputs whose
    window covers it, O(O * KH * KW) per point; moving one weight changes
    one output channel, O(N * OH * OW) per point; in float64.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> from gpucheck.layers import conv2d
    >>> rng = np.random.default_rng(0)
    >>> W = rng.normal(size=(2, 3, 3, 3)); X = rng.normal(size=(1, 3, 5, 5))
    >>> C = rng.normal(size=(1, 2, 3, 3))            # output of a stride-2, pad-1 conv
    >>> layer = conv2d(weight=W, cotangent=C, stride=2, padding=1)
    >>> gpucheck.check_gradient(layer, X, layer.grad, backend="cpu").status
    'pass'
    >>> by_weight = conv2d(inputs=X, cotangent=C, stride=2, padding=1)
    >>> gpucheck.check_gradient(by_weight, W, by_weight.grad, backend="cpu").status
    'pass'
    """
    if (weight is None) == (inputs is None):
        raise GpuCheckError("`conv2d` needs exactly one of `weight` (x is then the input) and "
                            "`inputs` (x is then the weight)")
    wrt_input = weight is not None
    fixed = validate.numeric_array(weight if wrt_input else inputs,
                                   "weight" if wrt_input else "inputs", ndim=4)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    loss, loss_on = output_loss(cotangent, target, reduction, scale)
    if loss.array.ndim != 4:
        raise GpuCheckError(f"the cotangent or target must be 4-D (N, O, OH, OW), "
                            f"got shape {loss.array.shape}")
    n_out = loss.array.shape[1]
    b = None
    if bias is not None:
        b = validate.numeric_array(bias, "bias", ndim=1)
        if b.shape[0] != n_out:
            raise GpuCheckError(f"`bias` must have O = {n_out} entries, got {b.shape[0]}")
    fixed_on = builtin.bind(fixed)
    b_on = None if b is None else builtin.bind(b)

    def geometry(x):
        """(input, weight) shapes for x, and the output shape; checks they fit."""
        if x.ndim != 4:
            raise GpuCheckError(f"`x` must be 4-D ({'N, C, H, W' if wrt_input else 'O, C, KH, KW'}"
                                f"), got shape {x.shape}")
        xin, wt = (x.shape, fixed.shape) if wrt_input else (fixed.shape, x.shape)
        if xin[1] != wt[1]:
            raise GpuCheckError(f"input channels of the input {xin} and the weight {wt} differ")
        oh, ow = _out_size(xin[2], wt[2], sh, ph), _out_size(xin[3], wt[3], sw, pw)
        if oh < 1 or ow < 1:
            raise GpuCheckError(f"the kernel {wt[2:]} does not fit the padded input {xin[2:]}")
        out = (xin[0], wt[0], oh, ow)
        loss.check_output(out, f"input {xin}, weight {wt}, stride {(sh, sw)}, "
                               f"padding {(ph, pw)}")
        return xin, wt, out

    def conv(xp, inp, wt, out):
        """Outputs for inp (..., N, C, H, W) and wt (..., O, C, KH, KW); one may be stacked."""
        oh, ow = out[2], out[3]
        a = _pad(xp, inp, ph, pw)
        y = None
        for kh in range(wt.shape[-2]):
            for kw in range(wt.shape[-1]):
                win = _window(a, kh, kw, sh, sw, oh, ow)
                spec = "...nchw,...oc->...nohw" if wt.ndim == 5 else "...nchw,oc->...nohw"
                term = xp.einsum(spec, win, wt[..., kh, kw])
                y = term if y is None else y + term
        return y

    def fb(xs):
        xin, wt, out = geometry(xs[0])
        other = fixed_on(xs)
        y = conv(xp_of(xs), xs, other, out) if wrt_input else conv(xp_of(xs), other, xs, out)
        if b_on is not None:
            y = y + b_on(xs)[:, None, None]
        return loss.batched(y, loss_on)

    def f(x):
        return fb(x[None])[0]

    def forward64(x):
        xin, wt, out = geometry(x)
        inp = x.astype(np.float64) if wrt_input else as_seen(fixed, x.dtype)
        w64 = as_seen(fixed, x.dtype) if wrt_input else x.astype(np.float64)
        y = conv(np, inp, w64, out)
        if b is not None:
            y = y + as_seen(b, x.dtype)[:, None, None]
        return inp, w64, y, out

    def grad(x):
        inp, w64, y, out = forward64(x)
        g = loss.derivative(y, x.dtype)
        oh, ow = out[2], out[3]
        if wrt_input:
            dpad = np.zeros(_pad(np, inp, ph, pw).shape)
            for kh in range(w64.shape[2]):
                for kw in range(w64.shape[3]):
                    _window(dpad, kh, kw, sh, sw, oh, ow)[...] += np.einsum(
                        "nohw,oc->nchw", g, w64[:, :, kh, kw])
            return dpad[:, :, ph:ph + inp.shape[2], pw:pw + inp.shape[3]]
        a = _pad(np, inp, ph, pw)
        dw = np.empty_like(w64)
        for kh in range(w64.shape[2]):
            for kw in range(w64.shape[3]):
                dw[:, :, kh, kw] = np.einsum("nohw,nchw->oc", g, _window(a, kh, kw, sh, sw, oh, ow))
        return dw

    def prepare(x):
        inp, w64, y, out = forward64(x)
        g = np.ascontiguousarray(loss.derivative(y, x.dtype))
        c = np.array([loss.curvature])
        f0 = loss.value64(y, x.dtype)
        if wrt_input:
            return f0, (inp, w64, g, np.array([sh, sw, ph, pw], dtype=np.int64), c)
        xp_ = np.ascontiguousarray(_pad(np, inp, ph, pw))
        return f0, (w64, xp_, g, np.array([sh, sw], dtype=np.int64), c)

    if wrt_input:
        point, cost = points.conv2d_input_point, _input_cost
    else:
        point, cost = points.conv2d_weight_point, _weight_cost
    return Layer("conv2d", f, batched(fb), grad, None, Delta(point, prepare, cost),
                 validate.flag(delta, "delta"))
