"""f at full points: what the projected check (``mode="project"``) evaluates.

Every other check perturbs one entry of x per point, which is what the
backends are built for (``(idx, vals)`` pairs, delta evaluation).  A
projected check moves *every* entry at once, along random directions
``v_k``: its problem is ``F(t) = f(x + sum_k t_k v_k)`` in a handful of
coordinates ``t``.  :class:`AlongDirections` is that F, a plain callable of
t, so the engine checks it like any callable: in timed chunks, with
progress, Ctrl-C and executors, and with the whole verdict unchanged.

Each full point is the base point of one call to the backend that
evaluates f (:func:`value_at`), so every form of f is evaluated the way
its checks evaluate it: a callable or batched function is called on the
point (a batch of one), a row-wise function sums its compiled rows, and a
built-in layer computes its float64 forward from the values the layer sees
(what its delta evaluator prepares), on the check's backend; on ``cuda`` and
``cudasim`` the point is copied to the device for each call, one transfer
of x per point.  A kernel function runs its forward once per point on the
host, compiled by numba from the same source (:data:`HOST_KINDS`): on a
device that forward would be one thread's sequential loop.

:class:`Directions` are drawn per check: Rademacher directions (every entry
``+-s_i``) and sparse ones (a few entries ``+-s_i``, the rest 0), with
``s_i = max(1, |x_i|)`` so that a step ``h`` in t moves entry i by
``h * max(1, |x_i|)``, the step a full check would take there.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from .errors import GpuCheckError
from .functions import Function

__all__ = ["Directions", "AlongDirections", "value_at", "SPARSE_SHARE", "HOST_KINDS"]

#: Share of the directions that are sparse (the rest are Rademacher).
SPARSE_SHARE = 0.25
#: Forms of f whose full points are evaluated on the host whatever the
#: backend: one full forward of a kernel function is a single thread's work.
HOST_KINDS = ("kernel",)

#: Compiled CPU loops (numba) must not be entered from two threads at once;
#: an executor's thread pool may call :class:`AlongDirections` concurrently.
_SERIAL = threading.Lock()


@dataclass(frozen=True)
class Directions:
    """Random directions ``v_k`` over the N entries of a point.

    Build them with :meth:`draw`.  Rademacher direction k is
    ``signs[k] * scale``; sparse direction j has ``sparse_signs[j] *
    scale[sparse_at[j]]`` at the entries ``sparse_at[j]`` and 0 elsewhere.

    Attributes
    ----------
    scale : numpy.ndarray
        ``max(1, |x_i|)`` per entry, float64, ``(N,)``.
    signs : numpy.ndarray
        ``(R, N)`` int8 of +-1: the Rademacher directions.
    sparse_at : tuple of numpy.ndarray
        Flat entries of each sparse direction (sorted, int64).
    sparse_signs : tuple of numpy.ndarray
        Their signs (int8).
    seed : int
        The seed they were drawn with.

    Examples
    --------
    >>> import numpy as np
    >>> d = Directions.draw(np.array([0.5, -3.0, 2.0, 0.0]), 4, seed=1)
    >>> d.count, d.rademacher, d.kinds
    (4, 3, ('rademacher', 'rademacher', 'rademacher', 'sparse'))
    >>> v = d.vector(0)
    >>> np.abs(v).tolist()                 # max(1, |x_i|) in every entry
    [1.0, 3.0, 2.0, 1.0]
    >>> float(d.project(np.ones(4))[0]) == float(v.sum())
    True
    """

    scale: np.ndarray
    signs: np.ndarray
    sparse_at: tuple = ()
    sparse_signs: tuple = ()
    seed: int = 0

    @classmethod
    def draw(cls, x: np.ndarray, count: int, *, seed: int, sparse_share: float = SPARSE_SHARE,
             sparse_entries: int | None = None) -> "Directions":
        """``count`` directions for the point x (any shape; flat order).

        ``round(count * sparse_share)`` of them are sparse (none when x has
        fewer than 4 entries, where sparse and dense coincide), each with
        ``sparse_entries`` entries (default ``ceil(sqrt(N))``).
        """
        flat = np.abs(np.asarray(x).reshape(-1).astype(np.float64))
        n = flat.size
        rng = np.random.default_rng(seed)
        n_sparse = int(round(count * sparse_share)) if n >= 4 else 0
        n_sparse = min(n_sparse, count - 1)
        n_dense = count - n_sparse
        signs = (rng.integers(0, 2, size=(n_dense, n), dtype=np.int8) * 2 - 1).astype(np.int8)
        m = int(np.ceil(np.sqrt(n))) if sparse_entries is None else int(sparse_entries)
        m = max(1, min(n, m))
        at, sg = [], []
        for _ in range(n_sparse):
            at.append(np.sort(rng.choice(n, size=m, replace=False)).astype(np.int64))
            sg.append((rng.integers(0, 2, size=m, dtype=np.int8) * 2 - 1).astype(np.int8))
        return cls(np.maximum(1.0, flat), signs, tuple(at), tuple(sg), int(seed))

    @property
    def rademacher(self) -> int:
        """How many Rademacher directions (they come first)."""
        return int(self.signs.shape[0])

    @property
    def sparse(self) -> int:
        """How many sparse directions (after the Rademacher ones)."""
        return len(self.sparse_at)

    @property
    def count(self) -> int:
        """All directions."""
        return self.rademacher + self.sparse

    @property
    def sparse_entries(self) -> int:
        """Entries per sparse direction (0 when there are none)."""
        return int(self.sparse_at[0].size) if self.sparse_at else 0

    @property
    def kinds(self) -> tuple:
        """``'rademacher'`` or ``'sparse'`` per direction."""
        return ("rademacher",) * self.rademacher + ("sparse",) * self.sparse

    def vector(self, k: int) -> np.ndarray:
        """Direction k as a dense float64 vector ``(N,)``."""
        if k < self.rademacher:
            return self.signs[k] * self.scale
        j = k - self.rademacher
        v = np.zeros(self.scale.size)
        at = self.sparse_at[j]
        v[at] = self.sparse_signs[j] * self.scale[at]
        return v

    def displacement(self, t: np.ndarray) -> np.ndarray:
        """``sum_k t_k v_k`` (float64, or complex128 for complex t), over the nonzero t_k."""
        t = np.asarray(t).reshape(-1)
        if t.size != self.count:
            raise GpuCheckError(f"a projected point has {t.size} coordinates, expected {self.count}")
        out = np.zeros(self.scale.size, dtype=np.complex128 if np.iscomplexobj(t) else np.float64)
        for k in np.flatnonzero(t):
            tk = complex(t[k]) if np.iscomplexobj(t) else float(t[k])
            if k < self.rademacher:
                out += tk * (self.signs[k] * self.scale)
            else:
                j = k - self.rademacher
                at = self.sparse_at[j]
                out[at] += tk * (self.sparse_signs[j] * self.scale[at])
        return out

    def project(self, g: np.ndarray) -> np.ndarray:
        """``<g, v_k>`` for every direction, float64 ``(count,)``."""
        gs = np.asarray(g, dtype=np.float64).reshape(-1) * self.scale
        dense = [float(np.dot(self.signs[k], gs)) for k in range(self.rademacher)]
        sparse = [float(np.dot(s, gs[at])) for at, s in zip(self.sparse_at, self.sparse_signs)]
        return np.array(dense + sparse, dtype=np.float64)

    def scaled_norm(self, g: np.ndarray) -> float:
        """``||g * s||_2``: the root-mean-square of ``<g, v>`` over Rademacher v."""
        return float(np.linalg.norm(np.asarray(g, dtype=np.float64).reshape(-1) * self.scale))


@dataclass
class AlongDirections:
    """``F(t) = f(x + sum_k t_k v_k)``: f along random directions, a callable of t.

    The full point is computed in float64 and rounded once to t's dtype, the
    dtype the check runs in (x's; float64 for a float64 reference; complex
    for the complex step), so f sees a point of that dtype.

    That rounding moves the point off the line by up to half a unit in the
    last place of each entry, ``rho(t)``.  Along a line of t, the roundings
    of an arithmetic progression form a sawtooth, not noise: the noise
    estimates do not see it, and at a small step it turns into a wrong
    slope (0.2% of ``<g, v>`` for float32 entries near 100 at a step of
    6e-6).  Given the gradient under test, F subtracts the first-order
    effect of that rounding, ``<grad, rho(t)>`` (rho computed exactly in
    float64 from the rounded point): for a correct gradient the effect
    cancels, and for a gradient with error e what is left, ``<e, rho>``, is
    a rounding of the error, far below its ``<e, v>``.

    Parameters
    ----------
    func : Function
        The form of f its checks evaluate (several inputs already folded
        into one flat point).
    x : numpy.ndarray
        The point (the engine's: x's shape, or flat for several inputs).
    directions : Directions
    backend : str
        The backend that evaluates f at each full point; an executor's
        workers resolve ``'auto'`` for themselves.
    grad : numpy.ndarray, optional
        The gradient under test (flat float64), whose product with the
        rounding of the point is subtracted; None leaves F uncorrected.
    origin : float
        The t at which F is x: ``F(t) = f(x + sum_k (t_k - origin) v_k)``.
        The check runs at ``t = origin = 1``, where the smallest step the
        engine takes (64 units in the last place of t) still moves every
        entry of x by 64 units in its own last place (``|v_i| >= |x_i|``):
        around t = 0 it could take steps that leave some entries unmoved.

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck.functions import as_function
    >>> x = np.array([1.0, 2.0])
    >>> d = Directions.draw(x, 1, seed=0)
    >>> F = AlongDirections(as_function(lambda v: float(v @ v)), x, d, "cpu")
    >>> F(np.zeros(1)), F(np.array([0.5])) == float(np.sum((x + 0.5 * d.vector(0)) ** 2))
    (5.0, True)
    >>> x32 = np.float32([100.0, -3.0])              # a float32 point: rounded, then corrected
    >>> G = AlongDirections(as_function(lambda v: float(np.sum(v.astype(float) ** 2))), x32,
    ...                     Directions.draw(x32, 1, seed=0), "cpu", grad=2.0 * x32)
    >>> t = np.float32([1e-6])
    >>> bool(abs((G(t) - G(-t)) / 2e-6 - float(2.0 * x32 @ G.directions.vector(0))) < 1e-3)
    True
    """

    func: Function
    x: np.ndarray
    directions: Directions
    backend: str
    grad: np.ndarray | None = None
    origin: float = 0.0
    _resolved: str | None = field(default=None, init=False, repr=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    def __call__(self, t) -> float:
        t = np.asarray(t)
        base, grad = self._prepared()
        if np.iscomplexobj(t):
            base = base.astype(np.complex128)
        move = self.directions.displacement(t - self.origin if self.origin else t)
        with np.errstate(over="ignore", invalid="ignore"):
            y = (base + move).astype(t.dtype)
            value = value_at(self.func, y.reshape(self.x.shape), self._backend())
            if grad is None:
                return value
            # y - base is exact (Sterbenz) wherever y and x share a binade
            rho = (y.astype(base.dtype) - base) - move
            return value - np.dot(grad, rho)

    def _prepared(self):
        """x as float64 and the gradient with non-finite entries zeroed (once per process)."""
        if not self._cache:
            self._cache["base"] = self.x.reshape(-1).astype(np.float64)
            self._cache["grad"] = None if self.grad is None else \
                np.nan_to_num(np.asarray(self.grad, dtype=np.float64).reshape(-1), nan=0.0,
                              posinf=0.0, neginf=0.0)
        return self._cache["base"], self._cache["grad"]

    def _backend(self) -> str:
        """The backend that evaluates f at full points (``'cpu'`` for kernel functions)."""
        if self._resolved is None:
            from . import backends

            self._resolved = "cpu" if self.func.kind in HOST_KINDS else \
                backends.resolve(self.backend)
        return self._resolved

    def __getstate__(self):
        # an executor's worker resolves 'auto' for itself
        state = dict(self.__dict__)
        state["_resolved"] = None
        state["_cache"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    @property
    def __name__(self) -> str:  # pragma: no cover - cosmetic
        return f"{self.func.name} along {self.directions.count} directions"


def value_at(func: Function, y: np.ndarray, backend: str):
    """f at the full point y: the base point of one call to ``backend``.

    Returns a float (complex for complex y).

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck.functions import as_function
    >>> value_at(as_function(lambda v: float(v.sum())), np.arange(4.0), "cpu")
    6.0
    """
    from . import backends

    impl = backends.get(backend)
    flat = y.reshape(-1)
    idx = np.zeros(1, dtype=np.int64)
    if func.kind in ("callable", "batched") and backend == "cpu":
        ev = impl.evaluate(func, y, idx, flat[:1].copy())
    else:
        with _SERIAL:
            ev = impl.evaluate(func, y, idx, flat[:1].copy())
    v = np.asarray(ev.values).reshape(-1)[0]
    return complex(v) if np.iscomplexobj(y) else float(np.real(v))
