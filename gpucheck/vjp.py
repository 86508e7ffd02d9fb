"""Vector-valued f: check a VJP (backward) or a JVP (forward-mode derivative).

For ``f: R^N -> R^M`` with a hand-written backward ``vjp(x, c) = J^T c``, the
scalar function ``<c, f(x)>`` has gradient ``J^T c``: checking it for a few
random cotangents c checks the backward (a wrong ``J^T`` agrees with the
right one along a random c with probability zero).  A forward-mode
derivative ``jvp(x, t) = J t`` is checked the same way, its columns
``J e_i`` contracted with the same cotangents.

The k cotangents are checked as ONE check with the verdict machinery of
:func:`gpucheck.check_gradient`, over k stacked copies of the point: copy j
carries ``<c_j, f(x_j)>`` and the function checked is
``G(x_1, ..., x_k) = sum_j <c_j, f(x_j)>``, whose gradient with respect to
copy j is ``J^T c_j``.  Every perturbation of every copy goes to the
backend in the same evaluation call (one backend pass per cotangent, since
a backend evaluates one scalar function), the noise of G is measured like
any f's, and the report names entries ``W1[3, 4] (cotangent 1)``.

The contraction is formed in float64 from f's values in f's own dtype, with
the cotangent rounded to that dtype, so the VJP and the finite differences
see the same c.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from . import backends, engine, validate
from .arrays import array_type, to_engine
from .errors import GpuCheckError
from .functions import as_function
from .result import GradCheckResult
from .stencils import get_scheme

__all__ = ["check_vjp", "check_jvp"]


def check_vjp(f, x, vjp, *, cotangents=2, seed=0, eps=None, scheme="central", backend="auto",
              rtol=None, atol=None, worst=5, progress=None) -> GradCheckResult:
    """Check a vector-Jacobian product (a backward pass) against finite differences.

    Parameters
    ----------
    f : callable or Batched
        ``f(x) -> array`` of any shape (or ``f(*xs)`` / ``f(xs)`` for
        several inputs, as in :func:`gpucheck.check_gradient`); a
        :func:`gpucheck.batched` f maps ``(B, *x.shape)`` to ``(B, *out)``.
    x : array_like, or tuple, list or dict of array_like
        The point, as in :func:`gpucheck.check_gradient`.
    vjp : callable
        The backward: ``vjp(x, c)`` (``vjp(*xs, c)``, ``vjp(xs, c)``) returns
        ``J^T c`` with x's shape (or structure) for a cotangent c of f's
        output shape, dtype and array type.
    cotangents : int
        How many random cotangents to check (normal, seeded by ``seed``).
    seed : int
        Seed of the cotangents.
    eps, scheme, backend, rtol, atol, worst, progress
        As in :func:`gpucheck.check_gradient`.

    Returns
    -------
    GradCheckResult
        Per-entry arrays carry the cotangents on a leading axis; worst
        entries name their cotangent.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> A = np.arange(6.0).reshape(3, 2)
    >>> f = lambda v: np.tanh(A @ v)                       # R^2 -> R^3
    >>> vjp = lambda v, c: A.T @ (c * (1 - np.tanh(A @ v) ** 2))
    >>> gpucheck.check_vjp(f, np.array([0.1, -0.2]), vjp).status
    'pass'
    >>> wrong = lambda v, c: A.T @ c                       # forgot tanh'
    >>> gpucheck.check_vjp(f, np.array([0.1, -0.2]), wrong).status
    'fail'
    """
    return _check_stacked(f, x, vjp, "vjp", cotangents=cotangents, seed=seed, eps=eps,
                          scheme=scheme, backend=backend, rtol=rtol, atol=atol, worst=worst,
                          progress=progress)


def check_jvp(f, x, jvp, *, cotangents=2, seed=0, eps=None, scheme="central", backend="auto",
              rtol=None, atol=None, worst=5, progress=None) -> GradCheckResult:
    """Check a Jacobian-vector product (a forward-mode derivative) against finite differences.

    ``jvp(x, t)`` (``jvp(*xs, ts)``, ``jvp(xs, ts)`` with the tangents in x's
    structure) returns ``J t`` with f's output shape.  It is called once per
    entry of x with ``t = e_i``, so every column of J is checked; the columns
    are contracted with random cotangents and judged exactly like
    :func:`check_vjp` (the other parameters are the same).

    Returns
    -------
    GradCheckResult

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> f = lambda v: np.array([v[0] * v[1], np.sin(v[0])])
    >>> jvp = lambda v, t: np.array([t[0] * v[1] + v[0] * t[1], np.cos(v[0]) * t[0]])
    >>> gpucheck.check_jvp(f, np.array([0.3, 2.0]), jvp).status
    'pass'
    """
    return _check_stacked(f, x, jvp, "jvp", cotangents=cotangents, seed=seed, eps=eps,
                          scheme=scheme, backend=backend, rtol=rtol, atol=atol, worst=worst,
                          progress=progress)


def _check_stacked(f, x, derivative, mode, *, cotangents, seed, eps, scheme, backend, rtol, atol,
                   worst, progress) -> GradCheckResult:
    func = as_function(f)
    if func.kind not in ("callable", "batched"):
        raise GpuCheckError(f"`f` for check_{mode} must be a plain or batched function returning "
                            f"an array; a {func.kind} function returns one float")
    if not callable(derivative):
        raise GpuCheckError(f"`{mode}` must be callable, {mode}(x, c), got {type(derivative).__name__}")
    structure, xv = validate.inputs(x)
    progress = validate.progress_option(progress)
    k = validate.positive_int(cotangents, "cotangents")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise GpuCheckError(f"`seed` must be an integer, got {type(seed).__name__}")
    name = backends.resolve(backend)
    eps = validate.eps_option(eps, xv, structure)
    rtol = validate.tolerance_option(rtol, "rtol")
    atol = validate.tolerance_option(atol, "atol")
    k_worst = validate.positive_int(worst, "worst")

    out, out_type = _output_at(func, structure, xv)
    dtype = out.dtype if out.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    c = np.random.default_rng(int(seed)).standard_normal((k,) + out.shape).astype(dtype)
    c64 = c.astype(np.float64).reshape(k, -1)
    if mode == "vjp":
        a = np.stack([validate.analytic(_call(structure, derivative, xv, out_type.to_caller(np.array(c[j])),
                                              "vjp(x, c)"), xv, structure, name="vjp(x, c)")
                      for j in range(k)])
    else:
        a = _jvp_columns(structure, derivative, xv, out.shape, c64)
    parts = c64 @ out.reshape(-1).astype(np.float64)
    offsets = parts.sum() - parts  # <c_l, f(x)> of the copies not perturbed
    inner = tuple(engine.Evaluator(_contracted(func, structure, name, c64[j], offsets[j], out.shape),
                                   xv, name) for j in range(k))
    ev = _Stacked(func, np.ascontiguousarray(np.broadcast_to(xv, (k,) + xv.shape)), name, progress,
                  inner=inner)
    if isinstance(eps, np.ndarray):
        eps = np.ascontiguousarray(np.broadcast_to(eps, ev.x.shape))
    result = engine.check(ev, a.reshape(ev.x.shape), scheme=get_scheme(scheme), eps=eps, rtol=rtol,
                          atol=atol, k_worst=k_worst)
    return structure.label(result, cotangents=k)


def _call(structure, fn, xv, extra, what):
    try:
        return structure.call(fn, xv.copy(), extra)
    except GpuCheckError:
        raise
    except Exception as err:
        raise GpuCheckError(f"calling `{what}` raised {type(err).__name__}{validate.where(err)}: "
                            f"{err}") from err


def _output_at(func, structure, xv):
    """f at x as a float NumPy array, and the array type f returned (for the cotangents)."""
    batch = func.kind == "batched"
    try:
        raw = structure.call(func.fn, xv[None] if batch else xv.copy(), lead=int(batch))
    except Exception as err:
        raise GpuCheckError(f"`f` raised {type(err).__name__}{validate.where(err)} at x: {err}") from err
    kind = array_type(raw)
    arr = validate.as_host_array(to_engine(raw, xv), "f(x)")
    if batch:
        if arr.ndim < 1 or arr.shape[0] != 1:
            raise GpuCheckError(f"a batched `f` must return shape (B, ...) for a batch of B points, "
                                f"got {arr.shape} for B = 1")
        arr = arr[0]
    if not (np.issubdtype(arr.dtype, np.floating) and arr.size):
        raise GpuCheckError(f"`f` must return a non-empty float array, got dtype {arr.dtype} "
                            f"shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise GpuCheckError("`f` must be finite at x, got non-finite entries in f(x)")
    return np.asarray(arr), kind


def _jvp_columns(structure, jvp, xv, out_shape, c64):
    """``<c_j, J e_i>`` for every entry i, from one jvp call per entry."""
    n = xv.size
    a = np.empty((c64.shape[0], n))
    tangent = np.zeros(n, dtype=xv.dtype)
    t_shape = xv.shape
    for i in range(n):
        tangent[i] = 1
        t = structure.rebuild(tangent.reshape(t_shape))
        col = validate.as_host_array(to_engine(_call(structure, jvp, xv, t, "jvp(x, t)"), xv), "jvp(x, t)")
        tangent[i] = 0
        if col.shape != tuple(out_shape):
            raise GpuCheckError(f"`jvp(x, t)` must return f's output shape {tuple(out_shape)}, "
                                f"got {col.shape}")
        a[:, i] = c64 @ np.asarray(col, dtype=np.float64).reshape(-1)
    return a


def _contracted(func, structure, backend, c, offset, out_shape):
    """The scalar ``<c, f(x)> + offset`` as a function of the form f has."""
    wrapped = structure.wrap(func, backend)
    # wrap() leaves one NumPy array alone; the result must still come back as NumPy or CuPy
    fn = wrapped.fn
    cached = {}

    def weights(like):  # c where the buffer ``like`` lives: the host, or CuPy's device
        if isinstance(like, np.ndarray):
            return c
        key = id(type(like))
        if key not in cached:
            import cupy

            cached[key] = cupy.asarray(c)
        return cached[key]

    if func.kind == "batched":
        def g(xs):
            res = to_engine(fn(xs), xs)
            if getattr(res, "shape", None) != (xs.shape[0],) + tuple(out_shape):
                raise GpuCheckError(
                    f"a batched `f` must return shape (B, *{tuple(out_shape)}) for a batch of B "
                    f"points, got {getattr(res, 'shape', type(res).__name__)}")
            return res.reshape(xs.shape[0], -1).astype(np.float64) @ weights(xs) + offset
    else:
        def g(x):
            res = to_engine(fn(x), x)
            arr = np.asarray(res) if not hasattr(res, "shape") else res
            if tuple(arr.shape) != tuple(out_shape):
                raise GpuCheckError(f"`f` must return its output shape {tuple(out_shape)} at every "
                                    f"point, got {tuple(arr.shape)}")
            return float(arr.reshape(-1).astype(np.float64) @ weights(x)) + offset

    return dataclasses.replace(wrapped, fn=g)


@dataclass
class _Stacked(engine.Evaluator):
    """Evaluates G over k stacked copies of x: copy j through the evaluator of ``<c_j, f>``."""

    inner: tuple = field(default=())

    def __call__(self, *parts):
        idx = np.concatenate([np.asarray(i, dtype=np.int64).ravel() for i, _ in parts])
        vals = np.concatenate([np.asarray(v, dtype=self.x.dtype).ravel() for _, v in parts])
        n = self.x[0].size
        copy, entry = np.divmod(idx, n)
        values = np.empty(idx.size, dtype=np.float64)
        done = [0]
        for j, ev in enumerate(self.inner):
            sel = np.flatnonzero(copy == j)
            if not sel.size:
                continue
            ev.progress = None if self.progress is None else _offset(self.progress, done[0], idx.size)
            nfev, comp, run = ev.nfev, ev.compile_seconds, ev.run_seconds
            (values[sel],) = ev((entry[sel], vals[sel]))
            self.nfev += ev.nfev - nfev
            self.compile_seconds += ev.compile_seconds - comp
            self.run_seconds += ev.run_seconds - run
            done[0] += sel.size
        out, start = [], 0
        for i, _ in parts:
            size = np.asarray(i).size
            out.append(values[start:start + size])
            start += size
        return out


def _offset(progress, base, total):
    def report(done, _total):
        progress(base + done, total)

    return report
