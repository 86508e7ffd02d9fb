"""gpucheck: check hand-written gradients against finite differences.

Every perturbed forward pass of a check runs in one batched call, on a GPU
when there is one, and the verdict (pass / fail / inconclusive) comes from an
error model of rounding and truncation rather than a fixed tolerance.

>>> import numpy as np, gpucheck
>>> x = np.random.default_rng(0).normal(size=(4, 3))
>>> gpucheck.check_gradient(lambda v: np.sum(v ** 2), x, 2 * x).passed
True
"""

from ._version import __version__
from .api import check_gradient, numerical_gradient, sweep
from .compare import CompareResult, compare
from .errors import GpuCheckError
from .functions import Batched, Kernel, batched, kernel
from .result import GradCheckResult, SweepResult, WorstEntry

__all__ = [
    "__version__",
    "check_gradient",
    "numerical_gradient",
    "sweep",
    "compare",
    "batched",
    "kernel",
    "Batched",
    "Kernel",
    "GpuCheckError",
    "GradCheckResult",
    "SweepResult",
    "WorstEntry",
    "CompareResult",
]
