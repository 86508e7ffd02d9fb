"""Checks that scale to any N: sampled entries, random projections, and the choice.

A full check perturbs every entry of x: 2N evaluations and more.  When that
is too expensive, two derived problems give a verdict at a cost that does
not grow with N, and both reuse the whole engine and judge unchanged:

* **sample** (:func:`sample`): the entries S (k at random, the k with the
  largest |analytic| value, and any named with ``indices=``) form a
  sub-point ``z = x[S]``.  A :class:`SubsetEvaluator` takes the engine's
  points on z, ``(idx, vals)``, to ``(S[idx], vals)`` on the full x, so every
  form of f (delta evaluation included) runs exactly as in a full check, at
  O(|S|) points.  Choosing the largest entries keeps max|g|, and with it the
  resolution a pass must reach, that of the full gradient.
* **project** (:func:`project`): r random directions ``v_k`` turn f into
  ``F(t) = f(x + sum_k t_k v_k)`` of r coordinates, whose gradient at t = 0
  is ``(<g, v_k>)_k``.  Checking F checks g along every direction at once,
  2r evaluations and the verdict's probes, at full points
  (:mod:`gpucheck.dense`).
* **auto** (the default): the full check, unless its first pass, timed on
  its first chunks, would take longer than ``max_seconds``; then it stops
  and runs sample and project instead.  A check that fits runs exactly as a
  full check (the same points, the same evaluations, the same result).

The results keep x's shape: entries a sampled check did not check have
status 'unchecked' and NaN numeric values; :class:`~gpucheck.result.Coverage`
and :class:`~gpucheck.result.Projection` say what was checked and what a
pass proves.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from . import engine, partial, schedule
from .dense import HOST_KINDS, AlongDirections, Directions
from .diagnose import diagnose
from .engine import Evaluator
from .errors import GpuCheckError, GpuCheckInterrupted
from .functions import Function
from .result import UNCHECKED, Coverage, GradCheckResult, InputVerdict, Projection

__all__ = ["Plan", "SubsetEvaluator", "run", "sample", "project", "choose_entries",
           "numerical_at", "DEFAULT_SAMPLES", "DEFAULT_DIRECTIONS", "DEFAULT_MAX_SECONDS"]

#: Entries drawn at random (and as many with the largest |analytic|) by default.
DEFAULT_SAMPLES = 512
#: Directions of a projected check by default (a quarter of them sparse).
DEFAULT_DIRECTIONS = 32
#: Seconds a full check may take before ``mode='auto'`` samples and projects.
DEFAULT_MAX_SECONDS = 180.0
#: Fewest entries per choice when ``mode='auto'`` shrinks the sample to fit its time.
MIN_SAMPLES = 16
#: Evaluations a sampled entry costs on average (its stencil and refinement).
POINTS_PER_ENTRY = 3.0
#: ``mode='auto'`` decides once the first pass has run this long (or this
#: share of ``max_seconds``, if less): a first chunk carries one-off costs
#: (a parallel region's start, first touch of memory, f's lazy imports) that
#: overstate the pace, by 30 times for a million-entry kernel function.
SETTLE_SECONDS = 1.0
SETTLE_SHARE = 0.05


@dataclass(frozen=True)
class Plan:
    """The validated mode options of one check.

    Attributes
    ----------
    mode : str
        'auto', 'full', 'sample', 'project' or 'sample+project'.
    indices : numpy.ndarray or None
        Flat entries named with ``indices=`` (sorted, unique).
    samples, directions : int
        k per choice of a sampled check; r of a projected one.
    max_seconds : float
        The budget of ``mode='auto'``.
    seed : int
        Seed of the random entries and directions.
    reference : bool
        Whether a float64 reference check follows (auto budgets for it).
    """

    mode: str = "auto"
    indices: Optional[np.ndarray] = None
    samples: int = DEFAULT_SAMPLES
    directions: int = DEFAULT_DIRECTIONS
    max_seconds: float = DEFAULT_MAX_SECONDS
    seed: int = 0
    reference: bool = False


#: ``judge(ev, a, eps, worst=None) -> GradCheckResult``: the check (and its
#: reference) of one evaluator, unlabelled, with ``worst`` worst entries
#: (None: the caller's number); the public API builds it from its options.
Judge = Callable[..., GradCheckResult]


# ---------------------------------------------------------------- sample

@dataclass
class SubsetEvaluator(Evaluator):
    """An evaluator of f at points of the sub-point ``z = full.flat[entries]``.

    The engine sees z (its x) and hands over points ``(idx, vals)`` on z;
    they are evaluated as ``(entries[idx], vals)`` on ``full``.  A moved
    sub-point (:meth:`at`) is embedded into ``full`` at ``entries``.

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck.functions import as_function
    >>> full = np.arange(5.0)
    >>> ev = SubsetEvaluator(as_function(lambda v: float(v @ v)), full[[1, 3]], "cpu",
    ...                      full=full, entries=np.array([1, 3]))
    >>> ev((np.array([1]), np.array([0.0])))[0].tolist()      # x[3] = 0
    [21.0]
    >>> moved = ev.at(np.array([0.0, 0.0]))                    # x[1] = x[3] = 0
    >>> moved(moved.base_part())[0].tolist()
    [20.0]
    """

    full: np.ndarray = None
    entries: np.ndarray = None

    def __post_init__(self):
        self.entries = np.ascontiguousarray(self.entries, dtype=np.int64)
        self._runner = schedule.Runner(self.func, self.full, self.backend, self.executor)

    def __call__(self, *parts):
        return super().__call__(*[(self.entries[np.asarray(i, dtype=np.int64)], v)
                                  for i, v in parts])

    def at(self, x: np.ndarray, *, progress: bool = False) -> "SubsetEvaluator":
        full = self.full.astype(x.dtype, copy=True)
        full.reshape(-1)[self.entries] = np.asarray(x).reshape(-1)
        return SubsetEvaluator(self.func, x, self.backend, self.progress if progress else None,
                               self.executor, full=full, entries=self.entries)


def choose_entries(a: np.ndarray, k: int, seed: int, named=None, groups=None) -> tuple:
    """The sampled entries: k at random, the k largest |a|, and the named ones.

    Non-finite analytic values count as the largest.  Returns
    ``(entries, Coverage)``, the entries sorted flat indices.  With
    ``groups`` (the input of each entry, several inputs) the k largest of
    every input: each input is judged at the resolution of its own max|g|,
    which its largest entries set.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([0.1, -5.0, 0.2, 3.0, 0.0, 0.3])
    >>> s, c = choose_entries(a, 1, seed=0, named=np.array([4]))
    >>> bool(1 in s and 4 in s), c.largest, c.named, c.checked == s.size
    (True, 1, 1, True)
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    n = a.size
    k = int(min(k, n))
    rng = np.random.default_rng((seed, 0))
    rand = np.sort(rng.choice(n, size=k, replace=False)) if k < n else np.arange(n)
    key = np.where(np.isfinite(a), np.abs(a), np.inf)
    if k >= n:
        top = np.arange(n)
    elif groups is None:
        # ties broken by position, so the choice does not depend on the sort
        top = np.lexsort((np.arange(n), -key))[:k]
    else:
        groups = np.asarray(groups, dtype=np.int64).reshape(-1)
        order = np.lexsort((np.arange(n), -key, groups))
        start = np.searchsorted(groups[order], np.unique(groups))
        top = np.concatenate([order[b:b + k][groups[order[b:b + k]] == groups[order[b]]]
                              for b in start])
    named = np.zeros(0, np.int64) if named is None else np.asarray(named, dtype=np.int64)
    entries = np.unique(np.concatenate([rand, top, named]).astype(np.int64))
    return entries, Coverage(checked=int(entries.size), total=n, random=int(rand.size),
                             largest=int(top.size), named=int(named.size), seed=int(seed))


