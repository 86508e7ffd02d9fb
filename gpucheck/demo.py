"""``gpucheck demo``: the forum question that started gpucheck, answered.

A user checked a float32 MSE layer, ``f(X) = mean over rows of ½·mean over
the features of (X - T)**2``, by central differences and measured the
discrepancy 2.75e-3, 2.5e-4, 2.2e-5, 3.1e-6, 2.75e-7 for steps 1e-4 ... 1:
worse the smaller the step, which looks like a bug.  The demo checks the
same layer (8x8, float32, evaluated in float32) and shows

1. what the user's eps = 1e-4 gives with the classic one-shot formula, and
   why: the error model's rounding and truncation parts at that step;
2. gpucheck's verdict at that eps, the steps it went on to and why;
3. what to do: the sweep's step, gpucheck's default, float64 sums;
4. the full failure report when one gradient entry is 5% off;
5. the epsilon table, with the measured and the predicted columns named.

Every number in the text is computed when the demo runs (:func:`compute`),
and the sentences that depend on them are chosen from them, so the story
cannot drift from what the code does; the tests check each statement
against the numbers.  It runs on the CPU in well under a second of checking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import api, plan
from .functions import batched
from .stencils import get_scheme

__all__ = ["Demo", "compute", "forum_layer", "render", "run"]

#: The step the forum user tried first.
USER_EPS = 1e-4
#: The steps of the user's table.
TABLE_EPS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
#: The planted bug: this entry of the gradient, this factor off.
BUG_INDEX = (2, 5)
BUG_FACTOR = 1.05


def forum_layer(seed: int = 1, *, accumulate=None):
    """The forum's layer on an 8x8 float32 point: ``(f, X, grad)``.

    ``f`` is batched, ``f(Xs)[b] = mean_r 0.5 * mean_j (Xs[b, r, j] - T[r, j])**2``
    computed in float32 as the user's NumPy code did (``accumulate=np.float64``
    sums the same float32 terms in float64); ``grad = (X - T) / 64`` in float64.

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
        return np.mean(0.5 * np.mean((xs - target) ** 2, axis=2, dtype=accumulate), axis=1,
                       dtype=accumulate)

    grad = (x.astype(np.float64) - target) / x.size
    return batched(loss), x, grad


@dataclass(frozen=True)
class Demo:
    """What the demo computed; :func:`render` tells it.

    Attributes
    ----------
    x, grad : numpy.ndarray
        The point and the (correct) analytic gradient.
    user_steps : numpy.ndarray
        The steps ``USER_EPS * max(1, |x_i|)``, flat.
    classic : numpy.ndarray
        The one-shot central differences at those steps (x's shape).
    classic_discrepancy : float
        Their discrepancy against ``grad``.
    user, default, best, bug : GradCheckResult
        gpucheck at the user's eps, at its default step, at the sweep's
        best step, and at its default step against the planted bug.
    sweep : SweepResult
        The user's table, ``TABLE_EPS``.
    wide_noise : float
        f's noise with its sums accumulated in float64, as the check at
        the user's eps measures it (compare ``user.noise``).
    wide_discrepancy : float
        The one-shot discrepancy at the user's eps with those sums.
    """

    x: np.ndarray
    grad: np.ndarray
    user_steps: np.ndarray
    classic: np.ndarray
    classic_discrepancy: float
    user: object
    default: object
    best: object
    bug: object
    sweep: object
    wide_noise: float
    wide_discrepancy: float

    @property
    def wrong(self) -> np.ndarray:
        """The gradient with the planted bug."""
        g = self.grad.copy()
        g[BUG_INDEX] *= BUG_FACTOR
        return g


