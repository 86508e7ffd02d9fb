"""The pipeline behind the public functions: plan, evaluate, judge, report.

All the points a stage needs (base point, stencil nodes, noise probes, and
for a sweep every step) go to the backend in one call; only the entries the
first pass could not settle are evaluated again, at twice the step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import judge, noise, plan, schedule
from .diagnose import diagnose
from .errors import GpuCheckError
from .functions import Function
from .result import GradCheckResult, WorstEntry
from .stencils import Scheme
from .validate import base_value, where

__all__ = ["Evaluator", "check", "numerical"]


@dataclass
class Evaluator:
    """Runs point sets through one backend, counting evaluations and time.

    The points go to a :class:`~gpucheck.schedule.Runner`, which splits them
    into timed chunks, on this process's backend or on the workers of
    ``executor``.
    """

    func: Function
    x: np.ndarray
    backend: str
    progress: object = None
    executor: object = None
    nfev: int = 0
    compile_seconds: float = 0.0
    run_seconds: float = 0.0

    def __post_init__(self):
        self._runner = schedule.Runner(self.func, self.x, self.backend, self.executor)

    def __call__(self, *parts):
        """Evaluate several ``(idx, vals)`` sets as one stage; split the result."""
        idx = np.concatenate([np.asarray(i, dtype=np.int64).ravel() for i, _ in parts])
        vals = np.concatenate([np.asarray(v, dtype=self.x.dtype).ravel() for _, v in parts])
        try:
            ev = self._runner.run(idx, vals, self.progress)
        except GpuCheckError:
            raise
        except Exception as err:
            raise GpuCheckError(
                f"`f` raised {type(err).__name__}{where(err)} while being evaluated on backend "
                f"{self.backend!r}: {err}") from err
        values = ev.values
        self.nfev += idx.size
        self.compile_seconds += ev.compile_seconds
        self.run_seconds += ev.run_seconds
        self.backend = ev.backend
        out, start = [], 0
        for i, _ in parts:
            k = np.asarray(i).size
            out.append(values[start:start + k])
            start += k
        return out

    def estimate_seconds(self, points: int):
        """Seconds ``points`` more points should take at the pace measured so far (None before)."""
        return self._runner.estimate_seconds(points)

    def base_part(self):
        """The base point, expressed as a perturbation that changes nothing."""
        return np.zeros(1, dtype=np.int64), self.x.reshape(-1)[:1].copy()


def numerical(ev: Evaluator, scheme: Scheme, eps) -> tuple:
    """Numerical gradient on the full stencil: ``(gradient, stencil, f0)``."""
    st = plan.points(ev.x, scheme=scheme, eps=eps)
    f0, fv = ev(ev.base_part(), (st.idx, st.vals))
    return st.derivative(fv), st, float(f0[0])


def check(ev: Evaluator, a: np.ndarray, *, scheme: Scheme, eps, rtol=None, atol=None,
          k_worst: int = 5) -> GradCheckResult:
    """Run the full check of analytic gradient ``a`` (float64, x's shape)."""
    t0 = time.perf_counter()
    x = ev.x
    u = plan.unit_roundoff(x.dtype)
    st = plan.points(x, scheme=scheme, eps=eps)
    probe = noise.probe_points(x, st.h)
    f0v, fv, pv = ev(ev.base_part(), (st.idx, st.vals), (probe.idx, probe.vals))
    f0 = base_value(float(f0v[0]))
    sigma = noise.level(probe, f0, pv, fv)
    af = a.reshape(-1)
    n = st.derivative(fv)
    K = len(scheme.multipliers)
    node_vals = fv.reshape(K, -1)
    user_tol = rtol is not None or atol is not None
    truncation = np.zeros_like(n)
    kink = np.zeros(n.shape, dtype=bool)
    refined = np.zeros(n.shape, dtype=bool)
    h_used = st.h.copy()

    if user_tol:
        tol = (atol or 0.0) + (rtol or 0.0) * np.abs(af)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(n) & (np.abs(n - af) <= tol)
    else:
        tol, ok = judge.first_pass(af, n, st.rounding_gain, sigma, u)
    status = np.where(ok, judge.PASS, judge.FAIL).astype(np.uint8)
    reason = np.where(ok, judge.R_ROUNDING, judge.R_MISMATCH).astype(np.uint8)
    if user_tol:
        nonfinite = ~np.isfinite(n)
        status[nonfinite] = judge.INCONCLUSIVE
        reason[nonfinite] = judge.R_NONFINITE
    else:
        flagged = np.flatnonzero(~ok & np.isfinite(af))
        if flagged.size:
            refined[flagged] = True
            known = {m: (node_vals[k, flagged], st.offsets[k, flagged])
                     for k, m in enumerate(scheme.multipliers)}
            a_scale = float(np.max(np.abs(af)))
            h = st.h[flagged]
            d1, s_, r_, t_, tr_, k_, gain1 = _refine(ev, scheme, flagged, h, f0, sigma, u,
                                                     af[flagged], a_scale, known)
            status[flagged], reason[flagged], tol[flagged] = s_, r_, t_
            truncation[flagged], kink[flagged] = tr_, k_
            # where truncation, not rounding, sets the tolerance the step was
            # too large for f (a shift-invariant f at large |x|, say): judge
            # again at the step the error model says balances the two
            rounding = judge.KAPPA * sigma * gain1
            heavy = ~k_ & np.isfinite(tr_) & (judge.TRUNCATION_SAFETY * tr_ > rounding)
            if np.any(heavy):
                sub = flagged[heavy]
                ratio = (sigma * gain1[heavy] / (scheme.order * tr_[heavy])) ** (1.0 / (scheme.order + 1))
                h3 = h[heavy] * np.clip(ratio, 1e-3, 0.5)
                try:
                    d3, s3, r3, t3, tr3, k3, _ = _refine(ev, scheme, sub, h3, f0, sigma, u,
                                                         af[sub], a_scale, None)
                except GpuCheckError:  # the smaller step is not representable
                    d3 = None
                if d3 is not None:
                    better = np.isfinite(t3) & (t3 < tol[sub])
                    j = sub[better]
                    n[j], status[j], reason[j], tol[j] = d3[better], s3[better], r3[better], t3[better]
                    truncation[j], kink[j], h_used[j] = tr3[better], k3[better], h3[better]
        nonfinite_a = ~np.isfinite(af)
        status[nonfinite_a] = judge.FAIL
        reason[nonfinite_a] = judge.R_MISMATCH
        status, reason = judge.mark_uninformative(status, reason, tol, af, n)

    return _result(ev, x, af, n, h_used, tol, status, reason, kink, refined, sigma,
                   scheme, k_worst, time.perf_counter() - t0)


def _refine(ev, scheme, elements, h, f0, sigma, u, a, a_scale, known):
    """Judge ``elements`` again from the stencil at h and 2h and the kink nodes.

    ``known`` maps multipliers already evaluated at step h to their
    ``(values, offsets)``; the rest are evaluated now, in one call.

    Returns
    -------
    d1, status, reason, tol, truncation, kink, gain1
    """
    known = dict(known or {})
    mult2 = [2 * m for m in scheme.multipliers]
    need = sorted((set(scheme.multipliers) | set(mult2) | {-2, -1, 1, 2}) - set(known) - {0})
    extra = plan.stencil(ev.x, need, h, elements)
    (values,) = ev((extra.idx, extra.vals))
    values = values.reshape(len(need), -1)
    for k, m in enumerate(need):
        known[m] = (values[k], extra.offsets[k])
    known[0] = (np.full(elements.size, f0), np.zeros(elements.size))
    f_at = {m: v for m, (v, _) in known.items()}
    off_at = {m: o for m, (_, o) in known.items()}
    w1 = plan.derivative_weights(np.stack([off_at[m] for m in scheme.multipliers]))
    w2 = plan.derivative_weights(np.stack([off_at[m] for m in mult2]))
    d1 = (w1 * np.stack([f_at[m] for m in scheme.multipliers])).sum(axis=0)
    d2 = (w2 * np.stack([f_at[m] for m in mult2])).sum(axis=0)
    gain1 = np.abs(w1).sum(axis=0)
    gain2 = np.abs(w2).sum(axis=0)
    status, reason, tol, trunc, kink = judge.refine(a, d1, d2, gain1, gain2, scheme.order, sigma,
                                                    u, a_scale, f_at, off_at)
    return d1, status, reason, tol, trunc, kink, gain1


def discrepancy(n: np.ndarray, a: np.ndarray) -> float:
    """``||n - a|| / (||n|| + ||a||)``, 0 when both are zero."""
    n = np.asarray(n, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(a))):
        return float("nan")
    scale = max(float(np.max(np.abs(n))), float(np.max(np.abs(a))))
    if scale == 0.0:
        return 0.0
    # scaled so that the squares cannot overflow
    num = float(np.linalg.norm((n - a) / scale))
    den = float(np.linalg.norm(n / scale) + np.linalg.norm(a / scale))
    if den == 0.0:
        return 0.0
    return num / den


