"""Numbers to verdict: the error model, the tolerance, kinks, the status.

The error a central difference carries is rounding plus truncation:

* rounding, ``sigma * sum|w|``: sigma is f's measured noise (:mod:`noise`),
  the weights are those of the stencil actually evaluated;
* truncation, ``C h**p``: unknown a priori; for the entries whose difference
  is not already explained by rounding we evaluate the stencil again at 2h
  and read it off by Richardson, ``T = |D(2h) - D(h)| / (2**p - 1)``.  Where
  T rather than rounding then sets the tolerance, the engine judges those
  entries once more at the step that balances the two.

An entry passes when ``|numeric - analytic|`` is within ``KAPPA`` times that
error, plus a floor for the analytic side's own rounding.  Entries where the
slopes left and right of x disagree the way a kink makes them (relu at 0,
abs, max) pass when the analytic value lies between the two one-sided
slopes: a valid subgradient.  An entry is inconclusive when the error the
numerics carry is too large for agreement to mean anything, or f is not
finite near x.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["KAPPA", "PASS", "FAIL", "INCONCLUSIVE", "STATUS_NAMES", "Judgement",
           "analytic_floor", "first_pass", "refine", "overall"]

#: Safety factor on the estimated error.  Rounding errors of a difference of
#: two sums are not Gaussian and sigma is itself estimated from a few
#: points.  Over 5,600 correct checks of seven layers in both dtypes the
#: largest ratio of actual error to this tolerance was about 1 (0.82 for
#: first-pass entries), so 8 leaves room without hiding 5% bugs.
KAPPA = 8.0
#: An entry whose tolerance exceeds this fraction of its own magnitude (and
#: of ``SCALE_FRACTION`` of the largest gradient entry) cannot be judged.
INFORMATIVE = 0.5
#: Allowance on the Richardson estimate of truncation error, which is itself
#: only first-order accurate in h.
TRUNCATION_SAFETY = 2.0
SCALE_FRACTION = 1e-2

PASS, FAIL, INCONCLUSIVE = 0, 1, 2
STATUS_NAMES = ("pass", "fail", "inconclusive")

# why an entry got its status
R_ROUNDING, R_TRUNCATION, R_KINK, R_NOISE, R_NONFINITE, R_MISMATCH = range(6)
REASONS = ("within rounding error", "within rounding and truncation error",
           "kink: analytic value is a valid subgradient", "numerical error too large to judge",
           "f is not finite near x", "mismatch")


@dataclass(frozen=True)
class Judgement:
    """Per-element verdict arrays (flat, float64 unless stated)."""

    status: np.ndarray        # uint8: PASS / FAIL / INCONCLUSIVE
    reason: np.ndarray        # uint8: index into REASONS
    tolerance: np.ndarray
    truncation: np.ndarray    # Richardson estimate, 0 where not refined
    kink: np.ndarray          # bool
    refined: np.ndarray       # bool


def analytic_floor(a: np.ndarray, u: float, scale: float | None = None) -> np.ndarray:
    """Allowance for the rounding in the analytic gradient itself.

    ``scale`` is the largest |analytic| entry of the whole gradient; give it
    when ``a`` is a subset of the entries.
    """
    if scale is None:
        scale = float(np.max(np.abs(a))) if a.size else 0.0
    return u * (16.0 * np.abs(a) + 4.0 * scale)


def first_pass(a: np.ndarray, n: np.ndarray, gain: np.ndarray, sigma: float, u: float):
    """Stage one: is each entry's difference explained by rounding alone?

    Returns
    -------
    tol : numpy.ndarray
        The rounding tolerance per entry.
    ok : numpy.ndarray of bool
        Entries that agree within it.
    """
    tol = KAPPA * sigma * gain + analytic_floor(a, u)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(n) & (np.abs(n - a) <= tol)
    return tol, ok


def kink_slopes(f_nodes: dict, offsets: dict):
    """Interval slopes over [-2,-1], [-1,0], [0,1], [1,2] (in steps)."""
    order = (-2, -1, 0, 1, 2)
    s = []
    for lo, hi in zip(order[:-1], order[1:]):
        s.append((f_nodes[hi] - f_nodes[lo]) / (offsets[hi] - offsets[lo]))
    return s


def refine(a, d1, d2, gain1, gain2, order, sigma, u, a_scale, f_nodes, offsets):
    """Stage two for the flagged entries: truncation and kinks.

    Parameters
    ----------
    a, d1, d2 : numpy.ndarray
        Analytic values and numerical derivatives at steps h and 2h.
    gain1, gain2 : numpy.ndarray
        Rounding gains ``sum|w|`` of the two stencils.
    order : int
        Truncation order p of the scheme.
    sigma, u : float
        Noise of f and unit roundoff of the dtype.
    a_scale : float
        Largest |analytic| over all entries (for the analytic floor).
    f_nodes, offsets : dict
        f and offset at multipliers -2, -1, 0, 1, 2 of the step.

    Returns
    -------
    status, reason, tol, trunc, kink : numpy.ndarray
    """
    floor = analytic_floor(a, u, a_scale)
    r = 2.0 ** order - 1.0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        trunc = np.abs(d2 - d1) / r
        tol = KAPPA * sigma * gain1 + TRUNCATION_SAFETY * trunc + floor
        agree = np.abs(a - d1) <= tol

        s1, s2, s3, s4 = kink_slopes(f_nodes, offsets)
        dd = np.stack([s2 - s1, s3 - s2, s4 - s3])
        spread = dd.max(axis=0) - dd.min(axis=0)
        h = offsets[1] - offsets[0]
        slope_noise = 4.0 * sigma / np.abs(h)
        pattern = (spread > KAPPA * slope_noise) & (spread > 0.5 * np.abs(dd).max(axis=0))
        # a smooth explanation that is precise enough wins; a kink is looked
        # for where smoothness explains nothing or only with a vague tolerance
        own = np.maximum(np.abs(a), np.abs(d1))
        precise = agree & ((tol <= INFORMATIVE * own) | (tol <= SCALE_FRACTION * a_scale))
        kink = pattern & ~precise
        lo = np.minimum(s1, s4)
        hi = np.maximum(s1, s4)
        tol_k = KAPPA * 2.0 * sigma / np.abs(h) + floor
        sub_ok = (a >= lo - tol_k) & (a <= hi + tol_k)

    status = np.where(agree, PASS, FAIL).astype(np.uint8)
    reason = np.where(agree, R_TRUNCATION, R_MISMATCH).astype(np.uint8)
    status[kink] = np.where(sub_ok[kink], PASS, FAIL)
    reason[kink] = np.where(sub_ok[kink], R_KINK, R_MISMATCH)
    # for a kink, the largest |analytic - central difference| the subgradient
    # rule accepts: the far end of the widened interval, seen from d1
    tol_kink = np.maximum(np.abs(d1 - lo), np.abs(d1 - hi)) + tol_k
    tol = np.where(kink, tol_kink, tol)
    nonfinite = ~(np.isfinite(d1) & np.isfinite(d2))
    status[nonfinite] = INCONCLUSIVE
    reason[nonfinite] = R_NONFINITE
    return status, reason, tol, np.where(np.isfinite(trunc), trunc, np.inf), kink


def mark_uninformative(status, reason, tol, a, n):
    """Passing entries whose tolerance is too wide for agreement to mean anything.

    An entry is informative when its tolerance is below ``INFORMATIVE`` of
    its own magnitude, or below ``SCALE_FRACTION`` of the largest gradient
    entry (small entries beside large ones are judged against the scale).
    """
    finite_n = np.where(np.isfinite(n), np.abs(n), 0.0)
    scale = max(float(np.max(np.abs(a))) if a.size else 0.0, float(np.max(finite_n)))
    own = np.maximum(np.abs(a), finite_n)
    vague = (status == PASS) & (reason != R_KINK) & (tol > INFORMATIVE * own) \
        & (tol > SCALE_FRACTION * scale)
    if scale == 0.0:
        vague[:] = False  # an all-zero gradient that matches zero is a real answer
    status = status.copy()
    reason = reason.copy()
    status[vague] = INCONCLUSIVE
    reason[vague] = R_NOISE
    return status, reason


def overall(status: np.ndarray) -> str:
    """'fail' if any entry fails, else 'inconclusive' if any is, else 'pass'."""
    if np.any(status == FAIL):
        return "fail"
    if np.any(status == INCONCLUSIVE):
        return "inconclusive"
    return "pass"
