"""Result objects: frozen, readable in a terminal, JSON-safe through ``to_dict``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

__all__ = ["WorstEntry", "InputVerdict", "GradCheckResult", "SweepResult", "Coverage", "Projection",
           "UNCHECKED"]

#: ``element_status`` of an entry a sampled or projected check did not check on its own.
UNCHECKED = "unchecked"


def _num(v) -> Optional[float]:
    v = float(v)
    return v if np.isfinite(v) else None if np.isnan(v) else (1e308 if v > 0 else -1e308)


def _fmt(v: float) -> str:
    return f"{v: .6e}" if np.isfinite(v) else f"{v!s:>13}"


@dataclass(frozen=True)
class WorstEntry:
    """One of the entries furthest outside (or closest to) its tolerance.

    Attributes
    ----------
    index : tuple of int
        Multi-index into x.
    numeric, analytic : float
        The two derivative values.
    abs_error, rel_error : float
        ``|n - a|`` and ``|n - a| / max(|n|, |a|)``.
    tolerance : float
        What the error model allows for this entry.
    status : str
        'pass', 'fail' or 'inconclusive'.
    note : str
        Why the entry got its status.
    input : str
        Name of the input the entry belongs to when several were checked
        (``'W1'``, ``'input 2'``); '' for a single array.  ``index`` is then
        the index within that input.
    cotangent : int or None
        For :func:`gpucheck.check_vjp`: which random cotangent ``c`` the
        entry belongs to (the entry is a derivative of ``<c, f(x)>``).
    """

    index: tuple
    numeric: float
    analytic: float
    abs_error: float
    rel_error: float
    tolerance: float
    status: str
    note: str = ""
    input: str = ""
    cotangent: Optional[int] = None

    @property
    def label(self) -> str:
        """How reports name the entry: ``(3, 4)``, ``W1[3, 4]``, ``b1[2] (cotangent 1)``."""
        text = str(tuple(self.index))
        if self.input:
            text = self.input + (f"[{', '.join(str(i) for i in self.index)}]" if self.index else "")
        if self.cotangent is not None:
            text += f" (cotangent {self.cotangent})"
        return text

    def to_dict(self) -> dict:
        """JSON-safe dict."""
        return {"index": list(self.index), "numeric": _num(self.numeric),
                "analytic": _num(self.analytic), "abs_error": _num(self.abs_error),
                "rel_error": _num(self.rel_error), "tolerance": _num(self.tolerance),
                "status": self.status, "note": self.note, "input": self.input,
                "cotangent": self.cotangent, "label": self.label}


@dataclass(frozen=True)
class InputVerdict:
    """The verdict on one of several checked inputs.

    Attributes
    ----------
    name : str
        The input's name in reports (a dict key, or ``'input 2'``).
    shape : tuple of int
        Its shape.
    status : str
        'pass', 'fail' or 'inconclusive' over its entries alone.
    discrepancy : float
        The metric over its entries alone.
    entries, n_failed, n_inconclusive : int
        How many entries it has (times the cotangents, for a VJP check),
        fail, and are inconclusive.
    diagnosis : str
        The likely bug pattern in this input, when one fits.
    checked : int or None
        With ``mode='sample'``: how many of its entries were checked (status
        and discrepancy are over those; 'unchecked' when none was).  None
        when every entry was.
    scale : float or None
        The max|g| this input's entries were held to: its own, as far as its
        analytic values and the estimates that could fail an entry show it
        (None where the check did not judge inputs apart: ``rtol``/``atol``,
        the complex step, VJP checks).
    resolution : float or None
        The largest error bound at which an entry of this input may pass,
        ``GradCheckResult.resolution`` times ``scale``: a gradient a thousand
        times smaller than another input's is held to a share of itself, not
        of the other's.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> r = gpucheck.check_gradient(lambda w, b: float(np.sum(w * b)), (np.ones(2), np.ones(2)),
    ...                             (np.ones(2), -np.ones(2)))
    >>> [(v.name, v.status) for v in r.inputs]
    [('input 0', 'pass'), ('input 1', 'fail')]
    """

    name: str
    shape: tuple
    status: str
    discrepancy: float
    entries: int
    n_failed: int = 0
    n_inconclusive: int = 0
    diagnosis: str = ""
    checked: Optional[int] = None
    scale: Optional[float] = None
    resolution: Optional[float] = None

    def __str__(self) -> str:
        text = (f"{self.name:<12} {str(tuple(self.shape)):<12} {self.status.upper():<13}"
                f"discrepancy {self.discrepancy:.3e}")
        if self.resolution is not None:
            text += f", resolution {self.resolution:.2e} (max|g| {self.scale:.2e})"
        of = self.entries if self.checked is None else self.checked
        if self.n_failed:
            text += f", {self.n_failed}/{of} fail"
        if self.n_inconclusive:
            text += f", {self.n_inconclusive}/{of} inconclusive"
        if self.checked is not None:
            text += f", {self.checked:,} of {self.entries:,} checked"
        return text

    def to_dict(self) -> dict:
        """JSON-safe dict."""
        return {"name": self.name, "shape": list(self.shape), "status": self.status,
                "discrepancy": _num(self.discrepancy), "entries": self.entries,
                "n_failed": self.n_failed, "n_inconclusive": self.n_inconclusive,
                "diagnosis": self.diagnosis, "checked": self.checked,
                "scale": None if self.scale is None else _num(self.scale),
                "resolution": None if self.resolution is None else _num(self.resolution)}


@dataclass(frozen=True, repr=False)
class GradCheckResult:
    """The outcome of :func:`gpucheck.check_gradient`.

    Attributes
    ----------
    status : str
        'pass', 'fail' or 'inconclusive'.
    passed : bool
        ``status == 'pass'``.
    discrepancy : float
        ``||n - a|| / (||n|| + ||a||)`` (2-norms; 0 when both are 0).
    numeric, analytic : numpy.ndarray
        Numerical and analytic gradient, float64, x's shape.
    abs_error, rel_error : numpy.ndarray
        Per element ``|n - a|`` and ``|n - a| / max(|n|, |a|)``.
    tolerance : numpy.ndarray
        Per-element tolerance the verdict used.
    element_status : numpy.ndarray
        Per-element 'pass' / 'fail' / 'inconclusive' (a string array).
    worst : tuple of WorstEntry
        The entries with the largest error relative to their tolerance.
    eps : numpy.ndarray
        The nominal step used per element, x's shape.
    backend : str
        The backend that evaluated f.
    nfev : int
        Evaluations of f (perturbed copies), including the noise probes and
        any refinement.
    seconds : float
        Wall time of the check; ``compile_seconds`` of it went to compiling.
    scheme : str
        The finite-difference scheme.
    dtype : str
        x's dtype, the dtype f was evaluated in.
    noise : float
        Measured noise level of f at x (standard deviation).
    n_failed, n_inconclusive, n_kinks, n_refined : int
        Counts of entries.
    diagnosis : str
        The likely bug pattern when one fits, else ''.
    compile_seconds : float
        Part of ``seconds`` spent compiling kernels.
    inputs : tuple of InputVerdict
        When several inputs were checked: one verdict per input, in input
        order (the per-entry arrays are then flat over all inputs; cut them
        with :meth:`split`).  Empty for a single array.
    cotangents : int
        For :func:`gpucheck.check_vjp` and :func:`gpucheck.check_jvp`: the
        number of random cotangents; the per-entry arrays then carry them
        on a leading axis.  0 otherwise.
    resolution : float
        The largest error bound, as a share of max|g|, at which an entry may
        pass: an error larger than about 1.5 times this in one entry fails.
        With several inputs, a share of the max|g| of the entry's own input
        (``scales``, and ``inputs[k].resolution`` in absolute terms).
    nondeterministic : bool
        f returned different values for the same input.
    advice : str
        What the check could not decide, the steps it tried, and what to
        do; notes on a nondeterministic f.  Empty when there is nothing to say.
    n_joint_failed : int
        Entries failed by the joint test of kinks (each valid alone, not
        together).
    n_kink_decided, n_refined_decided : int
        Entries decided at a kink, and (other) entries decided only after
        refinement at other steps.
    reference : GradCheckResult or None
        With ``reference="float64"``: the same check with f evaluated on a
        float64 copy of x.
    mode : str
        Which check ran: 'full' (every entry), 'sample' (the entries in
        ``coverage``; the others have status 'unchecked' and NaN in the
        numeric arrays), 'project' (random directions, ``projection``; no
        entry is checked on its own) or 'sample+project'.
    mode_reason : str
        Why that mode: requested, or what ``mode='auto'`` measured.
    coverage : Coverage or None
        Which entries a sampled check checked, and how they were chosen.
        The counts (``n_failed``, ...) and ``discrepancy`` are over those.
    projection : Projection or None
        The projected check, and what its verdict does and does not prove.
    scales : tuple of float
        The max|g| the entries were held to, one per input (one for a single
        array): the analytic values' largest, raised where an estimate of
        the derivative stands clear of its bound above it.  Each input is
        judged at ``resolution`` times its own.  Empty where no error model
        was used (``rtol``/``atol``).
    partial : bool
        The check was interrupted (Ctrl-C) and this is what it had checked:
        entries it did not reach are 'unchecked' (NaN in the numeric
        arrays), entries it had not decided are 'inconclusive', and
        ``status`` is 'fail' if a checked entry failed, else 'inconclusive'
        (never 'pass').  ``advice`` says where it stood.
    n_checked : int or None
        With ``partial``: how many entries were checked (judged, whether
        or not decided).  None for a complete check.
    """

    status: str
    passed: bool
    discrepancy: float
    numeric: np.ndarray
    analytic: np.ndarray
    abs_error: np.ndarray
    rel_error: np.ndarray
    tolerance: np.ndarray
    element_status: np.ndarray
    worst: tuple
    eps: np.ndarray
    backend: str
    nfev: int
    seconds: float
    scheme: str = "central"
    dtype: str = "float64"
    noise: float = 0.0
    n_failed: int = 0
    n_inconclusive: int = 0
    n_kinks: int = 0
    n_refined: int = 0
    diagnosis: str = ""
    compile_seconds: float = 0.0
    inputs: tuple = ()
    cotangents: int = 0
    resolution: float = 0.0
    nondeterministic: bool = False
    advice: str = ""
    n_joint_failed: int = 0
    n_kink_decided: int = 0
    n_refined_decided: int = 0
    reference: Optional["GradCheckResult"] = None
    mode: str = "full"
    mode_reason: str = ""
    coverage: Optional["Coverage"] = None
    projection: Optional["Projection"] = None
    scales: tuple = ()
    partial: bool = False
    n_checked: Optional[int] = None

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return (f"GradCheckResult(status={self.status!r}, discrepancy={self.discrepancy:.3e}, "
                f"n={self.numeric.size}, failed={self.n_failed}, backend={self.backend!r})")

    def summary(self) -> str:
        """One line: the verdict and the headline numbers."""
        if self.partial:
            return self._partial_summary()
        if self.mode == "project":
            return f"{self.status.upper()}: {self.projection.summary()}"
        n = self.numeric.size
        agree = f"{n - self.n_failed - self.n_inconclusive}/{n} entries agree"
        if self.coverage is not None:
            n = self.coverage.checked
            agree = (f"{n - self.n_failed - self.n_inconclusive}/{n} sampled entries agree "
                     f"(of {self.coverage.total:,})")
        parts = [f"{self.status.upper()}: {agree}"]
        decided_by = []
        if self.n_kink_decided:
            decided_by.append(f"{self.n_kink_decided} at kinks")
        if self.n_refined_decided:
            decided_by.append(f"{self.n_refined_decided} after refinement at other steps")
        if decided_by:
            parts[0] += f" ({', '.join(decided_by)})"
        if self.n_failed:
            parts.append(f"{self.n_failed} fail"
                         + (f" ({self.n_joint_failed} jointly at a kink)" if self.n_joint_failed else ""))
        if self.n_inconclusive:
            parts.append(f"{self.n_inconclusive} inconclusive")
        if self.nondeterministic:
            parts.append("f is not deterministic")
        parts.append(f"discrepancy {self.discrepancy:.3e}")
        line = ", ".join(parts)
        if self.projection is not None:
            line += f"; projected: {self.projection.status.upper()}, {self.projection.summary()}"
        if self.reference is not None:
            line += f"; float64 reference: {self.reference.status.upper()}"
        return line

    def _partial_summary(self) -> str:
        total = self.numeric.size if self.coverage is None else self.coverage.checked
        what = "entries" if self.coverage is None else "sampled entries"
        k = int(self.n_checked or 0)
        line = (f"PARTIAL ({self.status.upper()}): interrupted after {k:,} of {total:,} {what} "
                f"were checked")
        if k:
            parts = [f"{k - self.n_failed - self.n_inconclusive} agree"]
            if self.n_failed:
                parts.append(f"{self.n_failed} fail")
            if self.n_inconclusive:
                parts.append(f"{self.n_inconclusive} inconclusive")
            parts.append(f"discrepancy over those {self.discrepancy:.3e}")
            line += ": " + ", ".join(parts)
        return line

    def interpretation(self) -> str:
        """With a float64 reference: which of formula and implementation is at fault.

        Empty without a reference.

        Examples
        --------
        >>> import numpy as np, gpucheck
        >>> x = np.linspace(-1, 1, 4).astype(np.float16)
        >>> f = gpucheck.batched(lambda xs: (xs * xs).sum(axis=1))
        >>> r = gpucheck.check_gradient(f, x, -2 * x.astype(float), reference="float64")
        >>> r.interpretation()
        'the gradient formula is wrong: it fails against f evaluated in float64 too'
        """
        if self.reference is None:
            return ""
        ref, low = self.reference.status, self.status
        if ref == "fail":
            return ("the gradient formula is wrong: it fails against f evaluated in float64 too")
        if ref == "inconclusive":
            return "even in float64 the numerics cannot decide; see the reference's advice"
        if low == "pass":
            return f"the gradient formula is right, and the {self.dtype} implementation agrees with it"
        if low == "fail":
            return (f"the gradient formula is right (float64 reference passes), but f evaluated in "
                    f"{self.dtype} departs from it beyond its rounding noise: the low-precision "
                    f"implementation is inaccurate")
        return (f"the gradient formula is right (float64 reference passes); in {self.dtype} f is too "
                f"noisy to confirm it at this resolution")

    def __str__(self) -> str:
        n = self.numeric.size
        lines = [
            f"gradient check: {self.status.upper()}"
            + (" (PARTIAL: interrupted, not every entry checked)" if self.partial else ""),
            f"  {self.summary()}",
            f"  x: {self._point_text()}, {self.dtype}; scheme {self.scheme}, step {_span(self.eps)}",
            f"  noise of f: {self.noise:.2e}; kinks: {self.n_kinks}; refined: {self.n_refined}",
            f"  backend {self.backend}: {self.nfev} evaluations in {self.seconds:.3f} s"
            + (f" ({self.compile_seconds:.3f} s compiling)" if self.compile_seconds else ""),
        ]
        if self.mode != "full":
            lines.append(_wrap(f"  mode: {self.mode}" + (f" ({self.mode_reason})" if self.mode_reason
                                                        else ""), indent="    "))
        if self.coverage is not None:
            lines.append(_wrap(f"  sampled: {self.coverage}", indent="    "))
        if self.projection is not None:
            lines.append(self.projection.text(summary=self.mode != "project"))
        if self.inputs:
            lines.append("  per input:")
            lines.extend(f"    {v}" for v in self.inputs)
        if self.worst:
            wide = max([14] + [len(w.label) for w in self.worst])
            lines.append("  worst entries (error / tolerance):")
            lines.append(f"    {'index':<{wide}} {'numeric':>14} {'analytic':>14} {'abs err':>10} "
                         f"{'tol':>10} {'ratio':>8}  status")
            for w in self.worst:
                ratio = w.abs_error / w.tolerance if w.tolerance > 0 else np.inf
                lines.append(f"    {w.label:<{wide}} {_fmt(w.numeric):>14} {_fmt(w.analytic):>14} "
                             f"{w.abs_error:10.2e} {w.tolerance:10.2e} {ratio:8.2f}  {w.status}"
                             + (f" ({w.note})" if w.note else ""))
        if self.diagnosis:
            lines.append(f"  likely cause: {self.diagnosis}")
        if self.resolution and self.mode != "project":
            which = "no entry" if self.coverage is None else "no sampled entry"
            which = "no checked entry" if self.partial else which
            of = "of the max|g| of its own input (per input above)" if self.inputs else "of max|g|"
            lines.append(_wrap(f"  resolution: a pass means {which} is off by more than about "
                               f"{1.5 * self.resolution:.1%} {of}", indent="    "))
        if self.advice:
            lines.append(_wrap("  note: " + self.advice, indent="    "))
        if self.reference is not None:
            lines.append(f"  float64 reference: {self.reference.summary()}")
            lines.append(_wrap("  => " + self.interpretation(), indent="     "))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-safe dict (arrays as nested lists; NaN as null, infinities clipped)."""
        def arr(a):
            # NaN -> null (JSON has no NaN); infinities clipped to +-1e308
            a = np.asarray(a, dtype=np.float64)
            out = np.clip(a, -1e308, 1e308).astype(object)
            out[np.isnan(a)] = None
            return out.tolist()

        return {
            "status": self.status, "passed": self.passed,
            "discrepancy": _num(self.discrepancy),
            "numeric": arr(self.numeric), "analytic": arr(self.analytic),
            "abs_error": arr(self.abs_error), "rel_error": arr(self.rel_error),
            "tolerance": arr(self.tolerance),
            "element_status": np.asarray(self.element_status).tolist(),
            "worst": [w.to_dict() for w in self.worst],
            "eps": arr(self.eps), "backend": self.backend, "nfev": int(self.nfev),
            "seconds": float(self.seconds), "compile_seconds": float(self.compile_seconds),
            "scheme": self.scheme, "dtype": self.dtype, "noise": _num(self.noise),
            "n_failed": self.n_failed, "n_inconclusive": self.n_inconclusive,
            "n_kinks": self.n_kinks, "n_refined": self.n_refined, "diagnosis": self.diagnosis,
            "inputs": [v.to_dict() for v in self.inputs], "cotangents": self.cotangents,
            "resolution": float(self.resolution), "nondeterministic": self.nondeterministic,
            "advice": self.advice, "n_joint_failed": self.n_joint_failed,
            "n_kink_decided": self.n_kink_decided, "n_refined_decided": self.n_refined_decided,
            "reference": None if self.reference is None else self.reference.to_dict(),
            "interpretation": self.interpretation(),
            "mode": self.mode, "mode_reason": self.mode_reason,
            "coverage": None if self.coverage is None else self.coverage.to_dict(),
            "projection": None if self.projection is None else self.projection.to_dict(),
            "scales": [_num(v) for v in self.scales],
            "partial": self.partial, "n_checked": self.n_checked,
        }

    def _point_text(self) -> str:
        n = self.numeric.size // max(1, self.cotangents)
        if self.inputs:
            names = ", ".join(v.name for v in self.inputs)
            text = f"{len(self.inputs)} inputs ({names}), {n} entries"
        else:
            text = f"{n} entries, shape {tuple(self.numeric.shape)[1 if self.cotangents else 0:]}"
        if self.cotangents:
            text += f"; <c, f(x)> for {self.cotangents} random cotangents c"
        return text

    def split(self, values="numeric") -> dict:
        """A per-entry array cut into the checked inputs: ``{name: array}``.

        Parameters
        ----------
        values : str or array_like
            The name of a per-entry field (``'numeric'``, ``'analytic'``,
            ``'abs_error'``, ``'tolerance'``, ``'element_status'``, ...) or
            an array of that shape.

        Returns
        -------
        dict
            Input name to that input's part, in its own shape (after a
            leading cotangent axis for a VJP check).  A single array comes
            back whole under the name ``'x'``.

        Examples
        --------
        >>> import numpy as np, gpucheck
        >>> W, b = np.ones((2, 3)), np.ones(3)
        >>> r = gpucheck.check_gradient(lambda p: np.sum(p["W"] @ p["b"]), {"W": W, "b": b},
        ...                             {"W": np.ones((2, 3)), "b": 2 * np.ones(3)})
        >>> {k: v.shape for k, v in r.split("numeric").items()}
        {'W': (2, 3), 'b': (3,)}
        """
        arr = np.asarray(getattr(self, values) if isinstance(values, str) else values)
        if not self.inputs:
            return {"x": arr}
        head = arr.shape[:1] if self.cotangents else ()
        flat = arr.reshape(head + (-1,))
        out, start = {}, 0
        for v in self.inputs:
            size = int(np.prod(v.shape, dtype=np.int64))
            out[v.name] = flat[..., start:start + size].reshape(head + tuple(v.shape))
            start += size
        return out

    def summary_dict(self) -> dict:
        """:meth:`to_dict` without the per-entry arrays: small whatever the size of x."""
        empty = np.zeros(0)
        light = dataclasses.replace(self, **{k: empty for k in _ENTRY_ARRAYS})
        d = light.to_dict()
        for k in _ENTRY_ARRAYS:
            d.pop(k, None)
        d["entries"] = int(self.numeric.size)
        if self.reference is not None:
            d["reference"] = self.reference.summary_dict()
        return d


