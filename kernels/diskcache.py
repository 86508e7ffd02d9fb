"""CUDA evaluation kernels in real source files, so numba can cache them on disk.

The evaluation kernel is generated per number of dimensions and params and
inlines the user's function: :mod:`gpucheck.diskcache` writes its source to
a file named by a fingerprint of everything compiled into it (the template,
the user's function as compiled for x's number of dimensions, what it reads
and calls, and the versions, numba-cuda's included), so numba can cache it
(``cuda.jit(cache=True)``) and an edited function is never served a stale
kernel.
"""

from __future__ import annotations

from gpucheck.diskcache import cache_dir, source_module
from gpucheck.diskcache import fingerprint as _fingerprint

__all__ = ["fingerprint", "cache_dir", "kernel_from_file"]


def _numba_cuda_version() -> str:
    try:
        from importlib.metadata import version

        return f"|numba-cuda {version('numba-cuda')}"
    except Exception:  # pragma: no cover - an unusual install
        return "|numba-cuda ?"


def fingerprint(fn, ndim: int, nparams: int):
    """A hex digest of everything compiled into the evaluation kernel, or None.

    None means ``fn`` reads something that cannot be described (compile it
    in memory instead).

    Examples
    --------
    >>> import numpy as np
    >>> T = np.ones(3)
    >>> def f(x):
    ...     return x[0] * T[0]
    >>> a = fingerprint(f, 1, 0); T[0] = 2.0
    >>> a != fingerprint(f, 1, 0)
    True
    >>> class Box:
    ...     v = 1.0
    >>> BOX = Box()
    >>> fingerprint(lambda x: x[0] + BOX.v, 1, 0) is None  # an arbitrary object: not cached
    True
    """
    from .contract import evaluate_source, variant

    return _fingerprint(evaluate_source(ndim, nparams), variant(fn, ndim),
                        extra=_numba_cuda_version())


def kernel_from_file(fn, ndim: int, nparams: int):
    """The Python evaluation kernel for ``fn``, loaded from its fingerprinted file.

    Returns None when caching is off, the folder is not writable or ``fn``
    cannot be fingerprinted; the caller then compiles in memory.
    """
    from gpucheck._cuda import cuda

    from .contract import device_function, evaluate_source

    digest = fingerprint(fn, ndim, nparams)
    names = {"cuda": cuda, "user_fn": device_function(fn, ndim)}
    module = source_module(f"evaluate_{ndim}d_{nparams}p", evaluate_source(ndim, nparams), digest,
                           names, header=f"CUDA kernel for {getattr(fn, '__qualname__', fn)!s}",
                           package="gpucheck_kernel_cache")
    if module is None:
        return None
    return module.evaluate
