"""Name the bug pattern that best explains a failed check, when one fits."""

from __future__ import annotations

import numpy as np

__all__ = ["diagnose"]


def _norm(v: np.ndarray) -> float:
    # NumPy's pairwise sum, not a threaded BLAS: the same answer whatever
    # the thread count, and no worker threads for an O(N) sum
    v = np.asarray(v, dtype=np.float64).ravel()
    return float(np.sqrt(np.sum(v * v)))


def _dot(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum(np.asarray(p, dtype=np.float64).ravel() * np.asarray(q, dtype=np.float64).ravel()))


def _close(p: np.ndarray, q: np.ndarray, rtol: float = 1e-2) -> bool:
    scale = max(_norm(p), _norm(q), 1e-300)
    return _norm(p - q) <= rtol * scale


def diagnose(n: np.ndarray, a: np.ndarray, failed: np.ndarray, joint=None) -> str:
    """A short hint at the likely cause of a mismatch, or '' when none fits.

    Patterns tried, in order: entries that are valid at a kink one by one
    but not together (``joint``, the entries failed that way), a flipped
    sign, a constant factor, a transposed matrix, slices left at zero along
    any axis, a permutation of the right values, and a handful of isolated
    wrong entries.  A pattern is named only when it explains the numbers to
    within 1%; otherwise the answer is ''.

    Examples
    --------
    >>> import numpy as np
    >>> n = np.arange(1.0, 5.0)
    >>> diagnose(n, -n, np.ones(4, bool))
    'sign flipped: analytic = -1 x numeric'
    """
    n = np.asarray(n, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    failed = np.asarray(failed, dtype=bool)
    if not np.any(failed):
        return ""
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(a))):
        bad = np.flatnonzero(~(np.isfinite(n) & np.isfinite(a)))
        where = tuple(int(i) for i in np.unravel_index(int(bad[0]), n.shape))
        side = "analytic" if not np.isfinite(a.flat[bad[0]]) else "numeric"
        return f"non-finite values ({bad.size}), the first in the {side} gradient at {where}"
    if joint is not None and np.any(joint) and np.array_equal(np.asarray(joint, bool), failed):
        k = int(np.sum(joint))
        return (f"{k} entries at a shared kink each hold a valid one-sided slope, but not "
                f"together (the gradient of a tie routed to every tied entry?)")
    nn = _dot(n, n)
    # the cheap tests of each pattern first: every O(N) pass over a large
    # gradient is only made when its answer can still matter
    if nn > 0:
        c = _dot(a, n) / nn
        if abs(c - 1.0) > 1e-2 and _close(a, c * n):
            if _close(np.array([c]), np.array([-1.0])):
                return "sign flipped: analytic = -1 x numeric"
            return f"constant factor: analytic = {c:.4g} x numeric (a missing or extra factor?)"
    close = n.size > 1 and _close(a, n)
    if n.ndim == 2 and n.shape[0] == n.shape[1] and n.shape[0] > 1 and not close \
            and _close(a, n.T):
        return "transposed: analytic = numeric.T"
    if n.ndim >= 2:
        hint = _zero_slices(n, a)
        if hint:
            return hint
    if n.size > 1 and not close:
        sorted_gap = _norm(np.sort(a.ravel()) - np.sort(n.ravel()))
        gap = _norm(a - n)
        # sorting always brings two sets of numbers closer; a permutation
        # is when it closes nearly the whole gap
        if _close(np.sort(a.ravel()), np.sort(n.ravel())) and sorted_gap <= 0.05 * gap:
            return "permutation: analytic has the right values in the wrong places (index order?)"
    k = int(np.sum(failed))
    if k <= max(3, failed.size // 100):
        rest = ~failed
        if np.any(rest) and not _close(a[rest], n[rest], 5e-2):
            return ""
        idx = [tuple(int(i) for i in np.unravel_index(j, n.shape)) for j in np.flatnonzero(failed)[:3]]
        where = ", ".join(str(i) for i in idx)
        return f"{k} isolated wrong entr{'y' if k == 1 else 'ies'} (at {where}{', ...' if k > 3 else ''})"
    return ""


def _zero_slices(n: np.ndarray, a: np.ndarray) -> str:
    """Slices of the analytic gradient left at zero along one axis, the rest right."""
    labels = {0: "row", 1: "column"} if n.ndim == 2 else {}
    for axis in range(n.ndim):
        others = tuple(k for k in range(n.ndim) if k != axis)
        zero_a = np.all(a == 0, axis=others)
        nonzero_n = np.any(n != 0, axis=others)
        bad = np.flatnonzero(zero_a & nonzero_n)
        if 0 < bad.size < zero_a.size:
            keep = ~(zero_a & nonzero_n)
            rest_a = np.compress(keep, a, axis=axis)
            rest_n = np.compress(keep, n, axis=axis)
            if _close(rest_a, rest_n):
                which = ", ".join(str(int(i)) for i in bad[:5])
                label = labels.get(axis, f"slice{'s' if bad.size > 1 else ''} along axis {axis}:")
                if axis in labels:
                    label += "s" if bad.size > 1 else ""
                    return f"{label} {which} of the analytic gradient are zero"
                return f"{label} index {which} of the analytic gradient {'are' if bad.size > 1 else 'is'} zero"
    return ""
