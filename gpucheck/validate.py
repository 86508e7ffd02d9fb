"""The one place where user input is checked and normalised.

Every message names the argument and the rule it broke.

Several inputs (a tuple, list or dict of arrays) are flattened here into
one point; :class:`gpucheck.inputs.Inputs` remembers their names, shapes and
array types.  All inputs must share one dtype, because f is evaluated in
that dtype and the steps and error model follow from it.
"""

from __future__ import annotations

import numbers

import numpy as np

from .arrays import array_type, library_of
from .errors import GpuCheckError
from .inputs import Inputs, single

__all__ = ["as_host_array", "point", "inputs", "like_inputs", "analytic", "eps_option",
           "eps_list", "tolerance_option", "positive_int", "progress_option", "params",
           "base_value", "fraction_option", "finite_real", "positive_real", "choice", "flag",
           "numeric_array", "same_shape", "executor_option", "worker_backend",
           "grad_roundoff", "reference_option", "scheme_option", "form_supports", "MODES",
           "mode_option", "seed_option", "indices_option"]


def as_host_array(value, name: str) -> np.ndarray:
    """Bring a NumPy, CuPy, torch or JAX array (or a nested list) to the host."""
    if isinstance(value, dict):
        raise GpuCheckError(f"`{name}` must be an array, got a dict")
    try:
        if isinstance(value, np.ndarray):
            return value
        if hasattr(value, "__cuda_array_interface__") and hasattr(value, "get"):
            return np.asarray(value.get())  # CuPy
        if hasattr(value, "detach") and hasattr(value, "cpu"):
            return value.detach().cpu().numpy()  # torch
        if hasattr(value, "__dlpack__") and not isinstance(value, (list, tuple)):
            try:
                return np.from_dlpack(value)
            except (TypeError, RuntimeError, BufferError):
                pass
        arr = np.asarray(value)
    except GpuCheckError:
        raise
    except Exception as err:
        raise GpuCheckError(f"`{name}` must be an array, got {type(value).__name__}: {err}") from err
    if arr.dtype == object:
        raise GpuCheckError(f"`{name}` must be a numeric array, got {type(value).__name__} "
                            "that NumPy can only store as objects (ragged?)")
    return arr


#: The dtypes x may have; bfloat16 is ml_dtypes' (``pip install ml_dtypes``).
POINT_DTYPES = ("float64", "float32", "float16", "bfloat16")


def point(x, name: str = "x") -> np.ndarray:
    """Validate the point x: float64, float32, float16 or bfloat16, non-empty, finite.

    Returns a C-contiguous copy.
    """
    arr = as_host_array(x, name)
    if arr.dtype.name not in POINT_DTYPES or (arr.dtype.name == "bfloat16" and arr.dtype.kind != "V"):
        raise GpuCheckError(
            f"`{name}` must be float64, float32, float16 or bfloat16 (ml_dtypes), got {arr.dtype}; "
            "convert it with x.astype(np.float64) (or float32 to check a float32 implementation)")
    if arr.size == 0:
        raise GpuCheckError(f"`{name}` must have at least one element, got shape {arr.shape}")
    finite = np.isfinite(arr.astype(np.float64))
    if not np.all(finite):
        bad = np.unravel_index(int(np.argmax(~finite)), arr.shape)
        raise GpuCheckError(f"`{name}` must be finite, got {arr[bad]!r} at index "
                            f"{tuple(int(i) for i in bad)}")
    return np.array(arr, order="C", copy=True)


def _is_array(value) -> bool:
    """An array object (NumPy, CuPy, torch, JAX), as opposed to a number or a nested list."""
    if isinstance(value, np.ndarray):
        return True
    return library_of(value) != "other"


