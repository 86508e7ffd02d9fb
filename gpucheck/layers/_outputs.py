"""The scalar loss of a layer's output array: a cotangent contraction or a squared error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import validate
from ..errors import GpuCheckError
from ..kernels import builtin
from ._base import as_seen, reduction_factor

__all__ = ["OutputLoss", "output_loss"]


@dataclass(frozen=True)
class OutputLoss:
    """``scale * sum(cotangent * Y)`` (linear) or ``scale * sum((Y - T)**2) / D`` (squared).

    Both are quadratic in Y, ``L(Y + dY) - L(Y) = sum(dY * (g + q * dY))``
    with ``g`` :meth:`derivative` at Y and ``q`` :attr:`curvature`, which is
    how the delta evaluators of conv2d and attention use it.

    Attributes
    ----------
    kind : {'linear', 'squared'}
    array : numpy.ndarray
        The cotangent or the target; it fixes the output's shape.
    factor : float
        The loss's constant factor (``scale``, or ``scale / D``).
    divisor, scale
        How the forward applies the factor, in x's dtype.
    """

    kind: str
    array: np.ndarray
    factor: float
    divisor: int
    scale: float

    @property
    def curvature(self) -> float:
        """``q``: 0 for the linear loss, the factor for the squared error."""
        return 0.0 if self.kind == "linear" else self.factor

    def check_output(self, shape, what: str) -> None:
        """The output computed from x must have the cotangent's or target's shape."""
        if tuple(shape) != self.array.shape:
            name = "cotangent" if self.kind == "linear" else "target"
            raise GpuCheckError(f"`{name}` must have the shape of the output {tuple(shape)} "
                                f"({what}), got {self.array.shape}")

    def batched(self, ys, on):
        """The loss of each output in a stack ``(B, *shape)``, in the outputs' dtype."""
        b = ys.shape[0]
        if self.kind == "linear":
            s = (ys * on(ys)[None]).reshape(b, -1).sum(axis=1)
            return s if self.scale == 1.0 else s * self.scale
        d = ys - on(ys)[None]
        s = (d * d).reshape(b, -1).sum(axis=1) / self.divisor
        return s if self.scale == 1.0 else s * self.scale

    def value64(self, y: np.ndarray, dtype) -> float:
        """The loss at outputs ``y`` (float64), the array seen in x's ``dtype``."""
        a = as_seen(self.array, dtype)
        if self.kind == "linear":
            return self.factor * float(np.sum(a * y))
        d = y - a
        return self.factor * float(np.sum(d * d))

    def derivative(self, y: np.ndarray, dtype) -> np.ndarray:
        """``dL/dY`` at outputs ``y`` (float64)."""
        a = as_seen(self.array, dtype)
        if self.kind == "linear":
            return self.factor * np.broadcast_to(a, y.shape).copy()
        return 2.0 * self.factor * (y - a)


def output_loss(cotangent, target, reduction: str, scale) -> tuple:
    """``(OutputLoss, bind)`` from exactly one of ``cotangent`` and ``target``.

    Examples
    --------
    >>> import numpy as np
    >>> loss, _ = output_loss(None, np.zeros((2, 3)), "batchmean", 1.0)
    >>> loss.kind, loss.factor
    ('squared', 0.5)
    """
    if (cotangent is None) == (target is None):
        raise GpuCheckError("give exactly one of `cotangent` (the loss sum(cotangent * output)) "
                            "and `target` (a squared error)")
    scale = validate.finite_real(scale, "scale")
    if cotangent is not None:
        a = validate.numeric_array(cotangent, "cotangent", min_ndim=1)
        validate.choice(reduction, "reduction", ("batchmean", "mean", "sum"))
        loss = OutputLoss("linear", a, scale, 1, scale)
    else:
        a = validate.numeric_array(target, "target", min_ndim=1)
        factor = reduction_factor(reduction, scale, a.size, a.shape[0])
        divisor = {"sum": 1, "batchmean": a.shape[0], "mean": a.size}[reduction]
        loss = OutputLoss("squared", a, factor, divisor, scale)
    return loss, builtin.bind(loss.array)
