"""Plan the perturbed points: representable steps, stencil nodes, weights.

The plan is pure host arithmetic in float64 NumPy; the backends only ever see
``(idx, vals)`` pairs.  Steps are per element, ``h_i = eps * max(1, |x_i|)``
with ``eps = u ** step_power`` by default (u the dtype's unit roundoff), and
the nodes are rounded to x's dtype exactly as f will see them, so the
weights use the offsets that were really applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import GpuCheckError
from .stencils import Scheme, asymmetric, centered_weights, derivative_weights

__all__ = ["float_info", "unit_roundoff", "default_eps", "nominal_steps", "Stencil", "stencil",
           "points", "combine", "centered_weights", "derivative_weights"]


def float_info(dtype):
    """``finfo`` of a float dtype, bfloat16 (from ml_dtypes) included.

    Examples
    --------
    >>> float(float_info(np.float16).eps)
    0.0009765625
    """
    dt = np.dtype(dtype)
    try:
        return np.finfo(dt)
    except ValueError:
        # NumPy does not know ml_dtypes' types; they are only ever here
        # when ml_dtypes is installed, since x already has that dtype
        import ml_dtypes

        return ml_dtypes.finfo(dt)


def unit_roundoff(dtype) -> float:
    """Unit roundoff u of a float dtype (2**-24 for float32, 2**-53 for float64).

    Examples
    --------
    >>> unit_roundoff(np.float32) == 2.0 ** -24
    True
    """
    return float(float_info(dtype).eps) / 2.0


def default_eps(dtype, scheme: Scheme) -> float:
    """The default relative step for ``scheme`` in ``dtype``."""
    return unit_roundoff(dtype) ** scheme.step_power


def nominal_steps(x: np.ndarray, eps) -> np.ndarray:
    """Per-element steps ``eps * max(1, |x|)`` (float64, x's flat size).

    ``eps`` may be a scalar or an array of x's shape (absolute steps are then
    taken as given).
    """
    e = np.asarray(eps, dtype=np.float64)
    if e.ndim == 0:
        # in place, one float64 array: the same operations as
        # eps * max(1, |x|) with its temporaries
        h = x.reshape(-1).astype(np.float64)
        np.abs(h, out=h)
        np.maximum(h, 1.0, out=h)
        np.multiply(h, float(e), out=h)
        return h
    return e.reshape(-1).copy()


@dataclass(frozen=True)
class Stencil:
    """The nodes of one scheme at one step for a set of elements.

    Attributes
    ----------
    elements : numpy.ndarray
        Flat indices of the elements (int64, shape ``(M,)``).
    multipliers : tuple of int
        Node positions in units of the step.
    h : numpy.ndarray
        Nominal step per element (float64, ``(M,)``).
    vals : numpy.ndarray
        The perturbed values, in x's dtype, shape ``(K, M)``.
    offsets : numpy.ndarray
        ``vals - x`` computed exactly in float64, ``(K, M)``.
    weights : numpy.ndarray
        Derivative weights for those offsets, ``(K, M)``.
    """

    elements: np.ndarray
    multipliers: tuple
    h: np.ndarray
    vals: np.ndarray
    offsets: np.ndarray
    weights: np.ndarray

    @property
    def idx(self) -> np.ndarray:
        """Flat index of every node, ``(K * M,)``, node-major."""
        return np.tile(self.elements, len(self.multipliers))

    @property
    def rounding_gain(self) -> np.ndarray:
        """``sum_k |w_k|``: how much an error in f is amplified, ``(M,)``."""
        return np.abs(self.weights).sum(axis=0)

    def _parts(self) -> tuple:
        """``(w, cols, full)``, computed once per stencil: the weights of the
        offsets as they are, and :func:`~gpucheck.stencils.asymmetric`'s
        columns and weights, from which :meth:`centered` and the formulas
        that use it are built without a copy of every weight."""
        cached = self.__dict__.get("_centered")
        if cached is None:
            w = self.weights
            # a non-strict stencil holds NaN weights where a node is not
            # finite or fell onto x; the formula is that of the raw offsets
            bad = None if self.__dict__.get("_plain") else \
                ~np.all(np.isfinite(self.offsets) & (self.offsets != 0.0), axis=0)
            if bad is not None and np.any(bad):
                w = w.copy()
                w[:, bad] = derivative_weights(self.offsets[:, bad])
            cached = (w,) + asymmetric(self.offsets)
            object.__setattr__(self, "_centered", cached)
        return cached

    def centered(self) -> tuple:
        """Node weights and the weight of f(x) (see :func:`~gpucheck.stencils.centered_weights`)."""
        w, cols, full = self._parts()
        return centered_weights(self.offsets, weights=w)

    def derivative(self, values: np.ndarray, f0: float | None = None) -> np.ndarray:
        """Combine f at the nodes (``(K * M,)`` or ``(K, M)``) into f'.

        With ``f0``, f at x, nodes that rounding left asymmetric are
        combined with x itself (:meth:`centered`), which removes a
        first-order error; without it, the K nodes alone.
        """
        v = np.asarray(values, dtype=np.float64).reshape(len(self.multipliers), -1)
        if f0 is None:
            return (self.weights * v).sum(axis=0)
        # (w * v).sum(axis=0) + c * f0 with :meth:`centered`'s w and c,
        # column by column the same operations: c is 0 off ``cols``
        w, cols, full = self._parts()
        d = _row_sum(w, v)
        d += 0.0 * f0
        if cols.size:
            d[cols] = (full[:-1] * v[:, cols]).sum(axis=0) + full[-1] * f0
        return d

    def centered_gain(self) -> np.ndarray:
        """:attr:`rounding_gain` of the formula :meth:`derivative` uses with ``f0``."""
        w, cols, full = self._parts()
        g = _abs_row_sum(w)
        if cols.size:
            g[cols] = np.abs(full[:-1]).sum(axis=0) + np.abs(full[-1])
        return g


def _row_sum(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``(w * v).sum(axis=0)`` one row at a time.

    A reduction over the leading axis adds the rows in order to 0.0 (which
    turns a -0.0 into 0.0), exactly as here; this way no ``(K, M)`` product
    is held at once.
    """
    out = w[0] * v[0]
    out += 0.0
    for k in range(1, len(w)):
        out += w[k] * v[k]
    return out