def sample(ev: Evaluator, structure, a: np.ndarray, eps, judge: Judge, *, entries: np.ndarray,
           coverage: Coverage) -> GradCheckResult:
    """Check the entries ``entries`` of x: the full verdict on the sub-point, in x's shape."""
    x = ev.x
    sub = SubsetEvaluator(ev.func, x.reshape(-1)[entries].copy(), ev.backend, ev.progress,
                          ev.executor, full=x, entries=entries)
    r = judge(sub, a.reshape(-1)[entries], _entry_eps(eps, entries))
    return _embed(r, x, a, entries, structure, coverage)


def _entry_eps(eps, entries):
    if eps is None or np.ndim(eps) == 0:
        return eps
    return np.asarray(eps).reshape(-1)[entries]


def numerical_at(ev: Evaluator, entries: np.ndarray, scheme, eps, complex_step: bool = False):
    """The numerical gradient at ``entries`` only (flat float64 of x's size, NaN elsewhere)."""
    x = ev.x
    sub = SubsetEvaluator(ev.func, x.reshape(-1)[entries].copy(), ev.backend, ev.progress,
                          ev.executor, full=x, entries=entries)
    e = _entry_eps(eps, entries)
    if complex_step:
        from .complexstep import complex_step as step

        g = step(sub, e)
    else:
        try:
            g, _, f0 = engine.numerical(sub, scheme, e)
        except partial.GradientInterrupted as stop:
            out = np.full(x.size, np.nan)
            out[entries] = stop.gradient
            raise partial.GradientInterrupted(out, stop.checked) from None
        from .validate import base_value

        base_value(f0)
    out = np.full(x.size, np.nan)
    out[entries] = g
    return out


