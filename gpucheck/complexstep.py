"""The complex-step derivative: ``f'(x) = Im f(x + ih) / h``, no subtraction, no cancellation.

For f that is complex-analytic (built from arithmetic, exp, log, sin,
tanh, ... applied to complex input), ``f(x + ih) = f(x) + ih f'(x) - h^2
f''(x) / 2 + ...``, so the imaginary part divided by h is the derivative up
to ``h^2`` and rounding relative to f' itself: with h = 1e-20 it is exact
to machine precision, one evaluation per entry.

It is wrong for code that is not analytic: ``abs``, comparisons and
``max`` on complex values, ``conj``, or anything that drops the imaginary
part (casting to real, calling real-only functions).  Such f is recognised
by comparing the complex step with central differences (and their
error bound) on a few entries, and refused with a message that says so.
"""

from __future__ import annotations

import time

import numpy as np

from . import judge, noise, plan
from .engine import Evaluator, _nodes, _result, _State
from .errors import GpuCheckError
from .result import GradCheckResult
from .stencils import get_scheme
from .validate import base_value

__all__ = ["DEFAULT_EPS", "check_complex", "complex_step"]

#: Default relative complex step: far below any scale of f, far above underflow.
DEFAULT_EPS = 1e-20
#: Entries compared against central differences to detect non-analytic code.
SAMPLES = 4


def _complex_dtype(dtype):
    return np.complex64 if np.dtype(dtype) == np.float32 else np.complex128


def check_complex(ev: Evaluator, a: np.ndarray, *, eps=None, k_worst: int = 5,
                  grad_roundoff: float = 0.0) -> GradCheckResult:
    """Check gradient ``a`` with the complex step; ``ev`` evaluates f at real x.

    Raises
    ------
    GpuCheckError
        When f returns complex values at real x, or when the complex step
        disagrees with central differences beyond their error bound on the
        sampled entries (f is not complex-analytic).
    """
    t0 = time.perf_counter()
    x = ev.x
    N = x.size
    u = plan.unit_roundoff(x.dtype)
    af = a.reshape(-1)
    n, h, f0 = _derivative(ev, eps)
    _require_analytic(ev, x, af, n, f0)

    finite_a = np.isfinite(af)
    a0 = np.where(finite_a, af, 0.0)
    scale = max(float(np.max(np.abs(a0))), float(np.max(np.abs(np.where(np.isfinite(n), n, 0.0)))))
    # the analytic side's own rounding: a computation in x's dtype or the
    # gradient's (float32 at most), and one rounding to the dtype it came in
    u_a = min(max(u, grad_roundoff), 2.0 ** -24)
    # the complex step carries only the rounding of computing f' itself,
    # relative to f' and to the size of what is summed into it
    tol = judge.KAPPA * u * (16.0 * np.abs(np.where(np.isfinite(n), n, 0.0))
                             + 4.0 * np.sqrt(N) * scale) + judge.analytic_floor(a0, u_a, scale) \
        + 2.0 * grad_roundoff * np.abs(a0)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(n) & (np.abs(n - af) <= tol)
    status = np.where(ok, judge.PASS, judge.FAIL).astype(np.uint8)
    reason = np.where(ok, judge.R_ROUNDING, judge.R_MISMATCH).astype(np.uint8)
    status[~np.isfinite(n)] = judge.INCONCLUSIVE
    reason[~np.isfinite(n)] = judge.R_NONFINITE
    reason[~finite_a] = judge.R_ANALYTIC
    status[~finite_a] = judge.FAIL
    s = _State(n, tol, status, reason, h, np.zeros(N, bool), np.zeros(N), np.zeros(N, bool),
               h.copy(), h.copy())
    info = dict(sigma=0.0, floor=noise.Floor(u), f0=f0, spread=0.0,
                target=judge.resolution(u), scale=scale, nondeterministic=False, erratic=0,
                h_tried=(float(np.min(h)), float(np.max(h))))
    return _result(ev, x, af, s, get_scheme("central"), k_worst, time.perf_counter() - t0, info,
                   scheme_name="complex")


def _derivative(ev: Evaluator, eps):
    """``Im f(x + ih) / h`` for every entry (flat), the steps, and f(x)."""
    x = ev.x
    xf = x.reshape(-1).astype(np.float64)
    h = plan.nominal_steps(x, DEFAULT_EPS if eps is None else eps)
    xc = x.astype(_complex_dtype(x.dtype))
    evc = ev.at(xc, progress=True)
    vals = (xf + 1j * h).astype(xc.dtype)
    h_applied = vals.imag.astype(np.float64)
    if np.any(h_applied == 0) or not np.all(np.isfinite(h_applied)):
        raise GpuCheckError(f"`eps` gives a complex step that is zero or not finite in {xc.dtype}")
    f0c, fv = evc(evc.base_part(), (np.arange(xf.size, dtype=np.int64), vals))
    ev.nfev += evc.nfev
    ev.compile_seconds += evc.compile_seconds
    ev.run_seconds += evc.run_seconds
    f0 = complex(f0c[0])
    if f0.imag != 0:
        raise GpuCheckError("`f` returns a complex value at real x; the complex step needs f "
                            "real on real input")
    base_value(f0.real)
    return np.asarray(fv).imag / h_applied, h, f0.real


def complex_step(ev: Evaluator, eps=None) -> np.ndarray:
    """The complex-step gradient (flat, float64), without the analyticity check.

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck.functions import as_function
    >>> ev = Evaluator(as_function(lambda v: np.sum(v ** 3)), np.array([1.0, 2.0]), "cpu")
    >>> complex_step(ev).tolist()
    [3.0, 12.0]
    """
    return _derivative(ev, eps)[0]


def _require_analytic(ev, x, af, n, f0):
    """Compare the complex step with central differences on a few entries; refuse if they differ."""
    N = n.size
    rng = np.random.default_rng(0)
    order = np.argsort(-np.abs(np.where(np.isfinite(af), af, 0.0)), kind="stable")
    picks = np.unique(np.concatenate([order[: SAMPLES // 2],
                                      rng.permutation(N)[: SAMPLES - SAMPLES // 2]]))
    sch = get_scheme("central")
    h_def = plan.nominal_steps(x, plan.default_eps(x.dtype, sch))[picks]
    r = _nodes(ev, x, sch, picks, h_def, None, np.zeros(0, np.int64), np.zeros(0), f0)
    # the breakage looked for is gross (abs() gives 0 for +-1, conj() 0 for
    # 2x): a generous rounding level in place of measured noise will do
    u = plan.unit_roundoff(x.dtype)
    sigma = 64.0 * u * np.maximum(r["fmag"], abs(f0))
    tol, _, _ = judge.bound(r["d1"], r["d2"], r["gain1"], r["gain2"], sch.order, sigma,
                            judge.analytic_floor(r["d1"], u) + 1e-3 * np.abs(r["d1"]))
    with np.errstate(invalid="ignore"):
        bad = np.isfinite(r["d1"]) & ~(np.abs(n[picks] - r["d1"]) <= 2.0 * tol)
    if np.any(bad):
        j = int(picks[np.argmax(bad)])
        k = int(np.argmax(bad))
        where = tuple(int(i) for i in np.unravel_index(j, x.shape))
        raise GpuCheckError(
            f"`f` is not complex-analytic, so scheme='complex' does not apply: at x{where} the "
            f"complex step gives {n[j]:.6g} but central differences give {r['d1'][k]:.6g} "
            f"(+- {tol[k]:.2g}). abs(), comparisons or max() on complex values, conj(), or code "
            f"that drops the imaginary part break it; use scheme='central'")
