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

__all__ = ["Scheme", "SCHEMES", "get_scheme", "derivative_weights"]


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
        denom = np.ones_like(t[0])
        for m in others:
            denom = denom * (t[j] - t[m])
        # d/dz of prod_{m != j} (z - t_m) at z = 0
        num = np.zeros_like(t[0])
        for drop in others:
            term = np.ones_like(t[0])
            for m in others:
                if m != drop:
                    term = term * (-t[m])
            num = num + term
        w[j] = num / denom
    return w
