"""Measure the computational noise of f: the rounding a difference quotient sees.

In the spirit of Moré & Wild's ECnoise: evaluate f at a few equally spaced
points along a coordinate, form the difference table, and read the noise
level off the high-order differences, where the smooth part of f has
vanished and only rounding is left.  For a random sequence of independent
errors of standard deviation sigma, ``E[(Δ^k f)^2] = C(2k, k) sigma^2``, so
``sigma_k = sqrt(mean((Δ^k f)^2) / C(2k, k))`` estimates sigma at every order
k; orders 4 to 6 are used.

We probe along coordinates, not a random direction, because a central
difference perturbs one coordinate: the rounding it suffers is the rounding
f shows along that coordinate.  That rounding differs from coordinate to
coordinate (a float64 sum of float32 terms carries the rounding of the one
term that changes), so the few global probes only screen: an entry may fail
only against the noise measured along its own coordinate
(:func:`line_sigmas` on a line the engine evaluates for it).

Probes are spaced at most the dtype's default step, never the user's step:
at a large spacing the high differences read curvature, not rounding.
Besides the measured noise, f's output precision sets a floor
(:class:`Floor`): a value rounded to float16, to float32, or to a fixed
quantum (``round(v, 3)``) is off by up to half a unit of that rounding
wherever it is evaluated.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from math import comb

import numpy as np

__all__ = ["NoiseProbe", "probe_points", "line_sigmas", "estimate", "output_roundoff", "quantum",
           "floor", "level", "Floor"]

#: Points per probe on each side of x.
HALF_WIDTH = 4
#: Probe spacing relative to the finite-difference step (at most the
#: default step): small enough that curvature stays invisible in the high
#: differences even where the default step is large for f (logits of 1e3 in
#: float32), large enough that every point rounds differently.
SPACING = 1.0 / 16
#: Coordinates probed (at most).
PROBES = 8
#: Which of the probed coordinates' noise levels the screening uses: the
#: upper quartile, since noise differs between coordinates and a level too
#: low only sends more entries to refinement, never to a wrong verdict.
QUANTILE = 0.75
#: A probe whose two largest neighbouring second differences hold more than
#: this share of their sum has a kink in it, not noise.
KINK_SHARE = 0.8


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
    """

    elements: np.ndarray
    vals: np.ndarray

    @property
    def idx(self) -> np.ndarray:
        """Flat index per probe point, probe-major."""
        return np.repeat(self.elements, self.vals.shape[1])


def probe_points(x: np.ndarray, h: np.ndarray, *, seed: int = 0) -> NoiseProbe:
    """Choose probe coordinates and their points.

    The largest-|x| coordinate is always probed (rounding in f usually grows
    with the magnitude of the terms); the rest are drawn at random with a
    fixed seed, so a check is reproducible.  ``h`` is the spacing per
    element (the engine passes at most the default step).
    """
    flat = x.reshape(-1)
    n = flat.size
    rng = np.random.default_rng(seed)
    first = int(np.argmax(np.abs(flat.astype(np.float64))))
    rest = rng.permutation(n)[: PROBES]
    chosen = np.concatenate([[first], rest[rest != first]])[:PROBES]
    elements = np.unique(chosen).astype(np.int64)
    vals = line_points(x, elements, SPACING * np.asarray(h, dtype=np.float64)[elements])
    return NoiseProbe(elements, vals)