def _result(ev, x, af, n, h_used, tol, status, reason, kink, refined, sigma, scheme, k_worst,
            seconds) -> GradCheckResult:
    with np.errstate(invalid="ignore", divide="ignore"):
        abs_err = np.abs(n - af)
        big = np.maximum(np.abs(n), np.abs(af))
        rel_err = np.where(big > 0, abs_err / np.where(big > 0, big, 1.0), 0.0)
        ratio = np.where(tol > 0, abs_err / np.where(tol > 0, tol, 1.0), np.where(abs_err > 0, np.inf, 0.0))
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    # failing entries first, then the largest error relative to tolerance
    key = ratio + np.where(status == judge.FAIL, 1e300, 0.0)
    k = min(k_worst, n.size)
    order = np.argsort(-key, kind="stable")[:k]
    names = np.asarray(judge.STATUS_NAMES)
    worst = tuple(
        WorstEntry(tuple(int(i) for i in np.unravel_index(int(j), x.shape)), float(n[j]), float(af[j]),
                   float(abs_err[j]), float(rel_err[j]), float(tol[j]), str(names[status[j]]),
                   judge.REASONS[reason[j]])
        for j in order)
    overall = judge.overall(status)
    shape = x.shape
    return GradCheckResult(
        status=overall, passed=overall == "pass",
        discrepancy=discrepancy(n, af),
        numeric=n.reshape(shape), analytic=af.reshape(shape),
        abs_error=abs_err.reshape(shape), rel_error=rel_err.reshape(shape),
        tolerance=tol.reshape(shape), element_status=names[status].reshape(shape),
        worst=worst, eps=h_used.reshape(shape), backend=ev.backend, nfev=ev.nfev,
        seconds=seconds, scheme=scheme.name, dtype=str(x.dtype), noise=float(sigma),
        n_failed=int(np.sum(status == judge.FAIL)),
        n_inconclusive=int(np.sum(status == judge.INCONCLUSIVE)),
        n_kinks=int(np.sum(kink)), n_refined=int(np.sum(refined)),
        diagnosis=diagnose(n.reshape(shape), af.reshape(shape), status.reshape(shape) == judge.FAIL)
        if overall == "fail" else "",
        compile_seconds=ev.compile_seconds,
    )
