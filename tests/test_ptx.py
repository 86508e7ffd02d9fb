"""Compile every kernel gpucheck can launch to PTX, as a device would.

The simulator runs kernels as Python and checks no types; this compiles
them with NVVM for real architectures (no device needed), so a kernel that
would fail to compile on a GPU fails here.  Skipped only where the NVVM
library is missing (install the ``test`` extra: numba-cuda[cu13]) or in a
simulator process.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from agreement import softplus_dot

ARCHS = [(9, 0), (7, 5)]
DTYPES = ["float32", "float64"]


def _nvvm_missing():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "a simulator process cannot compile PTX"
    try:
        from gpucheck._cuda import cuda
    except ImportError as err:
        return f"numba-cuda is not installed ({err}); pip install 'numba-cuda[cu13]' (or 'gpucheck-grad[test]')"

    def probe(a):
        a[0] = 1.0

    try:
        cuda.compile_ptx(probe, "void(float64[::1])", cc=(9, 0))
    except Exception as err:  # only a missing library skips, see below
        text = f"{type(err).__name__}: {err}"
        if "NVVM" in text or "libnvvm" in text.lower() or "CudaSupportError" in text:
            return f"the NVVM library is missing ({text.splitlines()[0]}); pip install 'numba-cuda[cu13]' (or 'gpucheck-grad[test]')"
        raise
    return None


_MISSING = _nvvm_missing()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))


def _kernels():
    from gpucheck.kernels import builtin

    # name -> (function, ndim of x, (dtype or None for x's dtype, ndim) per param)
    return {
        "mse-1d": (builtin.mse, 1, [(None, 1)]),
        "mse-3d": (builtin.mse, 3, [(None, 3)]),
        "dense": (builtin.dense_mse, 2, [(None, 2), (None, 2)]),
        "user-softplus": (softplus_dot, 2, [(None, 2), ("int32", 1)]),
    }


@pytest.mark.parametrize("cc", ARCHS, ids=lambda cc: f"sm_{cc[0]}{cc[1]}")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["mse-1d", "mse-3d", "dense", "user-softplus"])
def test_kernels_compile_to_ptx(name, dtype, cc):
    from gpucheck.kernels import contract

    fn, ndim, params = _kernels()[name]
    specs = [(d or dtype, n) for d, n in params]
    out = contract.ptx(fn, dtype, ndim, specs, cc=cc)
    target = f".target sm_{cc[0]}{cc[1]}"
    for kind in ("fill", "verify", "evaluate"):
        assert target in out[kind], f"{name}: {kind} kernel has no {target}"
        assert ".entry" in out[kind]


def test_a_mistyped_kernel_function_fails_to_compile():
    from numba.core.errors import TypingError

    from gpucheck.kernels import contract

    def mistyped(x, t):
        s = 0.0
        for i in range(x.shape[0]):
            s += x[i] - t  # an array added to a scalar: not a float
        return s

    with pytest.raises(TypingError):
        contract.ptx(mistyped, "float32", 1, [("float32", 1)])


def test_a_function_returning_an_array_fails_to_compile():
    from numba.core.errors import TypingError

    from gpucheck.kernels import contract

    def returns_array(x):
        return x

    with pytest.raises(TypingError):
        contract.ptx(returns_array, "float64", 1, [])


def test_math_functions_compile():
    from gpucheck.kernels import contract

    def uses_math(x):
        s = 0.0
        for i in range(x.shape[0]):
            s += math.tanh(x[i]) + math.sqrt(abs(x[i])) + np.float32(1.5) * x[i]
        return s

    out = contract.ptx(uses_math, "float32", 1, [], cc=(9, 0))
    assert ".entry" in out["evaluate"]
