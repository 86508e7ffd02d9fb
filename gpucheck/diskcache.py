"""Generated numba code in real source files, so numba can cache it on disk.

numba's on-disk cache (``njit(cache=True)``, ``cuda.jit(cache=True)``) needs
a function's source in a file, and it invalidates an entry only when *that*
file changes.  gpucheck generates its loops and kernels, and they call the
user's function, whose changes numba would not notice.  So the generated
source is written to a file whose name is a fingerprint of everything
compiled into it: the source, the compile options, the code and constants of
every function it calls (the user's function and what that calls), every
global or closure value those read (arrays by content), and the versions of
gpucheck, numba, NumPy and Python.  A function that reads anything the
fingerprint cannot describe (an arbitrary object, a module of the user's) is
compiled in memory only: a stale cache would silently check the wrong
function.

Both the CPU loops (:mod:`gpucheck.backends.cpu_cache`) and the CUDA
evaluation kernels (:mod:`gpucheck.kernels.diskcache`) are cached this way.
The folder is ``$GPUCHECK_CACHE_DIR``, else ``$XDG_CACHE_HOME/gpucheck``,
else ``~/.cache/gpucheck``; ``GPUCHECK_CACHE_DIR=off`` turns the cache off,
and a folder that cannot be written is skipped.  numba keeps the compiled
code in ``__pycache__`` beside the generated files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import types as _pytypes

import numpy as np

__all__ = ["cache_dir", "fingerprint", "source_module"]

#: Libraries whose attributes a function may read through the module object.
_LIBRARIES = {"numpy", "math", "cmath", "numba", "operator"}


class _Opaque(Exception):
    """A value the fingerprint cannot describe faithfully."""


def cache_dir():
    """The cache folder, or None when caching is off.

    Examples
    --------
    >>> import os
    >>> before = os.environ.get("GPUCHECK_CACHE_DIR")
    >>> os.environ["GPUCHECK_CACHE_DIR"] = "off"
    >>> cache_dir() is None
    True
    >>> _ = os.environ.pop("GPUCHECK_CACHE_DIR") if before is None else os.environ.update(GPUCHECK_CACHE_DIR=before)
    """
    explicit = os.environ.get("GPUCHECK_CACHE_DIR")
    if explicit is not None:
        return None if explicit.strip().lower() in ("", "0", "off", "none") else explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gpucheck")


def _versions() -> bytes:
    import numba

    from ._version import __version__

    return (f"gpucheck {__version__}|numba {numba.__version__}|numpy {np.__version__}|"
            f"python {sys.version_info[:3]}").encode()


def _feed(h, value, seen: set) -> None:
    """Hash ``value`` into ``h``; raise _Opaque for what cannot be described."""
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        h.update(f"{type(value).__name__}={value!r};".encode())
    elif isinstance(value, np.ndarray):
        if value.dtype == object:
            raise _Opaque("an object array")
        h.update(f"ndarray {value.dtype.str} {value.shape};".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (np.generic, np.dtype)):
        h.update(f"{type(value).__name__}={value!r};".encode())
    elif isinstance(value, (tuple, list)):
        h.update(f"{type(value).__name__}({len(value)});".encode())
        for item in value:
            _feed(h, item, seen)
    elif isinstance(value, _pytypes.ModuleType):
        # only library modules: an array read as ``mymodule.TABLE`` would not
        # be in the fingerprint
        if value.__name__.split(".")[0] not in _LIBRARIES:
            raise _Opaque(f"module {value.__name__}")
        h.update(f"module {value.__name__} {getattr(value, '__version__', '')};".encode())
    elif isinstance(value, _pytypes.BuiltinFunctionType):
        h.update(f"builtin {getattr(value, '__module__', '')}.{value.__qualname__};".encode())
    elif isinstance(value, type) and value.__module__ in ("builtins", "numpy"):
        h.update(f"type {value.__module__}.{value.__qualname__};".encode())
    elif isinstance(value, _pytypes.FunctionType) or hasattr(value, "py_func"):
        if hasattr(value, "py_func"):  # a numba dispatcher: its options change the code
            h.update(repr(sorted(getattr(value, "targetoptions", {}).items())).encode())
        _function(h, getattr(value, "py_func", value), seen)
    else:
        raise _Opaque(type(value).__name__)


def _names(code) -> set:
    names = set(code.co_names) | set(code.co_freevars)
    for const in code.co_consts:
        if isinstance(const, _pytypes.CodeType):
            names |= _names(const)
    return names


def _code(h, code, seen: set) -> None:
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_argcount,
                   code.co_kwonlyargcount)).encode())
    for const in code.co_consts:
        if isinstance(const, _pytypes.CodeType):
            _code(h, const, seen)
        else:
            _feed(h, const, seen)


def _function(h, func, seen: set) -> None:
    if id(func) in seen:
        h.update(b"(recursion);")
        return
    seen.add(id(func))
    # numba rebuilds a cached function's environment by importing its
    # module by name: a function made by exec() without a module (the
    # README's examples run that way) would load as '<dynamic>' and fail, and
    # must not share an entry with the same code defined in a module
    module = getattr(func, "__module__", None)
    if module is None or module not in sys.modules:
        raise _Opaque("a function outside any importable module")
    h.update(f"module {module};".encode())
    code = func.__code__
    _code(h, code, seen)
    h.update(b"defaults:")
    _feed(h, tuple(func.__defaults__ or ()), seen)
    _feed(h, tuple(sorted((func.__kwdefaults__ or {}).items())), seen)
    # per-ndim device variants (kernels.builtin.mse) are compiled in its place
    variants = getattr(func, "cuda_variants", None)
    if isinstance(variants, dict):
        for nd in sorted(variants):
            h.update(f"variant {nd};".encode())
            _feed(h, variants[nd], seen)
    cells = dict(zip(code.co_freevars, func.__closure__ or ()))
    scope = getattr(func, "__globals__", {})
    for name in sorted(_names(code)):
        h.update(f"{name}:".encode())
        if name in cells:
            try:
                _feed(h, cells[name].cell_contents, seen)
            except ValueError:
                h.update(b"(empty cell);")
        elif name in scope:
            _feed(h, scope[name], seen)
        else:
            h.update(b"(builtin or attribute);")


def fingerprint(*parts, extra: str = ""):
    """A hex digest of functions and values, or None if one cannot be described.

    ``extra`` joins the versions hashed in (the CUDA side adds numba-cuda's).

    Examples
    --------
    >>> import numpy as np
    >>> T = np.ones(3)
    >>> def f(x):
    ...     return x[0] * T[0]
    >>> before = fingerprint(f); T[0] = 2.0
    >>> before != fingerprint(f)
    True
    >>> class Box:
    ...     v = 1.0
    >>> box = Box()
    >>> fingerprint(lambda x: x[0] + box.v) is None
    True
    """
    h = hashlib.sha256(_versions() + extra.encode())
    try:
        for part in parts:
            _feed(h, part, set())
    except _Opaque:
        return None
    return h.hexdigest()


def source_module(name: str, source: str, digest, names: dict, *, header: str = "",
                  package: str = "_gpucheck_generated"):
    """The module holding ``source``, executed from its fingerprinted file, or None.

    The file is ``<cache_dir>/<name>_<digest[:32]>.py`` (written once,
    atomically).  ``names`` are set as the module's globals before its code
    runs (the compiled functions it calls).  The module is registered in
    ``sys.modules`` (numba imports it by name when it loads a cached
    function).  None when caching is off, the folder cannot be written, or
    ``digest`` is None: the caller then compiles in memory.
    """
    folder = cache_dir()
    if folder is None or digest is None:
        return None
    stem = f"{name}_{digest[:32]}"
    path = os.path.join(folder, stem + ".py")
    try:
        if not os.path.isfile(path):
            os.makedirs(folder, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as fh:
                fh.write(f"# generated by gpucheck{': ' + header if header else ''}; "
                         f"fingerprint {digest}\n")
                fh.write(source)
            os.replace(tmp, path)
    except OSError:
        return None
    modname = f"{package}_{stem}"
    module = sys.modules.get(modname)
    if module is None:
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        module.__dict__.update(names)
        spec.loader.exec_module(module)
        sys.modules[modname] = module
    else:
        module.__dict__.update(names)
    return module