def _embed(r: GradCheckResult, x: np.ndarray, a: np.ndarray, entries: np.ndarray, structure,
           coverage: Coverage) -> GradCheckResult:
    """A result over the sub-point as a result over x: unchecked entries NaN and 'unchecked'."""
    n_all, shape = x.size, x.shape

    def spread(v):
        out = np.full(n_all, np.nan)
        out[entries] = np.asarray(v, dtype=np.float64).reshape(-1)
        return out.reshape(shape)

    status = np.full(n_all, UNCHECKED, dtype="<U12")
    status[entries] = np.asarray(r.element_status).reshape(-1)
    label = _labeller(structure, shape)
    worst = tuple(_place(w, int(entries[int(w.index[0])]), structure, shape) for w in r.worst)
    a_s = np.asarray(a, dtype=np.float64).reshape(-1)[entries]
    n_s = np.asarray(r.numeric).reshape(-1)
    failed = np.asarray(r.element_status).reshape(-1) == "fail"
    diagnosis = ""
    inputs = () if structure.single else _input_verdicts(r, a_s, entries, structure, label)
    hints = [f"{v.name}: {v.diagnosis}" for v in inputs if v.diagnosis]
    if r.status == "fail" and hints:
        diagnosis = "; ".join(hints)
    elif r.status == "fail":
        diagnosis = _sample_hint(n_s, a_s, failed, entries, label)
        where = _confined(entries, n_s, a_s, failed, structure, shape)
        if where:
            diagnosis = (diagnosis + "; " if diagnosis else "") + where
    reference = None
    if r.reference is not None:
        reference = _embed(r.reference, x, a, entries, structure, coverage)
    return dataclasses.replace(
        r, numeric=spread(n_s), analytic=np.asarray(a, dtype=np.float64).reshape(shape),
        abs_error=spread(r.abs_error), rel_error=spread(r.rel_error),
        tolerance=spread(r.tolerance), element_status=status.reshape(shape), eps=spread(r.eps),
        worst=worst, diagnosis=diagnosis, inputs=inputs, reference=reference, mode="sample",
        coverage=coverage)


#: Bug patterns that mean the same on a sample as on all entries (a permutation,
#: a transpose or zero slices are read off the layout of x, which a sample lacks).
_SAMPLE_PATTERNS = ("sign flipped", "constant factor", "non-finite", "isolated wrong")


