"""Numbers to verdict: the error model, the tolerance, kinks, the status.

The error a central difference carries is rounding plus truncation:

* rounding, ``sigma * sum|w|``: sigma is f's noise along the entry's own
  coordinate (:mod:`noise`), never below what f's output precision implies;
  the weights are those of the stencil actually evaluated;
* truncation, ``C h**p``: read off by Richardson from the stencil at h and
  2h, ``T = |D(2h) - D(h)| / (2**p - 1)``.

An entry's error bound is ``KAPPA`` times the rounding plus
``TRUNCATION_SAFETY`` times the truncation, plus a floor for the analytic
side's own rounding.  The verdict per entry:

* **fail** when the difference exceeds the bound, the bound uses the noise
  measured along that coordinate, and truncation does not dominate it (a
  bound dominated by a first-order estimate of truncation is only trusted
  to pass, never to fail: the entry is judged again at a smaller step);
* **pass** when the difference is within the bound *and* the bound is
  below ``resolution`` times the gradient's scale, so that a pass means
  "no error larger than that": a bound too wide to catch a 1% bug is no pass;
* otherwise the step moves (up when rounding dominates, down when
  truncation does) to where the model predicts the smallest bound, and the
  entry is judged again; **inconclusive** when no step tried decides.

A kink (relu or abs at 0, a tie in max) shows as one-sided slopes that
differ by an amount that does not shrink with the step.  There the analytic
value must lie between the one-sided slopes (a valid subgradient), and the
engine also tests kink coordinates jointly along directions that combine
them (:func:`joint_violation`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["KAPPA", "TRUNCATION_SAFETY", "PASS", "FAIL", "INCONCLUSIVE", "STATUS_NAMES",
           "REASONS", "resolution", "analytic_floor", "first_pass", "bound", "kinks",
           "non_asymptotic", "next_step", "MAX_GROWTH", "joint_violation", "overall"]

#: Safety factor on the estimated rounding error.  Rounding errors of a
#: difference of two sums are not Gaussian and sigma is itself estimated
#: from a few points.
KAPPA = 8.0
#: Allowance on the Richardson estimate of truncation error, which is itself
#: only first-order accurate in h.
TRUNCATION_SAFETY = 2.0
#: One-sided slopes whose difference changes by less than this share
#: between steps h and 2h mark a kink (smooth f: the difference doubles).
KINK_CONSTANCY = 0.25

PASS, FAIL, INCONCLUSIVE = 0, 1, 2
STATUS_NAMES = ("pass", "fail", "inconclusive")

# why an entry got its status
(R_ROUNDING, R_TRUNCATION, R_KINK, R_NOISE, R_NONFINITE, R_MISMATCH, R_JOINT,
 R_ANALYTIC, R_TRUNC_ONLY, R_ERRATIC, R_ONE_SIDED) = range(11)
REASONS = ("within rounding error", "within rounding and truncation error",
           "kink: analytic value is a valid subgradient",
           "numerical error too large to judge at any step tried",
           "f is not finite near x", "mismatch",
           "kink: not a subgradient jointly with the other entries at this kink",
           "analytic value is not finite",
           "mismatch only where truncation error dominates; no smaller step decided",
           "f changes erratically on the scale of the step (aliasing, or f is not deterministic)",
           "within the error of a one-sided difference (f changes regime nearby on the other side)")


def resolution(dtype_u: float) -> float:
    """The largest bound, as a share of max|g|, at which an entry may pass.

    0.3% for float32 and float64, so that a single entry 0.5% of max|g| off
    fails; 16 units of rounding for 11- and 8-bit mantissas (0.8% for
    float16, 6% for bfloat16), whose rounding allows no better.

    Examples
    --------
    >>> resolution(2.0 ** -53), resolution(2.0 ** -24)
    (0.003, 0.003)
    >>> resolution(2.0 ** -11), resolution(2.0 ** -8)
    (0.0078125, 0.0625)
    """
    return max(0.003, 16.0 * dtype_u)


def analytic_floor(a: np.ndarray, u: float, scale: float | None = None) -> np.ndarray:
    """Allowance for the rounding in the analytic gradient itself.

    ``scale`` is the largest |analytic| entry of the whole gradient; give it
    when ``a`` is a subset of the entries.
    """
    if scale is None:
        scale = float(np.max(np.abs(a))) if a.size else 0.0
    out = np.abs(a)
    if np.ndim(out) == 0:
        return u * (16.0 * out + 4.0 * scale)
    # in place, in the order of u * (16 |a| + 4 scale)
    np.multiply(out, 16.0, out=out)
    np.add(out, 4.0 * scale, out=out)
    return np.multiply(out, u, out=out)


def first_pass(a: np.ndarray, n: np.ndarray, gain: np.ndarray, sigma, u: float):
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


def bound(d1, d2, gain1, gain2, order, sigma, floor):
    """Error bound of D(h) from the stencil at h and 2h.

    Returns
    -------
    tol, rounding, truncation : numpy.ndarray
        ``tol = KAPPA * rounding + TRUNCATION_SAFETY * truncation + floor``.
        ``truncation`` is the Richardson estimate, infinite where D is not
        finite.

    Examples
    --------
    >>> tol, rnd, tr = bound(np.array([1.0]), np.array([1.3]), np.array([1e3]),
    ...                      np.array([5e2]), 2, 1e-9, 0.0)
    >>> round(float(tr[0]), 12), round(float(tol[0]), 12)
    (0.1, 0.200008)
    """
    r = 2.0 ** order - 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        trunc = np.abs(d2 - d1) / r
    trunc = np.where(np.isfinite(trunc), trunc, np.inf)
    rounding = sigma * gain1
    return KAPPA * rounding + TRUNCATION_SAFETY * trunc + floor, rounding, trunc


def kinks(f0, fm2, fm1, fp1, fp2, om2, om1, op1, op2, sigma, floor):
    """Recognise a kink at x from f at -2h, -h, 0, h, 2h (offsets ``o``).

    The one-sided slopes ``s-`` and ``s+`` differ by about ``f'' h`` for a
    smooth f, which doubles from h to 2h; at a kink they differ by the jump
    of the derivative, which does not change with the step.

    Returns
    -------
    kink : numpy.ndarray of bool
    lo, hi : numpy.ndarray
        The one-sided slopes at h, ordered.
    tol : numpy.ndarray
        Allowance around ``[lo, hi]`` for rounding and curvature.
    jump : numpy.ndarray
        ``s+ - s-`` at h (positive: a convex kink, like relu or max).
    """
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        sm1 = (f0 - fm1) / -om1
        sp1 = (fp1 - f0) / op1
        sm2 = (f0 - fm2) / -om2
        sp2 = (fp2 - f0) / op2
        j1 = sp1 - sm1
        j2 = sp2 - sm2
        # standard deviation of the slope differences from rounding alone
        nstd1 = sigma * (1.0 / op1 - 1.0 / om1) * 1.5
        nstd2 = sigma * (1.0 / op2 - 1.0 / om2) * 1.5
        # a jump well above rounding that stays put from h to 2h; a smooth
        # f's difference doubles, which these margins cannot mistake for it
        kink = (np.abs(j1) > 5.0 * nstd1) & \
            (np.abs(j2 - j1) <= KINK_CONSTANCY * np.abs(j1) + 2.0 * (nstd1 + nstd2))
        # curvature within one step, from how the one-sided slopes move
        # between h and 2h on each side
        curve = np.maximum(np.abs(sp2 - sp1), np.abs(sm2 - sm1))
        lo = np.minimum(sm1, sp1)
        hi = np.maximum(sm1, sp1)
        tol = KAPPA * nstd1 + curve + floor
        finite = np.isfinite(j1) & np.isfinite(j2)
    return kink & finite, lo, hi, np.where(finite, tol, np.inf), j1


def non_asymptotic(f0, f_half, o_half, f_at, o_at, sigma):
    """Whether f's one-sided slopes show that the step is not small for f.

    ``f_half``, ``o_half``: f and the offsets at -h/2 and h/2; ``f_at``,
    ``o_at``: at -2h, -h, h, 2h.  For a smooth f at a step small for it, the
    one-sided slopes differ by ``j(h) = f'' h`` (to higher order), which
    doubles from h/2 to h and from h to 2h.  Where a pair of them stands clear
    of rounding and the ratio is far from 2 (a jump that stays put, as when f
    is linear on both sides of x at this scale, or one that shrinks), no
    Richardson estimate at these steps can be trusted.

    Examples
    --------
    >>> o = [np.array([v]) for v in (-2.0, -1.0, 1.0, 2.0)]
    >>> oh = [np.array([-0.5]), np.array([0.5])]
    >>> quad = lambda t: 3 * t + t * t                        # j doubles
    >>> bool(non_asymptotic(0.0, [quad(t) for t in oh], oh, [quad(t) for t in o], o, 1e-9)[0])
    False
    >>> sat = lambda t: np.log1p(np.exp(20 * t)) / 20         # softplus at scale 1/20
    >>> bool(non_asymptotic(sat(0.0), [sat(t) for t in oh], oh, [sat(t) for t in o], o, 1e-9)[0])
    True
    """
    fmh, fph = f_half
    omh, oph = o_half
    fm2, fm1, fp1, fp2 = f_at
    om2, om1, op1, op2 = o_at
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        js = [(fp - f0) / op - (f0 - fm) / -om for fm, fp, om, op in
              ((fmh, fph, omh, oph), (fm1, fp1, om1, op1), (fm2, fp2, om2, op2))]
        # rounding of each, as in :func:`kinks`
        ns = [sigma * (1.0 / op - 1.0 / om) * 1.5 for om, op in
              ((omh, oph), (om1, op1), (om2, op2))]
        out = np.zeros(np.shape(js[0]), bool)
        for (ja, na), (jb, nb) in zip(zip(js, ns), list(zip(js, ns))[1:]):
            clear = (np.abs(ja) > 5.0 * na) & (np.abs(jb) > 5.0 * nb)
            ratio = jb / np.where(ja != 0, ja, 1.0)
            out |= clear & ~((ratio > 4.0 / 3.0) & (ratio < 3.0))
    return out


#: Largest factor by which one round of refinement enlarges the step when
#: truncation is not visible yet (the next round measures it again).
MAX_GROWTH = 100.0


def next_step(h, d1, d2, gain1, gain2, order, sigma, floor, h_min, h_max, threshold):
    """The step to judge at next, and the bound the model predicts there.

    Where the Richardson difference stands clear of rounding, the step that
    balances rounding (falling like 1/h) against truncation (growing like
    h**p).  Where truncation is not visible yet, the step at which
    rounding alone falls to half of ``threshold`` (the largest bound that
    can pass), at most ``MAX_GROWTH`` times larger: the next round measures
    truncation there.
    """
    p = order
    r = 2.0 ** p - 1.0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        c_round = KAPPA * sigma * gain1 * h                        # rounding = c_round / h
        diff = np.abs(d2 - d1) / r
        visible = diff > 2.0 * sigma * (gain1 + gain2) / r
        c_trunc = TRUNCATION_SAFETY * diff / h ** p                # truncation = c_trunc h^p
        balanced = (c_round / (p * c_trunc)) ** (1.0 / (p + 1))
        need = c_round / (0.5 * threshold)
        grow = np.clip(np.where(np.isfinite(need), need, MAX_GROWTH * h), 2.0 * h, MAX_GROWTH * h)
        best = np.where(visible & (c_trunc > 0), balanced, grow)
        best = np.where(np.isfinite(best), best, h)
        best = np.clip(best, h_min, h_max)
        predicted = c_round / best + np.where(visible, c_trunc * best ** p, 0.0) + floor
    return best, predicted


def joint_violation(e1, e2, sign):
    """First-order violation of the subgradient inequality along a direction.

    ``e(o) = f(x + o) - f(x) - a . o`` at o and 2o.  For a convex kink
    (``sign`` +1) every subgradient makes e >= 0 at first order; for a
    concave one, e <= 0.  ``2 e(o) - e(2o) / 2`` removes the quadratic
    term, leaving the first-order part; the result is how far it falls on
    the wrong side (negative: violated).

    Examples
    --------
    >>> joint_violation(-1e-6, -2e-6, 1.0)   # e falls linearly below 0: violated
    -1e-06
    """
    lin = 2.0 * e1 - 0.5 * e2
    return sign * lin


def overall(status: np.ndarray) -> str:
    """'fail' if any entry fails, else 'inconclusive' if any is, else 'pass'."""
    if np.any(status == FAIL):
        return "fail"
    if np.any(status == INCONCLUSIVE):
        return "inconclusive"
    return "pass"