def _members(x, name: str):
    """``(kind, keys, names, members)`` of a structure of several inputs, or None for one array."""
    if isinstance(x, dict):
        if not x:
            raise GpuCheckError(f"`{name}` must hold at least one array, got an empty dict")
        bad = [k for k in x if not isinstance(k, str)]
        if bad:
            raise GpuCheckError(f"`{name}`: a dict of inputs must have str keys (they name the "
                                f"inputs in reports), got {bad[0]!r}")
        keys = tuple(x)
        return "dict", keys, keys, [x[k] for k in keys]
    if isinstance(x, (tuple, list)) and x and any(_is_array(v) for v in x):
        kind = "tuple" if isinstance(x, tuple) else "list"
        others = [i for i, v in enumerate(x) if not _is_array(v)]
        if others:
            i = others[0]
            raise GpuCheckError(
                f"`{name}`: a {kind} of several inputs must hold arrays only, got "
                f"{type(x[i]).__name__} at position {i}; wrap numbers with np.asarray "
                "(a list of numbers or nested lists is one array)")
        keys = tuple(range(len(x)))
        return kind, keys, tuple(f"input {i}" for i in keys), list(x)
    if isinstance(x, tuple) and not x:
        raise GpuCheckError(f"`{name}` must hold at least one array, got an empty tuple")
    return None


def inputs(x):
    """Validate x, one array or several; return ``(Inputs, point)``.

    One array keeps its shape.  A tuple, list or dict of arrays becomes one
    flat float point, the inputs one after the other, and all must share
    one dtype.

    Examples
    --------
    >>> import numpy as np
    >>> structure, p = inputs((np.zeros((2, 2)), np.ones(3)))
    >>> structure.names, p.shape
    (('input 0', 'input 1'), (7,))
    """
    found = _members(x, "x")
    if found is None:
        arr = point(x)
        return single(arr, array_type(x)), arr
    kind, keys, names, members = found
    arrays = [point(v, _where(kind, k)) for k, v in zip(keys, members)]
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:
        listing = ", ".join(f"{_where(kind, k)[4:-1]} {a.dtype}" for k, a in zip(keys, arrays))
        raise GpuCheckError(
            f"`x`: all inputs must share one dtype (f is evaluated in it), got {listing}; "
            "convert them to one, e.g. float64, or check a float32 layer with float32 inputs only")
    shapes = tuple(a.shape for a in arrays)
    offsets = tuple(int(o) for o in np.cumsum([0] + [a.size for a in arrays[:-1]]))
    structure = Inputs(kind, keys, names, shapes, offsets, arrays[0].dtype,
                       tuple(array_type(v) for v in members))
    return structure, np.concatenate([a.reshape(-1) for a in arrays])


def _where(kind: str, key) -> str:
    return f"x[{key!r}]" if kind == "dict" else f"x[{key}]"


def like_inputs(value, structure: Inputs, name: str) -> list:
    """The members of ``value`` in the order of ``structure``, which it must match.

    A tuple and a list count as the same structure; a dict must have the
    same keys (in any order).
    """
    if structure.single:
        return [value]
    what = f"a dict with keys {list(structure.keys)}" if structure.kind == "dict" else \
        f"a tuple or list of {len(structure.keys)} arrays"
    if structure.kind == "dict":
        if not isinstance(value, dict):
            raise GpuCheckError(f"`{name}` must have x's structure, {what}, got {type(value).__name__}")
        missing = [k for k in structure.keys if k not in value]
        extra = [k for k in value if k not in structure.keys]
        if missing or extra:
            raise GpuCheckError(f"`{name}` must have x's keys {list(structure.keys)}"
                                + (f"; missing {missing}" if missing else "")
                                + (f"; unexpected {extra}" if extra else ""))
        return [value[k] for k in structure.keys]
    if not isinstance(value, (tuple, list)) or len(value) != len(structure.keys):
        got = f"{type(value).__name__} of {len(value)}" if isinstance(value, (tuple, list)) \
            else type(value).__name__
        raise GpuCheckError(f"`{name}` must have x's structure, {what}, got {got}")
    return list(value)


def grad_roundoff(grad) -> float:
    """Unit roundoff of the float dtype the gradient came in; 0 for anything else.

    Examples
    --------
    >>> grad_roundoff(np.zeros(2, np.float32)) == 2.0 ** -24, grad_roundoff([1, 2])
    (True, 0.0)
    """
    dt = getattr(grad, "dtype", None)
    try:
        dt = np.dtype(dt) if dt is not None else None
    except TypeError:
        return 0.0
    if dt is None or dt.name not in POINT_DTYPES:
        return 0.0
    from .plan import unit_roundoff

    return unit_roundoff(dt)


def reference_option(reference):
    """``reference``: None or 'float64'.

    Examples
    --------
    >>> reference_option("float64"), reference_option(None)
    ('float64', None)
    """
    if reference is None:
        return None
    if reference in ("float64", np.float64) or (isinstance(reference, np.dtype)
                                                 and reference == np.float64):
        return "float64"
    raise GpuCheckError(f"`reference` must be None or 'float64', got {reference!r}")


