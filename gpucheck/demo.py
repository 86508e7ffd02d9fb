"""``gpucheck demo``: the forum question that started gpucheck, answered.

A user checked a float32 MSE layer, ``f(X) = mean over rows of ½·mean over
the features of (X - T)**2``, by central differences and measured the
discrepancy 2.75e-3, 2.5e-4, 2.2e-5, 3.1e-6, 2.75e-7 for steps 1e-4 ... 1:
worse the smaller the step, which looks like a bug.  The demo checks the
same layer (8x8, float32, evaluated in float32) and shows

1. what the user's eps = 1e-4 gives, why, and what to do about it;
2. the check at gpucheck's default step;
3. the full failure report when one gradient entry is 5% off;
4. the epsilon table, with the measured and the predicted columns named.

It runs on the CPU in well under a second of checking.
"""

from __future__ import annotations

import numpy as np

from . import api
from .functions import batched

__all__ = ["forum_layer", "run"]

#: The step the forum user tried first.
USER_EPS = 1e-4
#: The steps of the user's table.
TABLE_EPS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def forum_layer(seed: int = 1):
    """The forum's layer on an 8x8 float32 point: ``(f, X, grad)``.

    ``f`` is batched, ``f(Xs)[b] = mean_r 0.5 * mean_j (Xs[b, r, j] - T[r, j])**2``
    computed in float32 as the user's NumPy code did; ``grad = (X - T) / 64``
    in float64.

    Examples
    --------
    >>> import gpucheck
    >>> f, X, grad = forum_layer()
    >>> X.dtype, X.shape
    (dtype('float32'), (8, 8))
    >>> gpucheck.check_gradient(f, X, grad, backend="cpu").status
    'pass'
    """
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(8, 8)).astype(np.float32)
    x = rng.normal(size=(8, 8)).astype(np.float32)

    def loss(xs):
        return np.mean(0.5 * np.mean((xs - target) ** 2, axis=2), axis=1)

    grad = (x.astype(np.float64) - target) / x.size
    return batched(loss), x, grad


def run(*, plot=None, out=print) -> int:
    """Print the demo; write the sweep picture to ``plot`` when given.  Returns 0."""
    f, x, grad = forum_layer()
    out("gpucheck demo: the forum question's layer, checked and explained\n\n"
        "  f(X) = mean over rows r of 1/2 * mean over features j of (X[r, j] - T[r, j])**2\n"
        "  X, T: 8x8 float32, f evaluated in float32; analytic gradient (X - T) / 64\n")

    user = api.check_gradient(f, x, grad, eps=USER_EPS, backend="cpu")
    default = api.check_gradient(f, x, grad, backend="cpu")
    big = api.check_gradient(f, x, grad, eps=1.0, backend="cpu")
    out(f"1. The user's step, eps = {_e(USER_EPS)}:\n\n   {user.summary()}\n")
    h = float(np.min(user.eps))
    out(_wrap(
        f"At eps = {_e(USER_EPS)} a difference quotient carries f's rounding error divided by the "
        f"step: f's measured noise is {user.noise:.1e}, so each numerical derivative is uncertain "
        f"by about {user.noise / h:.0e} and more, while the gradient's entries run from "
        f"{np.min(np.abs(grad)):.0e} to {np.max(np.abs(grad)):.0e}. The discrepancy "
        f"{user.discrepancy:.1e}, which looks like a bug, is that rounding; the error model "
        f"accounts for it, and where it is as large as the entry itself the verdict is "
        f"{user.status.upper()} rather than a false FAIL or PASS.") + "\n")
    out(_wrap(
        f"What to do: use a larger step. gpucheck's default for float32, eps = u^(1/3) = "
        f"{float(np.min(default.eps)):.1e}, gives {default.status.upper()} (discrepancy "
        f"{default.discrepancy:.1e}); a mean squared error has no truncation error at all, so "
        f"even eps = 1 is fine: {big.status.upper()}, discrepancy {big.discrepancy:.1e}. "
        "Summing f's terms in float64 (np.mean(..., dtype=np.float64)) lowers its rounding "
        "noise as well.") + "\n")

    out("2. The check at the default step:\n")
    out(_indent(str(default)) + "\n")

    wrong = grad.copy()
    wrong[2, 5] *= 1.05
    bad = api.check_gradient(f, x, wrong, backend="cpu")
    out("3. A planted bug, entry (2, 5) of the gradient 5% off - the full failure report:\n")
    out(_indent(str(bad)) + "\n")

    s = api.sweep(f, x, grad, eps=list(TABLE_EPS), backend="cpu")
    out("4. The user's table: the discrepancy at each step (the forum measured 2.75e-3, 2.5e-4, "
        "2.2e-5,\n   3.1e-6, 2.75e-7; the digits differ with the random data):\n")
    out(_indent(str(s)) + "\n")
    out("   Columns: 'eps' and 'discrepancy' are measured; 'disc*eps' is the discrepancy times\n"
        "   the step (constant when rounding dominates); 'rounding' and 'truncation' are the\n"
        "   error model's PREDICTIONS of the discrepancy from f's measured noise and from how\n"
        "   the numerical gradient changes with the step - not measurements.")
    if plot:
        s.plot(plot)
        out(f"\nwrote {plot}")
    return 0


def _e(v: float) -> str:
    mantissa, exp = f"{v:.0e}".split("e")
    return f"{mantissa}e{int(exp)}"


def _wrap(text: str) -> str:
    import textwrap

    return textwrap.fill(text, 88, initial_indent="   ", subsequent_indent="   ")


def _indent(text: str) -> str:
    return "\n".join("   " + line if line else line for line in text.splitlines())
