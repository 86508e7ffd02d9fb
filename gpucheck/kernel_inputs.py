"""Kernel functions of several inputs: a generated wrapper cuts the flat point.

A kernel function of several inputs is written ``fn(x1, x2, ..., *params)``,
while gpucheck's kernels perturb one flat point.  The wrapper generated here
takes that point and hands ``fn`` each input as a view with its own shape,
then the params::

    def wrapped(x, p0):
        s = x.strides[0]
        return user_fn(view(x[0:12], (3, 4), (4 * s, s)), x[12:16], p0)

On CUDA a thread's copy of the point is a strided view, which numba cannot
``reshape``, so ``view`` builds the n-D view from explicit strides: numba's
``reshape_unchecked`` of the target being compiled for (CPU or CUDA), and
NumPy's ``as_strided`` in the simulator, where kernels run as Python.  1-D
inputs are plain slices, and a 0-d input arrives as a 1-element 1-D array,
the rule for a single 0-d point too.  The wrapper is generated per
function, layout, number of params and target, and cached, so the
backends' compile caches keep working across checks.
"""

from __future__ import annotations

import dataclasses
import threading

from .errors import GpuCheckError

__all__ = ["wrap_kernel", "wrapper_source"]

_LOCK = threading.Lock()
_CACHE: dict = {}


def wrapper_source(shapes, offsets, nparams: int) -> str:
    """Source of the wrapper for inputs of ``shapes`` at ``offsets`` in the flat point.

    Examples
    --------
    >>> print(wrapper_source([(2, 3), (3,)], [0, 6], 1), end="")
    def wrapped(x, p0):
        s = x.strides[0]
        return user_fn(view(x[0:6], (2, 3), (3 * s, s)), x[6:9], p0)
    """
    args = []
    for shape, start in zip(shapes, offsets):
        size = 1
        for d in shape:
            size *= int(d)
        part = f"x[{start}:{start + size}]"
        if len(shape) >= 2:
            dims = ", ".join(str(int(d)) for d in shape)
            strides, inner = [], 1
            for d in reversed(shape):
                strides.append("s" if inner == 1 else f"{inner} * s")
                inner *= int(d)
            part = f"view({part}, ({dims}), ({', '.join(reversed(strides))}))"
        args.append(part)
    params = "".join(f", p{k}" for k in range(nparams))
    return (f"def wrapped(x{params}):\n"
            f"    s = x.strides[0]\n"
            f"    return user_fn({', '.join(args)}{params})\n")


def _target(backend: str) -> dict:
    """``view`` and a compiler for the user's function, for one backend."""
    if backend == "cpu":
        import numba
        from numba.np.arrayobj import reshape_unchecked

        return {"view": reshape_unchecked, "compile": numba.njit}
    from ._cuda import SIMULATOR, cuda

    if SIMULATOR:
        from numpy.lib.stride_tricks import as_strided

        def view(a, shape, strides):
            return as_strided(a, shape=shape, strides=strides)
    else:
        from numba.cuda.np.arrayobj import reshape_unchecked as view

    return {"view": view, "compile": lambda fn: cuda.jit(device=True, inline="always")(fn)}


def wrap_kernel(func, structure, backend: str):
    """A kernel :class:`~gpucheck.functions.Function` of the flat point, for ``backend``."""
    if structure.kind == "dict":
        raise GpuCheckError(
            "a kernel function takes several inputs as a tuple or list, fn(x1, x2, ..., *params): "
            "numba cannot pass a dict; give `x` and `grad` as tuples")
    plain = getattr(func.fn, "py_func", func.fn)
    key = (plain, backend, tuple(structure.shapes), len(func.params))
    with _LOCK:
        wrapped = _CACHE.get(key)
        if wrapped is None:
            target = _target(backend)
            namespace = {"view": target["view"], "user_fn": target["compile"](plain)}
            source = wrapper_source(structure.shapes, structure.offsets, len(func.params))
            exec(compile(source, f"<gpucheck inputs of {func.name}>", "exec"), namespace)
            wrapped = _CACHE[key] = namespace["wrapped"]
    return dataclasses.replace(func, fn=wrapped)
