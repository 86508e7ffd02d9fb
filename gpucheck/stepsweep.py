"""The epsilon sweep: the check across step sizes, and what the curve means.

Every step's stencil, the base point and the noise probes go to the backend
in one call.  The observed discrepancy is set beside the error model's two
parts, both in the metric's units:

* rounding, ``R(eps) ≈ 0.71 sigma ||sum|w| || / (||n|| + ||a||)``, falling
  like 1/eps (sigma is f's measured noise);
* truncation, ``T(eps) = ||c|| eps**p / (||n|| + ||a||)``, with ``||c||`` read
  off the change of the numerical gradient between neighbouring steps where
  that change stands clear of the noise (it is zero when no change does:
  f is at most quadratic along each coordinate, as MSE is).

The regime follows from where the observed curve has its minimum and which
part of the model explains it; a floor far above the model is a bug.
"""

from __future__ import annotations

import math
import time

import numpy as np

from . import noise, plan
from .diagnose import diagnose
from .engine import Evaluator, discrepancy
from .result import SweepResult
from .stencils import Scheme
from .validate import base_value

__all__ = ["default_steps", "run_sweep", "classify"]

#: Observed discrepancy this many times the model's prediction is a bug.
BUG_FACTOR = 10.0
#: A change between neighbouring steps counts as truncation when it exceeds
#: this many times its rounding noise.
SIGNAL = 5.0


def default_steps(dtype) -> np.ndarray:
    """Decades from about sqrt(u) up to 1."""
    lo = math.floor(math.log10(math.sqrt(plan.unit_roundoff(dtype))))
    return 10.0 ** np.arange(lo, 1)


def run_sweep(ev: Evaluator, a: np.ndarray, *, scheme: Scheme, steps=None) -> SweepResult:
    """Evaluate every step in one call and classify the curve."""
    t0 = time.perf_counter()
    x = ev.x
    steps = default_steps(x.dtype) if steps is None else np.asarray(steps, dtype=np.float64)
    stencils = [plan.stencil(x, scheme.multipliers, plan.nominal_steps(x, e)) for e in steps]
    h_default = plan.nominal_steps(x, plan.default_eps(x.dtype, scheme))
    probe = noise.probe_points(x, h_default)
    parts = [ev.base_part(), (probe.idx, probe.vals)] + [(s.idx, s.vals) for s in stencils]
    values = ev(*parts)
    f0 = base_value(float(values[0][0]))
    sigma = noise.level(probe, f0, values[1], *values[2:])
    af = a.reshape(-1)
    grads = [s.derivative(v) for s, v in zip(stencils, values[2:])]
    disc = np.array([discrepancy(np.nan_to_num(g), af) for g in grads])
    max_abs = np.array([float(np.max(np.abs(np.nan_to_num(g) - af))) for g in grads])
    denom = np.array([float(np.linalg.norm(np.nan_to_num(g)) + np.linalg.norm(af)) or 1.0 for g in grads])
    round_abs = np.array([0.71 * sigma * float(np.linalg.norm(s.rounding_gain)) for s in stencils])
    c_norm = _truncation_coefficient(grads, steps, round_abs, scheme.order)
    trunc_abs = c_norm * steps ** scheme.order
    pred_r = round_abs / denom
    pred_t = trunc_abs / denom
    regime, best, text = classify(steps, disc, pred_r, pred_t, scheme.order,
                                  sigma=sigma, f0=f0, dtype=x.dtype,
                                  exact=c_norm == 0.0, grads=grads, a=af, shape=x.shape)
    return SweepResult(eps=steps, discrepancy=disc, predicted_rounding=pred_r,
                       predicted_truncation=pred_t, best_eps=best, regime=regime,
                       explanation=text, noise=float(sigma), dtype=str(x.dtype),
                       backend=ev.backend, nfev=ev.nfev, seconds=time.perf_counter() - t0,
                       max_abs_error=max_abs)


def _truncation_coefficient(grads, steps, round_abs, order) -> float:
    """||c|| in ``n(eps) - n(0) ≈ c eps**p`` from the smallest clear change."""
    for k in range(len(steps) - 1):
        diff = float(np.linalg.norm(np.nan_to_num(grads[k + 1] - grads[k])))
        noise_k = math.hypot(round_abs[k], round_abs[k + 1])
        if diff > SIGNAL * noise_k and diff > 0:
            return diff / abs(steps[k + 1] ** order - steps[k] ** order)
    return 0.0


def _fmt(v: float) -> str:
    return f"{v:.1e}"