#: The per-entry array fields of :class:`GradCheckResult`.
_ENTRY_ARRAYS = ("numeric", "analytic", "abs_error", "rel_error", "tolerance", "element_status", "eps")


def _span(eps: np.ndarray) -> str:
    eps = np.asarray(eps, dtype=np.float64)
    if np.isnan(eps).any():  # entries a sampled or projected check did not step
        eps = eps[~np.isnan(eps)]
        if eps.size == 0:
            return "n/a (no entry stepped on its own)"
    lo, hi = float(np.min(eps)), float(np.max(eps))
    return f"{lo:.2e}" if lo == hi else f"{lo:.2e}..{hi:.2e}"


@dataclass(frozen=True, repr=False)
class SweepResult:
    """The outcome of :func:`gpucheck.sweep`: the check across step sizes.

    Attributes
    ----------
    eps : numpy.ndarray
        Relative steps (the step of element i is ``eps * max(1, |x_i|)``).
    discrepancy : numpy.ndarray
        The metric at each step.
    predicted_rounding, predicted_truncation : numpy.ndarray
        The error model's two parts at each step, in the metric's units.
    best_eps : float
        The step with the smallest discrepancy.
    regime : str
        'roundoff', 'truncation', 'balanced' or 'bug'.
    explanation : str
        A few plain sentences: which regime, why, what step to use, and
        whether what is left is noise or a bug.
    noise : float
        Measured noise of f at x.
    dtype, backend : str
    nfev : int
    seconds : float
    """

    eps: np.ndarray
    discrepancy: np.ndarray
    predicted_rounding: np.ndarray
    predicted_truncation: np.ndarray
    best_eps: float
    regime: str
    explanation: str
    noise: float
    dtype: str
    backend: str
    nfev: int
    seconds: float
    max_abs_error: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __repr__(self) -> str:
        return f"SweepResult(regime={self.regime!r}, best_eps={self.best_eps:.1e}, steps={self.eps.size})"

    def table(self) -> str:
        """The step table as text."""
        rows = [f"  {'eps':>8}  {'discrepancy':>12}  {'disc*eps':>10}  {'rounding':>10}  {'truncation':>10}"]
        for e, d, r, t in zip(self.eps, self.discrepancy, self.predicted_rounding,
                              self.predicted_truncation):
            mark = "  <- best" if e == self.best_eps else ""
            rows.append(f"  {e:8.0e}  {d:12.3e}  {d * e:10.2e}  {r:10.2e}  {t:10.2e}{mark}")
        return "\n".join(rows)

    def __str__(self) -> str:
        return "\n".join([
            f"epsilon sweep ({self.dtype}, backend {self.backend}, {self.nfev} evaluations, "
            f"{self.seconds:.2f} s): regime {self.regime.upper()}",
            self.table(),
            "",
            _wrap(self.explanation),
        ])

    def to_dict(self) -> dict:
        """JSON-safe dict."""
        return {
            "eps": self.eps.tolist(), "discrepancy": [_num(d) for d in self.discrepancy],
            "predicted_rounding": [_num(d) for d in self.predicted_rounding],
            "predicted_truncation": [_num(d) for d in self.predicted_truncation],
            "best_eps": float(self.best_eps), "regime": self.regime,
            "explanation": self.explanation, "noise": _num(self.noise), "dtype": self.dtype,
            "backend": self.backend, "nfev": int(self.nfev), "seconds": float(self.seconds),
        }

    def plot(self, path, *, title: str | None = None):
        """Write a log-log picture of error against step (PNG); needs the ``plot`` extra."""
        from .plot import plot_sweep

        return plot_sweep(self, path, title=title)


