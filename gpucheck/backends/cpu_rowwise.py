"""Row-wise functions on the host: each perturbation re-evaluates its own row only.

For ``f(x) = scale * sum_r fn(x[r], ...)`` the points are sorted by the row
they perturb and cut into segments (a row's points, split further when
there are few rows, so that every numba thread has work).  A segment copies
its row once, then for each point perturbs one entry, calls ``fn``, stores
the value and restores the entry; afterwards it checks that its copy equals
the row again (``fn`` must not write into its argument).  Every row is also
evaluated unperturbed, in the same loop, and a point's value is
``scale * (S + (fn(row') - fn(row)))`` with ``S`` the float64 sum of the
rows at x: the rounding of the other rows cancels exactly, and a point
that changes nothing gives ``scale * S`` exactly.

With ``delta=False`` every point evaluates every row instead (the full
forward, O(N) per point), in a second loop built from the same ``fn``.

Loops are generated per number of params and which of them are row-aligned,
compiled with numba (``parallel=True``; ``fn`` with ``reassoc`` unless the
user said otherwise), and cached in the process and on disk.  An exception
raised by ``fn`` is re-raised with its message, as for kernel functions.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ..functions import Function
from . import Evaluation, Progress
from .cpu_cache import compile_generated
from .cpu_kernel import compile_error, raise_user_error, user_function, writes_input_error

__all__ = ["evaluate", "segments", "rowwise_source", "compile_rowwise"]

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


def segments(rows: np.ndarray, n_rows: int, max_len: int) -> tuple:
    """Cut points, given the row each perturbs, into per-row segments of at most ``max_len``.

    Returns ``(order, start, stop, row)``: ``order`` sorts the points by row
    (stably); segment s covers ``order[start[s]:stop[s]]``, all in row
    ``row[s]``.

    Examples
    --------
    >>> import numpy as np
    >>> order, start, stop, row = segments(np.array([1, 0, 1, 1]), 2, 2)
    >>> order.tolist(), start.tolist(), stop.tolist(), row.tolist()
    ([1, 0, 2, 3], [0, 1, 3], [1, 3, 4], [0, 1, 1])
    """
    order = np.argsort(rows, kind="stable")
    counts = np.bincount(rows, minlength=n_rows)
    present = np.flatnonzero(counts)
    c = counts[present]
    first = np.cumsum(counts)[present] - c
    k = -(-c // max(1, int(max_len)))
    row = np.repeat(present, k)
    within = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
    start = np.repeat(first, k) + within * max_len
    stop = np.minimum(start + max_len, np.repeat(first + c, k))
    return order, start.astype(np.int64), stop.astype(np.int64), row.astype(np.int64)


def compile_rowwise(fn, dtype, rows_ndim: int, specs, aligned: tuple, *, full: bool = False,
                    reassoc: bool = True):
    """The compiled delta (or full) loop for ``fn``, and the seconds compiling took.

    ``rows_ndim`` is the number of dimensions of x viewed as rows (2 or
    more); ``specs`` the (dtype, ndim) of each param.
    """
    import numba
    from numba import types

    specs = tuple((np.dtype(d).str, int(n)) for d, n in specs)
    key = (fn, bool(reassoc), np.dtype(dtype).str, int(rows_ndim), specs, tuple(aligned), full)
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
                                 helpers=("guarded",), parallel=True)
        _LOOPS[key] = loop
        return loop, time.perf_counter() - t0


def _param_rows(params, aligned, r):
    return [p[r] if a else p for p, a in zip(params, aligned)]


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
    rows = np.ascontiguousarray(form.rows_of(x))
    n_rows = rows.shape[0]
    width = rows[0].size
    aligned = form.row_aligned(n_rows)
    params = tuple(np.ascontiguousarray(p) for p in func.params)
    specs = tuple((p.dtype, p.ndim) for p in params)
    full = not form.delta
    try:
        loop, compile_seconds = compile_rowwise(func.fn, x.dtype, rows.ndim, specs, aligned,
                                                full=full, reassoc=form.reassoc)
    except NumbaError as err:
        raise compile_error(func, "cpu", err) from err
    threads = numba.get_num_threads()
    t0 = time.perf_counter()
    if full:
        total = idx.shape[0]
        out = np.empty(total, dtype=np.float64)
        n_chunks = max(1, min(4 * threads, total))
        failed = np.zeros(n_chunks, dtype=np.int64)
        if total:
            loop(rows, idx, vals, out, n_chunks, failed, *params)
        values = form.scale * out
        base = 0
    else:
        # every row unperturbed first (its first entry set to itself), then the points
        pidx = np.concatenate([np.arange(n_rows, dtype=np.int64) * width, idx])
        pvals = np.concatenate([rows.reshape(n_rows, -1)[:, 0], vals])
        prow = pidx // width
        if segment is None:
            segment = max(1, -(-pidx.size // (8 * threads)))
        order, start, stop, seg_row = segments(prow, n_rows, segment)
        out = np.empty(pidx.size, dtype=np.float64)
        written = np.zeros(seg_row.size, dtype=np.int64)
        failed = np.zeros(seg_row.size, dtype=np.int64)
        loop(rows, pidx, pvals, order, start, stop, seg_row, out, written, failed, *params)
        if written.any():
            raise writes_input_error(func)
        at_x = out[:n_rows]
        values = form.scale * (at_x.sum() + (out[n_rows:] - at_x[prow[n_rows:]]))
        idx, vals, base = pidx, pvals, n_rows
    run_seconds = time.perf_counter() - t0
    if failed.any():
        p = int(failed[failed > 0].min()) - 1
        rp, j = divmod(int(idx[p]), width)

        def call(fn):
            # the delta loop knows the row; the full loop only the point
            for r in (range(n_rows) if full else (rp,)):
                row = rows[r].copy()
                if r == rp:
                    row.reshape(-1)[j] = vals[p]
                fn(row, *_param_rows(params, aligned, r))

        if p < base:
            where = f"on row {rp} of x"
        else:
            where = (f"at point {p - base} (flat index {int(idx[p])} of x set to {vals[p]!r})")
        raise_user_error(func, call, where)
    if progress is not None:
        progress(values.size, values.size)
    return Evaluation(values, compile_seconds, run_seconds)