def classify(steps, disc, pred_r, pred_t, order, *, sigma, f0, dtype, exact, grads, a, shape):
    """Name the regime and explain it in a few sentences.

    Returns
    -------
    regime : str
    best_eps : float
    explanation : str
    """
    finite = np.isfinite(disc)
    ib = int(np.argmin(np.where(finite, disc, np.inf)))
    best = float(steps[ib])
    pred = pred_r + pred_t
    u = plan.unit_roundoff(dtype)
    ulps = sigma / (u * abs(f0)) if f0 != 0 else float("inf")
    noise_txt = (f"f's measured rounding noise is {sigma:.1e} (about {ulps:.1f} units of rounding "
                 f"of |f| = {abs(f0):.3g} in {np.dtype(dtype).name})")
    r_slope = _slope(steps, disc)
    n_steps = steps.size

    im = int(np.argmin(pred))  # where the model expects the least error
    if disc[im] > BUG_FACTOR * pred[im] and disc[ib] > BUG_FACTOR * pred[ib] and disc[im] > 0:
        n_best = grads[im].reshape(shape)
        hint = diagnose(n_best, a.reshape(shape), np.ones(shape, dtype=bool))
        text = (f"Bug: the discrepancy never drops below {disc[ib]:.2e}; no step lowers it, while "
                f"the error model predicts {pred[im]:.1e} at eps = {_fmt(float(steps[im]))}, "
                f"{disc[im] / pred[im]:.0f}x less than observed there. {noise_txt}. What is left is not numerical "
                f"error: the analytic gradient disagrees with f.")
        if hint:
            text += f" Likely cause: {hint}."
        return "bug", best, text

    rounding_at = pred_r >= pred_t
    if (ib == n_steps - 1 and np.all(rounding_at[:-1])) or np.all(rounding_at):
        regime = "roundoff"
        why = (" The numerical gradient does not change with the step beyond rounding: f is at "
               "most quadratic along each coordinate (as a mean squared error is), so central "
               "differences carry no truncation error at all and a larger step is simply better."
               if exact else " Truncation error stays below rounding over the whole range, so "
               "the largest step tried is best.")
        text = (f"Roundoff: the discrepancy falls about tenfold for each tenfold larger step "
                f"(log-log slope {r_slope:+.2f}; discrepancy x eps stays near "
                f"{np.median(disc * steps):.1e}). That is rounding error: {noise_txt}, and a "
                f"difference quotient divides it by the step.{why} Use eps = {_fmt(best)}; the "
                f"discrepancy left there, {disc[ib]:.2e}, matches the predicted rounding "
                f"{pred_r[ib]:.1e}: noise, not a bug.")
        return regime, best, text

    left_rise = disc[0] / disc[ib] if disc[ib] > 0 else float("inf")
    eps_star = _model_optimum(steps, pred_r, pred_t, order)
    if ib == 0 or left_rise < 10.0:
        text = (f"Truncation: at large steps the discrepancy grows like eps^{order} "
                f"(log-log slope {_slope(steps[ib:], disc[ib:]):+.2f} above eps = {_fmt(best)}): the "
                f"scheme's truncation error, from f's higher derivatives. Below that it sits at the "
                f"rounding floor ({noise_txt}). Use eps = {_fmt(best)} or smaller"
                + (f" (the model's optimum is about {_fmt(eps_star)})" if eps_star else "")
                + f"; the discrepancy there, {disc[ib]:.2e}, is within the predicted "
                f"{pred[ib]:.1e}: not a bug.")
        return "truncation", best, text
    text = (f"Balanced: the classic V. Below eps = {_fmt(best)} rounding dominates and the "
            f"discrepancy falls like 1/eps ({noise_txt}); above it truncation dominates and it "
            f"grows like eps^{order}. Use eps near {_fmt(best)}"
            + (f" (the model's optimum is about {_fmt(eps_star)})" if eps_star else "")
            + f"; the discrepancy there, {disc[ib]:.2e}, is what rounding plus truncation "
            f"predict ({pred[ib]:.1e}): not a bug.")
    return "balanced", best, text


def _slope(steps, disc) -> float:
    ok = (disc > 0) & np.isfinite(disc)
    if np.sum(ok) < 2:
        return float("nan")
    return float(np.polyfit(np.log10(steps[ok]), np.log10(disc[ok]), 1)[0])


def _model_optimum(steps, pred_r, pred_t, order):
    r1 = float(np.median(pred_r * steps))
    ok = pred_t > 0
    if not np.any(ok) or r1 <= 0:
        return None
    c1 = float(np.median(pred_t[ok] / steps[ok] ** order))
    return (r1 / (order * c1)) ** (1.0 / (order + 1))
