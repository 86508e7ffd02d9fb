"""What an interrupted check has to show: the entries judged before Ctrl-C.

A check spends nearly all its time evaluating f at its points, and the
runner (:mod:`gpucheck.schedule`) keeps every chunk that completed when
Ctrl-C comes.  The engine lays out its first pass so that this is worth
something: the base point and the noise probes go first, then the stencil
entry by entry (all nodes of entry 0, then of entry 1, ...), so an
interrupt leaves a prefix of whole entries.  Those entries are judged by the
engine's own first-pass verdict, with the noise measured by the probes;
the others are 'unchecked'.  An interrupt after the first pass (while
entries are refined at other steps, or kinks tested jointly) keeps every
verdict reached so far; the entries still open are 'inconclusive', and so
are entries that passed at a kink before the joint test of kinks ran.

The overall status of a partial result is never 'pass': 'fail' when a
checked entry failed, else 'inconclusive'.  Without the base point and the
probes nothing is judged, and the partial result only counts evaluations.

:class:`CheckInterrupted` and :class:`GradientInterrupted` carry the result
over the evaluator's own point up to :mod:`gpucheck.modes` and
:mod:`gpucheck.api`, which place it in x's shape and raise the public
:class:`~gpucheck.errors.GpuCheckInterrupted`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import judge, schedule
from .result import UNCHECKED, GradCheckResult

__all__ = ["CheckInterrupted", "GradientInterrupted", "by_entry", "restore", "evaluate",
           "complete_entries", "judgeable", "interrupted", "unjudged", "mark", "flat", "NOTE_OPEN"]

#: Appended to the note of an entry left open by the interrupt.
NOTE_OPEN = "not decided before the interrupt"


class CheckInterrupted(KeyboardInterrupt):
    """Ctrl-C during a check; the judged entries of the evaluator's point.

    Attributes
    ----------
    result : GradCheckResult or None
        The verdict over the checked entries alone (a 1-D sub-point, not
        yet placed in x), or None when nothing could be judged.
    entries : numpy.ndarray
        Flat indices, into the evaluator's point, of the checked entries.
    total : int
        Entries of the evaluator's point.
    note : str
        Where the check stood.
    nfev : int
        Evaluations of f done before the interrupt.
    """

    def __init__(self, result, entries, total: int, note: str, nfev: int = 0):
        super().__init__(note)
        self.result = result
        self.entries = np.asarray(entries, dtype=np.int64)
        self.total = int(total)
        self.note = note
        self.nfev = int(nfev)


class GradientInterrupted(KeyboardInterrupt):
    """Ctrl-C during a numerical gradient: the entries computed (flat, NaN elsewhere)."""

    def __init__(self, gradient: np.ndarray, checked: int):
        super().__init__(f"interrupted after {checked:,} of {gradient.size:,} entries")
        self.gradient = gradient
        self.checked = int(checked)


def by_entry(st) -> tuple:
    """A stencil's points ``(idx, vals)`` entry by entry: all nodes of entry 0, then of 1, ...

    A stencil lists its points node by node (``(k, n)``); entry by entry, a
    prefix of the points is a prefix of whole entries.

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck import plan
    >>> st = plan.stencil(np.zeros(3), [-1, 1], np.ones(3))
    >>> idx, vals = by_entry(st)
    >>> idx.tolist(), vals.tolist()
    ([0, 0, 1, 1, 2, 2], [-1.0, 1.0, -1.0, 1.0, -1.0, 1.0])
    """
    k = len(st.multipliers)
    nodes = np.asarray(st.vals).reshape(k, -1)
    elements = np.asarray(st.elements)
    idx = np.empty(k * elements.size, dtype=elements.dtype)
    vals = np.empty(k * elements.size, dtype=nodes.dtype)
    # node k of every entry into every k-th slot: a strided copy per node is
    # several times faster than np.repeat or a transposed copy of (k, n)
    for j in range(k):
        idx[j::k] = elements
        vals[j::k] = nodes[j]
    return idx, vals


def restore(values: np.ndarray, k: int) -> np.ndarray:
    """Values of :func:`by_entry`'s points back in the stencil's order (node by node).

    Examples
    --------
    >>> import numpy as np
    >>> restore(np.array([10.0, 11.0, 20.0, 21.0]), 2).tolist()
    [10.0, 20.0, 11.0, 21.0]
    """
    return np.ascontiguousarray(np.asarray(values).reshape(-1, k).T).reshape(-1)


def evaluate(ev, *parts):
    """``ev(*parts)``, and on Ctrl-C what was evaluated: ``(values, done, stop)``.

    ``values`` and ``done`` are lists like the parts (NaN and False where not
    evaluated); ``stop`` is the interrupt, or None when the stage finished.
    """
    try:
        values = ev(*parts)
    except schedule.Interrupted as stop:
        return [v for v, _ in stop.parts], [d for _, d in stop.parts], stop
    return values, [np.ones(np.size(v), bool) for v in values], None


def complete_entries(done: np.ndarray, k: int) -> np.ndarray:
    """Entries all k of whose nodes were evaluated (``done`` over :func:`by_entry`'s points).

    Examples
    --------
    >>> import numpy as np
    >>> complete_entries(np.array([1, 1, 1, 0, 0, 0], bool), 2).tolist()
    [0]
    """
    return np.flatnonzero(np.asarray(done, bool).reshape(-1, k).all(axis=1))


def judgeable(done: list, needed) -> bool:
    """Whether the parts ``needed`` (indices into ``done``) were all evaluated."""
    return all(bool(np.all(done[i])) for i in needed)


def interrupted(s, entries, build, *, total: int, stage: str, nfev: int,
                kinks_tested: bool = False) -> CheckInterrupted:
    """The interrupt that carries the verdict on ``entries`` from the engine's state ``s``.

    ``s`` holds the statuses reached so far (decided entries keep theirs,
    open ones are inconclusive).  ``build(x_idx, s_sub)`` makes the result
    over the sub-state of ``entries`` (None: every entry).  Unless the joint
    test of kinks ran, an entry that passed at a kink is not counted as
    passed: alone it is a valid subgradient, jointly it may not be.
    """
    if entries is None:
        entries = np.arange(total, dtype=np.int64)
    if not kinks_tested:
        pending = s.kink & (s.status == judge.PASS)
        s.status[pending] = judge.INCONCLUSIVE
    if entries.size < total:
        note = (f"Interrupted (Ctrl-C) during {stage}: {entries.size:,} of {total:,} entries "
                f"checked, the others not.")
    else:
        note = f"Interrupted (Ctrl-C) during {stage}, after every entry was checked once."
    if entries.size == 0:
        return CheckInterrupted(None, entries, total, note, nfev)
    sub = type(s)(**{f.name: getattr(s, f.name)[entries] for f in dataclasses.fields(s)})
    r = build(entries, sub)
    return CheckInterrupted(r, entries, total, note, nfev)


def mark(r: GradCheckResult, *, checked: int, note: str) -> GradCheckResult:
    """``r`` as a partial result: never a pass, open entries noted, the note in ``advice``."""
    status = "fail" if r.status == "fail" else "inconclusive"
    # the engine's reasons and advice for an open entry describe a judgement
    # that ran to its end; this one was cut short
    worst = tuple(dataclasses.replace(w, note=NOTE_OPEN) if w.status == "inconclusive" else w
                  for w in r.worst)
    ref = r.reference
    if ref is not None and not ref.partial:
        ref = dataclasses.replace(ref, partial=True, n_checked=checked)
    advice = note
    if r.n_inconclusive:
        advice += (f" {r.n_inconclusive:,} checked entr{'y was' if r.n_inconclusive == 1 else 'ies were'}"
                   f" still being judged; the complete check decides {'it' if r.n_inconclusive == 1 else 'them'}.")
    return dataclasses.replace(r, status=status, passed=False, partial=True, n_checked=int(checked),
                               worst=worst, advice=advice, reference=ref)


def flat(r: GradCheckResult) -> GradCheckResult:
    """``r`` over x flattened: 1-D per-entry arrays, worst entries named by flat index."""
    shape = np.shape(r.numeric)
    fields = ("numeric", "analytic", "abs_error", "rel_error", "tolerance", "element_status", "eps")
    worst = tuple(dataclasses.replace(w, index=(int(np.ravel_multi_index(w.index, shape)),)
                                      if shape else (0,)) for w in r.worst)
    return dataclasses.replace(r, worst=worst,
                               **{k: np.asarray(getattr(r, k)).reshape(-1) for k in fields})


def unjudged(x: np.ndarray, a: np.ndarray, *, backend: str, nfev: int, seconds: float,
             note: str, scheme: str = "central") -> GradCheckResult:
    """A partial result that judges nothing: every entry unchecked, counts only.

    Examples
    --------
    >>> import numpy as np
    >>> r = unjudged(np.zeros(3), np.ones(3), backend="cpu", nfev=4, seconds=0.1,
    ...              note="Interrupted before the noise of f was measured.")
    >>> r.status, r.partial, r.n_checked, r.summary()
    ('inconclusive', True, 0, 'PARTIAL (INCONCLUSIVE): interrupted after 0 of 3 entries were checked')
    """
    nan = np.full(x.shape, np.nan)
    return GradCheckResult(
        status="inconclusive", passed=False, discrepancy=float("nan"), numeric=nan,
        analytic=np.asarray(a, dtype=np.float64).reshape(x.shape), abs_error=nan,
        rel_error=nan, tolerance=nan, element_status=np.full(x.shape, UNCHECKED, dtype="<U12"),
        worst=(), eps=nan, backend=backend, nfev=int(nfev), seconds=float(seconds),
        scheme=scheme, dtype=str(x.dtype), advice=note, partial=True, n_checked=0)
