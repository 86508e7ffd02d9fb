"""Row-wise functions on the host: each perturbation re-evaluates its own row only.

For ``f(x) = scale * sum_r fn(x[r], ...)`` the points are sorted by the row
they perturb and cut into segments (a row's points, split further when
there are few rows, so that every numba thread has work; see
:mod:`gpucheck.backends.rows`).  A segment copies its row once, then for
each point perturbs one entry, calls ``fn``, stores the value and restores
the entry; afterwards it checks that its copy equals the row again (``fn``
must not write into its argument).  Every row is also evaluated
unperturbed, in the same loop, and a point's value is
``scale * (S + (fn(row') - fn(row)))`` with ``S`` the float64 sum of the
rows at x: the rounding of the other rows cancels exactly, and a point
that changes nothing gives ``scale * S`` exactly.

With ``delta=False`` every point evaluates every row instead (the full
forward, O(N) per point), in a second loop built from the same ``fn``.

Loops are generated per number of params and which of them are row-aligned,
compiled with numba (``parallel`` when there is enough work; ``fn`` with
``reassoc`` unless the user said otherwise), and cached in the process and
on disk.  An exception
raised by ``fn`` is re-raised with its message, as for kernel functions.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ..functions import Function
from . import Evaluation, Progress
from .cpu_cache import SERIAL_WORK, compile_generated
from .cpu_kernel import compile_error, raise_user_error, user_function, writes_input_error
from .rows import plan_rows

__all__ = ["evaluate", "rowwise_source", "compile_rowwise"]

_LOCK = threading.RLock()
_LOOPS: dict = {}

_GUARD = '''
def guarded(row{params}):
    try:
        return user_fn(row{params}), False
    except Exception:
        return 0.0, True
'''

_DELTA = '''
def run(x, idx, vals, order, seg_start, seg_stop, seg_row, out, written, failed{params}):
    width = x[0].size
    for s in prange(seg_row.shape[0]):
        r = seg_row[s]
        src = x[r].reshape(-1)
        row = x[r].copy()
        rflat = row.reshape(-1)
        for q in range(seg_start[s], seg_stop[s]):
            p = order[q]
            j = idx[p] - r * width
            rflat[j] = vals[p]
            value, bad = guarded(row{args})
            out[p] = value
            if bad and failed[s] == 0:
                failed[s] = p + 1
            rflat[j] = src[j]
        for i in range(width):
            if rflat[i] != src[i]:
                written[s] = 1
'''

_FULL = '''
def run(x, idx, vals, out, n_chunks, failed{params}):
    n_rows = x.shape[0]
    width = x[0].size
    total = idx.shape[0]
    for c in prange(n_chunks):
        start = (c * total) // n_chunks
        stop = ((c + 1) * total) // n_chunks
        if start < stop:
            row = x[0].copy()
            rflat = row.reshape(-1)
            for p in range(start, stop):
                rp = idx[p] // width
                j = idx[p] - rp * width
                s = 0.0
                for r in range(n_rows):
                    src = x[r].reshape(-1)
                    for i in range(width):
                        rflat[i] = src[i]
                    if r == rp:
                        rflat[j] = vals[p]
                    value, bad = guarded(row{args})
                    if bad and failed[c] == 0:
                        failed[c] = p + 1
                    s += value
                out[p] = s
'''


def rowwise_source(aligned: tuple, full: bool = False) -> str:
    """Source of the delta (or full) loop; ``aligned[k]``: param k is sliced per row."""
    params = "".join(f", p{k}" for k in range(len(aligned)))
    args = "".join(f", p{k}[r]" if a else f", p{k}" for k, a in enumerate(aligned))
    return _GUARD.format(params=params) + (_FULL if full else _DELTA).format(params=params,
                                                                             args=args)


def compile_rowwise(fn, dtype, rows_ndim: int, specs, aligned: tuple, *, full: bool = False,
                    reassoc: bool = True, parallel: bool = True):
    """The compiled delta (or full) loop for ``fn``, and the seconds compiling took.

    ``rows_ndim`` is the number of dimensions of x viewed as rows (2 or
    more); ``specs`` the (dtype, ndim) of each param.
    """
    import numba
    from numba import types

    specs = tuple((np.dtype(d).str, int(n)) for d, n in specs)
    key = (fn, bool(reassoc), np.dtype(dtype).str, int(rows_ndim), specs, tuple(aligned), full,
           bool(parallel))
    with _LOCK:
        loop = _LOOPS.get(key)
        if loop is not None:
            return loop, 0.0
        t0 = time.perf_counter()
        user = user_function(fn, reassoc)

        def arr(d, n):
            return types.Array(numba.from_dtype(np.dtype(d)), n, "C")

        i64 = arr(np.int64, 1)
        head = (arr(dtype, rows_ndim), i64, arr(dtype, 1))
        if full:
            body = (arr(np.float64, 1), types.int64, i64)
        else:
            body = (i64, i64, i64, i64, arr(np.float64, 1), i64, i64)
        sig = types.void(*head, *body, *(arr(d, n) for d, n in specs))
        loop = compile_generated("rowwise_full" if full else "rowwise",
                                 rowwise_source(tuple(aligned), full),
                                 {"prange": numba.prange, "user_fn": user}, (user,), sig,
                                 helpers=("guarded",), parallel=bool(parallel))
        _LOOPS[key] = loop
        return loop, time.perf_counter() - t0


def evaluate(func: Function, x: np.ndarray, idx: np.ndarray, vals: np.ndarray, *,
             progress: Progress = None, segment: int | None = None) -> Evaluation:
    """Evaluate a row-wise function at every perturbed point.

    Parameters
    ----------
    func : Function
        ``func.kind == 'rowwise'``.
    x, idx, vals : numpy.ndarray
        The point and the perturbations (see :mod:`gpucheck.backends`).
    progress : callable, optional
        Called once, ``progress(total, total)``, at the end.
    segment : int, optional
        Most points per segment (default: enough segments for every
        thread).

    Returns
    -------
    Evaluation

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> from gpucheck.functions import as_function
    >>> def row_sum(row):
    ...     s = 0.0
    ...     for j in range(row.shape[0]):
    ...         s += row[j]
    ...     return s
    >>> func = as_function(gpucheck.rowwise(row_sum))
    >>> evaluate(func, np.ones((2, 3)), np.array([4]), np.array([5.0])).values.tolist()
    [10.0]
    """
    import numba
    from numba.core.errors import NumbaError

    form = func.form
    x = np.ascontiguousarray(x)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    vals = np.ascontiguousarray(vals, dtype=x.dtype)
    full = not form.delta
    plan = plan_rows(func, x, idx, vals, delta=not full)
    specs = tuple((p.dtype, p.ndim) for p in plan.params)
    work = plan.idx.size * (x.size if full else plan.width)
    try:
        loop, compile_seconds = compile_rowwise(func.fn, x.dtype, plan.rows.ndim, specs,
                                                plan.aligned, full=full, reassoc=form.reassoc,
                                                parallel=work >= SERIAL_WORK)
    except NumbaError as err:
        raise compile_error(func, "cpu", err) from err
    threads = numba.get_num_threads()
    total = plan.idx.size
    out = np.empty(total, dtype=np.float64)
    t0 = time.perf_counter()
    if full:
        n_chunks = max(1, min(4 * threads, total))
        failed = np.zeros(n_chunks, dtype=np.int64)
        if total:
            loop(plan.rows, plan.idx, plan.vals, out, n_chunks, failed, *plan.params)
        values = form.scale * out
    else:
        if segment is None:
            segment = -(-total // (8 * threads))
        order, start, stop, seg_row = plan.segments(segment)
        written = np.zeros(seg_row.size, dtype=np.int64)
        failed = np.zeros(seg_row.size, dtype=np.int64)
        loop(plan.rows, plan.idx, plan.vals, order, start, stop, seg_row, out, written, failed,
             *plan.params)
        if written.any():
            raise writes_input_error(func)
        values = plan.combine(out)
    run_seconds = time.perf_counter() - t0
    if failed.any():
        _reraise(func, plan, int(failed[failed > 0].min()) - 1, full)
    if progress is not None:
        progress(values.size, values.size)
    return Evaluation(values, compile_seconds, run_seconds)


def _reraise(func, plan, p: int, full: bool):
    """Raise the exception ``fn`` raised at plan point p, with its message."""
    rp, j = divmod(int(plan.idx[p]), plan.width)

    def call(fn):
        # the delta loop knows the row; the full loop only the point
        for r in (range(plan.n_rows) if full else (rp,)):
            row = plan.rows[r].copy()
            if r == rp:
                row.reshape(-1)[j] = plan.vals[p]
            fn(row, *plan.param_rows(r))

    base = 0 if full else plan.n_rows
    if p < base:
        where = f"on row {rp} of x"
    else:
        where = (f"at point {p - base} (flat index {int(plan.idx[p])} of x set to "
                 f"{plan.vals[p]!r})")
    raise_user_error(func, call, where)
