"""Name the bug pattern that best explains a failed check, when one fits."""

from __future__ import annotations

import numpy as np

__all__ = ["diagnose"]


def _close(p: np.ndarray, q: np.ndarray, rtol: float = 1e-2) -> bool:
    scale = max(float(np.linalg.norm(p)), float(np.linalg.norm(q)), 1e-300)
    return float(np.linalg.norm(p - q)) <= rtol * scale


def diagnose(n: np.ndarray, a: np.ndarray, failed: np.ndarray) -> str:
    """A short hint at the likely cause of a mismatch, or '' when none fits.

    Patterns tried, in order: a flipped sign, a constant factor, a transposed
    matrix, rows or columns left at zero, a permutation of the right values,
    and a handful of isolated wrong entries.

    Examples
    --------
    >>> import numpy as np
    >>> n = np.arange(1.0, 5.0)
    >>> diagnose(n, -n, np.ones(4, bool))
    'sign flipped: analytic = -1 x numeric'
    """
    n = np.asarray(n, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    if not np.any(failed):
        return ""
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(a))):
        bad = np.flatnonzero(~(np.isfinite(n) & np.isfinite(a)))
        where = tuple(int(i) for i in np.unravel_index(int(bad[0]), n.shape))
        side = "analytic" if not np.isfinite(a.flat[bad[0]]) else "numeric"
        return f"non-finite values ({bad.size}), the first in the {side} gradient at {where}"
    nn = float(np.dot(n.ravel(), n.ravel()))
    if nn > 0:
        c = float(np.dot(a.ravel(), n.ravel())) / nn
        if _close(a, c * n) and abs(c - 1.0) > 1e-2:
            if _close(np.array([c]), np.array([-1.0])):
                return "sign flipped: analytic = -1 x numeric"
            return f"constant factor: analytic = {c:.4g} x numeric (a missing or extra factor?)"
    if n.ndim == 2 and n.shape[0] == n.shape[1] and n.shape[0] > 1 and _close(a, n.T) \
            and not _close(a, n):
        return "transposed: analytic = numeric.T"
    if n.ndim >= 2:
        for axis, label in ((1, "row"), (0, "column")):
            zero_a = np.all(a == 0, axis=axis)
            nonzero_n = np.any(n != 0, axis=axis)
            bad = np.flatnonzero(zero_a & nonzero_n)
            if 0 < bad.size < zero_a.size:
                keep = ~(zero_a & nonzero_n)
                rest_a = np.compress(keep, a, axis=1 - axis)
                rest_n = np.compress(keep, n, axis=1 - axis)
                if _close(rest_a, rest_n):
                    which = ", ".join(str(int(i)) for i in bad[:5])
                    return f"{label}{'s' if bad.size > 1 else ''} {which} of the analytic gradient are zero"
    if n.size > 1 and _close(np.sort(a.ravel()), np.sort(n.ravel())) and not _close(a, n):
        return "permutation: analytic has the right values in the wrong places (index order?)"
    k = int(np.sum(failed))
    if k <= max(3, failed.size // 100):
        idx = [tuple(int(i) for i in np.unravel_index(j, n.shape)) for j in np.flatnonzero(failed)[:3]]
        where = ", ".join(str(i) for i in idx)
        return f"{k} isolated wrong entr{'y' if k == 1 else 'ies'} (at {where}{', ...' if k > 3 else ''})"
    return ""
