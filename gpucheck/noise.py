"""Measure the computational noise of f: the rounding a difference quotient sees.

In the spirit of Moré & Wild's ECnoise: evaluate f at a few points along a
coordinate near x, take away the smooth part, and read the noise level off
what is left.  Here the smooth part is a cubic fitted by least squares on
each side of x separately (through f(x) and the points on that side), so a
kink at x itself (relu or abs at 0, a tie in max) is no noise, and the
noise level is the pooled residual ``sqrt(RSS / dof)``.

The points sit at random positions, stratified along the line, never on an
arithmetic progression.  Rounding in f is a deterministic function of the
point: a float64 sum of float32 terms (a row-wise function, a kernel with a
float64 accumulator) carries the float32 rounding of the one term that
changes, ``fl(d*d) - d*d``, and along equally spaced points, above all at
a power-of-two spacing (the default float32 step is exactly 2**-8), that
rounding is aliased into a slow drift or a sawtooth.  A difference table
then sees almost no noise, or a "kink" where the sawtooth wraps, while the
stencil's own points, elsewhere on the lattice, round by up to a unit.
Random positions sample the rounding at random phases, so the estimate is
that of the whole distribution the stencil's points are drawn from.

We probe along coordinates, not a random direction, because a central
difference perturbs one coordinate: the rounding it suffers is the rounding
f shows along that coordinate.  That rounding differs from coordinate to
coordinate (the rounding of one float32 term scales with the term), so the
few global probes only screen: an entry may fail only against the noise
measured along its own coordinate (:func:`line_sigmas` on a line the engine
evaluates for it, with more points than a probe).

Lines reach ``REACH`` of the step on each side, and the step is never
larger than the dtype's default (never the user's step): at a large spacing
the fit reads curvature, not rounding.  Besides the measured noise, f's output precision sets a floor
(:class:`Floor`): a value rounded to float16, to float32, or to a fixed
quantum (``round(v, 3)``) is off by up to half a unit of that rounding
wherever it is evaluated.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

__all__ = ["NoiseProbe", "probe_points", "line_points", "line_sigmas", "estimate",
           "output_roundoff", "quantum", "floor", "level", "Floor"]

#: Points per probe on each side of x (3 + 3 degrees of freedom: the
#: probes only screen).
HALF_WIDTH = 6
#: Points on each side of x on a line that measures one entry's own noise:
#: 9 + 9 degrees of freedom, so that the estimate an entry may fail against
#: is rarely far below the truth.
LINE_HALF_WIDTH = 12
#: How far a probe or line reaches on each side, relative to the
#: finite-difference step (at most the default step): short enough that
#: curvature beyond a cubic stays invisible even where the default step is
#: large for f (logits of 1e3 in float32), long enough to span thousands of
#: representable points, so that every point rounds differently.
REACH = 0.25
#: Coordinates probed (at most).
PROBES = 8
#: Which of the probed coordinates' noise levels the screening uses: the
#: upper quartile, since noise differs between coordinates and a level too
#: low only sends more entries to refinement, never to a wrong verdict.
QUANTILE = 0.75
#: Degree of the polynomial fitted on each side of x.
DEGREE = 3


@dataclass(frozen=True)
class NoiseProbe:
    """Where the noise probes sit.

    Attributes
    ----------
    elements : numpy.ndarray
        Flat indices probed, ``(J,)``.
    vals : numpy.ndarray
        Values taken by those elements, x's dtype, ``(J, 2 * HALF_WIDTH)``
        (the base point, offset 0, is evaluated once for the whole check).
    offsets : numpy.ndarray
        ``vals - x`` computed exactly in float64, ``(J, 2 * HALF_WIDTH)``.
    """

    elements: np.ndarray
    vals: np.ndarray
    offsets: np.ndarray = None

    @property
    def idx(self) -> np.ndarray:
        """Flat index per probe point, probe-major."""
        return np.repeat(self.elements, self.vals.shape[1])


def probe_points(x: np.ndarray, h: np.ndarray, *, seed: int = 0) -> NoiseProbe:
    """Choose probe coordinates and their points.

    The largest-|x| coordinate is always probed (rounding in f usually grows
    with the magnitude of the terms); the rest are drawn at random with a
    fixed seed, so a check is reproducible.  ``h`` is the step per element
    (the engine passes at most the default step).

    Examples
    --------
    >>> p = probe_points(np.linspace(-1, 1, 100), np.full(100, 1e-5))
    >>> p.elements.size, p.vals.shape
    (8, (8, 12))
    """
    flat = x.reshape(-1)
    n = flat.size
    rng = np.random.default_rng(seed)
    first = int(np.argmax(np.abs(flat)))
    # a few distinct coordinates without a permutation of all n
    rest = rng.choice(n, size=min(n, PROBES), replace=False)
    chosen = np.concatenate([[first], rest[rest != first]])[:PROBES]
    # (distinct by construction: a sort is np.unique's answer, at less cost)
    elements = np.sort(chosen).astype(np.int64, copy=False)
    reach = REACH * np.asarray(h, dtype=np.float64)[elements]
    vals = line_points(x, elements, reach, seed=seed)
    return NoiseProbe(elements, vals, _offsets(x, elements, vals))


def line_points(x: np.ndarray, elements: np.ndarray, reach: np.ndarray, *,
                half_width: int = HALF_WIDTH, seed: int = 0) -> np.ndarray:
    """Points along each coordinate, in x's dtype, ``(M, 2 * half_width)``.

    Columns ``0 .. half_width - 1`` lie below x_i (nearest last), the others
    above it (nearest first), within ``reach_i`` of x_i (at least 8 units in
    the last place of x_i per point, so the points are distinct after
    rounding).  Each sits at a random position within its own stretch of
    the line (stratified), drawn with ``seed``.

    Examples
    --------
    >>> v = line_points(np.zeros(3), np.array([1]), np.array([1e-3]), half_width=2)
    >>> v.shape, bool(np.all(np.diff(v[0]) > 0)), bool(np.all(np.abs(v) < 1e-3))
    ((1, 4), True, True)
    """
    from .plan import float_info

    info = float_info(x.dtype)
    elements = np.asarray(elements, dtype=np.int64)
    base = x.reshape(-1)[elements].astype(np.float64)
    ulp = float(info.eps) * np.maximum(np.abs(base), float(info.tiny))
    reach = np.maximum(np.asarray(reach, dtype=np.float64), 8 * half_width * ulp)
    w = int(half_width)
    rng = np.random.default_rng(seed)
    # stretch k of w on each side, a random point in its middle 60%
    pos = (np.arange(w)[None, None, :] + 0.2 + 0.6 * rng.random((elements.size, 2, w))) / w
    below = -pos[:, 0, ::-1]
    above = pos[:, 1, :]
    t = np.concatenate([below, above], axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        return (base[:, None] + t * reach[:, None]).astype(x.dtype)


def _offsets(x: np.ndarray, elements: np.ndarray, vals: np.ndarray) -> np.ndarray:
    base = x.reshape(-1)[np.asarray(elements, dtype=np.int64)].astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(vals).astype(np.float64) - base[:, None]


def line_sigmas(f0: float, values: np.ndarray, offsets: np.ndarray | None = None):
    """Noise level along each line of points, and whether it can be trusted.

    Parameters
    ----------
    f0 : float
        f at x, the middle of every line.
    values : numpy.ndarray
        ``(M, 2 * w)``: f at :func:`line_points` (w points on each side).
    offsets : numpy.ndarray, optional
        ``(M, 2 * w)``: where those points are relative to x (exact, in
        float64).  Default: equally spaced, ``-w .. -1, 1 .. w``.

    Returns
    -------
    sigma : numpy.ndarray
        ``(M,)``: the pooled residual of a cubic fitted on each side of x
        (through f(x)); 0 where f does not change at all.
    usable : numpy.ndarray of bool
        False where a line is not finite or its offsets do not make a fit.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = np.array([[-6.0, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6]])
    >>> noisy = 1.0 + 0.3 * t + 1e-9 * rng.standard_normal((1, 12))
    >>> s, ok = line_sigmas(1.0, noisy, 1e-3 * t)
    >>> bool(ok[0]), bool(3e-10 < s[0] < 3e-9)
    (True, True)

    A kink at x (here ``|t|``) is no noise:

    >>> s, ok = line_sigmas(0.0, np.abs(t), t)
    >>> bool(ok[0]), float(s[0]) < 1e-12
    (True, True)
    """
    v = np.asarray(values, dtype=np.float64)
    m, k = v.shape
    w = k // 2
    if offsets is None:
        offsets = np.broadcast_to(np.concatenate([np.arange(-w, 0), np.arange(1, w + 1)]), v.shape)
    o = np.asarray(offsets, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        y = v - f0
    finite = np.all(np.isfinite(y), axis=1) & np.all(np.isfinite(o), axis=1) & np.isfinite(f0)
    dof = 2 * (w + 1 - (DEGREE + 1))
    if m == 0 or dof <= 0:
        return np.zeros(m), np.zeros(m, bool)
    y = np.where(finite[:, None], y, 0.0)
    o = np.where(finite[:, None], o, 1.0)
    # both sides in one pass, ``(2 * m, w)``, side-major: every operation
    # below acts on each side's rows as it would on that side alone (the
    # fits are one small LAPACK call per row either way), at half the calls
    oo = np.concatenate([o[:, :w], o[:, w:]])
    yy = np.concatenate([y[:, :w], y[:, w:]])
    reach = np.max(np.abs(oo), axis=1)
    reach = np.where(reach > 0, reach, 1.0)
    t = np.concatenate([np.zeros((2 * m, 1)), oo / reach[:, None]], axis=1)
    yv = np.concatenate([np.zeros((2 * m, 1)), yy], axis=1)
    # scaled so that the squares neither overflow nor underflow
    ys = np.max(np.abs(yv), axis=1)
    ys = np.where(ys > 0, ys, 1.0)
    yv = yv / ys[:, None]
    design = np.stack([t ** p for p in range(DEGREE + 1)], axis=2)
    q, r = np.linalg.qr(design)
    # points that coincide after rounding leave the fit without a unique answer
    fits = (np.min(np.abs(np.diagonal(r, axis1=1, axis2=2)), axis=1) > 1e-8).reshape(2, m)
    ok = finite & fits[0] & fits[1]
    resid = yv - np.einsum("mij,mj->mi", q, np.einsum("mij,mi->mj", q, yv))
    part = (ys ** 2 * np.sum(resid ** 2, axis=1)).reshape(2, m)
    # (added to 0.0 side by side, as a sum from zero would: -0.0 stays out)
    rss = np.zeros(m)
    rss += part[0]
    rss += part[1]
    sigma = np.sqrt(rss / dof)
    return np.where(ok, sigma, np.nan), ok


def estimate(probe: NoiseProbe, f0: float, values: np.ndarray) -> float:
    """Noise level sigma of f from the probe values (``probe.idx`` order).

    Returns the upper quartile over the probed coordinates along which f
    changes at all: a probe that lands on a kink away from x sees the kink,
    not noise, and one or two of them must not inflate every tolerance of
    the check.
    """
    v = np.asarray(values, dtype=np.float64).reshape(probe.vals.shape)
    if not np.any(np.all(np.isfinite(v), axis=1)):
        return float("nan")
    sigma, usable = line_sigmas(f0, v, probe.offsets)
    live = sigma[usable & (sigma > 0)]
    return _upper_quantile(live) if live.size else 0.0


def _upper_quantile(v: np.ndarray) -> float:
    """``np.quantile(v, QUANTILE)`` (its default, linear method), bit for bit, for a few values.

    The same order statistics and the same interpolation, in the same
    float64 operations, without the general function's setup (most of its
    cost for the handful of probe lines).  ``v`` is non-empty.

    Examples
    --------
    >>> v = np.array([3.0, 1.0, 4.0, 1.5, 9.0])
    >>> bool(_upper_quantile(v) == np.quantile(v, QUANTILE))
    True
    """
    s = np.sort(np.asarray(v, dtype=np.float64).reshape(-1))
    n = s.size
    if not (np.isfinite(s[0]) and np.isfinite(s[-1])):
        return float(np.quantile(s, QUANTILE))  # (NaN and inf: the general rules)
    pos = (n - 1) * QUANTILE
    if pos >= n - 1:
        return float(s[-1])
    lo = int(pos // 1)
    a, b = float(s[lo]), float(s[lo + 1])
    t = pos - lo
    d = b - a
    # np.quantile's lerp: from the nearer end, so that t = 1 gives b exactly
    return b - d * (1 - t) if t >= 0.5 else a + d * t


_OUTPUT_TYPES = ("bfloat16", "float16", "float32")


def output_roundoff(values: np.ndarray, fallback: float | None = None) -> float:
    """Unit roundoff of the precision f returns its values in.

    A float64 computation whose every value is exactly a float32 (or
    float16, bfloat16) number does not happen by chance: then f rounds its
    result to that precision.  Fewer than 8 distinct values prove nothing
    either way; then the answer is ``fallback`` (default: float64's).

    Examples
    --------
    >>> output_roundoff(np.array([1.0, 1.5, 0.1])) == 2.0 ** -53
    True
    >>> output_roundoff(np.float16(np.linspace(0.1, 2.7, 9)).astype(np.float64)) == 2.0 ** -11
    True
    """
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if not finite.all():
        v = v[finite]
    # a handful of distinct values (a constant f, small integers) fits
    # every precision and says nothing about f's
    if _distinct(v, 8):
        for name in _OUTPUT_TYPES:
            dt = _dtype(name)
            if dt is None:
                continue
            if _representable(v, dt):
                from .plan import unit_roundoff

                return unit_roundoff(dt)
    elif fallback is not None:
        return float(fallback)
    return float(np.finfo(np.float64).eps) / 2.0


#: Values a screening pass of :func:`output_roundoff` looks at first.
_SCREEN = 4096


def _distinct(v: np.ndarray, k: int) -> bool:
    """``np.unique(v).size >= k``, without sorting all of a large v.

    A sample usually shows k distinct values at once; when it does not,
    each pass takes away every copy of one value, so at most k passes.
    """
    for sample in (v[:64], v[::max(1, v.size // _SCREEN)]):
        if np.unique(sample).size >= k:
            return True
    for _ in range(k):
        if v.size == 0:
            return False
        v = v[v != v[0]]
    return True


def _representable(v: np.ndarray, dt) -> bool:
    """Whether every value of v survives a round trip through ``dt`` exactly.

    A mismatch in the first few values (the usual answer) spares the
    conversion of the rest.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        for part in (v[:64], v[:_SCREEN], v):
            if not np.array_equal(part.astype(dt).astype(np.float64), part):
                return False
            if part.size == v.size:
                break
    return True


def _dtype(name):
    if name == "bfloat16":
        # only an f that already works with bfloat16 can round to it
        ml_dtypes = sys.modules.get("ml_dtypes")
        return None if ml_dtypes is None else np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


#: Values from which :func:`quantum` screens a sample before sorting them all.
SCREEN_FROM = 1 << 16


def _finer_than_any_quantum(v: np.ndarray) -> bool:
    """Whether a sample of ``v`` already has two values closer than a quantum can be.

    :func:`quantum` returns 0 when the smallest gap between distinct values
    is at most 64 float64 ulps of the largest; the smallest gap of a subset
    is no smaller than the whole set's, and its largest value no larger, so
    a sample that shows such a gap decides it exactly, without sorting
    millions of values (a check of a million entries spent most of its
    host time there).
    """
    n = v.size
    if n < SCREEN_FROM:
        return False
    picks = np.unique(np.random.default_rng(0).integers(0, n, 1 << 14))
    sample = v[picks]
    u = np.unique(sample[np.isfinite(sample)])  # (before the whole of v is filtered)
    if u.size < 2:
        return False
    return float(np.diff(u).min()) <= 64 * float(np.finfo(np.float64).eps) * float(np.max(np.abs(u)))


def quantum(values: np.ndarray, flat: bool = True) -> float:
    """The step of a staircase f (values rounded to a fixed quantum), else 0.

    f that rounds its result (``round(v, 3)``, fixed point, a counter)
    repeats values and moves only in whole multiples of one step, far
    coarser than its precision; a central difference across less than one
    step is zero or one whole step, whatever the derivative.

    Examples
    --------
    >>> quantum(np.round(np.linspace(1, 1.01, 40), 3))
    0.001
    >>> quantum(np.linspace(1, 1.01, 40))
    0.0

    ``flat`` says whether f returned the same value at distinct points
    somewhere (the mark of a staircase); without that, values on a grid
    are only a linear f sampled at equal spacing.
    """
    if not flat:
        return 0.0
    v = np.asarray(values, dtype=np.float64)
    if _finer_than_any_quantum(v):
        return 0.0
    v = v[np.isfinite(v)]
    uniq = np.unique(v)
    if uniq.size < 2 or uniq.size > v.size // 2:
        return 0.0
    d = np.diff(uniq)
    q = float(d.min())
    scale = float(np.max(np.abs(uniq)))
    if q <= 64 * float(np.finfo(np.float64).eps) * scale:
        return 0.0
    m = d / q
    if not np.all(np.abs(m - np.round(m)) <= 1e-3 * np.maximum(1.0, m)):
        return 0.0
    q = float(np.round(q, 11 - int(np.floor(np.log10(q)))))
    # a rounded result sits on a grid anchored at zero; a linear f sampled
    # at equal spacing makes equal differences too, but not on that grid
    k = uniq / q
    slack = 1e-6 + 64 * float(np.finfo(np.float64).eps) * np.abs(uniq) / q
    if not np.all(np.abs(k - np.round(k)) <= slack):
        return 0.0
    return q


@dataclass(frozen=True)
class Floor:
    """The least noise f's values carry, from its output precision.

    Attributes
    ----------
    u_out : float
        Unit roundoff of the precision f's values are rounded to.
    step : float
        Quantum of a staircase f (:func:`quantum`), else 0.
    nondeterministic : float
        Spread of repeated evaluations of f at x (0 for a deterministic f).
    """

    u_out: float
    step: float = 0.0
    nondeterministic: float = 0.0

    def at(self, magnitude) -> np.ndarray:
        """The floor for values of about ``magnitude``: half a unit of rounding, or of the quantum.

        Examples
        --------
        >>> float(Floor(2.0 ** -11, step=1e-3).at(4.0))
        0.0009765625
        """
        m = np.abs(np.asarray(magnitude, dtype=np.float64))
        if np.ndim(m) == 0:
            return np.maximum(np.maximum(0.5 * self.u_out * m, 0.5 * self.step), self.nondeterministic)
        # the same operations in place: one array for a floor per entry
        np.multiply(0.5 * self.u_out, m, out=m)
        np.maximum(m, 0.5 * self.step, out=m)
        return np.maximum(m, self.nondeterministic, out=m)


def floor(f0: float, values: np.ndarray) -> float:
    """The least noise a rounded result carries: half a unit of rounding of |f(x)|.

    Along a coordinate that moves f by less than one unit in the last place
    per probe spacing, f looks like a staircase and the probes see no noise
    at all; the two points of a central difference still round
    independently.  Rounding to nearest has a standard deviation of about
    0.3 ulp, and one ulp is between u|f| and 2u|f|.
    """
    return max(0.5 * output_roundoff(values) * abs(f0), 0.5 * quantum(values))


def level(probe: NoiseProbe, f0: float, probe_values: np.ndarray, *others: np.ndarray) -> float:
    """The noise level a tolerance is built on: the estimate, never below the floor.

    Parameters
    ----------
    probe : NoiseProbe
    f0 : float
        f at x.
    probe_values : numpy.ndarray
        f at the probe points (``probe.idx`` order).
    *others : numpy.ndarray
        Any other values of f from the same evaluation; they tell which
        precision f returns its values in.
    """
    sigma = estimate(probe, f0, probe_values)
    values = np.concatenate([np.ravel(probe_values)] + [np.ravel(v) for v in others] + [[f0]])
    return max(sigma if np.isfinite(sigma) else 0.0, floor(f0, values))