def _sample_hint(n, a, failed, entries, label) -> str:
    """The bug pattern of sampled entries (1-D), named by their places in x."""
    hint = diagnose(n, a, failed)
    if hint.startswith(_SAMPLE_PATTERNS):
        return _relabel(hint, entries, label)
    k = int(failed.sum())
    if 0 < k <= max(3, failed.size // 100):
        where = ", ".join(label(j) for j in entries[failed][:3])
        return (f"{k} isolated wrong entr{'y' if k == 1 else 'ies'} (at {where}"
                f"{', ...' if k > 3 else ''})")
    return ""


def _labeller(structure, shape):
    def label(flat: int) -> str:
        if structure.single:
            return str(tuple(int(i) for i in np.unravel_index(int(flat), shape))) if shape else "()"
        name, idx = structure.entry(int(flat))
        return name + (f"[{', '.join(str(i) for i in idx)}]" if idx else "")
    return label


def _place(w, flat: int, structure, shape):
    """A worst entry of the sub-point, named by its place in x."""
    if structure.single:
        index = tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()
        return dataclasses.replace(w, index=index)
    name, local = structure.entry(flat)
    return dataclasses.replace(w, index=local, input=name)


def _relabel(text: str, entries: np.ndarray, label) -> str:
    """A diagnosis found on the (1-D) sub-point, its entries ``(j,)`` named by their place in x."""
    return re.sub(r"\((\d+),\)", lambda m: label(entries[int(m.group(1))]), text)


def _confined(entries, n_s, a_s, failed, structure, shape) -> str:
    """Where the failing sampled entries lie, when they share one row (or one input)."""
    bad = entries[failed]
    if bad.size < 2:
        return ""
    if not structure.single:
        names = {structure.entry(int(j))[0] for j in bad}
        return f"the failing sampled entries all lie in {names.pop()}" if len(names) == 1 else ""
    if len(shape) < 2:
        return ""
    rows = np.unravel_index(entries, shape)[0]
    bad_rows = np.unique(rows[failed])
    if bad_rows.size != 1:
        return ""
    row = int(bad_rows[0])
    text = f"the failing sampled entries all lie in row {row} of x"
    mine = rows == row
    # the pattern within that row: a flipped sign or a factor there
    hint = diagnose(n_s[mine], a_s[mine], failed[mine])
    if hint.startswith(("sign flipped", "constant factor")):
        text += f" ({mine.sum()} sampled there), where {hint}"
    return text


def _input_verdicts(r, a_s, entries, structure, label) -> tuple:
    st = np.asarray(r.element_status).reshape(-1)
    n_s = np.asarray(r.numeric).reshape(-1)
    out = []
    scales = tuple(r.scales)
    for k, (name, shp, off) in enumerate(zip(structure.names, structure.shapes, structure.offsets)):
        size = int(np.prod(shp, dtype=np.int64)) if len(shp) else 1
        m = (entries >= off) & (entries < off + size)
        mine = st[m]
        failed = mine == "fail"
        if not m.any():
            status, disc = UNCHECKED, float("nan")
        else:
            status = "fail" if failed.any() else "inconclusive" if (mine == "inconclusive").any() \
                else "pass"
            disc = engine.discrepancy(n_s[m], a_s[m])
        hint = _sample_hint(n_s[m], a_s[m], failed, entries[m], label) if failed.any() else ""
        out.append(InputVerdict(name=name, shape=tuple(shp), status=status, discrepancy=disc,
                                entries=size, n_failed=int(failed.sum()),
                                n_inconclusive=int((mine == "inconclusive").sum()),
                                diagnosis=hint, checked=int(m.sum()),
                                **_held_to(scales, k, r.resolution, m.any())))
    return tuple(out)


def _held_to(scales, k: int, resolution: float, checked: bool) -> dict:
    # the engine held input k's sampled entries to its own max|g| (its k-th scale)
    if not checked or k >= len(scales) or len(scales) < 2 and k > 0:
        return {}
    return {"scale": scales[k], "resolution": resolution * scales[k]}


# ---------------------------------------------------------------- project

def project(ev: Evaluator, a: np.ndarray, eps, judge: Judge, *, directions: int,
            seed: int) -> Projection:
    """Check g along ``directions`` random directions: the verdict on ``F(t)`` at x.

    A scalar ``eps`` is the relative step along every direction (a step h
    in t moves entry i by ``h * max(1, |x_i|)``, as in a full check); steps
    given per entry do not apply to directions, which then take the default.
    """
    x = ev.x
    d = Directions.draw(x, directions, seed=seed)
    g = np.asarray(a, dtype=np.float64).reshape(-1)
    along = AlongDirections(ev.func, x, d, ev.backend, grad=g, origin=1.0)
    func = Function("callable", along, (), f"{ev.func.name} along {d.count} directions")
    t = np.ones(d.count, dtype=x.dtype)
    pev = Evaluator(func, t, ev.backend, ev.progress, ev.executor)
    r = judge(pev, d.project(g), eps if eps is None or np.ndim(eps) == 0 else None,
              worst=d.count)
    r = _kinks_undecided(pev, r)
    return Projection(check=r, kinds=d.kinds, sparse_entries=d.sparse_entries, seed=d.seed,
                      scaled_norm=d.scaled_norm(g), backend=along._backend()
                      if ev.executor is None or ev.func.kind in HOST_KINDS else ev.backend)


#: Why a direction that crosses a kink of f at x is not failed.
KINK_NOTE = ("f has a kink at x along this direction; its one-sided slopes bound <g, v> only "
             "when every kink it crosses bends the same way")


def _kinks_undecided(pev: Evaluator, r: GradCheckResult) -> GradCheckResult:
    """Directions along which f has a kink at x become inconclusive.

    At a kink (relu at 0, a tie in max) a valid subgradient g satisfies each
    coordinate's one-sided slopes, but along a direction that crosses kinks
    of both bends (convex and concave) ``<g, v>`` may lie outside the
    direction's one-sided slopes, so a mismatch there proves nothing; and
    one kink in x widens the slopes' interval of *every* direction through
    it, so a pass there says nothing about the other entries.  Each failing
    direction is evaluated at -2h, -h, h, 2h (h its step) and tested for a
    kink as the engine tests coordinates; directions passed or failed as
    kinks by the engine are kinks already.
    """
    from . import judge as verdicts

    st = np.asarray(r.element_status).reshape(-1)
    at_kink = {verdicts.REASONS[verdicts.R_KINK], verdicts.REASONS[verdicts.R_JOINT]}
    noted = np.array(sorted({int(w.index[0]) for w in r.worst if w.index and w.note in at_kink}),
                     dtype=np.int64)
    bad = np.setdiff1d(np.flatnonzero(st == "fail"), noted)
    if bad.size == 0 and noted.size == 0:
        return r
    t = pev.x.reshape(-1)
    h = np.asarray(r.eps, dtype=np.float64).reshape(-1)[bad]
    base = t[bad].astype(np.float64)
    parts, offsets = [], []
    for m in (-2.0, -1.0, 1.0, 2.0):
        vals = (base + m * h).astype(t.dtype)
        parts.append((bad, vals))
        offsets.append(vals.astype(np.float64) - base)
    before = pev.nfev
    kink = np.zeros(0, bool)
    if bad.size:
        f0, *f = pev(pev.base_part(), *parts)
        kink = verdicts.kinks(float(np.real(f0[0])), *[np.real(v) for v in f], *offsets,
                              max(float(r.noise), 0.0), 0.0)[0]
    moved = np.union1d(bad[kink], noted)
    if moved.size == 0:
        return dataclasses.replace(r, nfev=r.nfev + pev.nfev - before)
    st = st.copy()
    st[moved] = "inconclusive"
    worst = []
    for w in r.worst:
        if w.index and int(w.index[0]) in set(moved.tolist()):
            w = dataclasses.replace(w, status="inconclusive", note=KINK_NOTE)
        worst.append(w)
    rank = {"fail": 0, "inconclusive": 1, "pass": 2}
    worst.sort(key=lambda w: (rank.get(w.status, 3),
                              -(w.abs_error / w.tolerance if w.tolerance > 0 else np.inf)))
    n_failed = int(np.sum(st == "fail"))
    status = "fail" if n_failed else "inconclusive"
    n_kinks = int(r.n_kinks) + int(np.setdiff1d(moved, noted).size)
    note = (f"{moved.size} direction{'s' if moved.size > 1 else ''} cross a kink of f at x "
            f"(relu at 0, a tie in max): there a projected check cannot judge a gradient; the "
            f"sampled check judges its entries one by one.")
    return dataclasses.replace(
        r, element_status=st.reshape(np.shape(r.element_status)), status=status,
        passed=False, n_failed=n_failed, n_kinks=n_kinks,
        n_inconclusive=int(np.sum(st == "inconclusive")), worst=tuple(worst), advice=f"{r.advice} {note}".strip(), diagnosis="" if not n_failed
        else r.diagnosis, nfev=r.nfev + pev.nfev - before)


# ---------------------------------------------------------------- run

def run(ev: Evaluator, structure, a: np.ndarray, eps, judge: Judge, plan: Plan) -> GradCheckResult:
    """The check of ``plan.mode``, labelled for x's structure."""
    if plan.mode == "full":
        return _full(ev, structure, a, eps, judge, "mode 'full' requested")
    if plan.mode == "auto":
        return _auto(ev, structure, a, eps, judge, plan)
    return _partial(ev, structure, a, eps, judge, plan, plan.mode, f"mode {plan.mode!r} requested",
                    plan.samples)


def _full(ev, structure, a, eps, judge, reason) -> GradCheckResult:
    try:
        r = judge(ev, a, eps)
    except partial.CheckInterrupted as stop:
        raise interrupted(stop, ev, structure, a, mode="full",
                          reason=reason or "auto: interrupted during the full check") from None
    if r.reference is not None:
        r = dataclasses.replace(r, reference=structure.label(r.reference))
    return dataclasses.replace(structure.label(r), mode="full", mode_reason=reason)


def _partial(ev, structure, a, eps, judge, plan, mode, reason, k, *, aborted=0,
             started=None) -> GradCheckResult:
    """Sample, project or both; one result over x.

    ``aborted`` evaluations of an abandoned full check (``mode='auto'``)
    count in ``nfev``, and its time from ``started`` in ``seconds``.
    """
    t0 = time.perf_counter() if started is None else started
    s = p = None
    if "sample" in mode:
        entries, coverage = choose_entries(a, k, plan.seed, plan.indices,
                                           None if structure.single else structure.groups())
        try:
            s = sample(ev, structure, a, eps, judge, entries=entries, coverage=coverage)
        except partial.CheckInterrupted as stop:
            raise interrupted(stop, ev, structure, a, mode=mode, reason=reason, entries=entries,
                              coverage=coverage) from None
    if "project" in mode:
        try:
            p = project(ev, a, eps, judge, directions=plan.directions, seed=plan.seed)
        except KeyboardInterrupt:
            # a projection stopped part way proves nothing about the gradient
            note = "Interrupted (Ctrl-C) during the projected check, which judged no direction."
            if s is None:
                r = partial.unjudged(ev.x, a, backend=ev.backend, nfev=aborted, note=note,
                                     seconds=time.perf_counter() - t0)
                r = dataclasses.replace(r, mode=mode, mode_reason=reason)
            else:
                r = partial.mark(dataclasses.replace(s, mode=mode, mode_reason=reason),
                                 checked=coverage.checked, note=note + " The sampled entries "
                                 "were all checked.")
            raise GpuCheckInterrupted(r.summary(), r) from None
    base = s if s is not None else _nothing_checked(ev.x, a, structure, p)
    statuses = [r.status for r in (s, p) if r is not None]
    status = "fail" if "fail" in statuses else "inconclusive" if "inconclusive" in statuses \
        else "pass"
    diagnosis = base.diagnosis
    advice = base.advice if s is not None else ""
    nfev = base.nfev if s is not None else 0
    compile_s = base.compile_seconds if s is not None else 0.0
    if p is not None:
        if p.status == "fail":
            k_bad = p.check.n_failed
            note = (f"the gradient is wrong along {k_bad} of {p.directions} random directions "
                    f"(<g, v> differs from f's slope)")
            if s is None or s.status != "fail":
                note += ("; no entry is named by that: check the entries (mode='sample', or name "
                         "suspects with `indices=`) to find them")
            diagnosis = f"{diagnosis}; {note}" if diagnosis else note
        if p.check.advice:
            advice = f"{advice} Projected check: {p.check.advice}".strip()
        nfev += p.check.nfev
        compile_s += p.check.compile_seconds
    return dataclasses.replace(base, status=status, passed=status == "pass", diagnosis=diagnosis,
                               advice=advice, nfev=nfev + aborted, compile_seconds=compile_s,
                               seconds=time.perf_counter() - t0, mode=mode, mode_reason=reason,
                               projection=p)


def interrupted(stop: "partial.CheckInterrupted", ev: Evaluator, structure, a: np.ndarray, *,
                mode: str, reason: str, entries=None, coverage=None) -> GpuCheckInterrupted:
    """The public interrupt of a check stopped by Ctrl-C, its partial result placed in x.

    ``entries`` (flat, into x) are those of a sampled check, into which
    ``stop.entries`` index; None when ``ev`` evaluates x itself.
    """
    x = ev.x
    if stop.result is None:
        r = partial.unjudged(x, a, backend=ev.backend, nfev=stop.nfev, seconds=0.0, note=stop.note)
        inputs = () if structure.single else tuple(
            InputVerdict(name=n, shape=tuple(s), status=UNCHECKED, discrepancy=float("nan"),
                         entries=int(np.prod(s, dtype=np.int64)) if len(s) else 1, checked=0)
            for n, s in zip(structure.names, structure.shapes))
        r = dataclasses.replace(r, coverage=coverage, inputs=inputs)
    else:
        where = stop.entries if entries is None else np.asarray(entries)[stop.entries]
        r = _embed(stop.result, x, a, where, structure, coverage)
        r = partial.mark(r, checked=stop.entries.size, note=stop.note)
    r = dataclasses.replace(r, mode=mode, mode_reason=reason)
    return GpuCheckInterrupted(r.summary(), r)


def _nothing_checked(x, a, structure, p: Projection) -> GradCheckResult:
    """The per-entry part of a result when no entry was checked on its own."""
    nan = np.full(x.shape, np.nan)
    c = p.check
    inputs = ()
    if not structure.single:
        inputs = tuple(InputVerdict(name=n, shape=tuple(s), status=UNCHECKED,
                                    discrepancy=float("nan"),
                                    entries=int(np.prod(s, dtype=np.int64)) if len(s) else 1,
                                    checked=0)
                       for n, s in zip(structure.names, structure.shapes))
    return GradCheckResult(
        status=c.status, passed=c.passed, discrepancy=float("nan"), numeric=nan,
        analytic=np.asarray(a, dtype=np.float64).reshape(x.shape), abs_error=nan, rel_error=nan,
        tolerance=nan, element_status=np.full(x.shape, UNCHECKED, dtype="<U12"), worst=(),
        eps=nan, backend=c.backend, nfev=c.nfev, seconds=c.seconds, scheme=c.scheme,
        dtype=str(x.dtype), noise=c.noise, compile_seconds=c.compile_seconds, inputs=inputs,
        resolution=c.resolution, nondeterministic=c.nondeterministic)


# ---------------------------------------------------------------- auto

class _OverBudget(GpuCheckError):
    """The full check's first pass will not fit ``max_seconds`` (caught here, never raised to users)."""

    def __init__(self, projected: float, done: int, total: int, seconds_per_point: float):
        super().__init__(f"the full check would take about {projected:.3g} s")
        self.projected = projected
        self.done = done
        self.total = total
        self.seconds_per_point = seconds_per_point


class _Budget:
    """A progress callable that watches the first pass of a full check.

    It forwards every call (and ``estimate``) to the caller's progress.  On
    each new pace the runner measures during the first stage it projects
    the stage's time, and raises :class:`_OverBudget` when that exceeds
    ``max_seconds``; once the first stage is over it only forwards.
    """

    def __init__(self, max_seconds: float, factor: float, inner):
        self.max_seconds = max_seconds
        self.factor = factor
        self.inner = inner
        self.current: Optional[Evaluator] = None
        self.total = None
        self.started = 0.0
        self.committed = False
        self.projected = None
        self.measured = 0
        self._pace = None

    def __call__(self, done, total) -> None:
        if not self.committed:
            self._watch(int(done), int(total))
        if self.inner is not None:
            self.inner(done, total)

    def estimate(self, seconds, done, total) -> None:
        hook = getattr(self.inner, "estimate", None)
        if callable(hook):
            hook(seconds, done, total)

    def _watch(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if self.total is None:
            self.total, self.started = total, now
            return
        elapsed = now - self.started
        if total != self.total or done >= total:
            # the first pass is over: what it took is the estimate
            self.committed = True
            self.projected, self.measured = elapsed * self.factor, self.total
            return
        ev = self.current
        pace = ev.estimate_seconds(1) if ev is not None else None
        if pace is None or pace == self._pace:
            return  # nothing new measured since the last look
        self._pace = pace
        projected = (elapsed + ev.estimate_seconds(total - done)) * self.factor
        self.projected, self.measured = projected, done
        settled = elapsed >= min(SETTLE_SECONDS, SETTLE_SHARE * self.max_seconds)
        if projected > self.max_seconds and settled:
            raise _OverBudget(projected, done, total, pace)


@dataclass
class _Timed(Evaluator):
    """An evaluator that tells its budget which runner is evaluating (for the pace)."""

    budget: _Budget = None

    def __call__(self, *parts):
        self.budget.current = self
        return super().__call__(*parts)

    def at(self, x: np.ndarray, *, progress: bool = False) -> "_Timed":
        return _Timed(self.func, x, self.backend, self.progress if progress else None,
                      self.executor, budget=self.budget)


def _auto(ev, structure, a, eps, judge, plan) -> GradCheckResult:
    from .progress import duration_text

    started = time.perf_counter()
    budget = _Budget(plan.max_seconds, 2.0 if plan.reference else 1.0, ev.progress)
    timed = _Timed(ev.func, ev.x, ev.backend, budget, ev.executor, budget=budget)
    over = None
    try:
        r = _full(timed, structure, a, eps, judge, "")
    except _OverBudget as err:
        over = err
    if over is None:
        spent = budget.projected
        if spent is None or spent <= plan.max_seconds:
            reason = f"auto: the full check fits max_seconds = {plan.max_seconds:g} s" + (
                f" (first pass about {duration_text(spent)})" if spent is not None else "")
        else:
            reason = (f"auto: the full check's first pass took {duration_text(spent)}, over "
                      f"max_seconds = {plan.max_seconds:g} s, but it was done before its pace "
                      f"was measured")
        return dataclasses.replace(r, mode_reason=reason)
    # points of a sampled entry cost about what the first pass's points did
    per_entry = over.seconds_per_point * POINTS_PER_ENTRY
    fit = int(0.25 * plan.max_seconds / per_entry) if per_entry > 0 else plan.samples
    k = max(MIN_SAMPLES, min(plan.samples, fit))
    reason = (f"auto: the full check would take about {duration_text(over.projected)} (timed on "
              f"{over.done:,} of the {over.total:,} evaluations of its first pass), over "
              f"max_seconds = {plan.max_seconds:g} s; sampled and projected instead")
    if k < plan.samples:
        reason += f", {k} entries per choice to stay near that time"
    fresh = Evaluator(ev.func, ev.x, ev.backend, budget.inner, ev.executor)
    return _partial(fresh, structure, a, eps, judge, plan, "sample+project", reason, k,
                    aborted=over.done, started=started)
