"""Compile every kernel gpucheck can launch to PTX and link it to SASS, as a device would.

The simulator runs kernels as Python and checks no types; this compiles
them with NVVM for real architectures (no device needed), so a kernel that
would fail to compile on a GPU fails here.  The SASS tests then run the step
a device runs when it loads a kernel, ptxas through nvJitLink (the wheels
numba-cuda[cu13] installs), so ptxas-level failures (too much constant data,
register limits) are caught too, and the library's kernels must not spill.
Skipped only where the NVVM or nvJitLink library is missing (install the
``test`` extra) or in a simulator process.
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


# --- SASS: the device's link step (ptxas through nvJitLink), without a device ---------------

def _nvjitlink_missing():
    if _MISSING is not None:
        return _MISSING
    try:
        from cuda.bindings import nvjitlink
        from cuda.core import Linker  # noqa: F401

        nvjitlink.version()
    except Exception as err:
        return (f"nvJitLink is not usable ({type(err).__name__}: {err}); "
                "pip install 'numba-cuda[cu13]' (it brings nvidia-nvjitlink)")
    return None


_NO_LINKER = _nvjitlink_missing()
needs_linker = pytest.mark.skipif(_NO_LINKER is not None, reason=str(_NO_LINKER))


@needs_linker
def test_library_kernels_link_to_sass_without_spills():
    from gpucheck.kernels import contract

    table = contract.library_resources(cc=(9, 0))
    assert {"probe", "fill float32", "verify float64", "evaluate mse 2-D float32",
            "evaluate dense_mse float64"} <= set(table)
    for name, res in table.items():
        assert res.spill_stores == 0 and res.spill_loads == 0, f"{name} spills: {res}"
        assert res.stack == 0, f"{name} uses a stack frame: {res}"
        assert 0 < res.registers <= 128, f"{name}: {res}"
        assert res.cubin_bytes > 0


@needs_linker
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_user_kernel_links_to_sass(dtype):
    from gpucheck.kernels import contract

    table = contract.sass(softplus_dot, dtype, 2, [(dtype, 2), ("int32", 1)], cc=(9, 0))
    assert set(table) == {"fill", "verify", "evaluate"}
    assert table["evaluate"].registers > 0


BIG = np.arange(9000, dtype=np.float64)  # 72,000 bytes of constant data: over 64 KB


def reads_big_global(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * BIG[i]
    return s


@needs_linker
def test_ptxas_refuses_too_much_constant_data_and_the_message_says_pass_it_as_a_param():
    # Compiles to PTX (as the PTX test alone would accept), fails where a
    # device would: in ptxas, at link time.
    from gpucheck.backends import device_errors
    from gpucheck.kernels import contract

    text = contract.ptx(reads_big_global, "float64", 1, [])["evaluate"]
    with pytest.raises(Exception) as info:
        contract.link_sass(text, cc=(9, 0))
    err = info.value
    assert "too much global constant data" in str(err)
    assert device_errors.classify(err) == "constant_memory"
    message = str(device_errors.to_error(err, stage="loading", function="kernel function 'f'",
                                         globals_read=contract.global_arrays(reads_big_global)))
    assert "`BIG` (72,000 bytes)" in message and "Pass it as a param" in message