@dataclass(frozen=True)
class Coverage:
    """Which entries a sampled check (``mode='sample'``) checked, and how they were chosen.

    Attributes
    ----------
    checked : int
        Entries checked (the union of the three choices below).
    total : int
        Entries of x.
    random : int
        Entries drawn uniformly at random (with ``seed``).
    largest : int
        Entries with the largest |analytic| values, of each input when
        there are several (which also make the resolution, a share of
        max|g| of each input, the same as a full check's).
    named : int
        Entries named with ``indices=``.
    seed : int
        The seed of the random draw.

    Examples
    --------
    >>> c = Coverage(checked=300, total=10**6, random=200, largest=100, named=0, seed=0)
    >>> round(c.detectable(), 4)
    0.0149
    """

    checked: int
    total: int
    random: int
    largest: int
    named: int
    seed: int

    @property
    def fraction(self) -> float:
        """Share of the entries checked."""
        return self.checked / self.total if self.total else 1.0

    def detectable(self, confidence: float = 0.95) -> float:
        """The share of wrong entries the random draw finds with probability ``confidence``.

        If a share p of all entries is wrong, ``random`` entries drawn
        without replacement all miss them with probability at most
        ``(1 - p) ** random``.
        """
        if self.checked >= self.total:
            return 0.0
        if self.random == 0:
            return 1.0
        return float(1.0 - (1.0 - confidence) ** (1.0 / self.random))

    def __str__(self) -> str:
        if self.checked >= self.total:
            return f"all {self.total:,} entries"
        text = (f"{self.checked:,} of {self.total:,} entries ({self.fraction:.3%}): "
                f"{self.random:,} at random (seed {self.seed}), {self.largest:,} with the largest "
                f"|analytic|, {self.named:,} named")
        if self.random:
            text += (f"; wrong entries making up {self.detectable():.2%} of x or more are among "
                     f"the random ones with probability >= 95%")
        return text

    def to_dict(self) -> dict:
        """JSON-safe dict."""
        return {"checked": self.checked, "total": self.total, "fraction": self.fraction,
                "random": self.random, "largest": self.largest, "named": self.named,
                "seed": self.seed, "detectable_95": self.detectable()}


