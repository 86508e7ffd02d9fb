"""The work plan of a row-wise function, shared by the CPU loop and the CUDA kernels.

Every row is evaluated once unperturbed (as a point that sets its first
entry to itself) together with the real points; the points are sorted by
the row they perturb and cut into segments, each evaluated from one copy of
its row.  :meth:`RowPlan.combine` turns the row values into f:
``scale * (S + (fn(row') - fn(row)))``, ``S`` the float64 sum over the rows
at x, so the rounding of the other rows cancels exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..functions import Function

__all__ = ["RowPlan", "segments", "plan_rows"]


def segments(rows: np.ndarray, n_rows: int, max_len: int) -> tuple:
    """Cut points, given the row each perturbs, into per-row segments of at most ``max_len``.

    Returns ``(order, start, stop, row)``: ``order`` sorts the points by row
    (stably); segment s covers ``order[start[s]:stop[s]]``, all in row
    ``row[s]``; a row's segments are consecutive.

    Examples
    --------
    >>> import numpy as np
    >>> order, start, stop, row = segments(np.array([1, 0, 1, 1]), 2, 2)
    >>> order.tolist(), start.tolist(), stop.tolist(), row.tolist()
    ([1, 0, 2, 3], [0, 1, 3], [1, 3, 4], [0, 1, 1])
    """
    max_len = max(1, int(max_len))
    order = np.argsort(rows, kind="stable")
    counts = np.bincount(rows, minlength=n_rows)
    present = np.flatnonzero(counts)
    c = counts[present]
    first = np.cumsum(counts)[present] - c
    k = -(-c // max_len)
    row = np.repeat(present, k)
    within = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
    start = np.repeat(first, k) + within * max_len
    stop = np.minimum(start + max_len, np.repeat(first + c, k))
    return (order.astype(np.int64), start.astype(np.int64), stop.astype(np.int64),
            row.astype(np.int64))


@dataclass(frozen=True)
class RowPlan:
    """x as rows, the points (row evaluations first), and how to combine the values.

    Attributes
    ----------
    rows : numpy.ndarray
        x viewed as ``(R, *row_shape)``, C-contiguous.
    width : int
        Entries per row.
    aligned : tuple of bool
        Which params are sliced per row.
    params : tuple of numpy.ndarray
    idx, vals : numpy.ndarray
        The R row evaluations, then the caller's points.
    row_of : numpy.ndarray
        The row each of those perturbs.
    scale : float
    """

    rows: np.ndarray
    width: int
    aligned: tuple
    params: tuple
    idx: np.ndarray
    vals: np.ndarray
    row_of: np.ndarray
    scale: float

    @property
    def n_rows(self) -> int:
        """R."""
        return self.rows.shape[0]

    def segments(self, max_len: int) -> tuple:
        """:func:`segments` of these points."""
        return segments(self.row_of, self.n_rows, max_len)

    def combine(self, out: np.ndarray) -> np.ndarray:
        """f at the caller's points from fn at every point of the plan (float64)."""
        at_x = out[:self.n_rows]
        return self.scale * (at_x.sum() + (out[self.n_rows:] - at_x[self.row_of[self.n_rows:]]))

    def param_rows(self, r: int) -> list:
        """The params as ``fn`` receives them for row r."""
        return [p[r] if a else p for p, a in zip(self.params, self.aligned)]


def plan_rows(func: Function, x: np.ndarray, idx: np.ndarray, vals: np.ndarray, *,
              delta: bool = True) -> RowPlan:
    """The :class:`RowPlan` of a row-wise ``func`` at x (the row evaluations only with ``delta``).

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> from gpucheck.functions import as_function
    >>> plan = plan_rows(as_function(gpucheck.rowwise(lambda r: r[0])), np.arange(6.0).reshape(3, 2),
    ...                  np.array([3]), np.array([9.0]))
    >>> plan.idx.tolist(), plan.row_of.tolist()
    ([0, 2, 4, 3], [0, 1, 2, 1])
    """
    form = func.form
    rows = np.ascontiguousarray(form.rows_of(x))
    n_rows = rows.shape[0]
    width = rows[0].size
    aligned = form.row_aligned(n_rows)
    params = tuple(np.ascontiguousarray(p) for p in func.params)
    if delta:
        idx = np.concatenate([np.arange(n_rows, dtype=np.int64) * width, idx])
        vals = np.concatenate([rows.reshape(n_rows, -1)[:, 0], vals])
    return RowPlan(rows, width, aligned, params, idx, vals, idx // width, form.scale)
