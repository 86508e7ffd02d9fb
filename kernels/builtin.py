"""Loss functions gpucheck ships in the kernel contract, with batched twins.

Each scalar function is written once in the subset of Python that numba
compiles for the CPU and CUDA, and is used by ``gpucheck bench`` and the
tests as the workloads every backend must agree on.  Accumulators start as
the float64 literal ``0.0``, so float32 inputs are summed in float64 (the
accumulation rule of :func:`gpucheck.kernel`).

The loops are written for the device, where every thread runs one pass over
its own strided copy of x: ``while`` loops over explicit indices (numba's
``range`` iterator costs about twice the integer instructions per element on
CUDA, and ``.flat`` on a strided view a 64-bit division per element), and
:func:`mse_1d`/:func:`mse_2d` issue eight loads before summing them (a thread
streams its own copy, so reads in flight per thread set the pace), and
:func:`dense_mse` keeps eight batch rows in registers so that each pass reads
its copy of the weights batch/8 times instead of once per batch row.
NumPy/numba cannot branch on ``x.ndim`` inside a CUDA device function, so
:func:`mse` (any shape, through ``.flat``) names its 1-D and 2-D loops in
``mse.cuda_variants``; :mod:`gpucheck.kernels.contract` compiles those for
points of that many dimensions.  Every variant sums in the same (row-major)
order, so the results are identical.

The batched twins compute the same loss over a leading batch axis with the
array API, so the same code runs on NumPy and CuPy.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["mse", "mse_1d", "mse_2d", "dense_mse", "mse_batched", "dense_mse_batched", "workload",
           "array_namespace", "bind"]


def mse(x, t):
    """Squared error of an n-D sample against a target, averaged over rows.

    ``sum((x - t)**2) / x.shape[0]``: the loss of :func:`gpucheck.layers.mse`.

    Examples
    --------
    >>> import numpy as np
    >>> float(mse(np.array([[1.0, 3.0]]), np.array([[0.0, 0.0]])))
    10.0
    """
    # ``.flat`` indexes any layout without a copy (on CUDA each thread's copy
    # of x is a strided view, which ``ravel`` would have to allocate); the
    # CUDA path uses mse_1d / mse_2d instead where they apply.  This is also
    # the CPU's loop, over a contiguous copy, where range() is the faster form.
    s = 0.0
    n = x.size
    xf = x.flat
    tf = t.flat
    for i in range(n):
        d = xf[i] - tf[i]
        s += d * d
    return s / x.shape[0]


def mse_1d(x, t):
    """:func:`mse` for 1-D ``x`` and ``t``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(11.0)
    >>> float(mse_1d(x, np.ones(11))) == float(((x - 1) ** 2).sum() / 11)
    True
    """
    # Eight loads issued before their sums: a device thread keeps eight reads
    # of its copy in flight.  The loop is latency-bound (each thread streams
    # its own copy, and memory limits the copies, hence the threads); the sum
    # is still taken element by element, in order.
    s = 0.0
    n = x.shape[0]
    j = 0
    while j + 8 <= n:
        a0 = x[j]
        a1 = x[j + 1]
        a2 = x[j + 2]
        a3 = x[j + 3]
        a4 = x[j + 4]
        a5 = x[j + 5]
        a6 = x[j + 6]
        a7 = x[j + 7]
        d = a0 - t[j]
        s += d * d
        d = a1 - t[j + 1]
        s += d * d
        d = a2 - t[j + 2]
        s += d * d
        d = a3 - t[j + 3]
        s += d * d
        d = a4 - t[j + 4]
        s += d * d
        d = a5 - t[j + 5]
        s += d * d
        d = a6 - t[j + 6]
        s += d * d
        d = a7 - t[j + 7]
        s += d * d
        j += 8
    while j < n:
        d = x[j] - t[j]
        s += d * d
        j += 1
    return s / n


def mse_2d(x, t):
    """:func:`mse` for 2-D ``x`` and ``t``, as nested loops.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(30.0).reshape(3, 10)
    >>> float(mse_2d(x, np.ones((3, 10)))) == float(((x - 1) ** 2).sum() / 3)
    True
    """
    # The inner loop is mse_1d's: eight reads in flight, summed in order.
    s = 0.0
    rows = x.shape[0]
    n = x.shape[1]
    i = 0
    while i < rows:
        j = 0
        while j + 8 <= n:
            a0 = x[i, j]
            a1 = x[i, j + 1]
            a2 = x[i, j + 2]
            a3 = x[i, j + 3]
            a4 = x[i, j + 4]
            a5 = x[i, j + 5]
            a6 = x[i, j + 6]
            a7 = x[i, j + 7]
            d = a0 - t[i, j]
            s += d * d
            d = a1 - t[i, j + 1]
            s += d * d
            d = a2 - t[i, j + 2]
            s += d * d
            d = a3 - t[i, j + 3]
            s += d * d
            d = a4 - t[i, j + 4]
            s += d * d
            d = a5 - t[i, j + 5]
            s += d * d
            d = a6 - t[i, j + 6]
            s += d * d
            d = a7 - t[i, j + 7]
            s += d * d
            j += 8
        while j < n:
            d = x[i, j] - t[i, j]
            s += d * d
            j += 1
        i += 1
    return s / rows


#: Specialised loops by number of dimensions, for the CUDA compiler.
mse.cuda_variants = {1: mse_1d, 2: mse_2d}


def dense_mse(w, xb, y):
    """Squared error of a dense layer ``xb @ w`` against ``y``, averaged over the batch.

    ``w`` is (n_in, n_out), ``xb`` a batch of inputs (batch, n_in), ``y``
    the targets (batch, n_out).  The checked point is ``w``; this is the loss
    of :func:`gpucheck.layers.dense`.

    Examples
    --------
    >>> import numpy as np
    >>> float(dense_mse(np.eye(2), np.ones((1, 2)), np.zeros((1, 2))))
    2.0
    >>> w = np.arange(6.0).reshape(3, 2); xb = np.arange(27.0).reshape(9, 3) / 9
    >>> bool(np.isclose(dense_mse(w, xb, np.ones((9, 2))), ((xb @ w - 1) ** 2).sum() / 9))
    True
    """
    # Column by column of w, eight batch rows at a time: each w[j, k] loaded
    # serves eight rows, and a column is re-read while it is still in cache.
    n_in = w.shape[0]
    n_out = w.shape[1]
    batch = xb.shape[0]
    full = batch - batch % 8
    s = 0.0
    k = 0
    while k < n_out:
        b = 0
        while b < full:
            z0 = 0.0
            z1 = 0.0
            z2 = 0.0
            z3 = 0.0
            z4 = 0.0
            z5 = 0.0
            z6 = 0.0
            z7 = 0.0
            j = 0
            while j < n_in:
                v = w[j, k]
                z0 += xb[b, j] * v
                z1 += xb[b + 1, j] * v
                z2 += xb[b + 2, j] * v
                z3 += xb[b + 3, j] * v
                z4 += xb[b + 4, j] * v
                z5 += xb[b + 5, j] * v
                z6 += xb[b + 6, j] * v
                z7 += xb[b + 7, j] * v
                j += 1
            d = z0 - y[b, k]
            s += d * d
            d = z1 - y[b + 1, k]
            s += d * d
            d = z2 - y[b + 2, k]
            s += d * d
            d = z3 - y[b + 3, k]
            s += d * d
            d = z4 - y[b + 4, k]
            s += d * d
            d = z5 - y[b + 5, k]
            s += d * d
            d = z6 - y[b + 6, k]
            s += d * d
            d = z7 - y[b + 7, k]
            s += d * d
            b += 8
        while b < batch:
            z = 0.0
            j = 0
            while j < n_in:
                z += xb[b, j] * w[j, k]
                j += 1
            d = z - y[b, k]
            s += d * d
            b += 1
        k += 1
    return s / batch


def array_namespace(xs):
    """The array module of ``xs`` (NumPy or CuPy), without importing CuPy.

    A CuPy array is recognised by its type: on the first device run (CuPy
    14.2) ``__array_namespace__`` did not lead to CuPy, the bound arrays
    stayed NumPy arrays, and every batched twin failed inside CuPy.

    Examples
    --------
    >>> import numpy as np
    >>> array_namespace(np.zeros(2)) is np
    True
    """
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(xs, cupy.ndarray):
        return cupy
    get = getattr(xs, "__array_namespace__", None)
    if get is not None:
        return get()
    return np


def bind(a):
    """A bound parameter: ``bind(t)(like)`` is t as an array of like's kind and dtype.

    The conversion (a host-to-device copy for CuPy) happens once per array
    module and dtype, not once per chunk.

    Examples
    --------
    >>> import numpy as np
    >>> t = bind([1, 2])
    >>> t(np.zeros(2, np.float32)).dtype.name
    'float32'
    """
    host = np.asarray(a)
    cache = {}

    def on(like):
        xp = array_namespace(like)
        key = (xp.__name__, np.dtype(like.dtype).str)
        value = cache.get(key)
        if value is None:
            value = cache[key] = xp.asarray(host, dtype=like.dtype)
        return value

    return on


def mse_batched(t):
    """The batched twin of :func:`mse` with the target bound.

    Examples
    --------
    >>> import numpy as np
    >>> f = mse_batched(np.zeros((1, 2)))
    >>> f(np.array([[[1.0, 3.0]], [[0.0, 2.0]]])).tolist()
    [10.0, 4.0]
    """
    t_host = np.asarray(t)
    rows = t_host.shape[0] if t_host.ndim else 1
    cache = {}

    def f(xs):
        xp = array_namespace(xs)
        tt = cache.get(xp)
        if tt is None:
            tt = cache[xp] = xp.asarray(t_host)
        # The same arithmetic as the kernel: difference and square in x's
        # dtype, the sum in float64 (``dtype=`` accumulates without a
        # float64 copy of the chunk).
        d = xs - tt
        d *= d
        return d.sum(axis=tuple(range(1, xs.ndim)), dtype=xp.float64) / rows

    f.__name__ = "mse_batched"
    return f


def dense_mse_batched(xb, y):
    """The batched twin of :func:`dense_mse` with inputs and targets bound.

    Examples
    --------
    >>> import numpy as np
    >>> f = dense_mse_batched(np.ones((1, 2)), np.zeros((1, 2)))
    >>> f(np.eye(2)[None]).tolist()
    [2.0]
    """
    xb_host, y_host = np.asarray(xb), np.asarray(y)
    cache = {}

    def f(ws):
        xp = array_namespace(ws)
        bound = cache.get(xp)
        if bound is None:
            bound = cache[xp] = (xp.asarray(xb_host).astype(xp.float64),
                                 xp.asarray(y_host).astype(xp.float64))
        xb64, y64 = bound
        z = xp.matmul(xb64, ws.astype(xp.float64))  # (B, batch, n_out)
        d = z - y64
        return (d * d).sum(axis=(1, 2)) / y_host.shape[0]

    f.__name__ = "dense_mse_batched"
    return f


def workload(layer: str, size: int, dtype, *, batch: int = 64, seed: int = 0):
    """A benchmark workload: ``(scalar_fn, params, batched_fn, x)``.

    Parameters
    ----------
    layer : {'mse', 'dense'}
        ``'mse'``: x and a target of shape ``(size, size)``.  ``'dense'``:
        weights ``(size, size)`` checked through a batch of ``batch`` inputs.
    size : int
        Side of the square point.
    dtype : str or numpy.dtype
        dtype of x and the params.

    Examples
    --------
    >>> fn, params, fb, x = workload("mse", 4, "float32")
    >>> x.shape, x.dtype.name
    ((4, 4), 'float32')
    """
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if layer == "mse":
        x = rng.standard_normal((size, size)).astype(dt)
        t = rng.standard_normal((size, size)).astype(dt)
        return mse, (t,), mse_batched(t), x
    if layer == "dense":
        w = (rng.standard_normal((size, size)) / np.sqrt(size)).astype(dt)
        xb = rng.standard_normal((batch, size)).astype(dt)
        y = rng.standard_normal((batch, size)).astype(dt)
        return dense_mse, (xb, y), dense_mse_batched(xb, y), w
    raise ValueError(f"`layer` must be 'mse' or 'dense', got {layer!r}")
