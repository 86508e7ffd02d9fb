"""numba's on-disk cache for the generated CPU loops.

A loop is generated per number of arrays, so its source exists only as a
string, and numba caches only functions defined in a file (``cache=True``)
and invalidates an entry only when that file changes: it would not notice a
change in the user's function the loop calls.  So the loop's source is
written to a file whose name is a digest of everything compiled into it: the
source itself, the compile flags, the code of every function it calls (the
user's function and what that calls, constants included), every global or
closure value those read (arrays by content), and the versions of gpucheck,
numba, NumPy and Python.  A function that reads something the digest cannot
describe (an arbitrary object, a module of the user's) is compiled in memory
only, as before: a stale cache would silently check the wrong function.

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

__all__ = ["cache_dir", "fingerprint", "loop_module", "compile_generated", "SERIAL_WORK"]

#: Below this many operations (points times the work of one) a generated
#: loop is compiled without ``parallel``.  Measured on the 2-core host: a
#: parallel region costs tens of microseconds to start, and its OpenMP
#: workers then spin for a while, which slowed the NumPy/BLAS calls of the
#: verdict that follows by up to tens of milliseconds on a busy machine.
SERIAL_WORK = 1 << 18

#: Libraries whose attributes a kernel may read through the module object.
_LIBRARIES = {"numpy", "math", "cmath", "numba", "operator"}


class _Opaque(Exception):
    """A value the fingerprint cannot describe faithfully."""


def cache_dir():
    """The cache folder, or None when caching is off.

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


def _versions() -> str:
    import numba

    from .._version import __version__

    return f"gpucheck {__version__}|numba {numba.__version__}|numpy {np.__version__}|" \
           f"python {sys.version_info[:3]}"


def _feed(h, value, seen: set) -> None:
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
    code = func.__code__
    _code(h, code, seen)
    _feed(h, func.__defaults__, seen)
    cells = dict(zip(code.co_freevars, func.__closure__ or ()))
    scope = func.__globals__
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


def fingerprint(*parts):
    """A hex digest of functions and values, or None if one cannot be described.

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
    h = hashlib.sha256(_versions().encode())
    try:
        for part in parts:
            _feed(h, part, set())
    except _Opaque:
        return None
    return h.hexdigest()


def loop_module(tag: str, source: str, digest, names: dict):
    """The module holding ``source``, loaded from its fingerprinted file, or None.

    ``names`` are set as the module's globals before its code runs (the
    jitted functions the loop calls).  None when caching is off, the folder
    cannot be written, or ``digest`` is None; the caller then compiles in
    memory.
    """
    folder = cache_dir()
    if folder is None or digest is None:
        return None
    name = f"{tag}_{digest[:32]}"
    path = os.path.join(folder, name + ".py")
    try:
        if not os.path.isfile(path):
            os.makedirs(folder, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as fh:
                fh.write(f"# generated by gpucheck (CPU loop {tag}); fingerprint {digest}\n")
                fh.write(source)
            os.replace(tmp, path)
    except OSError:
        return None
    # numba imports the module by name when it loads a cached function
    modname = f"_gpucheck_cpu_loop_{name}"
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
    import numba

    digest = fingerprint(source, tag, sorted(options.items()), *parts)
    module = loop_module(tag, source, digest, names)
    cached = module is not None
    scope = module.__dict__ if cached else dict(names)
    if not cached:
        exec(compile(source, f"<gpucheck {tag}>", "exec"), scope)
    for helper in helpers:
        if not hasattr(scope[helper], "py_func"):  # not jitted by an earlier signature
            scope[helper] = numba.njit(cache=cached)(scope[helper])
    return numba.njit(signature, cache=cached, **options)(scope["run"])
