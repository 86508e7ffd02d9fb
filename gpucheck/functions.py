"""The three ways to hand in f, normalised into one small description.

1. A plain callable ``f(x) -> scalar``, called once per perturbed point.
2. A function marked with :func:`batched`, ``f(xs) -> (B,)`` over a leading
   batch axis, called on chunks of perturbed copies.
3. A numba-compatible scalar function wrapped by :func:`kernel`,
   ``fn(x, *params) -> float``, compiled into one CUDA kernel (or one parallel
   CPU loop) that evaluates every perturbed copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import GpuCheckError
from .validate import params as valid_params

__all__ = ["batched", "kernel", "Batched", "Kernel", "Function", "as_function"]


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
    if isinstance(fn, (Batched, Kernel)):
        raise GpuCheckError("`fn` is already marked; pass the plain function to `batched`")
    if not callable(fn):
        raise GpuCheckError(f"`fn` must be callable, got {type(fn).__name__}")
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
    """

    fn: Callable[..., float]
    params: tuple = field(default=())

    def __call__(self, x):
        return self.fn(x, *self.params)

    @property
    def __name__(self) -> str:  # pragma: no cover - cosmetic
        return getattr(self.fn, "__name__", "kernel")


def kernel(fn: Callable[..., float], *params) -> Kernel:
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

    Parameters
    ----------
    fn : callable
        ``fn(x, *params) -> float``.
    *params : array_like
        Arrays bound now and passed to every call (converted with
        :func:`numpy.asarray`; they are copied to the device once per check).

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
    if isinstance(fn, (Batched, Kernel)):
        raise GpuCheckError("`fn` is already marked; pass the plain function to `kernel`")
    if not callable(fn):
        raise GpuCheckError(f"`fn` must be callable, got {type(fn).__name__}")
    return Kernel(fn, valid_params(params))


@dataclass(frozen=True)
class Function:
    """The normalised description of f that the backends receive.

    Attributes
    ----------
    kind : {'callable', 'batched', 'kernel'}
        How f is evaluated.
    fn : callable
        The user's function (unwrapped).
    params : tuple
        Bound arrays for ``kind == 'kernel'``, else empty.
    name : str
        A readable name for reports.
    """

    kind: str
    fn: Callable[..., Any]
    params: tuple = ()
    name: str = "f"


def as_function(f) -> Function:
    """Normalise any accepted form of f into a :class:`Function`."""
    if isinstance(f, Kernel):
        return Function("kernel", f.fn, f.params, getattr(f.fn, "__name__", "kernel"))
    if isinstance(f, Batched):
        return Function("batched", f.fn, (), getattr(f.fn, "__name__", "batched"))
    if callable(f):
        return Function("callable", f, (), getattr(f, "__name__", type(f).__name__))
    raise GpuCheckError(f"`f` must be callable, got {type(f).__name__}")