def compute() -> Demo:
    """Run every check of the demo (CPU backend) and keep the results.

    Examples
    --------
    >>> d = compute()
    >>> d.user.status, d.sweep.regime
    ('pass', 'roundoff')
    """
    from .engine import discrepancy

    f, x, grad = forum_layer()
    classic = api.numerical_gradient(f, x, eps=USER_EPS, backend="cpu")
    user = api.check_gradient(f, x, grad, eps=USER_EPS, backend="cpu")
    default = api.check_gradient(f, x, grad, backend="cpu")
    s = api.sweep(f, x, grad, eps=list(TABLE_EPS), backend="cpu")
    best = api.check_gradient(f, x, grad, eps=s.best_eps, backend="cpu")
    wrong = grad.copy()
    wrong[BUG_INDEX] *= BUG_FACTOR
    bug = api.check_gradient(f, x, wrong, backend="cpu")
    f64, _, _ = forum_layer(accumulate=np.float64)
    wide = api.check_gradient(f64, x, grad, eps=USER_EPS, backend="cpu")
    wide_classic = api.numerical_gradient(f64, x, eps=USER_EPS, backend="cpu")
    steps = USER_EPS * np.maximum(1.0, np.abs(x.astype(np.float64).ravel()))
    return Demo(x=x, grad=grad, user_steps=steps, classic=classic,
                classic_discrepancy=discrepancy(classic.ravel(), grad.ravel()), user=user,
                default=default, best=best, bug=bug, sweep=s, wide_noise=float(wide.noise),
                wide_discrepancy=discrepancy(wide_classic.ravel(), grad.ravel()))


