"""The one place where user input is checked and normalised.

Every message names the argument and the rule it broke.
"""

from __future__ import annotations

import numbers

import numpy as np

from .errors import GpuCheckError

__all__ = ["as_host_array", "point", "analytic", "eps_option", "tolerance_option",
           "positive_int", "base_value", "finite_real", "positive_real", "choice", "flag",
           "numeric_array", "same_shape"]


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


def point(x) -> np.ndarray:
    """Validate the point x: float32 or float64, non-empty, finite; C-contiguous copy."""
    arr = as_host_array(x, "x")
    if arr.dtype not in (np.float32, np.float64):
        raise GpuCheckError(
            f"`x` must be float32 or float64, got {arr.dtype}; convert it with "
            "x.astype(np.float64) (or float32 to check a float32 implementation)")
    if arr.size == 0:
        raise GpuCheckError(f"`x` must have at least one element, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.unravel_index(int(np.argmax(~np.isfinite(arr))), arr.shape)
        raise GpuCheckError(f"`x` must be finite, got {arr[bad]!r} at index {tuple(int(i) for i in bad)}")
    return np.array(arr, order="C", copy=True)


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
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
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
              or arr.dtype == np.bool_):
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
