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


class GpuCheckInterrupted(KeyboardInterrupt):
    """Ctrl-C during a check, with what was checked before it.

    A subclass of :class:`KeyboardInterrupt`, so code that stops on Ctrl-C
    still stops; code that wants the partial answer catches this class.

    Attributes
    ----------
    partial : GradCheckResult, numpy.ndarray or None
        From :func:`gpucheck.check_gradient`: a result with ``partial=True``
        whose entries not reached are 'unchecked', whose status is 'fail'
        when a checked entry failed and otherwise 'inconclusive' (never
        'pass').  From :func:`gpucheck.numerical_gradient`: the gradient
        (x's structure) with NaN where it was not computed.  None where
        nothing could be kept.

    Examples
    --------
    >>> import time, numpy as np, gpucheck
    >>> calls = []
    >>> def f(v):                      # a slow f, and Ctrl-C after 200 calls
    ...     calls.append(1)
    ...     if len(calls) > 200:
    ...         raise KeyboardInterrupt
    ...     time.sleep(0.002)
    ...     return float(np.sum(v ** 2))
    >>> x = np.linspace(-1, 1, 100)
    >>> try:
    ...     gpucheck.check_gradient(f, x, 2 * x)
    ... except gpucheck.GpuCheckInterrupted as stop:
    ...     r = stop.partial
    >>> r.partial, r.status, 0 < r.n_checked < x.size
    (True, 'inconclusive', True)
    """

    def __init__(self, message: str, partial=None):
        super().__init__(message)
        self.partial = partial
