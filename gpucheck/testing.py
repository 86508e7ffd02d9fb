"""Gradient checks as test assertions.

:func:`assert_gradient` (and :func:`assert_vjp`, :func:`assert_jvp`) run a
check and raise ``AssertionError`` whose message is the full report: the
verdict, per-input verdicts, the worst entries with their names and
tolerances, the likely cause, and for an inconclusive check what to try.
What an inconclusive check does is the caller's choice:
``inconclusive="fail"`` (the default) fails the test, ``"skip"`` skips it
(``pytest.skip`` under pytest, ``unittest.SkipTest`` elsewhere), ``"pass"``
lets it pass.

The pytest plugin (:mod:`gpucheck.pytest_plugin`) offers the same as a
fixture, ``gradcheck``, with defaults from the command line.
"""

from __future__ import annotations

from .errors import GpuCheckError

__all__ = ["assert_gradient", "assert_vjp", "assert_jvp", "advice", "INCONCLUSIVE"]

#: Valid values of the ``inconclusive`` option.
INCONCLUSIVE = ("fail", "skip", "pass")


def assert_gradient(f, x, grad, *, inconclusive="fail", **options):
    """Assert that ``grad`` is the gradient of ``f`` at ``x``.

    Parameters
    ----------
    f, x, grad
        As in :func:`gpucheck.check_gradient`.
    inconclusive : {'fail', 'skip', 'pass'}
        What an inconclusive check does: fail the test, skip it, or pass.
    **options
        Passed on to :func:`gpucheck.check_gradient` (``eps``, ``backend``, ...).

    Returns
    -------
    GradCheckResult
        When the assertion holds.

    Raises
    ------
    AssertionError
        When the check fails (or is inconclusive with ``inconclusive='fail'``);
        the message is the full report.

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck.testing import assert_gradient
    >>> x = np.linspace(-1, 1, 5)
    >>> assert_gradient(lambda v: np.sum(v ** 3), x, 3 * x ** 2).status
    'pass'
    >>> try:
    ...     assert_gradient(lambda v: np.sum(v ** 3), x, 3 * x)
    ... except AssertionError as err:
    ...     print(str(err).splitlines()[0])
    gradient check: FAIL
    """
    __tracebackhide__ = True  # noqa: F841  (pytest shows the caller's line)
    from .api import check_gradient

    _option(inconclusive)
    return _settle(check_gradient(f, x, grad, **options), inconclusive)


def assert_vjp(f, x, vjp, *, inconclusive="fail", **options):
    """Assert that ``vjp(x, c)`` is f's vector-Jacobian product (see :func:`gpucheck.check_vjp`).

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck.testing import assert_vjp
    >>> A = np.arange(6.0).reshape(2, 3)
    >>> assert_vjp(lambda v: A @ v, np.ones(3), lambda v, c: A.T @ c).passed
    True
    """
    __tracebackhide__ = True  # noqa: F841
    from .vjp import check_vjp

    _option(inconclusive)
    return _settle(check_vjp(f, x, vjp, **options), inconclusive)


def assert_jvp(f, x, jvp, *, inconclusive="fail", **options):
    """Assert that ``jvp(x, t)`` is f's Jacobian-vector product (see :func:`gpucheck.check_jvp`).

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck.testing import assert_jvp
    >>> A = np.arange(6.0).reshape(2, 3)
    >>> assert_jvp(lambda v: A @ v, np.ones(3), lambda v, t: A @ t).passed
    True
    """
    __tracebackhide__ = True  # noqa: F841
    from .vjp import check_jvp

    _option(inconclusive)
    return _settle(check_jvp(f, x, jvp, **options), inconclusive)


def _option(inconclusive) -> None:
    if inconclusive not in INCONCLUSIVE:
        raise GpuCheckError(f"`inconclusive` must be one of {', '.join(map(repr, INCONCLUSIVE))}, "
                            f"got {inconclusive!r}")


def _settle(result, inconclusive: str):
    __tracebackhide__ = True  # noqa: F841
    if result.status == "pass":
        return result
    if result.status == "inconclusive":
        message = f"{result}\n{advice(result)}"
        if inconclusive == "pass":
            return result
        if inconclusive == "skip":
            _skip(message)
    else:
        message = str(result)
    raise AssertionError(message)


def _skip(message: str):
    try:
        import pytest
    except ImportError:
        import unittest

        raise unittest.SkipTest(message) from None
    pytest.skip(message)


def advice(result) -> str:
    """What to try when a check is inconclusive, from why its entries were.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> x = np.ones(3, dtype=np.float32)
    >>> r = gpucheck.check_gradient(lambda v: np.sum(v) + np.float32(1e6), x, np.ones(3))
    >>> r.status
    'inconclusive'
    >>> print(advice(r).splitlines()[0])
    what to try (the check could not decide):
    """
    notes = {w.note for w in result.worst if w.status == "inconclusive"}
    tips = []
    if any("not finite" in n for n in notes):
        tips.append("f is not finite near x: move x away from where f overflows or is undefined, "
                    "or give smaller steps (eps=...)")
    if any("too large" in n for n in notes) or not tips:
        tips.append(f"f's rounding noise ({result.noise:.1e}) swamps these derivatives: evaluate f in "
                    "float64, accumulate its sums in float64, or subtract the constant part of a "
                    "large loss")
        tips.append("try larger steps: gpucheck.sweep(f, x, grad) shows which eps the error is "
                    "smallest at")
        tips.append("or judge with a fixed rule you accept: rtol=..., atol=...")
    return "what to try (the check could not decide):\n" + "\n".join(f"  - {t}" for t in tips)
