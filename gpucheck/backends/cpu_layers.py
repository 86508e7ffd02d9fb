"""Built-in layers on the host: their delta evaluators in one numba loop.

A layer's :class:`~gpucheck.layers.Delta` prepares, once per call and in
float64 NumPy, f at x and the intermediates its point function reads; the
loop then evaluates ``f(x) + point(idx[p], vals[p], *arrays)`` for every
point, on every numba thread when there is enough work (points times the
layer's ``cost`` per point, against
:data:`gpucheck.backends.cpu_cache.SERIAL_WORK`), else on one.  The point
functions live in :mod:`gpucheck.kernels.layers`, the same source the CUDA
kernels compile.  Loops are compiled per (point function, dtype, array
types, parallel or not), cached in the process and on disk
(:mod:`gpucheck.backends.cpu_cache`).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ..functions import Function
from . import Evaluation, Progress
from .cpu_cache import SERIAL_WORK, compile_generated

__all__ = ["evaluate", "compile_points", "points_source", "prepared"]

_LOCK = threading.RLock()
_LOOPS: dict = {}
_POINTS: dict = {}

_TEMPLATE = '''
def run(idx, vals, out{args}):
    for p in prange(idx.shape[0]):
        out[p] = point(idx[p], vals[p]{args})
'''


def points_source(narrays: int) -> str:
    """Source of the parallel point loop for ``narrays`` prepared arrays."""
    return _TEMPLATE.format(args="".join(f", a{k}" for k in range(narrays)))


def _point(fn):
    import numba

    with _LOCK:
        jitted = _POINTS.get(fn)
        if jitted is None:
            # NumPy's rules for division by zero: a non-finite f near x is
            # the verdict's to report, not an exception here
            jitted = _POINTS[fn] = numba.njit(error_model="numpy")(fn)
        return jitted


def _specs(arrays) -> tuple:
    return tuple((a.dtype.str, a.ndim) for a in arrays)


def compile_points(point, dtype, specs, *, parallel: bool = True):
    """The compiled loop for a point function, and the seconds compiling took (0 if cached).

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck.kernels.layers import mse_point
    >>> arrays = (np.zeros(2), np.zeros(2), np.array([1.0]))
    >>> loop, _ = compile_points(mse_point, np.float64, _specs(arrays))
    >>> out = np.empty(2)
    >>> loop(np.array([0, 1]), np.array([1.0, 3.0]), out, *arrays)
    >>> out.tolist()
    [1.0, 9.0]
    """
    import numba
    from numba import types

    key = (point, np.dtype(dtype).str, tuple(specs), bool(parallel))
    with _LOCK:
        loop = _LOOPS.get(key)
        if loop is not None:
            return loop, 0.0
        t0 = time.perf_counter()
        jitted = _point(point)

        def arr(d, n):
            return types.Array(numba.from_dtype(np.dtype(d)), n, "C")

        sig = types.void(arr(np.int64, 1), arr(dtype, 1), arr(np.float64, 1),
                         *(arr(d, n) for d, n in specs))
        loop = compile_generated("points", points_source(len(specs)),
                                 {"prange": numba.prange, "point": jitted}, (jitted,), sig,
                                 parallel=bool(parallel))
        _LOOPS[key] = loop
        return loop, time.perf_counter() - t0


def prepared(func: Function, x: np.ndarray) -> tuple:
    """``(f0, arrays)`` of a layer at x: f there and its intermediates (C-contiguous, writable:
    numba types read-only arrays apart)."""
    f0, arrays = func.form.evaluator.prepare(x)
    return float(f0), tuple(np.require(a, requirements=("C", "W", "A")) for a in arrays)


def evaluate(func: Function, x: np.ndarray, idx: np.ndarray, vals: np.ndarray, *,
             progress: Progress = None) -> Evaluation:
    """Evaluate a built-in layer at every perturbed point by delta evaluation.

    Parameters
    ----------
    func : Function
        ``func.kind == 'layer'``.
    x, idx, vals : numpy.ndarray
        The point and the perturbations (see :mod:`gpucheck.backends`).
    progress : callable, optional
        Called once, ``progress(total, total)``, at the end.

    Returns
    -------
    Evaluation

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck.functions import as_function
    >>> from gpucheck.layers import mse
    >>> func = as_function(mse(np.zeros((1, 2))))
    >>> evaluate(func, np.ones((1, 2)), np.array([0, 1]), np.array([2.0, 0.0])).values.tolist()
    [5.0, 1.0]
    """
    x = np.ascontiguousarray(x)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    # widened on the host (exactly): one compiled loop serves both dtypes
    vals = np.ascontiguousarray(np.asarray(vals, dtype=x.dtype), dtype=np.float64)
    t0 = time.perf_counter()
    f0, arrays = prepared(func, x)
    prep_seconds = time.perf_counter() - t0
    evaluator = func.form.evaluator
    work = idx.shape[0] * max(1, int(evaluator.cost(arrays)))
    loop, compile_seconds = compile_points(evaluator.point, np.float64, _specs(arrays),
                                           parallel=work >= SERIAL_WORK)
    t0 = time.perf_counter()
    out = np.empty(idx.shape[0], dtype=np.float64)
    if idx.shape[0]:
        loop(idx, vals, out, *arrays)
    out += f0
    if progress is not None:
        progress(idx.shape[0], idx.shape[0])
    return Evaluation(out, compile_seconds, prep_seconds + time.perf_counter() - t0)
