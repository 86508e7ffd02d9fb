"""CUDA kernels for the built-in layers' delta evaluators: one thread per point.

A point function of :mod:`gpucheck.kernels.layers` (``point(j, v, *arrays)``,
the change of f when flat entry j of x takes the value v) becomes an
always-inlined device function called from a generated kernel in which
thread g evaluates points ``g, g + G, ...`` (a grid-stride loop) and writes
``f0 + point(...)`` as float64.  The prepared arrays are read-only and shared
by every thread; neighbouring threads take neighbouring points, which the
engine orders element by element, so their reads of x and of the
intermediates are close together.

Kernels need a fixed number of arguments, so the source is generated per
number of arrays; compiled kernels are cached per (point function, dtype,
array types).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from gpucheck._cuda import SIMULATOR, cuda, from_dtype, types

__all__ = ["points_source", "signature", "compile_points", "ptx"]

_LOCK = threading.RLock()
_DEVICE: dict = {}
_KERNELS: dict = {}

_TEMPLATE = '''
def run(idx, vals, out, f0{args}):
    p = cuda.grid(1)
    stride = cuda.gridsize(1)
    while p < idx.shape[0]:
        out[p] = f0 + point(idx[p], vals[p]{args})
        p += stride
'''


def points_source(narrays: int) -> str:
    """Source of the point kernel for ``narrays`` prepared arrays."""
    return _TEMPLATE.format(args="".join(f", a{k}" for k in range(narrays)))


def _device(point):
    with _LOCK:
        dev = _DEVICE.get(point)
        if dev is None:
            dev = _DEVICE[point] = cuda.jit(device=True, inline="always")(point)
        return dev


def _array(dtype, ndim: int):
    return types.Array(from_dtype(np.dtype(dtype)), ndim, "C")


def signature(dtype, specs) -> tuple:
    """Argument types of the point kernel: idx, vals (x's dtype), out, f0, the arrays."""
    return (_array(np.int64, 1), _array(dtype, 1), _array(np.float64, 1), types.float64,
            *(_array(d, n) for d, n in specs))


def _python_kernel(point, narrays: int):
    namespace = {"cuda": cuda, "point": _device(point)}
    exec(compile(points_source(narrays), "<gpucheck point kernel>", "exec"), namespace)
    return namespace["run"]


def compile_points(point, dtype, specs):
    """The compiled point kernel and the seconds compiling took (0 if cached).

    ``specs`` is the (dtype, ndim) of each prepared array.  In the
    simulator nothing is compiled ahead.
    """
    specs = tuple((np.dtype(d).str, int(n)) for d, n in specs)
    key = (point, np.dtype(dtype).str, specs)
    with _LOCK:
        kern = _KERNELS.get(key)
        if kern is not None:
            return kern, 0.0
        t0 = time.perf_counter()
        pyfunc = _python_kernel(point, len(specs))
        if SIMULATOR:
            kern = cuda.jit(pyfunc)
        else:
            kern = cuda.jit(types.void(*signature(dtype, specs)))(pyfunc)
        _KERNELS[key] = kern
        return kern, time.perf_counter() - t0


def ptx(point, dtype, specs, *, cc=(9, 0)) -> str:
    """PTX of the point kernel for ``point``; no device needed.

    Examples
    --------
    >>> from gpucheck.kernels.layers import mse_point
    >>> ".entry" in ptx(mse_point, "float32", [("float64", 1)] * 3)  # doctest: +SKIP
    True
    """
    specs = tuple((np.dtype(d), int(n)) for d, n in specs)
    text, _ = cuda.compile_ptx(_python_kernel(point, len(specs)), signature(dtype, specs), cc=cc)
    return text
