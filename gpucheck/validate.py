"""The one place where user input is checked and normalised.

Every message names the argument and the rule it broke.
"""

from __future__ import annotations

import numbers

import numpy as np

from .errors import GpuCheckError

__all__ = ["as_host_array", "point", "analytic", "eps_option", "tolerance_option",
           "positive_int", "base_value", "grad_roundoff", "reference_option", "scheme_option",
           "form_supports"]


def as_host_array(value, name: str) -> np.ndarray:
    """Bring a NumPy, CuPy, torch or JAX array (or a nested list) to the host."""
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


def point(x) -> np.ndarray:
    """Validate the point x: float64, float32, float16 or bfloat16, non-empty, finite.

    Returns a C-contiguous copy.
    """
    arr = as_host_array(x, "x")
    if arr.dtype.name not in POINT_DTYPES or (arr.dtype.name == "bfloat16" and arr.dtype.kind != "V"):
        raise GpuCheckError(
            f"`x` must be float64, float32, float16 or bfloat16 (ml_dtypes), got {arr.dtype}; "
            "convert it with x.astype(np.float64) (or float32 to check a float32 implementation)")
    if arr.size == 0:
        raise GpuCheckError(f"`x` must have at least one element, got shape {arr.shape}")
    finite = np.isfinite(arr.astype(np.float64))
    if not np.all(finite):
        bad = np.unravel_index(int(np.argmax(~finite)), arr.shape)
        raise GpuCheckError(f"`x` must be finite, got {arr[bad]!r} at index {tuple(int(i) for i in bad)}")
    return np.array(arr, order="C", copy=True)


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
    if kind == "kernel":
        raise GpuCheckError("`scheme` 'complex' needs a callable or batched `f` that accepts "
                            "complex input; kernel functions are compiled for real x only")
    if x.dtype.name not in ("float32", "float64"):
        raise GpuCheckError(f"`scheme` 'complex' needs float32 or float64 `x`, got {x.dtype}")
    return scheme


def form_supports(kind: str, dtype) -> None:
    """Kernel functions compile for float32 and float64 only (numba has no float16 CPU arrays)."""
    if kind == "kernel" and np.dtype(dtype).name not in ("float32", "float64"):
        raise GpuCheckError(
            f"`x` is {np.dtype(dtype).name}, which kernel functions do not support (numba "
            "compiles float32 and float64); pass f as a callable or a batched function to check "
            "a low-precision implementation")


def analytic(grad, x: np.ndarray) -> np.ndarray:
    """The analytic gradient as float64 of x's shape; ``grad`` may be callable."""
    if callable(grad) and not hasattr(grad, "shape"):
        try:
            grad = grad(x.copy())
        except GpuCheckError:
            raise
        except Exception as err:
            raise GpuCheckError(f"calling `grad(x)` raised {type(err).__name__}: {err}") from err
    arr = as_host_array(grad, "grad")
    if arr.shape != x.shape:
        raise GpuCheckError(f"`grad` must have x's shape {x.shape}, got {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
            or arr.dtype.name == "bfloat16"):
        raise GpuCheckError(f"`grad` must be a real numeric array, got dtype {arr.dtype}")
    return np.asarray(arr, dtype=np.float64).copy()


def eps_option(eps, x: np.ndarray):
    """``eps``: None, a positive finite scalar, or positive steps of x's shape."""
    if eps is None:
        return None
    if isinstance(eps, numbers.Real) and not isinstance(eps, bool):
        e = float(eps)
        if not np.isfinite(e) or e <= 0:
            raise GpuCheckError(f"`eps` must be positive and finite, got {eps!r}")
        return e
    arr = as_host_array(eps, "eps")
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
    arr = np.atleast_1d(np.asarray(eps, dtype=np.float64))
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


def base_value(f0: float) -> float:
    """f at the base point must be finite."""
    if not np.isfinite(f0):
        raise GpuCheckError(f"`f` must be finite at x, got f(x) = {f0!r}")
    return f0
