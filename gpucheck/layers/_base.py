"""What every built-in layer is: :class:`Layer` and its delta evaluator :class:`Delta`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .. import validate
from ..errors import GpuCheckError
from ..functions import Batched, Function, Kernel
from ..kernels import builtin

__all__ = ["Layer", "Delta", "REDUCTIONS", "as_seen", "reduction_factor", "xp_of"]

#: How a loss over many terms is reduced: the sum, the sum over the first
#: axis's entries averaged ('batchmean', the mean over samples of the
#: per-sample sum), or the mean over every term.
REDUCTIONS = ("batchmean", "mean", "sum")

xp_of = builtin.array_namespace


@dataclass(frozen=True)
class Delta:
    """How a layer evaluates perturbed points from intermediates computed once at x.

    Attributes
    ----------
    point : callable
        A numba-compatible ``point(j, v, *arrays) -> float``: the change of
        f when flat entry ``j`` of x takes the value ``v`` (functions in
        :mod:`gpucheck.kernels.layers`).
    prepare : callable
        ``prepare(x) -> (f0, arrays)``: f at x (float64) and the arrays
        ``point`` reads, computed in float64 from the values the forward
        sees (x's dtype).
    cost : callable
        ``cost(arrays)``: roughly the operations of one point (its inner
        loop's length), to decide whether a check is worth several threads.
    """

    point: Callable
    prepare: Callable
    cost: Callable = lambda arrays: 1


@dataclass(frozen=True)
class Layer:
    """A loss with its reference gradient and a delta evaluator.

    Build one with a constructor of :mod:`gpucheck.layers` (``mse``,
    ``dense``, ...) or :func:`gpucheck.layers.build`.  A layer is accepted
    wherever f is: ``check_gradient(layer, x, grad)`` evaluates every
    perturbed point through the delta evaluator, on every backend.

    Attributes
    ----------
    name : str
    f : callable
        The forward ``f(x) -> scalar`` on one point, computed in x's dtype
        as a user's NumPy layer would.
    batched : Batched
        The same forward over a stack of points ``(B, *x.shape) -> (B,)``,
        NumPy or CuPy.
    grad : callable
        ``grad(x)``: the reference gradient, float64.
    kernel : Kernel or None
        The forward in the kernel contract, where the layer has one.
    evaluator : Delta or None
        The delta evaluator.
    delta : bool
        True: checks use the delta evaluator.  False: the full forward at
        every point (the kernel form where there is one, else the batched
        form).
    shape : tuple or None
        The shape x must have (None: any shape the params allow).
    """

    name: str
    f: Callable
    batched: Batched
    grad: Callable
    kernel: Optional[Kernel] = None
    evaluator: Optional[Delta] = None
    delta: bool = True
    shape: Optional[tuple] = None

    def __call__(self, x):
        return self.f(x)

    def full(self) -> "Layer":
        """The same layer evaluated by its full forward at every point (``delta=False``).

        Examples
        --------
        >>> import numpy as np
        >>> from gpucheck.layers import mse
        >>> mse(np.zeros((2, 2))).full().delta
        False
        """
        return dataclasses.replace(self, delta=False)

    def function(self) -> Function:
        """The normalised form of f a backend evaluates (see :func:`gpucheck.functions.as_function`).

        Examples
        --------
        >>> import numpy as np
        >>> from gpucheck.layers import mse
        >>> layer = mse(np.zeros((2, 2)))
        >>> layer.function().kind, layer.full().function().kind
        ('layer', 'kernel')
        """
        if self.delta and self.evaluator is not None:
            return Function("layer", self.f, (), self.name, self)
        if self.kernel is not None:
            return Function("kernel", self.kernel.fn, self.kernel.params, self.name, self.kernel)
        return Function("batched", self.batched.fn, (), self.name, self.batched)

    def check_point(self, x) -> None:
        """Raise :class:`~gpucheck.GpuCheckError` unless x has the shape this layer needs."""
        if self.shape is not None and tuple(np.shape(x)) != tuple(self.shape):
            raise GpuCheckError(f"`x` must have shape {tuple(self.shape)} for layer "
                                f"{self.name!r}, got {tuple(np.shape(x))}")


def as_seen(a: np.ndarray, dtype) -> np.ndarray:
    """A param as the forward sees it (cast to x's dtype), in float64 for the delta path."""
    # (one copy, not two, when x's dtype is the param's: the widening copies)
    return np.ascontiguousarray(np.asarray(a).astype(dtype, copy=False).astype(np.float64))


def reduction_factor(reduction: str, scale: float, count: int, rows: int) -> float:
    """The factor of the summed loss: ``scale`` over the count the reduction divides by.

    Examples
    --------
    >>> reduction_factor("batchmean", 0.5, 12, 3), reduction_factor("mean", 1.0, 4, 2)
    (0.16666666666666666, 0.25)
    """
    reduction = validate.choice(reduction, "reduction", REDUCTIONS)
    divisor = {"sum": 1, "batchmean": rows, "mean": count}[reduction]
    return scale / divisor
