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

__all__ = ["NoiseProbe", "probe_points", "estimate"]

#: Points per probe on each side of x.
HALF_WIDTH = 4
#: Probe spacing relative to the finite-difference step.
SPACING = 1e-2
#: Coordinates probed (at most).
PROBES = 6


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

    Returns the largest estimate over the probed coordinates: a tolerance
    built on it errs towards calling rounding noise noise.
    """
    v = np.asarray(values, dtype=np.float64).reshape(probe.vals.shape)
    half = HALF_WIDTH
    line = np.concatenate([v[:, :half], np.full((v.shape[0], 1), f0), v[:, half:]], axis=1)
    finite = np.all(np.isfinite(line), axis=1)
    if not np.any(finite):
        return float("nan")
    line = line[finite]
    sigmas = []
    diff = line.copy()
    for k in range(1, 7):
        diff = np.diff(diff, axis=1)
        if k >= 4:
            sigmas.append(np.sqrt(np.mean(diff ** 2, axis=1) / comb(2 * k, k)))
    per_probe = np.median(np.stack(sigmas), axis=0)
    return float(np.max(per_probe))