def _abs_row_sum(w: np.ndarray) -> np.ndarray:
    """``np.abs(w).sum(axis=0)`` one row at a time."""
    out = np.abs(w[0])
    for k in range(1, len(w)):
        out += np.abs(w[k])
    return out


def stencil(x: np.ndarray, multipliers, h: np.ndarray, elements: np.ndarray | None = None, *,
            strict: bool = True) -> Stencil:
    """Build the nodes ``x_i + c * h_i`` for the given elements.

    Raises
    ------
    GpuCheckError
        If a step is so small that a node rounds back onto ``x_i`` (the
        difference would be 0/0) or a node overflows, unless ``strict`` is
        False: then such elements get non-finite weights, and the caller
        treats their derivative as not finite.
    """
    flat = x.reshape(-1)
    if elements is None:
        elements = np.arange(flat.size, dtype=np.int64)
        base = flat.astype(np.float64, copy=False)  # (read only here)
    else:
        elements = np.asarray(elements, dtype=np.int64)
        base = flat[elements].astype(np.float64, copy=False)
    h = np.asarray(h, dtype=np.float64)
    mult = np.asarray(multipliers, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        # x_i + c h_i, row by row in place (no (K, M) temporaries)
        vals = np.empty((mult.size, base.size))
        for k, m in enumerate(mult):
            np.multiply(m, h, out=vals[k])
            np.add(base, vals[k], out=vals[k])
        vals = vals.astype(x.dtype, copy=False)
    offsets = vals.astype(np.float64)
    np.subtract(offsets, base, out=offsets)
    if not strict:
        bad = ~np.all(np.isfinite(offsets) & (offsets != 0.0), axis=0)
        # such nodes are evaluated at x itself: harmless, and never used
        vals[:, bad] = flat[elements[bad]]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            weights = derivative_weights(np.where(bad, np.nan, offsets))
        return Stencil(elements, tuple(int(m) for m in multipliers), h, vals, offsets, weights)
    if not np.all(np.isfinite(offsets)):
        bad = int(elements[np.argmax(~np.all(np.isfinite(offsets), axis=0))])
        raise GpuCheckError(
            f"`eps` makes a perturbed point overflow {x.dtype} at flat index {bad}")
    if np.any(offsets == 0.0):
        col = int(np.argmax(np.any(offsets == 0.0, axis=0)))
        bad = int(elements[col])
        raise GpuCheckError(
            f"`eps` is too small for {x.dtype}: a step of {h[col]:.3g} rounds to zero at "
            f"x{np.unravel_index(bad, x.shape)} = {flat[bad]!r}")
    weights = derivative_weights(offsets)
    st = Stencil(elements, tuple(int(m) for m in multipliers), h, vals, offsets, weights)
    # every node is finite and off x: the weights are those of the offsets
    object.__setattr__(st, "_plain", True)
    return st


def points(x: np.ndarray, *, scheme: Scheme, eps=None) -> Stencil:
    """The full stencil of ``scheme`` over every element of x."""
    if eps is None:
        eps = default_eps(x.dtype, scheme)
    return stencil(x, scheme.multipliers, nominal_steps(x, eps))


def combine(st: Stencil, values: np.ndarray) -> np.ndarray:
    """Numerical derivative from f at the stencil's nodes (alias of ``st.derivative``)."""
    return st.derivative(values)
