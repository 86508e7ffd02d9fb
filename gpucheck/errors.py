"""The one exception class gpucheck raises for its users' mistakes."""

from __future__ import annotations

__all__ = ["GpuCheckError"]


class GpuCheckError(ValueError):
    """Bad input or an unusable configuration.

    Every message names the argument at fault and the rule it broke, for
    example ``"`eps` must be positive, got -0.001"``.  Errors raised inside the
    user's own function are re-raised as this class with the original error
    chained, so a traceback never starts deep inside gpucheck.

    Examples
    --------
    >>> import gpucheck
    >>> try:
    ...     gpucheck.check_gradient(lambda x: x.sum(), [], [])
    ... except gpucheck.GpuCheckError as err:
    ...     print(err)
    `x` must have at least one element, got shape (0,)
    """