def line_points(x: np.ndarray, elements: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Values ``x_i + k * delta_i``, k = +-1..+-HALF_WIDTH, in x's dtype, ``(M, 2 * HALF_WIDTH)``.

    ``delta_i`` is ``spacing_i`` but at least 16 units in the last place of
    x_i, so the points are distinct after rounding.
    """
    from .plan import float_info

    info = float_info(x.dtype)
    base = x.reshape(-1)[elements].astype(np.float64)
    ulp = float(info.eps) * np.maximum(np.abs(base), float(info.tiny))
    delta = np.maximum(np.asarray(spacing, dtype=np.float64), 16 * ulp)
    ks = np.array([k for k in range(-HALF_WIDTH, HALF_WIDTH + 1) if k != 0], dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return (base[:, None] + ks[None, :] * delta[:, None]).astype(x.dtype)


def line_sigmas(f0: float, values: np.ndarray):
    """Noise level along each line of points, and whether it can be trusted.

    Parameters
    ----------
    f0 : float
        f at x, the middle of every line.
    values : numpy.ndarray
        ``(M, 2 * HALF_WIDTH)``: f at :func:`line_points`.

    Returns
    -------
    sigma : numpy.ndarray
        ``(M,)`` estimate per line (0 where f does not change at all).
    usable : numpy.ndarray of bool
        False where the line is not finite, has a kink or a step in it, or
        is flat: those say nothing about rounding.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noisy = 1.0 + 1e-9 * rng.standard_normal((1, 8))
    >>> s, ok = line_sigmas(1.0, noisy)
    >>> bool(ok[0]), bool(1e-10 < s[0] < 1e-8)
    (True, True)
    """
    v = np.asarray(values, dtype=np.float64)
    half = v.shape[1] // 2
    line = np.concatenate([v[:, :half], np.full((v.shape[0], 1), f0), v[:, half:]], axis=1)
    finite = np.all(np.isfinite(line), axis=1)
    line = np.where(finite[:, None], line, 0.0)
    # a kink inside the line puts its jump into one or two neighbouring
    # second differences; rounding noise spreads over all of them
    d2 = np.abs(np.diff(line, 2, axis=1))
    total = d2.sum(axis=1)
    pair = (d2[:, :-1] + d2[:, 1:]).max(axis=1)
    smooth = (total > 0) & (pair <= KINK_SHARE * total)
    sigmas = []
    diff = line.copy()
    for k in range(1, 7):
        diff = np.diff(diff, axis=1)
        if k >= 4:
            sigmas.append(np.sqrt(np.mean(diff ** 2, axis=1) / comb(2 * k, k)))
    s = np.stack(sigmas)
    per_line = np.median(s, axis=0)
    # the estimates of successive orders agree for noise; for a smooth
    # signal still visible at this spacing they fall off with the order,
    # and the highest order is the better (upper) bound on the noise
    falling = (s[1] < 0.5 * s[0]) & (s[2] < 0.5 * s[1])
    per_line = np.where(falling, s[2], per_line)
    return per_line, finite & smooth & (per_line > 0)


def estimate(probe: NoiseProbe, f0: float, values: np.ndarray) -> float:
    """Noise level sigma of f from the probe values (``probe.idx`` order).

    Returns the upper quartile over the probed coordinates along which f
    changes at all: a probe that lands on a kink (relu at 0) sees the
    kink, not noise, in its high differences, and must not inflate every
    tolerance of the check.
    """
    v = np.asarray(values, dtype=np.float64).reshape(probe.vals.shape)
    sigma, usable = line_sigmas(f0, v)
    if not np.any(np.all(np.isfinite(v), axis=1)):
        return float("nan")
    live = sigma[usable]
    return float(np.quantile(live, QUANTILE)) if live.size else 0.0


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
    v = v[np.isfinite(v)]
    # a handful of distinct values (a constant f, small integers) fits
    # every precision and says nothing about f's
    if np.unique(v).size >= 8:
        for name in _OUTPUT_TYPES:
            dt = _dtype(name)
            if dt is None:
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                back = v.astype(dt).astype(np.float64)
            if np.array_equal(back, v):
                from .plan import unit_roundoff

                return unit_roundoff(dt)
    elif fallback is not None:
        return float(fallback)
    return float(np.finfo(np.float64).eps) / 2.0


def _dtype(name):
    if name == "bfloat16":
        # only an f that already works with bfloat16 can round to it
        ml_dtypes = sys.modules.get("ml_dtypes")
        return None if ml_dtypes is None else np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


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
        return np.maximum(np.maximum(0.5 * self.u_out * m, 0.5 * self.step), self.nondeterministic)


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