#: For a Rademacher v and any error e, ``<e, v>`` has mean square
#: ``||e * s||**2`` and fourth moment at most three times its square, so by
#: the Paley-Zygmund inequality ``|<e, v>| >= ||e * s|| / 2`` with
#: probability at least (1 - 1/4)**2 / 3 = 3/16.
MISS_PER_DIRECTION = 13.0 / 16.0


@dataclass(frozen=True, repr=False)
class Projection:
    """The projected check (``mode='project'``): f along random directions against ``<g, v>``.

    ``check`` is the full verdict applied to ``F(t) = f(x + sum_k t_k v_k)``
    at t = 0, whose gradient is ``(<g, v_k>)_k``: its entries are the
    directions.  Directions are scaled per entry like the steps,
    ``v_ki = +-s_i`` with ``s_i = max(1, |x_i|)`` (on all entries for a
    Rademacher direction, on ``sparse_entries`` of them for a sparse one).

    Attributes
    ----------
    check : GradCheckResult
        The check over the directions (``check.numeric[k]`` is f's slope
        along direction k, ``check.analytic[k]`` is ``<g, v_k>``).
    kinds : tuple of str
        'rademacher' or 'sparse' per direction.
    sparse_entries : int
        Entries per sparse direction.
    seed : int
        The seed the directions were drawn with.
    scaled_norm : float
        ``||g * s||``, the root-mean-square of ``<g, v>`` over Rademacher v.
    backend : str
        Where f was evaluated at the full points.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> x = np.linspace(-1, 1, 1000)
    >>> p = gpucheck.check_gradient(lambda v: float(np.sum(v ** 3)), x, 3 * x ** 2,
    ...                             mode="project", directions=8).projection
    >>> p.status, p.rademacher, p.sparse, round(p.miss_probability, 3)
    ('pass', 6, 2, 0.288)
    """

    check: GradCheckResult
    kinds: tuple
    sparse_entries: int
    seed: int
    scaled_norm: float
    backend: str

    @property
    def status(self) -> str:
        """The verdict over the directions."""
        return self.check.status

    @property
    def directions(self) -> int:
        """How many directions."""
        return len(self.kinds)

    @property
    def rademacher(self) -> int:
        """How many Rademacher directions."""
        return sum(k == "rademacher" for k in self.kinds)

    @property
    def sparse(self) -> int:
        """How many sparse directions."""
        return self.directions - self.rademacher

    @property
    def bound(self) -> float:
        """The largest tolerance over the Rademacher directions (NaN without one)."""
        tol = np.asarray(self.check.tolerance, dtype=np.float64).reshape(-1)
        dense = tol[np.asarray(self.kinds) == "rademacher"]
        dense = dense[np.isfinite(dense)]
        return float(np.max(dense)) if dense.size else float("nan")

    @property
    def relative_bound(self) -> float:
        """:attr:`bound` as a share of :attr:`scaled_norm`."""
        return self.bound / self.scaled_norm if self.scaled_norm > 0 else float("nan")

    @property
    def miss_probability(self) -> float:
        """Chance that an error with ``||e * s|| >= 2 * bound`` passes every Rademacher direction."""
        return MISS_PER_DIRECTION ** self.rademacher

    @property
    def orthogonal_probability(self) -> float:
        """Chance that a nonzero error is orthogonal to every Rademacher direction (at most)."""
        return 0.5 ** self.rademacher

    def summary(self) -> str:
        """One line: how many directions agree."""
        c = self.check
        r = self.directions
        text = (f"{r - c.n_failed - c.n_inconclusive}/{r} random directions agree "
                f"({self.rademacher} Rademacher, {self.sparse} sparse of {self.sparse_entries:,} "
                f"entries)")
        if c.n_failed:
            text += f", {c.n_failed} fail"
        if c.n_inconclusive:
            text += f", {c.n_inconclusive} inconclusive"
        return text

    def guarantee(self) -> str:
        """What a pass does and does not prove, with this check's numbers."""
        r = self.rademacher
        text = (f"A pass means f's slope along each of the {self.directions} directions drawn "
                f"(seed {self.seed}) agrees with <g, v> within its tolerance; it does not show "
                f"that every entry is right.")
        if r and np.isfinite(self.bound):
            text += (f" An error e of the gradient with ||e*s|| >= {2 * self.bound:.2e} "
                     f"({200 * self.relative_bound:.2g}% of ||g*s||, s_i = max(1, |x_i|)) passes all "
                     f"{r} Rademacher directions with probability <= (13/16)^{r} = "
                     f"{self.miss_probability:.1e}; a nonzero error is orthogonal to all of them "
                     f"with probability <= 2^-{r} = {self.orthogonal_probability:.1e}. One wrong "
                     f"entry i shows in every Rademacher direction as |e_i| s_i, and fails them "
                     f"when that exceeds {self.bound:.2e}.")
        if self.sparse:
            text += (f" A failing sparse direction points at its {self.sparse_entries:,} entries.")
        return text

    def __str__(self) -> str:
        return self.text()

    def text(self, summary: bool = True) -> str:
        """The report's lines; ``summary=False`` leaves out the count of directions that agree."""
        head = f"  projected: {self.status.upper()}" + (f", {self.summary()}" if summary else "")
        lines = [_wrap(f"{head}; f evaluated at full points on {self.backend}, {self.check.nfev} "
                       f"evaluations in {self.check.seconds:.3f} s", indent="    "),
                 _wrap("    " + self.guarantee(), indent="    ")]
        shown = [w for w in self.check.worst if w.status != "pass"] or list(self.check.worst[:1])
        for w in shown[:5]:
            k = int(w.index[0]) if w.index else 0
            lines.append(f"    direction {k} ({self.kinds[k]}): slope {_fmt(w.numeric).strip()}, "
                         f"<g, v> {_fmt(w.analytic).strip()}, error {w.abs_error:.2e}, tolerance "
                         f"{w.tolerance:.2e}: {w.status}" + (f" ({w.note})" if w.note else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-safe dict: the verdict, the guarantees, and the per-direction values."""
        c = self.check
        return {"status": self.status, "directions": self.directions,
                "rademacher": self.rademacher, "sparse": self.sparse,
                "sparse_entries": self.sparse_entries, "seed": self.seed,
                "n_failed": c.n_failed, "n_inconclusive": c.n_inconclusive,
                "scaled_norm": _num(self.scaled_norm), "bound": _num(self.bound),
                "relative_bound": _num(self.relative_bound),
                "miss_probability": _num(self.miss_probability),
                "orthogonal_probability": _num(self.orthogonal_probability),
                "guarantee": self.guarantee(), "backend": self.backend, "nfev": int(c.nfev),
                "seconds": float(c.seconds), "noise": _num(c.noise), "advice": c.advice,
                "kinds": list(self.kinds),
                "slope": [_num(v) for v in np.ravel(c.numeric)],
                "analytic": [_num(v) for v in np.ravel(c.analytic)],
                "tolerance": [_num(v) for v in np.ravel(c.tolerance)],
                "status_per_direction": np.ravel(c.element_status).tolist(),
                "reference": None if c.reference is None else c.reference.status}


def _wrap(text: str, width: int = 88, indent: str = "") -> str:
    import textwrap

    return "\n".join(textwrap.fill(p, width, subsequent_indent=indent) for p in text.split("\n"))
