"""Backends: each evaluates f at many perturbed copies of x in one call.

Every backend module exposes the same signature::

    evaluate(func, x, idx, vals, *, progress=None) -> Evaluation

``x`` is the point (NumPy, C-contiguous, float32 or float64), ``idx`` the flat
index perturbed at each point (int64, shape ``(P,)``) and ``vals`` the value
that element takes there (x's dtype, shape ``(P,)``).  Point ``p`` is x with
``x.flat[idx[p]] = vals[p]``; the base point is expressed as ``idx=0,
vals=x.flat[0]``.  The result holds f at every point as float64.

``cpu`` is always present; ``cuda`` needs a usable device with numba-cuda and
CuPy; ``cudasim`` runs the CUDA kernels in numba's simulator and is available
only in a process started with ``NUMBA_ENABLE_CUDASIM=1``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..errors import GpuCheckError

__all__ = ["Evaluation", "BACKENDS", "resolve", "get", "availability"]

#: Valid values of the ``backend`` option.
BACKENDS = ("auto", "cpu", "cuda", "cudasim")

Progress = Optional[Callable[[int, int], None]]


@dataclass(frozen=True)
class Evaluation:
    """What one backend call returns.

    Attributes
    ----------
    values : numpy.ndarray
        f at every point, float64, shape ``(P,)``.
    compile_seconds : float
        Time spent compiling kernels during this call (0 when cached).
    run_seconds : float
        Time spent evaluating, compile time excluded.
    """

    values: np.ndarray
    compile_seconds: float = 0.0
    run_seconds: float = 0.0


_MODULES = {"cpu": "cpu", "cuda": "cuda", "cudasim": "cuda"}


def availability() -> dict:
    """Which backends can run in this process, and why not.

    Returns
    -------
    dict
        ``{name: (available: bool, reason: str)}`` for ``cpu``, ``cuda`` and
        ``cudasim``.  Never raises.
    """
    out = {"cpu": (True, "NumPy and numba on the host")}
    try:
        from . import cuda as _cuda

        out["cuda"] = _cuda.device_status()
        out["cudasim"] = _cuda.simulator_status()
    except Exception as err:  # never raise from a status query
        reason = f"{type(err).__name__}: {err}"
        out["cuda"] = (False, reason)
        out["cudasim"] = (False, reason)
    return out


def resolve(name: str) -> str:
    """Turn a ``backend`` option into the name of a backend that can run.

    ``'auto'`` picks ``'cuda'`` when a usable device is present, else
    ``'cpu'``.  An unknown name, or a known one that cannot run here, raises
    :class:`~gpucheck.GpuCheckError` saying why.
    """
    if not isinstance(name, str) or name not in BACKENDS:
        raise GpuCheckError(
            f"`backend` must be one of {', '.join(repr(b) for b in BACKENDS)}, got {name!r}"
        )
    if name == "cpu":
        return name
    status = availability()
    if name == "auto":
        return "cuda" if status["cuda"][0] else "cpu"
    ok, reason = status[name]
    if not ok:
        raise GpuCheckError(f"`backend` {name!r} is not available here: {reason}")
    return name


def get(name: str):
    """The module implementing backend ``name`` (already resolved)."""
    module = importlib.import_module(f".{_MODULES[name]}", __name__)
    if name == "cudasim":
        return module.simulator_backend()
    if name == "cuda":
        return module.device_backend()
    return module
