"""numba's on-disk cache for the generated CPU loops.

A loop is generated per number of arrays, so its source exists only as a
string; :mod:`gpucheck.diskcache` writes it to a file named by a fingerprint
of everything compiled into it, so that numba can cache it and an edited
user function is never served a stale loop.
"""

from __future__ import annotations

from ..diskcache import cache_dir, fingerprint, source_module

__all__ = ["cache_dir", "fingerprint", "compile_generated", "SERIAL_WORK"]

#: Below this many operations (points times the work of one) a generated
#: loop is compiled without ``parallel``.  Measured on the 2-core host: a
#: parallel region costs tens of microseconds to start, and its OpenMP
#: workers then spin for a while, which slowed the NumPy/BLAS calls of the
#: verdict that follows by up to tens of milliseconds on a busy machine.
SERIAL_WORK = 1 << 18


def compile_generated(tag: str, source: str, names: dict, parts: tuple, signature, *,
                      helpers: tuple = (), **options):
    """Compile the function ``run`` of a generated ``source`` with ``numba.njit``.

    Parameters
    ----------
    tag : str
        Names the generated file.
    source : str
        Python source defining ``run`` and the ``helpers``.
    names : dict
        Globals of the source (jitted functions it calls, ``prange``).
    parts : tuple
        What else goes into the fingerprint: the functions in ``names``.
    signature
        numba signature of ``run`` (compiled now).
    helpers : tuple of str
        Functions of the source that ``run`` calls, jitted first.
    **options
        ``numba.njit`` options of ``run`` (``parallel=True``, ...).

    Returns
    -------
    numba dispatcher
        Loaded from numba's on-disk cache when the fingerprint is known and
        an earlier process compiled it.
    """
    digest = fingerprint(source, tag, sorted(options.items()), *parts)
    module = source_module(tag, source, digest, names, header=f"CPU loop {tag}",
                           package="_gpucheck_cpu_loop")
    if module is not None:
        try:
            return _jit(module.__dict__, helpers, signature, True, options)
        except Exception:  # noqa: BLE001 - a cache entry numba cannot load
            # (written by another numba, or damaged): compile in memory
            # instead; a real compile error is raised again below
            pass
    scope = dict(names)
    exec(compile(source, f"<gpucheck {tag}>", "exec"), scope)
    return _jit(scope, helpers, signature, False, options)


def _jit(scope: dict, helpers: tuple, signature, cache: bool, options: dict):
    import numba

    for helper in helpers:
        if not hasattr(scope[helper], "py_func"):  # not jitted by an earlier signature
            scope[helper] = numba.njit(cache=cache)(scope[helper])
    return numba.njit(signature, cache=cache, **options)(scope["run"])