def scheme_option(scheme, x: np.ndarray, kind: str, rtol, atol) -> str:
    """``scheme``: the complex step needs a callable or batched f and float32/float64 x."""
    if scheme != "complex":
        from .stencils import SCHEMES

        if not isinstance(scheme, str) or scheme not in SCHEMES:
            raise GpuCheckError(f"`scheme` must be one of "
                                f"{', '.join(repr(s) for s in (*SCHEMES, 'complex'))}, got {scheme!r}")
        return scheme
    if kind in COMPILED_KINDS:
        raise GpuCheckError("`scheme` 'complex' needs a callable or batched `f` that accepts "
                            f"complex input; {kind} functions are compiled for real x only")
    if x.dtype.name not in ("float32", "float64"):
        raise GpuCheckError(f"`scheme` 'complex' needs float32 or float64 `x`, got {x.dtype}")
    return scheme


#: Forms of f that numba compiles: float32 and float64 x only, real x only.
COMPILED_KINDS = ("kernel", "rowwise", "layer")


def form_supports(kind: str, dtype) -> None:
    """Compiled forms of f take float32 and float64 x only (numba has no float16 CPU arrays)."""
    if kind in COMPILED_KINDS and np.dtype(dtype).name not in ("float32", "float64"):
        what = "built-in layers" if kind == "layer" else f"{kind} functions"
        raise GpuCheckError(
            f"`x` is {np.dtype(dtype).name}, which {what} do not support (numba compiles "
            "float32 and float64); pass f as a callable or a batched function to check a "
            "low-precision implementation")


def analytic(grad, x: np.ndarray, structure: Inputs | None = None, name: str = "grad") -> np.ndarray:
    """The analytic gradient as float64 of the point's shape; ``grad`` may be callable.

    With several inputs ``grad`` has x's structure, or is a callable taking
    the inputs the way f does and returning that structure.  ``name`` is
    what messages call it.
    """
    structure = structure or single(x)
    if callable(grad) and not hasattr(grad, "shape") and name == "grad":
        call = "grad(x)" if structure.single else "grad(*xs)" if structure.kind != "dict" else "grad(xs)"
        try:
            grad = structure.call(grad, x.copy())
        except GpuCheckError:
            raise
        except Exception as err:
            raise GpuCheckError(f"calling `{call}` raised {type(err).__name__}{where(err)}: {err}") from err
    members = like_inputs(grad, structure, name)
    parts = []
    for key, input_name, shape, g in zip(structure.keys, structure.names, structure.shapes, members):
        label = name if structure.single else f"{name}[{key!r}]"
        arr = as_host_array(g, label)
        if arr.shape != tuple(shape):
            whose = "x's" if structure.single else f"{input_name}'s"
            raise GpuCheckError(f"`{label}` must have {whose} shape {tuple(shape)}, got {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
                or arr.dtype.name == "bfloat16"):
            raise GpuCheckError(f"`{label}` must be a real numeric array, got dtype {arr.dtype}")
        parts.append(np.asarray(arr, dtype=np.float64).reshape(-1))
    return np.concatenate(parts).reshape(x.shape)


