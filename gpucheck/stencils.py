"""Finite-difference schemes and their weights.

A scheme is a set of node multipliers ``c_k`` (the stencil evaluates f at
``x + c_k h e_i``) and an order of accuracy.  Because ``x + c_k h`` is rounded
to the dtype, the real offsets differ from ``c_k h``; the weights are computed
per element from the real offsets, on the host in float64, so the formula is
exact for the points actually evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import GpuCheckError

__all__ = ["Scheme", "SCHEMES", "get_scheme", "derivative_weights", "centered_weights",
           "asymmetric"]


@dataclass(frozen=True)
class Scheme:
    """A central finite-difference stencil.

    Attributes
    ----------
    name : str
        ``'central'`` or ``'central4'``.
    multipliers : tuple of int
        Node positions in units of the step h.
    order : int
        Order of the truncation error (error ~ h**order).
    step_power : float
        The default step is ``u ** step_power * max(1, |x|)``, u the dtype's
        unit roundoff; it balances rounding (~u/h) against truncation
        (~h**order).
    """

    name: str
    multipliers: tuple
    order: int
    step_power: float


SCHEMES = {
    "central": Scheme("central", (-1, 1), 2, 1.0 / 3.0),
    "central4": Scheme("central4", (-2, -1, 1, 2), 4, 1.0 / 5.0),
}


def get_scheme(name: str) -> Scheme:
    """Look up a scheme by name; an unknown name lists the valid ones."""
    try:
        return SCHEMES[name]
    except (KeyError, TypeError):
        raise GpuCheckError(
            f"`scheme` must be one of {', '.join(repr(s) for s in SCHEMES)}, got {name!r}"
        ) from None


def derivative_weights(offsets: np.ndarray) -> np.ndarray:
    """Weights of the first derivative at 0 from nodes at ``offsets``.

    Parameters
    ----------
    offsets : numpy.ndarray
        Shape ``(K, M)``: K distinct, nonzero node offsets for each of M
        elements (float64).

    Returns
    -------
    numpy.ndarray
        Shape ``(K, M)``: ``f'(0) ≈ sum_k w[k] f(offsets[k])``, exact for
        polynomials of degree K - 1 (the derivative of the Lagrange
        interpolant through the nodes).  Because the nodes are symmetric up to
        rounding, the weights sum to zero up to rounding and f(0) is not
        needed.

    Examples
    --------
    >>> derivative_weights(np.array([[-1.0], [1.0]])).ravel()
    array([-0.5,  0.5])
    """
    t = np.asarray(offsets, dtype=np.float64)
    k = t.shape[0]
    w = np.empty_like(t)
    for j in range(k):
        others = [m for m in range(k) if m != j]
        # the textbook products and sums, in their order, less the
        # multiplications by 1 and the first addition to 0 (both exact);
        # the denominator is built in w[j] itself
        denom = w[j, ...]
        if others:
            np.subtract(t[j], t[others[0]], out=denom)
            for m in others[1:]:
                np.multiply(denom, t[j] - t[m], out=denom)
        else:
            denom[...] = 1.0
        # d/dz of prod_{m != j} (z - t_m) at z = 0
        num = 0.0
        for i, drop in enumerate(others):
            term = _product([np.negative(t[m]) for m in others if m != drop])
            num = term + 0.0 if i == 0 else np.add(num, term, out=num)
        np.divide(num, denom, out=denom)
    return w


def _product(factors):
    """``1 * f0 * f1 * ...`` left to right (1.0 times a float is that float exactly)."""
    if not factors:
        return 1.0
    out = np.array(factors[0], dtype=np.float64) if len(factors) > 1 else factors[0]
    for f in factors[1:]:
        np.multiply(out, f, out=out)
    return out


def centered_weights(offsets: np.ndarray, *, weights: np.ndarray | None = None) -> tuple:
    """Weights of the nodes and of x itself, for nodes that rounding left asymmetric.

    The K nodes of a central stencil sit symmetrically about 0 only up to the
    rounding of ``x + c h``: where they do not (``h+ != h-``), the K-point
    formula is exact for degree K - 1 only, and the two-point difference
    ``(f+ - f-) / (h+ + h-)`` carries ``f''(h+ - h-) / 2``, a first-order
    error that no Richardson estimate sees, since the asymmetry does not
    shrink with the step.  In float32 and float64 it is far below rounding;
    in bfloat16 (x + h on a grid of 2**-8) it can be the largest error there
    is.  Adding x itself, whose value is known, makes the formula exact for
    degree K again at no cost.

    Parameters
    ----------
    offsets : numpy.ndarray
        ``(K, M)``, as for :func:`derivative_weights`.
    weights : numpy.ndarray, optional
        ``derivative_weights(offsets)`` when the caller has it already; it
        is not modified, and the result may share it where the nodes are
        symmetric.

    Returns
    -------
    weights : numpy.ndarray
        ``(K, M)``: the node weights; where the nodes are symmetric, exactly
        those of :func:`derivative_weights`.
    center : numpy.ndarray
        ``(M,)``: the weight of f(x); 0 where the nodes are symmetric.

    Examples
    --------
    >>> w, c = centered_weights(np.array([[-0.5], [1.0]]))
    >>> f = lambda z: 3.0 * z + z ** 2                   # f'(0) = 3
    >>> float((w[:, 0] * f(np.array([-0.5, 1.0]))).sum() + c[0] * f(0.0))
    3.0
    """
    t = np.asarray(offsets, dtype=np.float64)
    w = derivative_weights(t) if weights is None else weights
    center = np.zeros(t.shape[1:])
    cols, full = asymmetric(t)
    if cols.size:
        if w is weights:
            w = np.array(weights, dtype=np.float64)
        w[:, cols] = full[:-1]
        center[cols] = full[-1]
    return w, center


def asymmetric(offsets: np.ndarray) -> tuple:
    """The columns :func:`centered_weights` changes, and what it puts there.

    Returns
    -------
    cols : numpy.ndarray
        Indices of the columns of finite nodes that are not symmetric about 0.
    full : numpy.ndarray
        ``(K + 1, len(cols))``: the weights of those columns' nodes and,
        last, of x itself.

    Examples
    --------
    >>> cols, full = asymmetric(np.array([[-1.0, -0.5], [1.0, 1.0]]))
    >>> cols.tolist(), full.shape
    ([1], (3, 1))
    """
    t = np.asarray(offsets, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        if t.shape[0] == 2:
            # two nodes are symmetric when one is the other's negative
            sym = t[0] == -t[1]
            finite = np.isfinite(t[0]) & np.isfinite(t[1])
        else:
            srt = _sorted_nodes(t)
            sym = np.all(srt == -srt[::-1], axis=0)
            finite = np.all(np.isfinite(t), axis=0)
        cols = np.flatnonzero(~sym & finite)
    sub = t[:, cols]
    if not cols.size:
        return cols, np.zeros((t.shape[0] + 1, 0))
    return cols, derivative_weights(np.concatenate([sub, np.zeros((1, sub.shape[1]))]))


def _sorted_nodes(t: np.ndarray) -> np.ndarray:
    """``np.sort(t, axis=0)`` for the finite columns of a few rows.

    A sort along the short axis makes one tiny sort per column; the
    elementwise compare-exchanges of an odd-even transposition network do
    the same in K passes over the rows.  Columns with a NaN come out in
    another order than ``np.sort`` would give them; the caller discards
    non-finite columns.
    """
    k = t.shape[0]
    if k > 8:
        return np.sort(t, axis=0)
    rows = list(t)
    for r in range(k):
        for i in range(r % 2, k - 1, 2):
            rows[i], rows[i + 1] = np.minimum(rows[i], rows[i + 1]), np.maximum(rows[i], rows[i + 1])
    return np.stack(rows) if k else t