def render(d: Demo) -> list:
    """The demo's text, one string per paragraph or report."""
    g = np.abs(d.grad)
    gmax = float(np.max(g))
    err = np.abs(d.classic - d.grad)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape))
    s = d.sweep
    i_user = int(np.flatnonzero(np.isclose(s.eps, USER_EPS))[0])
    pr, pt = float(s.predicted_rounding[i_user]), float(s.predicted_truncation[i_user])
    u = d.user
    n = u.numeric.size
    moved = np.asarray(u.eps, dtype=np.float64).ravel() / d.user_steps
    out = [
        "gpucheck demo: the forum question's layer, checked and explained\n\n"
        "  f(X) = mean over rows r of 1/2 * mean over features j of (X[r, j] - T[r, j])**2\n"
        f"  X, T: 8x8 float32, f evaluated in float32; analytic gradient (X - T) / {d.x.size}\n",
        f"1. The user's step, eps = {_e(USER_EPS)}, with the classic one-shot formula\n",
        _wrap(
            f"n_i = (f(X + h e_i) - f(X - h e_i)) / 2h with h = {_e(USER_EPS)} * max(1, |X_i|) "
            f"({_span(d.user_steps)}), one pair of evaluations per entry "
            f"(gpucheck.numerical_gradient(f, X, eps={_e(USER_EPS)})), gives the discrepancy "
            f"{d.classic_discrepancy:.2e}: the worst entry, {worst}, is off by "
            f"{float(np.max(err)):.1e}, {float(np.max(err)) / gmax:.2%} of max|g| = {gmax:.1e} "
            f"(the entries of g run from {float(np.min(g)):.0e} to {gmax:.1e}).") + "\n",
        _wrap(
            f"Why: f's rounding noise, measured at X, is {s.noise:.1e}, and a difference quotient "
            f"divides it by the step. At this step the error model predicts a discrepancy of "
            f"{pr:.1e} from rounding and {pt:.1e} from truncation"
            + (" (none: an MSE is quadratic along each coordinate)" if pt == 0 else "")
            + f"; the measured {d.classic_discrepancy:.1e} is "
            + ("within" if d.classic_discrepancy <= pr + pt else "above")
            + " that, and "
            + ("rounding dominates: noise, not a bug." if pr > pt else
               "truncation dominates.")) + "\n",
        f"2. gpucheck at the user's eps = {_e(USER_EPS)}:\n\n   {u.summary()}\n",
        _wrap(
            f"gpucheck takes eps as a starting point. It evaluated the stencil at the user's "
            f"steps with its own noise probes (which put f's noise at {u.noise:.1e}), and "
            + ("judged " + (f"all {n}" if u.n_refined == n else f"{u.n_refined} of the {n}")
               + " entries again at other steps; the steps "
               f"it settled them at are {_span(u.eps)}, {_times(moved)} the user's, "
               + ("larger, where f's rounding divided by the step is smaller" if np.min(moved) > 1
                  else "chosen by the error model")
               + ". " if u.n_refined else "settled every entry there. ")
            + f"The verdict is {u.status.upper()} with discrepancy {u.discrepancy:.1e} "
            f"({d.classic_discrepancy / u.discrepancy:.0f}x below the one-shot "
            f"{d.classic_discrepancy:.1e}), and the worst entries pass "
            + ("within rounding error" if all(w.note == "within rounding error" for w in u.worst)
               else "as listed below")
            + f"; a pass means no entry is off by more than about {1.5 * u.resolution:.1%} of "
            f"max|g|.") + "\n",
    ]
    b = d.best
    bigger = s.best_eps > USER_EPS
    dflt = plan.default_eps(d.x.dtype, get_scheme("central"))
    out.append("3. What to do" + (": use a larger step" if bigger else "") + "\n")
    out.append(_wrap(
        f"The sweep (section 5) recommends eps = {_e(s.best_eps)}: there gpucheck gives "
        f"{b.status.upper()} with discrepancy {b.discrepancy:.1e}, "
        f"{d.classic_discrepancy / b.discrepancy:.0f}x below the one-shot value at "
        f"{_e(USER_EPS)}. gpucheck's default for float32, eps = u^(1/3) = {dflt:.1e}, gives "
        f"{d.default.status.upper()} (discrepancy {d.default.discrepancy:.1e}). Summing f's "
        "terms in float64 (np.mean(..., dtype=np.float64)) "
        + ("lowers" if d.wide_noise < u.noise else "changes")
        + f" f's noise from {u.noise:.1e} to {d.wide_noise:.1e}, and the one-shot discrepancy "
        f"at {_e(USER_EPS)} from {d.classic_discrepancy:.1e} to {d.wide_discrepancy:.1e}.")
        + "\n")

    bad = d.bug
    entry = next((w for w in bad.worst if tuple(w.index) == BUG_INDEX), None)
    off = abs(d.grad[BUG_INDEX]) * (BUG_FACTOR - 1)
    out.append(f"4. A planted bug, entry {BUG_INDEX} of the gradient {BUG_FACTOR - 1:.0%} off "
               "- the full failure report:\n")
    out.append(_indent(str(bad)) + "\n")
    if entry is not None:
        out.append(_wrap(
            f"The planted error is {off:.1e}, {off / gmax:.1%} of max|g|. Entry {BUG_INDEX} "
            + ("is the one that fails" if bad.n_failed == 1 and entry.status == "fail"
               else f"has status {entry.status}")
            + f": error {entry.abs_error:.1e} against its tolerance {entry.tolerance:.1e} "
            f"({entry.abs_error / entry.tolerance:.0f}x); "
            f"{bad.numeric.size - bad.n_failed - bad.n_inconclusive} of {bad.numeric.size} "
            "entries agree.") + "\n")

    out.append("5. The user's table: the discrepancy at each step (the forum measured 2.75e-3, "
               "2.5e-4, 2.2e-5,\n   3.1e-6, 2.75e-7; the digits differ with the random data):\n")
    out.append(_indent(str(s)) + "\n")
    disc_eps = s.discrepancy * s.eps
    out.append(_wrap(
        "Columns: 'eps' and 'discrepancy' are measured - the one-shot formula at each step, so "
        f"the first row is section 1's {s.discrepancy[0]:.2e}; 'disc*eps' is their product "
        f"({float(np.min(disc_eps)):.1e} to {float(np.max(disc_eps)):.1e} here: nearly "
        "constant when rounding dominates); 'rounding' and 'truncation' are the error model's "
        "PREDICTIONS of the discrepancy, not measurements: rounding from f's measured noise "
        "divided by each step, truncation from how the numerical gradient changes between "
        "neighbouring steps"
        + (" (zero here: it changes by no more than rounding explains)."
           if np.all(s.predicted_truncation == 0) else ".")))
    return out


def run(*, plot=None, out=print) -> int:
    """Print the demo; write the sweep picture to ``plot`` when given.  Returns 0."""
    d = compute()
    for part in render(d):
        out(part)
    if plot:
        d.sweep.plot(plot)
        out(f"\nwrote {plot}")
    return 0


def _e(v: float) -> str:
    mantissa, exp = f"{v:.0e}".split("e")
    return f"{mantissa}e{int(exp)}"


def _span(h) -> str:
    h = np.asarray(h, dtype=np.float64)
    lo, hi = float(np.min(h)), float(np.max(h))
    return f"{lo:.1e}" if f"{lo:.1e}" == f"{hi:.1e}" else f"{lo:.1e}..{hi:.1e}"


def _times(r) -> str:
    lo, hi = float(np.min(r)), float(np.max(r))
    return f"{lo:.0f}x" if round(lo) == round(hi) else f"{lo:.0f}x to {hi:.0f}x"


def _wrap(text: str) -> str:
    import textwrap

    return textwrap.fill(text, 88, initial_indent="   ", subsequent_indent="   ")


def _indent(text: str) -> str:
    return "\n".join("   " + line if line else line for line in text.splitlines())
