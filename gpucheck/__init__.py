"""gpucheck: check hand-written gradients against finite differences.

Every perturbed forward pass of a check runs in one batched call, on a GPU
when there is one, and the verdict (pass / fail / inconclusive) comes from an
error model of rounding and truncation rather than a fixed tolerance.

>>> import numpy as np, gpucheck
>>> x = np.random.default_rng(0).normal(size=(4, 3))
>>> gpucheck.check_gradient(lambda v: np.sum(v ** 2), x, 2 * x).passed
True
"""

from ._layout import register_source_kernels as _register_source_kernels

_kernels = _register_source_kernels(__name__, __path__[0])
if _kernels is not None:
    kernels = _kernels
del _kernels, _register_source_kernels

from ._version import __version__  # noqa: E402
from .api import check_gradient, numerical_gradient, sweep  # noqa: E402
from .compare import CompareResult, compare  # noqa: E402
from .errors import GpuCheckError, GpuCheckInterrupted  # noqa: E402
from .functions import Batched, Kernel, Rowwise, batched, kernel, rowwise  # noqa: E402
from .result import GradCheckResult, InputVerdict, SweepResult, WorstEntry  # noqa: E402
from .vjp import check_jvp, check_vjp  # noqa: E402
from . import layers  # noqa: E402  (gpucheck.layers.mse(T) without a second import)

__all__ = [
    "__version__",
    "check_gradient",
    "numerical_gradient",
    "sweep",
    "check_vjp",
    "check_jvp",
    "compare",
    "batched",
    "kernel",
    "rowwise",
    "layers",
    "Batched",
    "Kernel",
    "Rowwise",
    "GpuCheckError",
    "GpuCheckInterrupted",
    "GradCheckResult",
    "SweepResult",
    "WorstEntry",
    "InputVerdict",
    "CompareResult",
]
