"""The ways to hand in f, normalised into one small description.

1. A plain callable ``f(x) -> scalar``, called once per perturbed point.
2. A function marked with :func:`batched`, ``f(xs) -> (B,)`` over a leading
   batch axis, called on chunks of perturbed copies.
3. A numba-compatible scalar function wrapped by :func:`kernel`,
   ``fn(x, *params) -> float``, compiled into one CUDA kernel (or one parallel
   CPU loop) that evaluates every perturbed copy.
4. A numba-compatible function of one row wrapped by :func:`rowwise`,
   ``f(x) = scale * sum_r fn(x[r], *param_rows)``: a perturbation of
   ``x[r, ...]`` re-evaluates row r only (delta evaluation).
5. A built-in layer (:mod:`gpucheck.layers`): its delta evaluator computes
   only what a perturbation changes, against intermediates computed once at x.

Forms 4 and 5 are evaluated through delta evaluation unless they were made
with ``delta=False``; then they are evaluated like forms 3 (a row-wise
function: every row at every point) or 2 (a layer without a kernel form).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from . import validate
from .errors import GpuCheckError
from .validate import params as valid_params

__all__ = ["batched", "kernel", "rowwise", "Batched", "Kernel", "Rowwise", "Function",
           "as_function"]


@dataclass(frozen=True)
class Batched:
    """A function marked as batched: ``fn(xs)`` maps ``(B, *x.shape)`` to ``(B,)``.

    Create it with :func:`batched`.  It is still callable on a batch.

    Attributes
    ----------
    fn : callable
        The user's function.  It receives NumPy arrays on the ``cpu`` backend
        and CuPy arrays on ``cuda``; write it against the shared array API
        (``xs.sum(axis=...)``, operators) so the same code runs on both.
    """

    fn: Callable[[Any], Any]

    def __call__(self, xs):
        return self.fn(xs)

    @property
    def __name__(self) -> str:  # pragma: no cover - cosmetic
        return getattr(self.fn, "__name__", "batched")


def batched(fn: Callable[[Any], Any]) -> Batched:
    """Mark ``fn`` as a batched function of a leading batch axis.

    Parameters
    ----------
    fn : callable
        ``fn(xs)`` with ``xs`` of shape ``(B, *x.shape)`` returning an array
        of shape ``(B,)``: one value of f per perturbed copy.

    Returns
    -------
    Batched
        A marker object that :func:`gpucheck.check_gradient` evaluates in
        memory-sized chunks.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> f = gpucheck.batched(lambda xs: (xs ** 2).sum(axis=(1, 2)))
    >>> x = np.ones((3, 4))
    >>> gpucheck.check_gradient(f, x, 2 * x).passed
    True
    """
    _check_plain(fn, "batched")
    return Batched(fn)


@dataclass(frozen=True)
class Kernel:
    """A numba-compatible scalar function of one sample with bound parameters.

    Create it with :func:`kernel`.

    Attributes
    ----------
    fn : callable
        ``fn(x, *params) -> float``, written in the subset of Python that
        ``numba`` compiles for both the CPU and CUDA.  ``x`` has the shape of
        the point being checked.
    params : tuple of numpy.ndarray
        Extra arrays (targets, weights) passed after ``x`` on every call.
    reassoc : bool
        Whether the ``cpu`` backend may reassociate floating-point sums in
        ``fn`` (see :func:`kernel`).
    """

    fn: Callable[..., float]
    params: tuple = field(default=())
    reassoc: bool = True

    def __call__(self, x):
        return self.fn(x, *self.params)

    @property
    def __name__(self) -> str:  # pragma: no cover - cosmetic
        return getattr(self.fn, "__name__", "kernel")


def kernel(fn: Callable[..., float], *params, reassoc: bool = True) -> Kernel:
    """Wrap a numba-compatible scalar function so gpucheck can compile it.

    The same source is compiled twice: into a CUDA kernel in which every
    thread evaluates perturbed copies of ``x`` (``backend="cuda"`` or
    ``"cudasim"``), and into a ``numba.njit(parallel=True)`` loop
    (``backend="cpu"``).  Compiled code is cached per function, dtype and
    shape class.

    Inside ``fn``, index ``x`` element by element (``x[i, j]`` or
    ``x.flat[k]``): on CUDA each thread's perturbed copy is a strided view
    (copies are interleaved so that a warp reads neighbouring addresses), so
    ``x.ravel()`` and ``x.reshape()`` do not compile there.

    Accumulation rule: gpucheck stores every value of f in float64.  Inside
    ``fn`` the accumulator has the type you give it: start it as ``0.0`` (a
    float64 literal) and numba accumulates float32 terms in float64, which is
    what we recommend; ``np.float32(0)`` keeps the whole computation in
    float32.  Under numba's CUDA simulator the code runs as Python with
    NumPy's scalar rules, where ``0.0 + float32`` stays float32: float32
    results there differ from compiled ones by float32 rounding.

    Reassociation (``cpu`` backend): by default numba may reassociate
    floating-point additions and multiplications in ``fn`` (LLVM's
    ``reassoc`` flag, nothing else: NaN and infinity keep their meaning).
    That lets it vectorise a sum, several times faster.  A value of f then
    rounds differently, by a few units in the last place of its accumulator,
    in the same fixed order at every point, so the two points of a central
    difference are still summed alike: the numerical derivative moves by
    well under the tolerance the check builds on the noise it measures
    (tested on the built-in losses in float32 and float64).  Pass
    ``reassoc=False`` when ``fn`` depends on the exact order of its
    operations (compensated summation, for example).  The CUDA kernels never
    reassociate.

    Parameters
    ----------
    fn : callable
        ``fn(x, *params) -> float``.
    *params : array_like
        Arrays bound now and passed to every call (converted with
        :func:`numpy.asarray`; they are copied to the device once per check).
    reassoc : bool
        Let the ``cpu`` backend reassociate floating-point operations in
        ``fn`` (default True).

    Returns
    -------
    Kernel

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> def sq(x, t):
    ...     s = 0.0
    ...     for i in range(x.shape[0]):
    ...         d = x[i] - t[i]
    ...         s += d * d
    ...     return s
    >>> t = np.zeros(5)
    >>> x = np.arange(5.0)
    >>> gpucheck.check_gradient(gpucheck.kernel(sq, t), x, 2 * x).passed
    True
    """
    _check_plain(fn, "kernel")
    return Kernel(fn, valid_params(params), validate.flag(reassoc, "reassoc"))


def _check_plain(fn, what: str) -> None:
    from .layers import Layer

    if isinstance(fn, Layer):
        raise GpuCheckError(f"`fn` is a built-in layer, already a form of f: pass it to the "
                            f"check directly, not through `{what}`")
    if isinstance(fn, _MARKED):
        raise GpuCheckError(f"`fn` is already marked; pass the plain function to `{what}`")
    if not callable(fn):
        raise GpuCheckError(f"`fn` must be callable, got {type(fn).__name__}")



@dataclass(frozen=True)
class Rowwise:
    """A numba-compatible function of one row of x, summed over the rows.

    Create it with :func:`rowwise`.  ``f(x) = scale * sum_r fn(x[r], *args_r)``
    where ``args_r`` holds row r of each row-aligned param and every other
    param whole.  Calling the object evaluates that sum in Python.

    Attributes
    ----------
    fn : callable
        ``fn(row, *param_rows) -> float``.
    params : tuple of numpy.ndarray
        Bound arrays.
    scale : float
        Constant factor of the sum.
    aligned : tuple of int or None
        Indices of the row-aligned params; None: decided by shape (see
        :func:`rowwise`).
    delta : bool
        Evaluate a perturbation of ``x[r, ...]`` by re-evaluating row r only
        (True), or every row at every point (False).
    reassoc : bool
        As for :func:`kernel`.
    """

    fn: Callable[..., float]
    params: tuple = ()
    scale: float = 1.0
    aligned: Optional[tuple] = None
    delta: bool = True
    reassoc: bool = True

    def rows_of(self, x) -> np.ndarray:
        """x as an array of rows: shape ``(R, *row_shape)``, a view where possible.

        A 0-d or 1-D x has rows of one element.

        Examples
        --------
        >>> import numpy as np, gpucheck
        >>> f = gpucheck.rowwise(lambda r: r[0])
        >>> f.rows_of(np.arange(3.0)).shape, f.rows_of(np.ones((2, 3, 4))).shape
        ((3, 1), (2, 3, 4))
        """
        x = np.asarray(x)
        return x.reshape(-1, 1) if x.ndim < 2 else x

    def row_aligned(self, n_rows: int) -> tuple:
        """For each param, whether it is row-aligned when x has ``n_rows`` rows.

        Raises :class:`~gpucheck.GpuCheckError` when a param named in
        ``aligned`` does not have ``n_rows`` rows.

        Examples
        --------
        >>> import numpy as np, gpucheck
        >>> f = gpucheck.rowwise(lambda r, t, w: 0.0, np.zeros((4, 2)), np.zeros(2))
        >>> f.row_aligned(4)
        (True, False)
        """
        if self.aligned is None:
            return tuple(p.ndim >= 1 and p.shape[0] == n_rows for p in self.params)
        for k in self.aligned:
            p = self.params[k]
            if p.ndim < 1 or p.shape[0] != n_rows:
                raise GpuCheckError(
                    f"`params[{k}]` is row-aligned (`aligned`) and must have x's {n_rows} "
                    f"rows along its first axis, got shape {p.shape}")
        return tuple(k in self.aligned for k in range(len(self.params)))

    def __call__(self, x):
        rows = self.rows_of(x)
        flags = self.row_aligned(rows.shape[0])
        total = 0.0
        for r in range(rows.shape[0]):
            args = [p[r] if a else p for p, a in zip(self.params, flags)]
            total += float(self.fn(rows[r], *args))
        return self.scale * total

    @property
    def __name__(self) -> str:  # pragma: no cover - cosmetic
        return getattr(self.fn, "__name__", "rowwise")


def rowwise(fn: Callable[..., float], *params, scale=1.0, aligned=None, delta: bool = True,
            reassoc: bool = True) -> Rowwise:
    """Wrap a numba-compatible function of ONE row: ``f(x) = scale * sum_r fn(x[r], ...)``.

    A perturbation of one entry of row r changes only ``fn(x[r], ...)``, so
    gpucheck evaluates every row once at x and then, for each perturbed
    point, row r alone: a full check costs O(N * row length) instead of the
    O(N**2) of a :func:`kernel` that recomputes f in full.  The value at a
    point is ``scale * (S + (fn(row') - fn(row)))`` with ``S`` the float64
    sum over the rows at x, so the rounding of the other rows cancels
    exactly.  ``fn`` follows the rules of :func:`kernel` (numba-compatible,
    index the row element by element; a ``0.0`` accumulator sums float32
    terms in float64); it is compiled for the ``cpu`` backend (a numba
    parallel loop over rows) and for ``cuda``/``cudasim`` (one thread per
    perturbed row for short rows, a warp's worth of threads for rows of 32
    entries or more).

    Rows: x of shape ``(R, ...)`` has rows ``x[r]`` of shape ``x.shape[1:]``;
    a 1-D x has rows of one element (handed to ``fn`` as 1-element arrays).

    Params: a row-aligned param is sliced per row (``fn`` receives
    ``p[r]``: a scalar for a 1-D param, a row for a 2-D one); any other
    param is passed whole.  By default a param is row-aligned when its first
    axis has x's number of rows; when a whole param happens to have that
    many rows too, say which params are row-aligned with ``aligned``.

    Parameters
    ----------
    fn : callable
        ``fn(row, *param_rows) -> float``.
    *params : array_like
        Arrays bound now.
    scale : float
        Constant factor of the sum (``1 / R`` for a mean over rows).
    aligned : sequence of int, optional
        Indices (into ``params``) of the row-aligned params; ``()`` for none.
        Default: decided by shape, as above.
    delta : bool
        True (default): evaluate row r alone at a perturbation of row r.
        False: evaluate every row at every point (the full forward), to
        compare with or to time against.
    reassoc : bool
        As for :func:`kernel`: let the ``cpu`` backend reassociate
        floating-point operations in ``fn``.

    Returns
    -------
    Rowwise

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> def row_sse(row, t):          # one row of x, the same row of t
    ...     s = 0.0
    ...     for j in range(row.shape[0]):
    ...         d = row[j] - t[j]
    ...         s += d * d
    ...     return s
    >>> T = np.zeros((4, 3)); X = np.arange(12.0).reshape(4, 3)
    >>> f = gpucheck.rowwise(row_sse, T, scale=0.25)
    >>> float(f(X))
    126.5
    >>> gpucheck.check_gradient(f, X, 2 * (X - T) / 4, backend="cpu").status
    'pass'
    """
    _check_plain(fn, "rowwise")
    arrays = valid_params(params)
    scale = validate.finite_real(scale, "scale")
    if aligned is not None:
        if isinstance(aligned, (str, bytes)) or not hasattr(aligned, "__iter__"):
            raise GpuCheckError(f"`aligned` must be a sequence of param indices, got {aligned!r}")
        picked = []
        for k in aligned:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) \
                    or not 0 <= int(k) < len(arrays):
                raise GpuCheckError(f"`aligned` entries must be indices of params "
                                    f"(0 to {len(arrays) - 1}), got {k!r}")
            if int(k) in picked:
                raise GpuCheckError(f"`aligned` names param {int(k)} twice")
            picked.append(int(k))
        aligned = tuple(sorted(picked))
    return Rowwise(fn, arrays, scale, aligned, validate.flag(delta, "delta"),
                   validate.flag(reassoc, "reassoc"))


@dataclass(frozen=True)
class Function:
    """The normalised description of f that the backends receive.

    Attributes
    ----------
    kind : {'callable', 'batched', 'kernel', 'rowwise', 'layer'}
        How f is evaluated.
    fn : callable
        The user's function (unwrapped); a layer's forward for ``'layer'``.
    params : tuple
        Bound arrays for ``'kernel'`` and ``'rowwise'``, else empty.
    name : str
        A readable name for reports.
    form : object
        The object f was handed in as, for the forms whose evaluation needs
        more than ``fn`` and ``params``: the :class:`Kernel`,
        :class:`Rowwise` or :class:`~gpucheck.layers.Layer`.
    """

    kind: str
    fn: Callable[..., Any]
    params: tuple = ()
    name: str = "f"
    form: Any = None


def as_function(f) -> Function:
    """Normalise any accepted form of f into a :class:`Function`."""
    from .layers import Layer

    if isinstance(f, Layer):
        return f.function()
    if isinstance(f, Rowwise):
        return Function("rowwise", f.fn, f.params, getattr(f.fn, "__name__", "rowwise"), f)
    if isinstance(f, Kernel):
        return Function("kernel", f.fn, f.params, getattr(f.fn, "__name__", "kernel"), f)
    if isinstance(f, Batched):
        return Function("batched", f.fn, (), getattr(f.fn, "__name__", "batched"))
    if callable(f):
        return Function("callable", f, (), getattr(f, "__name__", type(f).__name__))
    raise GpuCheckError(f"`f` must be callable, got {type(f).__name__}")


#: The marker classes: a function already wrapped in one is not wrapped again.
_MARKED = (Batched, Kernel, Rowwise)
