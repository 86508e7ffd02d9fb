"""The pipeline behind the public functions: plan, evaluate, judge, report.

All the points the first pass needs (the base point three times, stencil
nodes, noise probes) go to the backend in one call.  Entries it cannot
settle are refined in rounds, one backend call each: the stencil at h/2, h
and 2h, and for entries that might fail a line of points that measures the
noise along their own coordinate; after each round the undecided entries
move to the step where the error model predicts the smallest bound (see
:mod:`judge`).  Entries that passed at a kink are finally tested together
along combined directions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import judge, noise, partial, plan, schedule
from .diagnose import diagnose
from .errors import GpuCheckError
from .functions import Function
from .result import GradCheckResult, WorstEntry
from .stencils import Scheme, get_scheme
from .validate import base_value, where

__all__ = ["Evaluator", "check", "numerical", "worst_order"]


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
        idx = _joined([i for i, _ in parts], np.int64)
        vals = _joined([v for _, v in parts], self.x.dtype)
        try:
            ev = self._runner.run(idx, vals, self.progress)
        except schedule.Interrupted as stop:
            # what was evaluated before Ctrl-C, cut like the parts (NaN and
            # False where not evaluated), for the caller to judge
            self.nfev += int(np.sum(stop.done))
            stop.parts = [(v, d) for v, d in zip(self._split(parts, stop.values),
                                                  self._split(parts, stop.done))]
            raise
        except GpuCheckError:
            raise
        except Exception as err:
            raise GpuCheckError(
                f"`f` raised {type(err).__name__}{where(err)} while being evaluated on backend "
                f"{self.backend!r}: {err}") from err
        # complex x (the complex-step scheme) keeps f's imaginary part; for
        # real x the backends have already refused a nonzero one
        values = np.asarray(ev.values, dtype=np.complex128 if np.iscomplexobj(self.x) else np.float64)
        if values.shape != idx.shape:
            raise GpuCheckError(f"backend {self.backend!r} returned {values.shape} values for {idx.size} points")
        self.nfev += idx.size
        self.compile_seconds += ev.compile_seconds
        self.run_seconds += ev.run_seconds
        self.backend = ev.backend
        return self._split(parts, values)

    @staticmethod
    def _split(parts, values):
        out, start = [], 0
        for i, _ in parts:
            k = np.size(i)
            out.append(values[start:start + k])
            start += k
        return out

    def estimate_seconds(self, points: int):
        """Seconds ``points`` more points should take at the pace measured so far (None before)."""
        return self._runner.estimate_seconds(points)

    def base_part(self):
        """The base point, expressed as a perturbation that changes nothing."""
        return np.zeros(1, dtype=np.int64), self.x.reshape(-1)[:1].copy()

    def at(self, x: np.ndarray, *, progress: bool = False) -> "Evaluator":
        """An evaluator of the same f, backend and executor at another base point.

        ``x`` has this evaluator's shape (its dtype may differ: a complex or
        float64 copy).  Evaluators that stand for a derived problem (a subset
        of the entries, directions) override this so that a moved point stays
        in their coordinates.  ``progress`` keeps the progress callback.
        """
        return Evaluator(self.func, x, self.backend, self.progress if progress else None,
                         self.executor)


def _joined(arrays, dtype) -> np.ndarray:
    """The arrays, flattened in C order, one after the other in one new array of ``dtype``.

    Each is converted as it is copied in, so a broadcast view (a stencil's
    indices, one row per node) costs no array of its own.
    """
    arrays = [np.asarray(a) for a in arrays]
    out = np.empty(sum(a.size for a in arrays), dtype=dtype)
    start = 0
    for a in arrays:
        out[start:start + a.size].reshape(a.shape)[...] = a
        start += a.size
    return out


def numerical(ev: Evaluator, scheme: Scheme, eps) -> tuple:
    """Numerical gradient on the full stencil: ``(gradient, stencil, f0)``."""
    st = plan.points(ev.x, scheme=scheme, eps=eps)
    K = len(scheme.multipliers)
    (f0, fv), done, stop = partial.evaluate(ev, ev.base_part(), partial.by_entry(st))
    fv = partial.restore(fv, K)
    if stop is not None:
        with np.errstate(invalid="ignore"):
            g = st.derivative(fv, float(f0[0]) if done[0][0] else np.nan)
        raise partial.GradientInterrupted(g, partial.complete_entries(done[1], K).size) from None
    f0 = float(f0[0])
    return st.derivative(fv, f0 if np.isfinite(f0) else None), st, f0


#: Rounds of refinement (each one backend call for the entries still open).
MAX_ROUNDS = 5
#: A step above this multiple of the default is judged against an estimate
#: at a smaller step before it may fail an entry: far beyond f's scale the
#: Richardson estimate sees nothing and an aliased quotient looks converged.
FAR_STEP = 4.0


@dataclass
class _State:
    """Per-entry working arrays of one check (flat, x's size)."""

    numeric: np.ndarray
    tol: np.ndarray
    status: np.ndarray
    reason: np.ndarray
    h_used: np.ndarray
    kink: np.ndarray
    jump: np.ndarray
    refined: np.ndarray
    h_lo: np.ndarray
    h_hi: np.ndarray


def check(ev: Evaluator, a: np.ndarray, *, scheme: Scheme, eps, rtol=None, atol=None,
          k_worst: int = 5, grad_roundoff: float = 0.0, groups=None) -> GradCheckResult:
    """Run the full check of analytic gradient ``a`` (float64, x's shape).

    ``grad_roundoff`` is the unit roundoff of the dtype the gradient was
    given in (0 when unknown): the analytic side's own rounding.
    ``groups`` gives each flat entry the index of the input it belongs to
    (several inputs): each input is judged at the resolution of its own
    max|g|, so that a gradient far smaller than another's is still held to
    a share of itself; None is one group.
    """
    t0 = time.perf_counter()
    x = ev.x
    N = x.size
    u = plan.unit_roundoff(x.dtype)
    # the analytic side's own rounding: a computation in x's dtype or the
    # gradient's (float32 at most), and one rounding to the dtype it came in
    u_a = min(max(u, grad_roundoff), 2.0 ** -24)
    af = a.reshape(-1)
    # a built-in layer by delta takes its first step for float64 rounding
    first = _first_eps(ev, x, scheme) if eps is None else None
    st = plan.points(x, scheme=scheme, eps=eps if first is None else first)
    # the default steps are the plan's own when the user gave none
    h_def = st.h if eps is None and first is None else \
        plan.nominal_steps(x, plan.default_eps(x.dtype, scheme))
    probe = noise.probe_points(x, st.h if h_def is st.h else np.minimum(st.h, h_def))
    base = ev.base_part()
    # the repeats of the base point sit at the start, after the probes and
    # at the end of the call, where a nondeterministic f shows it.  The
    # probes come first and the stencil entry by entry, so that a check
    # stopped by Ctrl-C can judge the entries whose nodes it has
    (f0a, pv, f0b, fv, f0c), done, stop = partial.evaluate(
        ev, base, (probe.idx, probe.vals), base, partial.by_entry(st), base)
    if stop is not None and not partial.judgeable(done, (0, 1, 2)):
        raise partial.CheckInterrupted(None, [], N, "Interrupted (Ctrl-C) before the noise of f "
                                       "was measured: no entry checked.", ev.nfev) from None
    fv = partial.restore(fv, len(scheme.multipliers))
    f0 = base_value(float(f0a[0]))
    repeats = np.array([f0a[0], f0b[0], f0c[0]])[:3 if done[4][0] else 2]
    spread = float(np.max(repeats) - np.min(repeats)) if np.all(np.isfinite(repeats)) else float("inf")
    values = np.concatenate([fv, pv, repeats])
    K = len(scheme.multipliers)
    node_vals = fv.reshape(K, N)
    pl = pv.reshape(probe.vals.shape)
    # (a node column of equal finite values is one whose ptp is 0)
    flat = bool(np.any(_same_finite(node_vals)) or np.any(np.diff(pl, axis=1) == 0))
    fl = noise.Floor(noise.output_roundoff(values, u), noise.quantum(values, flat),
                     spread if np.isfinite(spread) else 0.0)
    sigma_g = noise.estimate(probe, f0, pv)
    sigma_g = max(sigma_g if np.isfinite(sigma_g) else 0.0, fl.at(f0).item())
    n = st.derivative(fv, f0)
    with np.errstate(invalid="ignore"):
        # max(|f0|, nanmax |f| over the nodes), one row at a time
        fmag = np.abs(node_vals[0])
        for row in node_vals[1:]:
            np.fmax(fmag, np.abs(row), out=fmag)
        np.maximum(fmag, np.abs(f0), out=fmag)
    sigma1 = fl.at(fmag)
    np.maximum(sigma1, sigma_g, out=sigma1)
    gain = st.centered_gain()
    info = dict(sigma=sigma_g, floor=fl, f0=f0, spread=spread, target=0.0, scale=0.0,
                nondeterministic=spread > 0, erratic=0, h_tried=(float(np.min(st.h)), float(np.max(st.h))))

    if rtol is not None or atol is not None:
        tol = (atol or 0.0) + (rtol or 0.0) * np.abs(af)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(n) & (np.abs(n - af) <= tol)
        status = np.where(ok, judge.PASS, judge.FAIL).astype(np.uint8)
        reason = np.where(ok, judge.R_ROUNDING, judge.R_MISMATCH).astype(np.uint8)
        nonfinite = ~np.isfinite(n)
        status[nonfinite] = judge.INCONCLUSIVE
        reason[nonfinite] = judge.R_NONFINITE
        s = _State(n, tol, status, reason, st.h.copy(), np.zeros(N, bool), np.zeros(N),
                   np.zeros(N, bool), st.h.copy(), st.h.copy())
        if stop is not None:
            raise _stopped(ev, x, af, s, scheme, k_worst, t0, info, "the first pass",
                           partial.complete_entries(done[3], K)) from None
        return _result(ev, x, af, s, scheme, k_worst, time.perf_counter() - t0, info)

    finite_a = np.isfinite(af)
    a0 = af if finite_a.all() else np.where(finite_a, af, 0.0)
    a_scale = max(0.0, float(np.max(a0)), -float(np.min(a0)))  # max |a0| (+0.0), no copy
    # max|g| per input, as far as the analytic values (and later the
    # estimates that could fail an entry) show it
    groups, a_scales = _group_scales(groups, a0, a_scale)
    scales = a_scales.copy()
    scale = float(np.max(scales))
    # the analytic side rounds relative to the terms of its own input's gradient
    afloor = judge.analytic_floor(a0, u_a, a_scale if groups is None else a_scales[groups])
    if grad_roundoff:  # (adding 0 to a nonnegative floor changes nothing)
        extra = np.abs(a0)
        np.multiply(2.0 * grad_roundoff, extra, out=extra)
        afloor += extra
    # KAPPA * sigma1 * gain + afloor, in place
    tol = np.multiply(judge.KAPPA, sigma1, out=sigma1)
    np.multiply(tol, gain, out=tol)
    np.add(tol, afloor, out=tol)
    with np.errstate(invalid="ignore"):
        err = np.subtract(n, af)
        np.abs(err, out=err)
    target = judge.resolution(u)
    # an all-zero analytic gradient against an f that never moves: zero to
    # within a bound at the level of f's own precision is a real answer
    x_max = max(float(np.max(x)), -float(np.min(x)))  # max |x|, exactly, in any float dtype
    still_thr = target * np.sqrt(u) * abs(f0) / max(1.0, x_max)
    every_a = bool(finite_a.all())
    with np.errstate(invalid="ignore"):
        # isfinite(n) & (err <= tol) & (tol <= target * max|g| of its input) & finite_a,
        # with one scratch array
        ok1 = np.isfinite(n)
        scratch = np.less_equal(err, tol)
        ok1 &= scratch
        ok1 &= np.less_equal(tol, target * _per_entry(scales, groups), out=scratch)
        if not every_a:
            ok1 &= finite_a
    # f never changed at all: the steps are below f's resolution (a
    # staircase whose quantum is not known yet), and a zero difference says
    # nothing either way until a larger step moves f
    suspect = _all_at(values, f0)
    was_flat = np.all(node_vals == f0, axis=0) if suspect else np.zeros(N, bool)
    if suspect:
        ok1 &= ~was_flat
    open1 = np.invert(ok1, out=scratch)
    if not every_a:
        open1 &= finite_a
    todo = np.flatnonzero(open1)
    # the arrays refinement changes are copies; a check that stage one
    # settled shares them with the stencil and the estimates
    own = np.copy if todo.size else np.asarray
    s = _State(numeric=own(n), tol=own(tol),
               status=np.full(N, judge.INCONCLUSIVE, np.uint8),
               reason=np.full(N, judge.R_NOISE, np.uint8), h_used=own(st.h),
               kink=np.zeros(N, bool), jump=np.zeros(N), refined=np.zeros(N, bool),
               h_lo=own(st.h), h_hi=own(st.h))
    s.status[ok1] = judge.PASS
    s.reason[ok1] = judge.R_ROUNDING
    if not every_a:
        s.status[~finite_a] = judge.FAIL
        s.reason[~finite_a] = judge.R_ANALYTIC
    if stop is not None:
        info.update(target=target, scale=scale)
        raise _stopped(ev, x, af, s, scheme, k_worst, t0, info, "the first pass",
                       partial.complete_entries(done[3], K)) from None
    erratic_any = np.zeros(N, bool)
    if todo.size:  # the state of refinement (none when stage one settled every entry)
        # an estimate at a step no larger than FAR_STEP defaults, for judging
        # estimates made at larger steps
        near = (st.h <= FAR_STEP * h_def) & ~was_flat
        ref_d = np.where(near, n, np.nan)
        ref_tol = np.where(near, tol, np.nan)
        # the reference's rounding gain: a floor of f's noise found later (the
        # quantum of a staircase f, seen only once larger steps move it) widens
        # the reference's bound too
        ref_gain = np.where(near, gain, np.nan)
        best_tol = np.where(np.isfinite(n), tol, np.inf)
        line_sigma = np.full(N, np.nan)          # noise measured along the coordinate
        line_done = np.zeros(N, bool)
        flat_line = np.zeros(N, bool)            # a flat line of a staircase whose quantum is unknown
        with np.errstate(invalid="ignore"):
            want_line = np.zeros(N, bool)
            want_line[todo] = ~(err[todo] <= tol[todo])
        h_cur = st.h.copy()
        known = {m: (node_vals[k], st.offsets[k]) for k, m in enumerate(scheme.multipliers)}
        flat_x = np.abs(x.reshape(-1).astype(np.float64))
        ulp = float(plan.float_info(x.dtype).eps) * np.maximum(flat_x, float(plan.float_info(x.dtype).tiny))
        h_min = 64.0 * ulp
        h_max = 4.0 * np.maximum(1.0, flat_x)
        high = np.zeros(N, bool)       # judged with the fourth-order stencil from now on
    seen = [values]
    for _ in range(MAX_ROUNDS):
        if todo.size == 0:
            break
        s.refined[todo] = True
        lines = todo[want_line[todo] & ~line_done[todo]]
        try:
            r = _nodes_mixed(ev, x, scheme, todo, h_cur[todo], known, high[todo], lines,
                             noise.REACH * np.where(was_flat[lines], h_cur[lines],
                                                    np.minimum(h_cur[lines], h_def[lines])), f0)
        except KeyboardInterrupt:
            info.update(target=target, scale=scale)
            raise _stopped(ev, x, af, s, scheme, k_worst, t0, info, "refinement") from None
        known = None
        order = np.where(high[todo], HIGH.order, scheme.order)
        if lines.size:
            sig_l, usable = noise.line_sigmas(f0, r["line_values"], r["line_offsets"])
            # f that does not move along the line but does at the stencil's
            # nodes is a staircase coarser than the line: unless its quantum
            # is known (the floor), its noise is not measured; one that moves
            # nowhere has none
            moved = np.any(np.stack(r["f"])[:, np.searchsorted(todo, lines)] != f0, axis=0)
            unknown_step = (sig_l == 0) & moved & (fl.step == 0)
            usable &= ~unknown_step
            line_sigma[lines] = np.where(usable, sig_l, np.nan)
            line_done[lines] = True
            flat_line[lines[unknown_step]] = True
        seen.append(np.concatenate([np.ravel(v) for v in r["f"]]))
        if suspect or fl.u_out < u:
            # f that never moved, or moved too little to show its precision
            allv = np.concatenate(seen)
            fl = noise.Floor(max(fl.u_out, noise.output_roundoff(allv, fl.u_out)),
                             noise.quantum(allv, True) if suspect else fl.step, fl.nondeterministic)
            suspect = _all_at(allv, f0)
        if fl.step > 0 and flat_line.any():
            # the quantum found since: a line flat within one step of the
            # staircase was measured after all, and its noise is the floor
            line_sigma[flat_line] = 0.0
            flat_line[:] = False
        flat_e = suspect & np.all(np.stack(r["f"]) == f0, axis=0) & (h_cur[todo] < h_max[todo])
        was_flat[todo] |= flat_e
        fm = np.maximum(r["fmag"], np.abs(f0))
        own = line_sigma[todo]
        sigma = np.where(np.isfinite(own), np.maximum(own, 0.25 * sigma_g), sigma_g)
        sigma = np.maximum(sigma, fl.at(fm))
        # f that did not move at any node of this coordinate (a dead relu, or
        # float32 tanh saturating a unit below the step) resolves no slope
        # finer than a unit of its terms' rounding in x's dtype
        unmoved = np.all(np.stack(r["f"]) == f0, axis=0)
        sigma = np.where(unmoved, np.maximum(sigma, 0.5 * u * fm), sigma)
        u_eff = np.maximum(max(u, fl.u_out), fl.step / np.maximum(fm, 1e-300))
        erratic = sigma > np.sqrt(u_eff) * fm
        erratic_any[todo] |= erratic
        afl = afloor[todo]
        a_e = af[todo]
        d1, d2 = r["d1"], r["d2"]
        tol_s, rnd, trunc = judge.bound(d1, d2, r["gain1"], r["gain2"], order, sigma, afl)
        knk, lo, hi, tk, jmp = judge.kinks(f0, *r["f"], *r["o"], sigma, afl)
        with np.errstate(invalid="ignore"):
            # below f's resolution at the near steps, a far one is all there is
            far = (h_cur[todo] > FAR_STEP * h_def[todo]) & ~was_flat[todo]
            far_h = h_cur[todo] > FAR_STEP * h_def[todo]
            # far beyond the default step, f's scale may be near: a softmax
            # saturating on both sides gives D(h/2), D(h), D(2h) that agree
            # with each other and not with f'.  Its one-sided slopes show it:
            # their difference grows like f'' h while the step is small for f
            # and stays put once f is linear on both sides
            saturated = far_h & judge.non_asymptotic(f0, r["f_half"], r["o_half"], r["f"], r["o"],
                                                     sigma)
            err_s = np.abs(d1 - a_e)
            finite = np.isfinite(d1) & np.isfinite(tol_s)
            # an entry fails only against noise measured along its own
            # coordinate; a line that could not be measured is no licence
            measured = np.isfinite(line_sigma[todo])
            trunc_dom = (judge.TRUNCATION_SAFETY * trunc > judge.KAPPA * rnd) | saturated
            rd = ref_d[todo]
            rt = np.maximum(ref_tol[todo], judge.KAPPA * fl.at(fm) * ref_gain[todo])
            consistent = ~far | (np.abs(d1 - rd) <= tol_s + rt)
            # the scale of g grows with estimates that could also fail an entry
            solid = finite & measured & ~erratic & ~trunc_dom & consistent & ~flat_e
            g_todo = None if groups is None else groups[todo]
            _grow_scales(scales, None if groups is None else g_todo[solid], d1[solid], tol_s[solid])
            thr = target * _per_entry(scales, g_todo)
            smooth_pass = finite & (err_s <= tol_s) & (tol_s <= thr) & ~flat_e & ~saturated
            # f that does not move even at the largest step: its derivative
            # is zero within the bound there, whatever the scale of g
            still = np.all(np.stack(r["f"]) == f0, axis=0) & (h_cur[todo] >= h_max[todo])
            smooth_pass |= still & finite & (err_s <= tol_s) & \
                (tol_s <= np.where(_per_entry(a_scales, g_todo) > 0, thr, still_thr))
            # far beyond the default step, one-sided slopes that differ by a
            # constant are f's own scale (tanh saturating), not a kink
            is_kink = knk & ~smooth_pass & ~erratic & ~flat_e & ~far_h
            n_k = np.clip(a_e, lo, hi)
            err_k = np.abs(a_e - n_k)
            # the rounding of one-sided slopes is that of f's terms, which the
            # noise of |f| can understate and a line across the kink cannot
            # measure: errors below half the resolution are no kink's fail
            tk = np.maximum(tk, 0.5 * thr)
            kink_pass = is_kink & (err_k <= tk) & (tk <= thr) & measured
            kink_fail = is_kink & (err_k > tk) & measured
            candidate = finite & ~is_kink & (err_s > tol_s)
            # truncation read between h/2 and h, less what rounding explains:
            # a fail clears both estimates (Richardson from h and 2h alone is
            # blind where 2h is beyond f's scale)
            r_half = 2.0 ** order - 1.0
            # (far beyond the default step, where f's scale may be near, the
            # whole difference counts: rounding there cannot vouch for it)
            t_small = np.abs(d1 - r["d_half"]) - np.where(
                far_h, 0.0, 2.0 * sigma * (r["gain1"] + r["gain_half"]))
            t_small = np.maximum(t_small, 0.0) * 2.0 ** order / r_half
            t_small = np.where(np.isfinite(t_small), t_small, np.inf)
            fail_bound = tol_s + judge.TRUNCATION_SAFETY * np.maximum(t_small - trunc, 0.0)
            trunc_dom |= judge.TRUNCATION_SAFETY * t_small > judge.KAPPA * rnd
            # where both differences stand clear of rounding, their ratio is
            # 2**p if and only if the step is small for f (asymptotic); far
            # off it, neither Richardson estimate is worth anything
            lo_d = d1 - r["d_half"]
            hi_d = d2 - d1
            clear = (np.abs(lo_d) > 3.0 * sigma * (r["gain1"] + r["gain_half"])) & \
                (np.abs(hi_d) > 3.0 * sigma * (r["gain1"] + r["gain2"]))
            ratio = hi_d / np.where(lo_d != 0, lo_d, 1.0)
            off = clear & ~((ratio > 2.0 ** order / 3.0) & (ratio < 2.0 ** order * 3.0))
            trunc_dom |= off
            # far beyond the default step, where f's scale may be near and
            # no error model is safe, a fail needs D(h/2), D(h), D(2h) to
            # agree within rounding: nothing but noise and the mismatch left
            quiet_lo = np.abs(lo_d) <= 3.0 * sigma * (r["gain1"] + r["gain_half"])
            quiet_hi = np.abs(hi_d) <= 3.0 * sigma * (r["gain1"] + r["gain2"])
            trusted_far = ~far_h | (quiet_lo & quiet_hi)
            smooth_fail = candidate & (err_s > fail_bound) & ~trunc_dom & measured & ~erratic \
                & consistent & ~flat_e & trusted_far
            # at a step near the default, D(h/2), D(h) and D(2h) that agree with
            # each other far better than with a leave no doubt, whatever the
            # Richardson ratio says about the little they differ by
            spread = np.maximum(np.abs(lo_d), np.abs(hi_d))
            blatant = candidate & ~far_h & measured & ~erratic & ~flat_e \
                & (err_s > 8.0 * (spread + tol_s))
            smooth_fail |= blatant
        _set(s, todo, smooth_pass, judge.PASS,
             np.where(judge.TRUNCATION_SAFETY * trunc > judge.KAPPA * rnd, judge.R_TRUNCATION,
                      judge.R_ROUNDING), d1, tol_s, h_cur[todo])
        _set(s, todo, kink_pass, judge.PASS, judge.R_KINK, n_k, tk, h_cur[todo])
        _set(s, todo, kink_fail, judge.FAIL, judge.R_MISMATCH, n_k, tk, h_cur[todo])
        _set(s, todo, smooth_fail, judge.FAIL, judge.R_MISMATCH, d1, tol_s, h_cur[todo])
        s.kink[todo[kink_pass | kink_fail]] = True
        s.jump[todo] = np.where(kink_pass | kink_fail, jmp, 0.0)
        decided = smooth_pass | kink_pass | kink_fail | smooth_fail
        # keep the most precise estimate of the rest for the report
        cand_tol = np.where(is_kink, tk, tol_s)
        trusted = consistent & ~(candidate & trunc_dom)
        better = ~decided & trusted & np.isfinite(cand_tol) & (cand_tol < best_tol[todo])
        j = todo[better]
        s.numeric[j] = np.where(is_kink, n_k, d1)[better]
        s.tol[j] = cand_tol[better]
        s.h_used[j] = h_cur[todo][better]
        best_tol[j] = cand_tol[better]
        s.reason[todo[~decided & erratic]] = judge.R_ERRATIC
        s.reason[todo[~decided & ~finite]] = judge.R_NONFINITE
        s.reason[todo[~decided & finite & candidate & trunc_dom & measured]] = judge.R_TRUNC_ONLY
        # a smaller-step reference for entries judged far out
        upd = ~far & finite & ~np.isfinite(rd) & ~flat_e
        ref_d[todo[upd]] = d1[upd]
        ref_tol[todo[upd]] = tol_s[upd]
        ref_gain[todo[upd]] = r["gain1"][upd]

        # where to look next
        h = h_cur[todo]
        h_next, predicted = judge.next_step(h, d1, d2, r["gain1"], r["gain2"], order, sigma,
                                            afl, h_min[todo], h_max[todo], thr)
        # where truncation keeps the second-order bound above what can pass,
        # a fourth-order stencil goes on from about twice the balanced step
        switch = ~high[todo] & (order == 2) & ~decided & (predicted > thr) & \
            np.isfinite(predicted) & (judge.TRUNCATION_SAFETY * trunc > 0.1 * judge.KAPPA * rnd)
        h_next = np.where(switch, 2.0 * h_next, h_next)
        high[todo[switch]] = True
        move = np.zeros(todo.size, bool)
        same = np.zeros(todo.size, bool)
        with np.errstate(invalid="ignore"):
            # a mismatch that only the noise along its own coordinate can confirm
            same |= ~decided & candidate & ~measured & ~trunc_dom & consistent & ~flat_e \
                & ~line_done[todo]
            # a kink is told from rounding only by the noise along its own coordinate
            same |= ~decided & is_kink & ~measured & ~line_done[todo]
            # the smooth bound is dominated by truncation, or the step is far
            # beyond the default with nothing smaller to compare: go smaller
            down = ~decided & (candidate & (trunc_dom | ~trusted_far) | far & ~consistent
                               | far & ~np.isfinite(rd))
            h_down = np.where(far & ~np.isfinite(rd), np.minimum(h_def[todo], h / 2),
                              np.minimum(h_next, h / 2))
            h_next = np.where(down, h_down, h_next)
            move |= down
            # too vague to pass: go where the model predicts the smallest bound
            vague = ~decided & ~down & ~same & finite
            useful = (predicted < 0.7 * np.where(is_kink, tk, tol_s)) & \
                ((h_next > 1.4 * h) | (h_next < h / 1.4))
            move |= vague & useful | switch
            # below f's resolution: grow until f moves
            h_next = np.where(flat_e & ~decided, judge.MAX_GROWTH * h, h_next)
            move |= flat_e & ~decided
            # not finite: a smaller step may stay clear of the singularity
            nf = ~decided & ~finite
            h_next = np.where(nf, np.maximum(h / 16, h_min[todo]), h_next)
            move |= nf & (h / 16 >= h_min[todo])
        move &= ~erratic
        h_next = np.clip(h_next, h_min[todo], h_max[todo])
        move &= (h_next != h) | switch
        nxt = todo[move | same]
        h_cur[todo[move]] = h_next[move]
        s.h_lo[todo[move]] = np.minimum(s.h_lo[todo[move]], h_next[move])
        s.h_hi[todo[move]] = np.maximum(s.h_hi[todo[move]], h_next[move])
        want_line[todo[same]] = True
        todo = nxt

    if not every_a:
        s.status[~finite_a] = judge.FAIL
        s.reason[~finite_a] = judge.R_ANALYTIC
        s.numeric[~finite_a] = n[~finite_a]
    # entries no central step could settle: a kink or a change of regime
    # near x on one side, with rounding too large at the steps that avoid
    # it; a one-sided stencil on the far side can take a larger step
    open_ = s.status == judge.INCONCLUSIVE
    rest = np.flatnonzero(open_ & finite_a & ~s.kink & ~erratic_any
                          & (s.reason != judge.R_NONFINITE)) if open_.any() else np.zeros(0, np.int64)
    info.update(target=target, scale=float(np.max(scales)), scales=scales)
    try:
        if rest.size:
            thr_all = np.broadcast_to(target * _per_entry(scales, groups), (N,))
            rest = rest[np.isfinite(thr_all[rest]) & (thr_all[rest] > 0)]
        if rest.size:
            own = line_sigma[rest]
            sig = np.where(np.isfinite(own), np.maximum(own, 0.25 * sigma_g), sigma_g)
            _one_sided(ev, x, af, s, rest, f0, sig, fl, afloor[rest], thr_all[rest],
                       h_cur[rest], h_max[rest], np.isfinite(own))
        _joint_kinks(ev, x, af, s, f0, sigma_g, fl, afloor,
                     target * scales[0] if groups is None else target * scales[groups])
    except KeyboardInterrupt:
        raise _stopped(ev, x, af, s, scheme, k_worst, t0, info,
                       "the one-sided and joint tests") from None
    open_ = s.status == judge.INCONCLUSIVE
    open_groups = (np.unique(groups[open_]) if groups is not None
                   else np.zeros(int(open_.any()), np.int64))
    info.update(target=target, scales=scales,
                scale=float(np.max(scales[open_groups])) if open_groups.size else float(np.max(scales)),
                erratic=int(np.sum(erratic_any & (s.status == judge.INCONCLUSIVE))) if erratic_any.any() else 0,
                h_tried=(float(np.min(s.h_lo)), float(np.max(s.h_hi))))
    return _result(ev, x, af, s, scheme, k_worst, time.perf_counter() - t0, info)


#: Units in the last place of x the first step spans, at least, where f is
#: evaluated more precisely than x's dtype.
MIN_STEP_ULPS = 256


def _first_eps(ev, x, scheme):
    """The first relative step: the default of the precision f is evaluated in.

    A built-in layer evaluated by delta computes f in float64 from the
    values of x's dtype, so its rounding is float64's; the float32 default
    step, sized for float32 rounding, would leave every entry's truncation
    error far above that noise and send each one to refinement (about 16N
    evaluations instead of 2N for a float32 tanh or softmax layer).  Its
    first step balances float64 rounding instead, but spans at least
    ``MIN_STEP_ULPS`` units of x so that it stays well resolved in x's dtype.
    """
    if getattr(ev.func, "kind", None) != "layer" or x.dtype == np.float64:
        return None
    precise = plan.default_eps(np.dtype(np.float64), scheme)
    return max(precise, MIN_STEP_ULPS * float(plan.float_info(x.dtype).eps))


def _group_scales(groups, a0, a_scale):
    """``(groups, max|a| per group)``; ``groups`` None (one input: ``a_scale``) stays None."""
    if groups is None:
        return None, np.array([a_scale])
    groups = np.asarray(groups, np.int64).reshape(-1)
    if groups.shape != a0.shape:
        raise GpuCheckError(f"`groups` must give each of the {a0.size} entries its input, "
                            f"got {groups.size}")
    scales = np.zeros(int(groups.max()) + 1 if groups.size else 1)
    np.maximum.at(scales, groups, np.abs(a0))
    return groups, scales


def _per_entry(scales, groups):
    """Each entry's group value (one group: the scalar itself, broadcasting)."""
    return scales[0] if groups is None else scales[groups]


def _stopped(ev, x, af, s, scheme, k_worst, t0, info, stage, entries=None):
    """Ctrl-C at ``stage``: the verdict reached on ``entries`` (all: None), for the caller."""
    def build(e, sub):
        return _result(ev, x.reshape(-1)[e], af[e], sub, scheme, k_worst, time.perf_counter() - t0,
                       info)

    return partial.interrupted(s, entries, build, total=x.size, stage=stage, nfev=ev.nfev)


def _same_finite(rows: np.ndarray) -> np.ndarray:
    """Per column of ``rows`` (K, M): all K values equal and finite, one row at a time."""
    same = np.isfinite(rows[0])
    for row in rows[1:]:
        same &= row == rows[0]
    return same


def _all_at(values: np.ndarray, f0: float) -> bool:
    """Whether every finite value equals f0 (the first few usually say no)."""
    for part in (values[:4096], values):
        if np.any((part != f0) & np.isfinite(part)):
            return False
        if part.size == values.size:
            break
    return True


def _grow_scales(scales, groups, d, tol) -> None:
    """Raise each group's max|g| to what its estimates (less their bounds) show."""
    with np.errstate(invalid="ignore"):
        lower = np.abs(d) - tol
    keep = np.isfinite(lower)
    if groups is None:
        if keep.any():
            scales[0] = max(scales[0], float(np.max(lower[keep])))
        return
    np.maximum.at(scales, groups[keep], lower[keep])


def _set(s, elements, mask, status, reason, numeric, tol, h):
    j = elements[mask]
    s.status[j] = status
    s.reason[j] = np.broadcast_to(reason, mask.shape)[mask]
    s.numeric[j] = numeric[mask]
    s.tol[j] = tol[mask]
    s.h_used[j] = h[mask]


#: The stencil refinement turns to where truncation limits the second-order one.
HIGH = get_scheme("central4")


def _nodes_mixed(ev, x, scheme, elements, h, known, high, line_elements, line_reach, f0):
    """:func:`_nodes` for elements judged with ``scheme`` and, where ``high``, with :data:`HIGH`."""
    if not np.any(high) or scheme.order >= HIGH.order:
        return _nodes(ev, x, scheme, elements, h, known, line_elements, line_reach, f0)
    if np.all(high):
        return _nodes(ev, x, HIGH, elements, h, None, line_elements, line_reach, f0)
    lo = _nodes(ev, x, scheme, elements[~high], h[~high], known, line_elements, line_reach, f0)
    hi = _nodes(ev, x, HIGH, elements[high], h[high], None, np.zeros(0, np.int64), line_reach[:0],
                f0)
    out = {}
    for key in ("d1", "d2", "gain1", "gain2", "fmag", "d_half", "gain_half"):
        v = np.empty(elements.size)
        v[~high], v[high] = lo[key], hi[key]
        out[key] = v
    for key in ("f", "o", "f_half", "o_half"):
        parts = []
        for a_lo, a_hi in zip(lo[key], hi[key]):
            v = np.empty(elements.size)
            v[~high], v[high] = a_lo, a_hi
            parts.append(v)
        out[key] = tuple(parts)
    if "line_values" in lo:
        out["line_values"] = lo["line_values"]
        out["line_offsets"] = lo["line_offsets"]
    return out


def _nodes(ev, x, scheme, elements, h, known, line_elements, line_reach, f0):
    """f at the stencil of step h and 2h (and -2h..2h) for ``elements``, plus noise lines.

    One backend call.  ``known`` maps multipliers already evaluated at h
    (for every element, full length) to ``(values, offsets)``.  ``f0`` is f
    at x, which the formulas use where rounding left the nodes asymmetric.
    """
    mult1 = list(scheme.multipliers)
    mult2 = [2 * m for m in mult1]
    need_all = sorted(set(mult1) | set(mult2) | {-2, -1, 1, 2})
    have = {}
    if known is not None:
        for m, (v, o) in known.items():
            have[m] = (v[elements], o[elements])
    need = [m for m in need_all if m not in have]
    sten = plan.stencil(x, need, h, elements, strict=False)
    # the stencil at h/2 too: a second Richardson estimate, on the small
    # side, that a fail must also clear
    half = plan.stencil(x, mult1, h / 2, elements, strict=False)
    parts = [(sten.idx, sten.vals), (half.idx, half.vals)]
    if line_elements.size:
        lv = noise.line_points(x, line_elements, line_reach, half_width=noise.LINE_HALF_WIDTH,
                               seed=1)
        parts.append((np.repeat(line_elements, lv.shape[1]), lv.reshape(-1)))
    out = ev(*parts)
    with np.errstate(invalid="ignore", over="ignore"):
        d_half = half.derivative(out[1], f0)
    vals = out[0].reshape(len(need), -1)
    for k, m in enumerate(need):
        have[m] = (vals[k], sten.offsets[k])
    f_at = {m: v for m, (v, _) in have.items()}
    o_at = {m: o for m, (_, o) in have.items()}
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        w1, c1 = plan.centered_weights(np.stack([o_at[m] for m in mult1]))
        w2, c2 = plan.centered_weights(np.stack([o_at[m] for m in mult2]))
        d1 = (w1 * np.stack([f_at[m] for m in mult1])).sum(axis=0) + c1 * f0
        d2 = (w2 * np.stack([f_at[m] for m in mult2])).sum(axis=0) + c2 * f0
        # the rounding of D(h) is that of f at its own nodes
        fmag = np.nanmax(np.abs(np.stack([f_at[m] for m in mult1])), axis=0)
    res = {"d1": d1, "d2": d2, "gain1": np.abs(w1).sum(axis=0) + np.abs(c1),
           "gain2": np.abs(w2).sum(axis=0) + np.abs(c2),
           "f": tuple(f_at[m] for m in (-2, -1, 1, 2)), "o": tuple(o_at[m] for m in (-2, -1, 1, 2)),
           "fmag": fmag, "d_half": d_half, "gain_half": half.centered_gain(),
           "f_half": tuple(out[1].reshape(len(mult1), -1)[mult1.index(m)] for m in (-1, 1)),
           "o_half": tuple(half.offsets[mult1.index(m)] for m in (-1, 1))}
    if line_elements.size:
        res["line_values"] = out[2].reshape(line_elements.size, -1)
        base = x.reshape(-1)[line_elements].astype(np.float64)
        res["line_offsets"] = lv.astype(np.float64) - base[:, None]
    return res


def _one_sided(ev, x, af, s, elements, f0, sigma, fl, afl, threshold, h_from, h_max, measured):
    """Judge ``elements`` with second-order one-sided stencils on each side of x.

    Forward ``{0, h, 2h}`` and backward ``{0, -h, -2h}`` differences at a
    step large enough for rounding (their gain is 4/h), with the same
    Richardson estimates as the central stencil from h/2, h and 2h.  A side
    may pass an entry when its estimates obey the h**2 law; a fail needs both
    sides to agree on it, since the side facing a kink is not to be trusted.
    """
    kappa = judge.KAPPA
    h = np.clip(16.0 * kappa * sigma / threshold, h_from, h_max / 4.0)
    sides = (1.0, -1.0)
    mults = (0.5, 1.0, 2.0, 4.0)
    parts = []
    stencils = []
    for side in sides:
        nodes = []
        for m in mults:
            sm = plan.stencil(x, [1], side * m * h, elements, strict=False)
            nodes.append(sm)
            parts.append((sm.idx, sm.vals))
        stencils.append(nodes)
    out = ev(*parts)
    verdicts = []
    k = 0
    for side, nodes in zip(sides, stencils):
        f_at = {}
        o_at = {}
        for m, sm in zip(mults, nodes):
            f_at[m] = out[k]
            o_at[m] = sm.offsets[0]
            k += 1
        zeros = np.zeros(elements.size)
        f0v = np.full(elements.size, f0)

        def deriv(a_, b_):
            offs = np.stack([zeros, o_at[a_], o_at[b_]])
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                w = plan.derivative_weights(offs)
                d = (w * np.stack([f0v, f_at[a_], f_at[b_]])).sum(axis=0)
            return d, np.abs(w).sum(axis=0)

        d_half, g_half = deriv(0.5, 1.0)
        d1, g1 = deriv(1.0, 2.0)
        d2, g2 = deriv(2.0, 4.0)
        fm = np.maximum(np.nanmax(np.abs(np.stack([f_at[1.0], f_at[2.0]])), axis=0), abs(f0))
        sig = np.maximum(sigma, fl.at(fm))
        with np.errstate(invalid="ignore", over="ignore"):
            tol, rnd, trunc = judge.bound(d1, d2, g1, g2, 2, sig, afl)
            lo_d, hi_d = d1 - d_half, d2 - d1
            clear_lo = np.abs(lo_d) > 3.0 * sig * (g1 + g_half)
            clear_hi = np.abs(hi_d) > 3.0 * sig * (g1 + g2)
            ratio = hi_d / np.where(lo_d != 0, lo_d, 1.0)
            lawful = ~(clear_lo & clear_hi) | ((ratio > 4.0 / 3.0) & (ratio < 12.0))
            lawful &= ~(clear_hi & ~clear_lo) & ~(clear_lo & ~clear_hi)
            t_small = np.maximum(np.abs(lo_d) - 2.0 * sig * (g1 + g_half), 0.0) * 4.0 / 3.0
            err = np.abs(d1 - af[elements])
            finite = np.isfinite(d1) & np.isfinite(tol)
            ok = finite & lawful & (err <= tol) & (tol <= threshold)
            bad = finite & lawful & measured & \
                (err > tol + judge.TRUNCATION_SAFETY * np.maximum(t_small - trunc, 0.0))
        verdicts.append((ok, bad, d1, tol, h))
    (ok_f, bad_f, d_f, tol_f, _), (ok_b, bad_b, d_b, tol_b, _) = verdicts
    take_f = ok_f & (~ok_b | (tol_f <= tol_b))
    take_b = ok_b & ~take_f
    for take, d, tol in ((take_f, d_f, tol_f), (take_b, d_b, tol_b)):
        _set(s, elements, take, judge.PASS, judge.R_ONE_SIDED, d, tol, h)
    fail = bad_f & bad_b & ~take_f & ~take_b
    both = np.maximum(tol_f, tol_b)
    # the estimate nearer the analytic value, and a bound it still exceeds
    d_near = np.where(np.abs(d_f - af[elements]) <= np.abs(d_b - af[elements]), d_f, d_b)
    _set(s, elements, fail & (np.abs(d_near - af[elements]) > both), judge.FAIL,
         judge.R_MISMATCH, d_near, both, h)
    s.refined[elements] = True
    s.h_hi[elements] = np.maximum(s.h_hi[elements], h)


#: Random +-1 directions (and their negatives) tested per group of kinks,
#: besides the all-plus and all-minus ones.
JOINT_DIRECTIONS = 3


def _joint_kinks(ev, x, af, s, f0, sigma_g, fl, afloor, threshold):
    """Test entries that passed at a kink jointly, along combined directions.

    Kinks are grouped by the sign of their jump (convex, like relu and max,
    or concave); within a group the analytic values must satisfy the
    subgradient inequality along the sum of the kink coordinates and along
    random +-1 combinations, not only one coordinate at a time.  A group
    that violates it fails as a whole.
    """
    flat = x.reshape(-1)
    if not np.any(s.kink):
        return
    for sign in (1.0, -1.0):
        members = np.flatnonzero(s.kink & (s.status == judge.PASS) & (np.sign(s.jump) == sign))
        if members.size < 2:
            continue
        rng = np.random.default_rng(members.size)
        dirs = [np.ones(members.size), -np.ones(members.size)]
        for _ in range(JOINT_DIRECTIONS):
            d = rng.choice([-1.0, 1.0], size=members.size)
            dirs += [d, -d]
        h = s.h_used[members]
        base = flat[members].astype(np.float64)
        worst = None
        for d in dirs:
            es, os_, fs = [], [], []
            for t in (1.0, 2.0):
                xp = x.copy()
                pf = xp.reshape(-1)
                with np.errstate(over="ignore", invalid="ignore"):
                    pf[members] = (base + t * d * h).astype(x.dtype)
                o = pf[members].astype(np.float64) - base
                sub = ev.at(xp)
                (v,) = sub(sub.base_part())
                ev.nfev += sub.nfev
                ev.compile_seconds += sub.compile_seconds
                ev.run_seconds += sub.run_seconds
                fv = float(v[0])
                es.append(fv - f0 - float(np.dot(af[members], o)))
                os_.append(o)
                fs.append(fv)
            if not all(np.isfinite(fs)):
                continue
            o = os_[0]
            viol = judge.joint_violation(es[0], es[1], sign)
            sig = max(sigma_g, float(np.max(fl.at(np.abs(np.array(fs + [f0]))))))
            # rounding, and the resolution every entry is held to: a joint
            # violation smaller than that along o is no more a fail than an
            # entry's error below its threshold (the terms of f, not |f|,
            # set the rounding here, and f may be near zero)
            held = threshold * float(np.sum(np.abs(o))) if np.ndim(threshold) == 0 else \
                float(np.dot(threshold[members], np.abs(o)))
            tol = max(judge.KAPPA * sig * 3.0, held) \
                + float(np.dot(afloor[members], np.abs(o))) * 2.5
            if viol < -tol and (worst is None or -viol / tol > worst[0]):
                worst = (-viol / tol, viol * sign, tol, o)
        if worst is not None:
            _, lin, tol, o = worst
            oo = float(np.dot(o, o))
            s.status[members] = judge.FAIL
            s.reason[members] = judge.R_JOINT
            # the nearest analytic values that satisfy the violated inequality
            s.numeric[members] = af[members] + lin * o / oo
            s.tol[members] = tol * np.abs(o) / oo


def discrepancy(n: np.ndarray, a: np.ndarray) -> float:
    """``||n - a|| / (||n|| + ||a||)``, 0 when both are zero."""
    return _discrepancy(n, a)


def _discrepancy(n, a, abs_diff=None) -> float:
    """:func:`discrepancy`, given ``|n - a|`` when the caller has it (the norm is the same)."""
    n = np.asarray(n, dtype=np.float64).reshape(-1)
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    if n.size == 0:
        return 0.0
    # a NaN makes max and min NaN, an infinity one of them infinite: the
    # extremes tell whether every value is finite without a pass of isfinite
    ext = (float(np.max(n)), -float(np.min(n)), float(np.max(a)), -float(np.min(a)))
    if not np.all(np.isfinite(ext)):
        return float("nan")
    scale = max(ext)
    if scale == 0.0:
        return 0.0
    # scaled so that the squares cannot overflow; one scratch array serves
    # the three norms
    buf = np.empty(n.size)
    diff = np.subtract(n, a, out=buf) if abs_diff is None else \
        np.asarray(abs_diff, dtype=np.float64).reshape(-1)
    num = _norm(diff, scale, buf)
    den = _norm(n, scale, buf) + _norm(a, scale, buf)
    if den == 0.0:
        return 0.0
    return num / den


def _norm(v: np.ndarray, scale: float, out: np.ndarray) -> float:
    """``||v / scale||`` by NumPy's pairwise sum of squares, ``out`` as scratch.

    Not a BLAS dot: a threaded BLAS sums in an order that depends on its
    thread count, and on a busy host its threads cost more than the sum.
    """
    np.divide(v, scale, out=out)
    np.multiply(out, out, out=out)
    return float(np.sqrt(np.sum(out)))


def _result(ev, x, af, s: _State, scheme, k_worst, seconds, info, scheme_name=None) -> GradCheckResult:
    n, tol, status, reason = s.numeric, s.tol, s.status, s.reason
    # the quotients only where their divisor is positive (0 or inf
    # elsewhere), and NaN made inf: written in place, no temporaries
    with np.errstate(invalid="ignore", divide="ignore"):
        abs_err = np.subtract(n, af)
        np.abs(abs_err, out=abs_err)
        big = np.abs(n)
        rel_err = np.abs(af)
        np.maximum(big, rel_err, out=big)
        pos = big > 0
        np.divide(abs_err, big, out=rel_err, where=pos)
        if not pos.all():
            rel_err[~pos] = 0.0
        ratio = big  # (a scratch array from here on)
        pos = np.greater(tol, 0, out=pos)
        np.divide(abs_err, tol, out=ratio, where=pos)
        if not pos.all():
            ratio[~pos] = np.where(abs_err[~pos] > 0, np.inf, 0.0)
    ratio[np.isnan(ratio)] = np.inf
    rel_err[np.isnan(rel_err)] = np.inf
    order = worst_order(status, ratio, k_worst)
    names = np.asarray(judge.STATUS_NAMES)
    worst = tuple(
        WorstEntry(tuple(int(i) for i in np.unravel_index(int(j), x.shape)), float(n[j]), float(af[j]),
                   float(abs_err[j]), float(rel_err[j]), float(tol[j]), str(names[status[j]]),
                   judge.REASONS[reason[j]])
        for j in order)
    # the counts, with no per-entry temporaries when every entry passed
    settled = judge.PASS == 0 and not np.count_nonzero(status)
    overall = "pass" if settled else judge.overall(status)
    n_failed = 0 if settled else int(np.count_nonzero(status == judge.FAIL))
    n_open = 0 if settled else int(np.count_nonzero(status == judge.INCONCLUSIVE))
    n_kinks, n_refined = int(np.count_nonzero(s.kink)), int(np.count_nonzero(s.refined))
    shape = x.shape
    return GradCheckResult(
        status=overall, passed=overall == "pass",
        discrepancy=_discrepancy(n, af, abs_err),
        numeric=n.reshape(shape), analytic=af.reshape(shape),
        abs_error=abs_err.reshape(shape), rel_error=rel_err.reshape(shape),
        tolerance=tol.reshape(shape), element_status=names.take(status).reshape(shape),
        worst=worst, eps=s.h_used.reshape(shape), backend=ev.backend, nfev=ev.nfev,
        seconds=seconds, scheme=scheme_name or scheme.name, dtype=str(x.dtype),
        noise=float(info["sigma"]),
        n_failed=n_failed, n_inconclusive=n_open, n_kinks=n_kinks, n_refined=n_refined,
        diagnosis=diagnose(n.reshape(shape), af.reshape(shape), status.reshape(shape) == judge.FAIL,
                           (reason == judge.R_JOINT).reshape(shape)) if overall == "fail" else "",
        compile_seconds=ev.compile_seconds,
        resolution=float(info["target"]),
        nondeterministic=bool(info["nondeterministic"]),
        advice=_advice(x, s, info, overall),
        n_joint_failed=int(np.count_nonzero(reason == judge.R_JOINT)),
        n_kink_decided=n_kinks if not n_open else
        int(np.count_nonzero(s.kink & (status != judge.INCONCLUSIVE))),
        n_refined_decided=n_refined if not (n_open or n_kinks) else
        int(np.count_nonzero(s.refined & ~s.kink & (status != judge.INCONCLUSIVE))),
        scales=tuple(float(v) for v in info.get("scales", ())),
    )


def worst_order(status: np.ndarray, ratio: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of the ``k`` entries a report lists first.

    Failing entries first, then inconclusive, then the rest; within each,
    the largest ``ratio`` (error over tolerance, never NaN) first, and the
    lower index on a tie: the first k of
    ``np.lexsort((np.arange(n), -ratio, rank))``, found without sorting all
    n entries.

    Examples
    --------
    >>> worst_order(np.array([0, 1, 0, 2]), np.array([3.0, 0.5, 7.0, 1.0]), 3).tolist()
    [1, 3, 2]
    """
    status = np.asarray(status).reshape(-1)
    ratio = np.asarray(ratio, dtype=np.float64).reshape(-1)
    if not ratio.flags.writeable:  # (the selection marks entries as it goes)
        ratio = ratio.copy()
    k = min(int(k), status.size)
    if judge.PASS == 0 and not np.count_nonzero(status) and k:
        return np.asarray(_largest(ratio, k), dtype=np.int64)  # every entry passed
    out = []
    fail, open_ = status == judge.FAIL, status == judge.INCONCLUSIVE
    for mask in (fail, open_, None):
        need = k - len(out)
        if need <= 0:
            break
        if mask is None:
            mask = ~(fail | open_)
        count = int(np.count_nonzero(mask))
        if count == 0:
            continue
        need = min(need, count)
        if count <= max(64 * need, 4096):
            members = np.flatnonzero(mask)
            # members are in index order: a stable sort keeps ties that way
            out.extend(members[np.argsort(-ratio[members], kind="stable")[:need]].tolist())
        elif count == status.size:
            out.extend(_largest(ratio, need))
        elif count > status.size // 2:
            # the few others out of the way for the selection, then put back
            others = np.flatnonzero(~mask)
            kept = ratio[others]
            ratio[others] = -1.0
            try:
                out.extend(_largest(ratio, need))
            finally:
                ratio[others] = kept
        else:
            out.extend(_largest(np.where(mask, ratio, -1.0), need))
    return np.asarray(out, dtype=np.int64)


def _largest(key: np.ndarray, k: int) -> list:
    """Indices of the k largest of ``key``, largest first, ties by index.

    ``key`` holds no NaN, and at least k values above -inf; it is left as it
    was.
    """
    if k <= 16:
        # k passes of argmax, which returns the first of equal maxima; the
        # values taken out on the way are put back
        out, taken = [], []
        try:
            for _ in range(k):
                j = int(np.argmax(key))
                out.append(j)
                taken.append(float(key[j]))
                key[j] = -np.inf
        finally:
            key[out] = taken
        return out
    neg = np.negative(key)
    kth = np.partition(neg, k - 1)[k - 1]
    less = np.flatnonzero(neg < kth)
    ties = np.flatnonzero(neg == kth)[:k - less.size]
    cand = np.concatenate([less, ties])
    return cand[np.lexsort((cand, neg[cand]))][:k].tolist()


def _advice(x, s: _State, info, overall) -> str:
    """What the numbers cannot tell, why, and what the user can do."""
    notes = []
    fl = info["floor"]
    f0 = info["f0"]
    u = plan.unit_roundoff(x.dtype)
    if info["nondeterministic"]:
        notes.append(f"f is not deterministic: three evaluations at the same x differ by up to "
                     f"{info['spread']:.2e}; that spread is treated as noise. Make f deterministic "
                     f"(fixed seeds, no atomics or unordered reductions) for a sharper check.")
    open_ = s.status == judge.INCONCLUSIVE
    if not np.any(open_):
        return " ".join(notes)
    k = int(np.sum(open_))
    lo, hi = info["h_tried"]
    steps = f"{lo:.1e}" if lo == hi else f"{lo:.1e} to {hi:.1e}"
    ulps = info["sigma"] / (u * abs(f0)) if f0 != 0 else float("inf")
    of = "the max|g| of its input" if len(info.get("scales", ())) > 1 else "max|g|"
    notes.append(f"{k} entr{'y' if k == 1 else 'ies'} undecided after steps from {steps}: no step "
                 f"brought the error bound below {info['target']:.1%} of {of} "
                 f"({info['target'] * info['scale']:.2e}).")
    nonfinite = open_ & (s.reason == judge.R_NONFINITE)
    if np.any(nonfinite):
        notes.append("f is not finite near x at some steps.")
    if info["erratic"]:
        notes.append(f"{info['erratic']} of them: f changes erratically on the scale of the step "
                     f"(the step is far beyond f's scale, or f is not deterministic); no "
                     f"representable step resolves f there.")
    if fl.step > 0:
        notes.append(f"f's values are rounded to multiples of {fl.step:.3g}: return them unrounded.")
    elif fl.u_out > u:
        notes.append(f"f returns its values rounded to a {fl.u_out:.1e}-unit precision, coarser than "
                     f"x's dtype: return them in x's precision.")
    notes.append(f"f's noise is {info['sigma']:.2e} (about {ulps:.3g} units of rounding of "
                 f"|f(x)| = {abs(f0):.3g}). What helps: evaluate f in higher precision "
                 f"(reference='float64' separates a wrong formula from a noisy implementation), "
                 f"accumulate sums in float64, subtract large constant offsets from f, or pass a "
                 f"step with `eps` that suits f's scale.")
    return " ".join(notes)
