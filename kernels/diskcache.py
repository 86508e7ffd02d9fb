"""Evaluation kernels in real source files, so numba can cache them on disk.

numba's on-disk cache (``cuda.jit(cache=True)``) needs the kernel's source in
a file, and it invalidates an entry only when *that* file changes.  The
evaluation kernel is generated, and it inlines the user's function, whose
changes numba would not notice.  So the generated source is written to a
file whose name is a fingerprint of everything compiled into it: the
template, the function's code and constants, every global and closure value
it reads (arrays by content), the functions it calls (followed the same
way), and the versions of gpucheck, numba and numba-cuda.  A function that
reads anything the fingerprint cannot describe (an arbitrary object) is
compiled in memory as before, never from a cache that might be stale.

The folder is ``$GPUCHECK_CACHE_DIR``, else ``$XDG_CACHE_HOME/gpucheck``, else
``~/.cache/gpucheck``; ``GPUCHECK_CACHE_DIR=off`` turns the cache off.  numba
keeps the compiled code in ``__pycache__`` beside the generated files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import types as _pytypes

import numpy as np

__all__ = ["fingerprint", "cache_dir", "kernel_from_file"]


def cache_dir():
    """The folder of the generated kernel files, or None when caching is off.

    Examples
    --------
    >>> import os
    >>> os.environ["GPUCHECK_CACHE_DIR"] = "off"
    >>> cache_dir() is None
    True
    >>> del os.environ["GPUCHECK_CACHE_DIR"]
    """
    explicit = os.environ.get("GPUCHECK_CACHE_DIR")
    if explicit is not None:
        return None if explicit.strip().lower() in ("", "0", "off", "none") else explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gpucheck")


_STABLE_MODULES = {"numpy", "math", "cmath", "numba", "operator"}


class _Opaque(Exception):
    """Something the fingerprint cannot describe faithfully."""


def _versions() -> bytes:
    import numba

    from gpucheck._version import __version__

    try:
        import numba_cuda

        cuda_version = numba_cuda.__version__
    except Exception:  # pragma: no cover - numba-cuda always has a version
        cuda_version = "?"
    return f"{__version__}|{numba.__version__}|{cuda_version}|{np.__version__}".encode()


def _feed(h, value, seen: set) -> None:
    """Hash ``value`` into ``h``; raise _Opaque for what cannot be described."""
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, np.ndarray):
        if value.dtype == object:
            raise _Opaque("object array")
        h.update(f"array:{value.dtype.str}:{value.shape};".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (np.generic, np.dtype)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, (tuple, list)):
        h.update(f"{type(value).__name__}[{len(value)}];".encode())
        for item in value:
            _feed(h, item, seen)
    elif isinstance(value, _pytypes.ModuleType):
        # Only modules whose attributes are library code: an array read as
        # ``mymodule.TABLE`` would not be in the fingerprint.
        if value.__name__.split(".")[0] not in _STABLE_MODULES:
            raise _Opaque(f"module {value.__name__}")
        h.update(f"module:{value.__name__}:{getattr(value, '__version__', '')};".encode())
    elif isinstance(value, _pytypes.BuiltinFunctionType):
        h.update(f"builtin:{getattr(value, '__module__', '')}.{value.__qualname__};".encode())
    elif isinstance(value, type) and value.__module__ in ("builtins", "numpy"):
        h.update(f"type:{value.__module__}.{value.__qualname__};".encode())
    elif isinstance(value, _pytypes.FunctionType) or hasattr(value, "py_func"):
        _function(h, getattr(value, "py_func", value), seen)
    else:
        raise _Opaque(type(value).__name__)


def _code(h, code, seen: set) -> None:
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_argcount)).encode())
    for const in code.co_consts:
        if isinstance(const, _pytypes.CodeType):
            _code(h, const, seen)
        else:
            _feed(h, const, seen)


def _function(h, func, seen: set) -> None:
    if id(func) in seen:
        h.update(b"<recursion>")
        return
    seen.add(id(func))
    code = func.__code__
    _code(h, code, seen)
    h.update(b"defaults:")
    _feed(h, tuple(func.__defaults__ or ()), seen)
    _feed(h, tuple(sorted((func.__kwdefaults__ or {}).items())), seen)
    variants = getattr(func, "cuda_variants", None)
    if isinstance(variants, dict):
        for nd in sorted(variants):
            h.update(f"variant:{nd};".encode())
            _feed(h, variants[nd], seen)
    scope = getattr(func, "__globals__", {})
    cells = dict(zip(code.co_freevars, func.__closure__ or ()))
    for name in sorted(_names(code)):
        h.update(f"name:{name}=".encode())
        if name in cells:
            try:
                _feed(h, cells[name].cell_contents, seen)
            except ValueError:
                h.update(b"<empty cell>")
        elif name in scope:
            _feed(h, scope[name], seen)
        else:
            h.update(b"<builtin or attribute>;")


def _names(code) -> set:
    names = set(code.co_names) | set(code.co_freevars)
    for const in code.co_consts:
        if isinstance(const, _pytypes.CodeType):
            names |= _names(const)
    return names


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

    h = hashlib.sha256()
    h.update(_versions())
    h.update(evaluate_source(ndim, nparams).encode())
    try:
        _feed(h, variant(fn, ndim), set())
    except _Opaque:
        return None
    return h.hexdigest()


def kernel_from_file(fn, ndim: int, nparams: int):
    """The Python evaluation kernel for ``fn``, loaded from its fingerprinted file.

    Returns None when caching is off, the folder is not writable or ``fn``
    cannot be fingerprinted; the caller then compiles in memory.
    """
    from gpucheck._cuda import cuda

    from .contract import device_function, evaluate_source

    folder = cache_dir()
    if folder is None:
        return None
    digest = fingerprint(fn, ndim, nparams)
    if digest is None:
        return None
    name = f"evaluate_{ndim}d_{nparams}p_{digest[:32]}"
    path = os.path.join(folder, name + ".py")
    try:
        if not os.path.isfile(path):
            os.makedirs(folder, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as fh:
                fh.write(f"# generated by gpucheck for {getattr(fn, '__qualname__', fn)!s}; "
                         f"fingerprint {digest}\n")
                fh.write(evaluate_source(ndim, nparams))
            os.replace(tmp, path)
    except OSError:
        return None
    spec = importlib.util.spec_from_file_location(f"gpucheck_kernel_cache.{name}", path)
    module = importlib.util.module_from_spec(spec)
    module.cuda = cuda
    module.user_fn = device_function(fn, ndim)
    spec.loader.exec_module(module)
    return module.evaluate
