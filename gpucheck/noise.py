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
f shows along that coordinate.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np

__all__ = ["NoiseProbe", "probe_points", "estimate", "output_roundoff", "floor", "level"]

#: Points per probe on each side of x.
HALF_WIDTH = 4
#: Probe spacing relative to the finite-difference step.
SPACING = 1.0
#: Coordinates probed (at most).
PROBES = 8
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
    fixed seed, so a check is reproducible.
    """
    flat = x.reshape(-1)
    n = flat.size
    rng = np.random.default_rng(seed)
    first = int(np.argmax(np.abs(flat)))
    rest = rng.permutation(n)[: PROBES]
    chosen = np.concatenate([[first], rest[rest != first]])[:PROBES]
    elements = np.unique(chosen).astype(np.int64)
    base = flat[elements].astype(np.float64)
    spacing = np.finfo(x.dtype).eps * np.maximum(np.abs(base), np.finfo(x.dtype).tiny)
    delta = np.maximum(SPACING * h[elements], 16 * spacing)
    ks = np.array([k for k in range(-HALF_WIDTH, HALF_WIDTH + 1) if k != 0], dtype=np.float64)
    vals = (base[:, None] + ks[None, :] * delta[:, None]).astype(x.dtype)
    return NoiseProbe(elements, vals)


def estimate(probe: NoiseProbe, f0: float, values: np.ndarray) -> float:
    """Noise level sigma of f from the probe values (``probe.idx`` order).

    Returns the median over the probed coordinates along which f changes
    at all: a probe that lands on
    a kink (relu at 0) sees the kink, not noise, in its high differences, and
    must not inflate every tolerance of the check.
    """
    v = np.asarray(values, dtype=np.float64).reshape(probe.vals.shape)
    half = HALF_WIDTH
    line = np.concatenate([v[:, :half], np.full((v.shape[0], 1), f0), v[:, half:]], axis=1)
    finite = np.all(np.isfinite(line), axis=1)
    if not np.any(finite):
        return float("nan")
    line = line[finite]
    # a kink inside the probe puts its jump into one or two neighbouring
    # second differences; rounding noise spreads over all of them
    d2 = np.abs(np.diff(line, 2, axis=1))
    total = d2.sum(axis=1)
    pair = (d2[:, :-1] + d2[:, 1:]).max(axis=1)
    smooth = (total == 0) | (pair <= KINK_SHARE * total)
    line = line[smooth]
    if line.shape[0] == 0:
        return 0.0
    sigmas = []
    diff = line.copy()
    for k in range(1, 7):
        diff = np.diff(diff, axis=1)
        if k >= 4:
            sigmas.append(np.sqrt(np.mean(diff ** 2, axis=1) / comb(2 * k, k)))
    per_probe = np.median(np.stack(sigmas), axis=0)
    # a probe along which f does not change at all (a dead relu, a staircase
    # finer than the probe spacing) says nothing about the noise elsewhere
    live = per_probe[per_probe > 0]
    return float(np.median(live)) if live.size else 0.0


def output_roundoff(values: np.ndarray) -> float:
    """Unit roundoff of the precision f returns its values in.

    A float64 computation whose every value is exactly a float32 number does
    not happen by chance: then f rounds its result to float32.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size and np.array_equal(v.astype(np.float32).astype(np.float64), v):
        return float(np.finfo(np.float32).eps) / 2.0
    return float(np.finfo(np.float64).eps) / 2.0


def floor(f0: float, values: np.ndarray) -> float:
    """The least noise a rounded result carries: half a unit of rounding of |f(x)|.

    Along a coordinate that moves f by less than one unit in the last place
    per probe spacing, f looks like a staircase and the probes see no noise
    at all; the two points of a central difference still round
    independently.  Rounding to nearest has a standard deviation of about
    0.3 ulp, and one ulp is between u|f| and 2u|f|.
    """
    return 0.5 * output_roundoff(values) * abs(f0)


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
    values = np.concatenate([np.ravel(probe_values)] + [np.ravel(v) for v in others])
    return max(sigma if np.isfinite(sigma) else 0.0, floor(f0, values))
