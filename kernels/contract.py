"""CUDA kernels built from a user function of the kernel contract.

A kernel-contract function ``fn(x, *params) -> float`` evaluates f for one
sample.  It becomes a device function (``inline="always"``, which also lets
it compile to PTX with no device present) called from a generated kernel:

* ``G`` threads each own one perturbed copy of x.  The copies are stored
  *interleaved*, as an array of shape ``(*x.shape, G)`` whose element
  ``(..., g)`` belongs to thread ``g``: when the threads of a warp read the
  same element of their own copies the addresses are adjacent, so global
  loads coalesce.  Thread ``g`` hands ``fn`` the strided view
  ``scratch[..., g]``, which has x's shape.
* :func:`fill` copies x into every copy once (through a 2-D view).  :func:`evaluate` then loops
  over points ``p = start + g, start + g + G, ...``: perturb one element,
  call ``fn``, write f as float64, restore the element.  The copies are
  back to x after every launch, so a check may be split into any number of
  launches without refilling.

Accumulation: every value of f is stored as float64, and the differences
``f(x + h) - f(x - h)`` are formed on the host in float64, so the only
cancellation left is the one in f itself.  What reduces it is summing in
float64 inside ``fn`` (start the accumulator as ``0.0``: numba then adds
float32 terms in float64; on a device this costs FP64 throughput, which is
half of FP32 on H100-class parts and far less on consumer ones).  In the
simulator ``fn`` runs as Python, where NumPy's scalar rules keep
``0.0 + float32`` in float32, so float32 results there differ from a
device or the CPU loop by float32 rounding.

Kernels need a fixed number of arguments, so the evaluation kernel's source
is generated for the number of dimensions of x and the number of params.
Compiled kernels are cached per (function, dtype, ndim, param types).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from gpucheck._cuda import SIMULATOR, cuda, from_dtype, types

__all__ = [
    "device_function",
    "evaluate_source",
    "fill",
    "verify",
    "verify_signature",
    "compile_fill",
    "compile_evaluate",
    "evaluate_signature",
    "fill_signature",
    "ptx",
]

_LOCK = threading.RLock()
_DEVICE_FUNCS: dict = {}
_EVAL_CACHE: dict = {}
_FILL_CACHE: dict = {}


def fill(xflat, sflat):
    """Copy ``xflat`` (N,) into every column of ``sflat`` (N, G)."""
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    n_rows = sflat.shape[1]
    total = xflat.shape[0] * n_rows
    while i < total:
        j = i // n_rows
        sflat[j, i - j * n_rows] = xflat[j]
        i += stride


def verify(xflat, sflat, written):
    """Set ``written[0]`` when any column of ``sflat`` differs from ``xflat``."""
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    n_rows = sflat.shape[1]
    total = xflat.shape[0] * n_rows
    while i < total:
        j = i // n_rows
        if sflat[j, i - j * n_rows] != xflat[j]:
            written[0] = 1
        i += stride


_TEMPLATE = '''
def evaluate(scratch, xflat, idx, vals, out, start, stop{params}):
    g = cuda.grid(1)
    n_rows = scratch.shape[{ndim}]
    if g >= n_rows:
        return
    row = scratch[{colons}g]
    p = start + g
    while p < stop:
        j = idx[p]
{unravel}
        scratch[{index}g] = vals[p]
        out[p] = user_fn(row{params})
        scratch[{index}g] = xflat[j]
        p += n_rows
'''


def evaluate_source(ndim: int, nparams: int) -> str:
    """Source of the evaluation kernel for an ``ndim``-D x and ``nparams`` params.

    The kernel takes only the n-D scratch array and unravels the flat index
    itself: two views of one buffer passed as two arguments would be two
    separate copies in the simulator.
    """
    params = "".join(f", p{k}" for k in range(nparams))
    lines = ["        r = j"]
    for k in range(ndim - 1, 0, -1):
        lines.append(f"        i{k} = r % scratch.shape[{k}]")
        lines.append(f"        r = r // scratch.shape[{k}]")
    lines.append("        i0 = r")
    index = "".join(f"i{k}, " for k in range(ndim))
    return _TEMPLATE.format(params=params, ndim=ndim, colons=":, " * ndim,
                            unravel="\n".join(lines), index=index)


def _plain(fn):
    # A function already decorated with numba.njit carries its source here.
    return getattr(fn, "py_func", fn)


def device_function(fn):
    """``fn`` compiled lazily as an always-inlined CUDA device function (cached)."""
    with _LOCK:
        dev = _DEVICE_FUNCS.get(fn)
        if dev is None:
            dev = _DEVICE_FUNCS[fn] = cuda.jit(device=True, inline="always")(_plain(fn))
        return dev


def _array(dtype, ndim: int, layout: str = "C"):
    return types.Array(from_dtype(np.dtype(dtype)), ndim, layout)


def fill_signature(dtype):
    """Argument types of :func:`fill` for x of ``dtype``."""
    return (_array(dtype, 1), _array(dtype, 2))


def verify_signature(dtype):
    """Argument types of :func:`verify` for x of ``dtype``."""
    return (_array(dtype, 1), _array(dtype, 2), _array(np.int64, 1))


def evaluate_signature(dtype, ndim: int, param_specs):
    """Argument types of the evaluation kernel.

    ``param_specs`` is a sequence of ``(dtype, ndim)``, one per param.
    """
    head = (
        _array(dtype, ndim + 1),  # scratch, interleaved copies
        _array(dtype, 1),  # x, flat
        _array(np.int64, 1),  # idx
        _array(dtype, 1),  # vals
        _array(np.float64, 1),  # out
        types.int64,
        types.int64,
    )
    return head + tuple(_array(d, n) for d, n in param_specs)


def _python_kernel(fn, ndim: int, nparams: int):
    namespace = {"cuda": cuda, "user_fn": device_function(fn)}
    exec(compile(evaluate_source(ndim, nparams), "<gpucheck evaluate kernel>", "exec"), namespace)
    return namespace["evaluate"]


def _eager(pyfunc, argtypes):
    # On a device, compile now (with the signature) so the time can be
    # reported apart from the run; the simulator has nothing to compile.
    if SIMULATOR:
        return cuda.jit(pyfunc)
    return cuda.jit(types.void(*argtypes))(pyfunc)


def compile_fill(dtype):
    """The compiled :func:`fill` and :func:`verify` kernels for ``dtype``.

    Returns ``(fill, verify, seconds)``, seconds 0 when cached.
    """
    key = np.dtype(dtype).str
    with _LOCK:
        kerns = _FILL_CACHE.get(key)
        if kerns is not None:
            return kerns + (0.0,)
        t0 = time.perf_counter()
        kerns = _FILL_CACHE[key] = (_eager(fill, fill_signature(dtype)),
                                    _eager(verify, verify_signature(dtype)))
        return kerns + (time.perf_counter() - t0,)


def compile_evaluate(fn, dtype, ndim: int, param_specs):
    """The compiled evaluation kernel for ``fn`` and the seconds it took (0 if cached).

    Parameters
    ----------
    fn : callable
        The kernel-contract function ``fn(x, *params) -> float``.
    dtype : numpy.dtype
        dtype of x.
    ndim : int
        Number of dimensions of x (at least 1).
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
    >>> kern, seconds = compile_evaluate(total, np.float32, 1, ())  # doctest: +SKIP
    """
    specs = tuple((np.dtype(d).str, int(n)) for d, n in param_specs)
    key = (fn, np.dtype(dtype).str, int(ndim), specs)
    with _LOCK:
        kern = _EVAL_CACHE.get(key)
        if kern is not None:
            return kern, 0.0
        t0 = time.perf_counter()
        pyfunc = _python_kernel(fn, ndim, len(specs))
        kern = _EVAL_CACHE[key] = _eager(pyfunc, evaluate_signature(dtype, ndim, specs))
        return kern, time.perf_counter() - t0


def ptx(fn, dtype, ndim: int, param_specs, *, cc=(9, 0)) -> dict:
    """Compile the kernels a check of ``fn`` launches to PTX; no device needed.

    Returns ``{"fill": ptx_text, "verify": ptx_text, "evaluate": ptx_text}``.  A function numba
    cannot type raises numba's typing error here, as it would on a device.

    Examples
    --------
    >>> def total(x):
    ...     s = 0.0
    ...     for i in range(x.shape[0]):
    ...         s += x[i]
    ...     return s
    >>> "evaluate" in ptx(total, "float64", 1, ())  # doctest: +SKIP
    True
    """
    specs = tuple((np.dtype(d), int(n)) for d, n in param_specs)
    pyfunc = _python_kernel(fn, ndim, len(specs))
    out = {}
    out["fill"], _ = cuda.compile_ptx(fill, fill_signature(dtype), cc=cc)
    out["verify"], _ = cuda.compile_ptx(verify, verify_signature(dtype), cc=cc)
    out["evaluate"], _ = cuda.compile_ptx(pyfunc, evaluate_signature(dtype, ndim, specs), cc=cc)
    return out
