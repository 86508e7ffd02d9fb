"""Kernel-contract functions on the host: one ``numba.njit(parallel=True)`` loop.

The loop mirrors the CUDA kernel in :mod:`gpucheck.kernels.contract`: the
points are split into one chunk per numba thread (a few more, for balance;
one thread only for a check too small to pay for starting the others);
each chunk copies x once into its own scratch array, then for every point
perturbs one element, calls the user's function, stores f as float64 and
restores the element.  After its last point a chunk checks that its copy
equals x again: a function that writes into its argument would corrupt the
points after, and is reported instead.  The function body is the user's own source compiled
by numba, the same source the CUDA path compiles.

numba may reassociate floating-point operations in the user's function
(``reassoc`` only, see :func:`gpucheck.kernel`), which lets it vectorise
sums; ``kernel(..., reassoc=False)`` compiles it strictly.

A function that raises for some point does not stop the loop (a raise
inside numba's parallel region would lose its message): the first such
point is recorded, and after the loop the function is run again at that
point as plain Python, so the user sees their own exception, message and
line.

Compiled loops are cached per (function, reassociation, dtype, ndim, param
types) in the process and on disk (:mod:`gpucheck.backends.cpu_cache`); the
first call's compile (or cache load) time is returned apart from the run
time.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ..errors import GpuCheckError
from ..functions import Function
from . import Evaluation, Progress
from .cpu_cache import SERIAL_WORK, compile_generated

__all__ = ["evaluate", "compile_loop", "loop_source", "user_function", "raise_user_error"]

_LOCK = threading.RLock()
_USER: dict = {}
_LOOPS: dict = {}

# ``guarded`` keeps the try/except out of the prange body: numba runs a
# loop with more than one exit serially.
_TEMPLATE = '''
def guarded(x{params}):
    try:
        return user_fn(x{params}), False
    except Exception:
        return 0.0, True


def run(x, idx, vals, out, n_chunks, written, failed{params}):
    xflat = x.reshape(-1)
    total = idx.shape[0]
    for c in prange(n_chunks):
        start = (c * total) // n_chunks
        stop = ((c + 1) * total) // n_chunks
        if start < stop:
            row = x.copy()
            rflat = row.reshape(-1)
            for p in range(start, stop):
                j = idx[p]
                rflat[j] = vals[p]
                value, bad = guarded(row{params})
                out[p] = value
                if bad and failed[c] == 0:
                    failed[c] = p + 1
                rflat[j] = xflat[j]
            for i in range(rflat.shape[0]):
                if rflat[i] != xflat[i]:
                    written[c] = 1
'''


def loop_source(nparams: int) -> str:
    """Source of the parallel loop for ``nparams`` bound params."""
    return _TEMPLATE.format(params="".join(f", p{k}" for k in range(nparams)))


def user_function(fn, reassoc: bool = True):
    """``fn`` jitted for the CPU (cached per function and flag).

    ``reassoc`` lets LLVM reassociate floating-point operations (and so
    vectorise sums); no other fast-math flag is ever set, so NaN and
    infinity keep their meaning.
    """
    import numba

    key = (fn, bool(reassoc))
    with _LOCK:
        jitted = _USER.get(key)
        if jitted is None:
            jitted = _USER[key] = numba.njit(fastmath={"reassoc"} if reassoc else False)(
                getattr(fn, "py_func", fn))
        return jitted


def raise_user_error(func: Function, call, where: str):
    """Re-raise the exception a compiled user function raised, with its message.

    ``call(fn)`` calls ``fn`` (the user's function) on the perturbed data of
    the failing point: first as plain Python, which gives the user's own
    exception, message and line; if Python does not raise there, the
    compiled function alone, which raises numba's version of it.
    """
    plain = getattr(func.fn, "py_func", func.fn)
    for fn in (plain, user_function(func.fn, reassoc=False)):
        try:
            call(fn)
        except Exception as err:
            if hasattr(err, "add_note"):
                what = "row-wise" if func.kind == "rowwise" else func.kind
                err.add_note(f"gpucheck: raised by {what} function {func.name!r} {where}")
            raise
    what = "row-wise" if func.kind == "rowwise" else func.kind
    raise GpuCheckError(f"`f` ({what} function {func.name!r}) raised an exception {where} "
                        "in compiled code, but not when run again alone")


def compile_loop(fn, dtype, ndim: int, param_specs, *, reassoc: bool = True,
                 parallel: bool = True):
    """The compiled loop for ``fn`` and the seconds compiling took (0 if cached).

    Parameters
    ----------
    fn : callable
        The kernel-contract function ``fn(x, *params) -> float``.
    dtype : numpy.dtype
        dtype of x.
    ndim : int
        Number of dimensions of x.
    param_specs : sequence of (dtype, int)
        dtype and ndim of each param.

    Examples
    --------
    >>> import numpy as np
    >>> def total(x):
    ...     s = 0.0
    ...     for i in range(x.shape[0]):
    ...         s += x[i]
    ...     return s
    >>> loop, seconds = compile_loop(total, np.float64, 1, ())
    >>> out, flags = np.empty(2), np.zeros(2, np.int64)
    >>> loop(np.ones(3), np.array([0, 2]), np.array([5.0, -1.0]), out, 2, flags, flags.copy())
    >>> out.tolist()
    [7.0, 1.0]
    """
    import numba
    from numba import types

    specs = tuple((np.dtype(d).str, int(n)) for d, n in param_specs)
    key = (fn, bool(reassoc), np.dtype(dtype).str, int(ndim), specs, bool(parallel))
    with _LOCK:
        loop = _LOOPS.get(key)
        if loop is not None:
            return loop, 0.0
        t0 = time.perf_counter()
        user = user_function(fn, reassoc)

        def arr(d, n):
            return types.Array(numba.from_dtype(np.dtype(d)), n, "C")

        flags = arr(np.int64, 1)
        sig = types.void(arr(dtype, ndim), arr(np.int64, 1), arr(dtype, 1), arr(np.float64, 1),
                         types.int64, flags, flags, *(arr(d, n) for d, n in specs))
        loop = compile_generated("kernel", loop_source(len(specs)),
                                 {"prange": numba.prange, "user_fn": user}, (user,), sig,
                                 helpers=("guarded",), parallel=bool(parallel))
        _LOOPS[key] = loop
        return loop, time.perf_counter() - t0


def _as_sample(x: np.ndarray) -> np.ndarray:
    # A 0-d point is handed to the function as a 1-element 1-D array, on
    # every backend, so one source serves both.
    return x.reshape(1) if x.ndim == 0 else x


def compile_error(func: Function, backend: str, err: Exception) -> GpuCheckError:
    """The error raised when numba cannot compile a kernel-contract function."""
    # numba's message opens with pipeline-stage lines; the cause is the first
    # line after them, and for a call that does not type, the signature tried.
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    causes = [ln for ln in lines if not ln.startswith("Failed in")]
    detail = causes[0] if causes else type(err).__name__
    tried = next((ln for ln in lines if ln.startswith(">>>")), None)
    if tried:
        detail += " " + tried.lstrip("> ").strip()
    if func.kind == "rowwise":
        what, arg = "row-wise function", "its row"
    else:
        what, arg = "kernel function", "`x`"
    return GpuCheckError(
        f"`f` ({what} {func.name!r}) did not compile for backend {backend!r}: "
        f"{detail}. A {what} must be numba-compatible: loops and scalar "
        f"arithmetic over {arg} and its params, returning one float."
    )


def writes_input_error(func: Function) -> GpuCheckError:
    """The error raised when a kernel (or row-wise) function modified its argument."""
    if func.kind == "rowwise":
        return GpuCheckError(
            f"`f` (row-wise function {func.name!r}) writes into its argument, the row: every "
            f"point after the first would see a corrupted copy. A row-wise function must only "
            f"read its row.")
    return GpuCheckError(
        f"`f` (kernel function {func.name!r}) writes into its argument `x`: every point "
        f"after the first would see a corrupted copy. A kernel function must only read `x`."
    )


def evaluate(func: Function, x: np.ndarray, idx: np.ndarray, vals: np.ndarray, *,
             progress: Progress = None, n_chunks: int | None = None) -> Evaluation:
    """Evaluate a kernel-contract function at every perturbed point on the host.

    Parameters
    ----------
    func : Function
        ``func.kind == 'kernel'``.
    x, idx, vals : numpy.ndarray
        The point and the perturbations (see :mod:`gpucheck.backends`).
    progress : callable, optional
        Called as ``progress(done, total)``: once at the end (the loop runs
        in one call).
    n_chunks : int, optional
        Number of scratch copies (work items); default four per numba thread.

    Returns
    -------
    Evaluation

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> from gpucheck.functions import as_function
    >>> def sq(x):
    ...     s = 0.0
    ...     for i in range(x.shape[0]):
    ...         s += x[i] * x[i]
    ...     return s
    >>> ev = evaluate(as_function(gpucheck.kernel(sq)), np.ones(3),
    ...               np.array([1]), np.array([2.0]))
    >>> ev.values.tolist()
    [6.0]
    """
    import numba
    from numba.core.errors import NumbaError

    x = _as_sample(np.ascontiguousarray(x))
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    vals = np.ascontiguousarray(vals, dtype=x.dtype)
    params = tuple(np.ascontiguousarray(p) for p in func.params)
    specs = tuple((p.dtype, p.ndim) for p in params)
    reassoc = getattr(func.form, "reassoc", True)
    try:
        loop, compile_seconds = compile_loop(func.fn, x.dtype, x.ndim, specs, reassoc=reassoc,
                                             parallel=idx.shape[0] * x.size >= SERIAL_WORK)
    except NumbaError as err:
        raise compile_error(func, "cpu", err) from err
    total = idx.shape[0]
    out = np.empty(total, dtype=np.float64)
    if n_chunks is None:
        n_chunks = 4 * numba.get_num_threads()
    n_chunks = max(1, min(int(n_chunks), total))
    written = np.zeros(n_chunks, dtype=np.int64)
    failed = np.zeros(n_chunks, dtype=np.int64)
    t0 = time.perf_counter()
    if total:
        loop(x, idx, vals, out, n_chunks, written, failed, *params)
    run_seconds = time.perf_counter() - t0
    if failed.any():
        p = int(failed[failed > 0].min()) - 1
        z = x.copy()
        z.reshape(-1)[idx[p]] = vals[p]
        raise_user_error(func, lambda fn: fn(z, *params),
                         f"at point {p} (flat index {int(idx[p])} of x set to {vals[p]!r})")
    if written.any():
        raise writes_input_error(func)
    if progress is not None:
        progress(total, total)
    return Evaluation(out, compile_seconds, run_seconds)