def _real_scalar(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def eps_option(eps, x: np.ndarray, structure: Inputs | None = None):
    """``eps``: None, a positive finite scalar, or positive steps of x's shape (or structure)."""
    if eps is None:
        return None
    if _real_scalar(eps):
        e = float(eps)
        if not np.isfinite(e) or e <= 0:
            raise GpuCheckError(f"`eps` must be positive and finite, got {eps!r}")
        return e
    if isinstance(eps, (bool, np.bool_, str, bytes)):
        raise GpuCheckError(f"`eps` must be a number or an array of steps, got {type(eps).__name__} {eps!r}")
    if structure is not None and not structure.single and (
            isinstance(eps, dict) or isinstance(eps, (tuple, list)) and len(eps) == len(structure.keys)):
        # one step (or array of steps) per input, in x's structure
        members = like_inputs(eps, structure, "eps")
        eps = np.concatenate([np.broadcast_to(as_host_array(e, "eps"), s).reshape(-1)
                              for e, s in zip(members, structure.shapes)])
    arr = as_host_array(eps, "eps")
    if arr.dtype.kind not in "fiu":
        raise GpuCheckError(f"`eps` must be a number or an array of steps, got dtype {arr.dtype}")
    if arr.ndim == 0:
        return eps_option(float(arr), x)
    if arr.shape != x.shape:
        raise GpuCheckError(f"`eps` must be a scalar or have x's shape {x.shape}, got {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise GpuCheckError("`eps` must be positive and finite everywhere")
    return arr


def eps_list(eps) -> np.ndarray:
    """A list of relative steps for the sweep: positive, finite, 1-D."""
    items = eps if isinstance(eps, (list, tuple, np.ndarray)) else [eps]
    if any(isinstance(e, (bool, np.bool_, str, bytes)) for e in np.ravel(np.asarray(items, dtype=object))):
        raise GpuCheckError(f"`eps` must be a list of numbers, got {eps!r}")
    try:
        arr = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    except (TypeError, ValueError):
        raise GpuCheckError(f"`eps` must be a list of numbers, got {eps!r}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise GpuCheckError(f"`eps` must be a non-empty list of steps, got shape {arr.shape}")
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise GpuCheckError(f"`eps` steps must be positive and finite, got {arr.tolist()}")
    return np.unique(arr)


def tolerance_option(value, name: str):
    """``rtol`` / ``atol``: None or a non-negative finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise GpuCheckError(f"`{name}` must be a number or None, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise GpuCheckError(f"`{name}` must be non-negative and finite, got {value!r}")
    return v


def positive_int(value, name: str) -> int:
    """A positive integer option."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise GpuCheckError(f"`{name}` must be a positive integer, got {value!r}")
    return int(value)


def fraction_option(value, name: str) -> float:
    """A fraction in (0, 1], such as the share of device memory a check may use."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise GpuCheckError(f"`{name}` must be a number in (0, 1], got {type(value).__name__}")
    v = float(value)
    if not (0.0 < v <= 1.0):
        raise GpuCheckError(f"`{name}` must be in (0, 1], got {value!r}")
    return v


def progress_option(progress):
    """``progress``: None or a callable ``progress(done, total)``."""
    if progress is not None and not callable(progress):
        raise GpuCheckError(f"`progress` must be None or a callable progress(done, total), "
                            f"got {type(progress).__name__} {progress!r}")
    return progress


def params(values, name: str = "params") -> tuple:
    """Bound parameter arrays of a kernel function: numeric, rectangular, C-contiguous."""
    out = []
    for k, p in enumerate(values):
        try:
            a = np.asarray(p) if library_of(p) == "other" else as_host_array(p, f"{name}[{k}]")
        except ValueError as err:  # NumPy 2 refuses ragged nested lists outright
            raise GpuCheckError(f"`{name}[{k}]` must be a numeric array, got a ragged "
                                f"{type(p).__name__} ({err})") from None
        if a.dtype == object or (a.dtype.kind not in "biuf" and a.dtype.name != "bfloat16"):
            detail = f" of dtype {a.dtype}" if a.dtype != object else \
                " (ragged?)" if isinstance(p, (list, tuple)) else ""
            raise GpuCheckError(f"`{name}[{k}]` must be a numeric array, got {type(p).__name__}{detail}")
        out.append(np.ascontiguousarray(a))
    return tuple(out)


def where(err: BaseException) -> str:
    """`` at file.py:12 (in fn)``: where in the caller's code ``err`` was raised, or ''.

    The innermost frame outside gpucheck and the libraries installed beside
    it is the caller's line; when there is none (an error deep inside NumPy
    from an argument gpucheck built), the innermost frame outside gpucheck.
    """
    import os
    import sysconfig
    import traceback

    here = os.path.dirname(os.path.abspath(__file__))
    libs = {os.path.abspath(p) for p in (sysconfig.get_paths().get("purelib"),
                                         sysconfig.get_paths().get("platlib"),
                                         sysconfig.get_paths().get("stdlib")) if p}
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not os.path.abspath(f.filename).startswith(here + os.sep)]
    if not frames:
        return ""
    mine = [f for f in frames if not any(os.path.abspath(f.filename).startswith(p + os.sep) for p in libs)]
    f = (mine or frames)[-1]
    return f" at {os.path.basename(f.filename)}:{f.lineno} (in {f.name})"


def base_value(f0: float) -> float:
    """f at the base point must be finite."""
    if not np.isfinite(f0):
        raise GpuCheckError(f"`f` must be finite at x, got f(x) = {f0!r}")
    return f0


def finite_real(value, name: str) -> float:
    """A finite real number (not a bool), as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise GpuCheckError(f"`{name}` must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v):
        raise GpuCheckError(f"`{name}` must be finite, got {value!r}")
    return v


def positive_real(value, name: str) -> float:
    """A positive finite real number, as float."""
    v = finite_real(value, name)
    if v <= 0:
        raise GpuCheckError(f"`{name}` must be positive, got {value!r}")
    return v


def choice(value, name: str, options) -> str:
    """One of a few strings."""
    if not isinstance(value, str) or value not in options:
        raise GpuCheckError(f"`{name}` must be one of {', '.join(repr(o) for o in options)}, "
                            f"got {value!r}")
    return value


def flag(value, name: str) -> bool:
    """A bool option (numpy bools too, not ints or strings)."""
    if not isinstance(value, (bool, np.bool_)):
        raise GpuCheckError(f"`{name}` must be True or False, got {value!r}")
    return bool(value)


def numeric_array(value, name: str, *, ndim=None, integer: bool = False,
                  min_ndim: int = 0) -> np.ndarray:
    """A bound array (a param, a target, labels): numeric, C-contiguous, on the host.

    ``ndim`` (an int or a tuple of allowed ints) and ``min_ndim`` restrict
    the number of dimensions; ``integer`` asks for an integer dtype.
    """
    arr = as_host_array(value, name)
    if integer:
        if not np.issubdtype(arr.dtype, np.integer):
            raise GpuCheckError(f"`{name}` must be an integer array, got dtype {arr.dtype}")
    elif not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
              or arr.dtype == np.bool_ or arr.dtype.name == "bfloat16"):
        raise GpuCheckError(f"`{name}` must be a real numeric array, got dtype {arr.dtype}")
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and arr.ndim not in allowed:
        want = " or ".join(str(n) for n in allowed)
        raise GpuCheckError(f"`{name}` must have {want} dimensions, got shape {arr.shape}")
    if arr.ndim < min_ndim:
        raise GpuCheckError(f"`{name}` must have at least {min_ndim} dimension(s), "
                            f"got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def same_shape(a_shape, b_shape, a_name: str, b_name: str) -> None:
    """Two arrays that must have the same shape."""
    if tuple(a_shape) != tuple(b_shape):
        raise GpuCheckError(f"`{a_name}` must have the shape of `{b_name}` {tuple(b_shape)}, "
                            f"got {tuple(a_shape)}")


def executor_option(executor):
    """``executor``: None, a ``dask.distributed.Client`` or a ``concurrent.futures.Executor``."""
    if executor is None:
        return None
    from .executors import is_executor

    if not is_executor(executor):
        raise GpuCheckError("`executor` must be a dask.distributed.Client or a "
                            f"concurrent.futures.Executor, got {type(executor).__name__}")
    return executor


def worker_backend(name, func, structure: Inputs) -> str:
    """``backend`` with an executor: a valid name, left for each worker to resolve.

    A kernel function of several inputs is compiled on the client for one
    backend, so with an executor it needs that backend named.
    """
    from .backends import BACKENDS

    if not isinstance(name, str) or name not in BACKENDS:
        raise GpuCheckError(
            f"`backend` must be one of {', '.join(repr(b) for b in BACKENDS)}, got {name!r}")
    if name == "auto" and func.kind == "kernel" and not structure.single:
        raise GpuCheckError("`backend` must be named ('cpu', 'cuda' or 'cudasim') with an "
                            "`executor` for a kernel function of several inputs: it is "
                            "compiled for one backend before it reaches the workers")
    return name


# ------------------------------------------------------------------ modes

#: Values of the ``mode`` option (see :mod:`gpucheck.modes`).
MODES = ("auto", "full", "sample", "project", "sample+project")


def mode_option(mode) -> str:
    """``mode``: one of :data:`MODES`.

    Examples
    --------
    >>> mode_option("sample")
    'sample'
    """
    return choice(mode, "mode", MODES)


def seed_option(seed):
    """``seed``: a non-negative integer, or None for a fresh one (reported in the result).

    Examples
    --------
    >>> seed_option(3)
    3
    >>> isinstance(seed_option(None), int)
    True
    """
    if seed is None:
        return int(np.random.SeedSequence().entropy % (1 << 63))
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise GpuCheckError(f"`seed` must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def indices_option(indices, structure: Inputs, point_shape) -> np.ndarray:
    """``indices``: entries to check, as sorted unique flat indices into the point.

    One array: a sequence of multi-indices (tuples, or an integer array of
    shape ``(k, x.ndim)``) or of flat indices (integers); a tuple of
    integers alone is one multi-index.  Several inputs: a
    dict from an input's name (or dict key, or tuple position) to such a
    sequence within that input, or flat indices into all inputs one after
    the other.  Negative indices count from the end, as in NumPy.

    Examples
    --------
    >>> from gpucheck.inputs import single
    >>> s = single(np.zeros((3, 4)))
    >>> indices_option([(1, 2), (0, -1)], s, (3, 4)).tolist()
    [3, 6]
    >>> indices_option([5, 0], s, (3, 4)).tolist()
    [0, 5]
    >>> s2, _ = inputs({"W": np.zeros((2, 2)), "b": np.zeros(3)})
    >>> indices_option({"b": [2], "W": [(1, 0)]}, s2, (7,)).tolist()
    [2, 6]
    """
    if indices is None:
        return None
    if isinstance(indices, dict):
        if structure.single:
            raise GpuCheckError("`indices` is a dict, which names inputs; x is one array: give a "
                                "list of indices")
        by_name = {}
        for k, name in zip(structure.keys, structure.names):
            by_name[k] = by_name[name] = name
        flat = []
        for key, value in indices.items():
            if key not in by_name:
                known = ", ".join(repr(n) for n in structure.names)
                raise GpuCheckError(f"`indices` names input {key!r}, but the inputs are {known}")
            j = structure.names.index(by_name[key])
            shape, offset = tuple(structure.shapes[j]), structure.offsets[j]
            flat.append(offset + _flat_indices(value, shape, f"indices[{key!r}]"))
        out = np.concatenate(flat) if flat else np.zeros(0, np.int64)
    else:
        out = _flat_indices(indices, tuple(point_shape), "indices")
    return np.unique(out.astype(np.int64))


def _flat_indices(value, shape: tuple, name: str) -> np.ndarray:
    """Flat indices of entries given as multi-indices or flat integers, within ``shape``."""
    if isinstance(value, (str, bytes)) or np.isscalar(value) and not isinstance(value, numbers.Integral):
        raise GpuCheckError(f"`{name}` must be a sequence of indices, got {value!r}")
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        value = [value]
    elif isinstance(value, tuple) and len(shape) > 1 and value \
            and all(isinstance(i, numbers.Integral) for i in value):
        value = [value]  # x[(3, 4)] is one entry in NumPy too
    try:
        arr = np.asarray(value)
    except ValueError:
        raise GpuCheckError(f"`{name}` must be a sequence of indices of one length, got {value!r}") from None
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.dtype == object or arr.dtype.kind not in "iu":
        raise GpuCheckError(f"`{name}` must hold integers (flat indices or index tuples), got {value!r}")
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if arr.ndim == 1 and not (isinstance(value, (list, tuple)) and value
                              and isinstance(value[0], (tuple, list, np.ndarray))):
        flat = arr.astype(np.int64)
        bad = (flat < -size) | (flat >= size)
        if np.any(bad):
            raise GpuCheckError(f"`{name}`: flat index {int(flat[bad][0])} is out of range for "
                                f"{size} entries (shape {shape})")
        return np.where(flat < 0, flat + size, flat)
    if arr.ndim != 2 or arr.shape[1] != len(shape):
        raise GpuCheckError(f"`{name}`: each index must have {len(shape)} components for shape "
                            f"{shape}, got {value!r}")
    dims = np.asarray(shape, dtype=np.int64)
    multi = arr.astype(np.int64)
    bad = np.any((multi < -dims) | (multi >= dims), axis=1)
    if np.any(bad):
        raise GpuCheckError(f"`{name}`: index {tuple(int(i) for i in multi[bad][0])} is out of "
                            f"range for shape {shape}")
    multi = np.where(multi < 0, multi + dims, multi)
    return np.ravel_multi_index(tuple(multi.T), shape).astype(np.int64)
