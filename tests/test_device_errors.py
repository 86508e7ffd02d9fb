"""Errors of the device path: each kind is recognised and told to the user as its cause.

There is no device in CI, so every exception type the device path can meet
is injected: numba-cuda's and the CUDA bindings' own classes where they can
be imported without a device, and stand-ins with the class name and package
of CuPy's (CuPy is not installed here), which is all the classifier reads.
One error comes from a real failure instead: asking the ``cuda`` backend to
compile on a machine without a driver.
"""

from __future__ import annotations

import numpy as np
import pytest

from gpucheck.backends import device_errors
from gpucheck.errors import GpuCheckError


def _cupy_class(name: str, module: str, base=RuntimeError):
    cls = type(name, (base,), {"__module__": module})

    def init(self, status, msg=""):
        base.__init__(self, msg or f"{name} {status}")
        self.status = status

    cls.__init__ = init
    return cls


CUDARuntimeError = _cupy_class("CUDARuntimeError", "cupy_backends.cuda.api.runtime")
CUDADriverError = _cupy_class("CUDADriverError", "cupy_backends.cuda.api.driver")
CUBLASError = _cupy_class("CUBLASError", "cupy_backends.cuda.libs.cublas")
OutOfMemoryError = _cupy_class("OutOfMemoryError", "cupy.cuda.memory", MemoryError)


def _numba_errors():
    from numba.cuda.cudadrv.driver import CudaAPIError, LinkerError
    from numba.cuda.cudadrv.error import (CudaSupportError, NvrtcError, NvvmError,
                                          NvvmSupportError)

    return CudaAPIError, LinkerError, CudaSupportError, NvvmError, NvvmSupportError, NvrtcError


def _cases():
    CudaAPIError, LinkerError, CudaSupportError, NvvmError, NvvmSupportError, NvrtcError = \
        _numba_errors()
    from cuda.bindings.nvjitlink import nvJitLinkError
    from cuda.core._utils.cuda_utils import CUDAError

    ptxas = ("nvJitLink error log: ptxas error   : File uses too much global constant data "
             "(0x27100 bytes, 0x10000 max)")
    return [
        (CudaAPIError(700, "an illegal memory access was encountered"), "illegal_address"),
        (CudaAPIError(719, "unspecified launch failure"), "illegal_address"),
        (CudaAPIError(702, "the launch timed out and was terminated"), "timeout"),
        (CudaAPIError(2, "out of memory"), "out_of_memory"),
        (CudaAPIError(222, "the provided PTX was compiled with an unsupported toolchain"),
         "driver_too_old"),
        (CudaAPIError(209, "no kernel image is available for execution on the device"),
         "no_binary"),
        (CudaAPIError(701, "too many resources requested for launch"), "out_of_resources"),
        (CudaAPIError(999, "unknown error"), "cuda"),
        (LinkerError("ptxas fatal: something else"), "link"),
        (LinkerError(ptxas), "constant_memory"),
        (nvJitLinkError(4), "link"),
        (CUDAError("CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory access was encountered"),
         "illegal_address"),
        (CUDAError(ptxas), "constant_memory"),
        (NvvmError("libNVVM failed"), "nvvm"),
        (NvvmSupportError("libNVVM cannot be found"), "nvvm"),
        (NvrtcError("NVRTC failed"), "nvvm"),
        (CudaSupportError("Error at driver init: CUDA driver library cannot be found"),
         "no_driver"),
        (CUDARuntimeError(35, "cudaErrorInsufficientDriver: CUDA driver version is "
                              "insufficient for CUDA runtime version"), "driver_too_old"),
        (CUDARuntimeError(700, "cudaErrorIllegalAddress: an illegal memory access"),
         "illegal_address"),
        (CUDARuntimeError(2, "cudaErrorMemoryAllocation: out of memory"), "out_of_memory"),
        (CUDADriverError(100, "CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected"),
         "no_device"),
        (CUBLASError(3, "CUBLAS_STATUS_ALLOC_FAILED"), "cublas"),
        (CUBLASError(1, "CUBLAS_STATUS_NOT_INITIALIZED"), "cublas"),
        (OutOfMemoryError(0, "Out of memory allocating 1,073,741,824 bytes"), "out_of_memory"),
    ]


@pytest.mark.parametrize("index", range(24))
def test_every_device_error_is_classified(index):
    err, cause = _cases()[index]
    assert device_errors.classify(err) == cause, (type(err).__name__, str(err))
    mapped = device_errors.to_error(err, stage="running", function="kernel function 'loss'")
    assert isinstance(mapped, GpuCheckError)
    text = str(mapped)
    assert "kernel function 'loss'" in text and type(err).__name__ in text


def test_case_list_is_complete():
    assert len(_cases()) == 24


@pytest.mark.parametrize("err", [ValueError("bad"), ZeroDivisionError("user"), IndexError("i"),
                                 ImportError("no module named foo"), MemoryError("host")])
def test_other_errors_are_not_device_errors(err):
    assert device_errors.classify(err) is None


def test_a_look_alike_outside_the_cuda_packages_is_not_a_device_error():
    Fake = type("CudaAPIError", (RuntimeError,), {"__module__": "mypackage.errors"})
    assert device_errors.classify(Fake("700")) is None


@pytest.mark.parametrize("cause,words", [
    ("illegal_address", ["outside `x` or a param", "restart Python", "backend='cudasim'"]),
    ("timeout", ["watchdog", "without a display"]),
    ("driver_too_old", ["driver is older", "cupy-cuda12x", "numba-cuda[cu12]"]),
    ("nvvm", ["NVVM", "pip install cupy-cuda13x 'numba-cuda[cu13]'"]),
    ("out_of_memory", ["ran out of memory", "set_memory_fraction"]),
    ("constant_memory", ["`TABLE` (160,000 bytes)", "Pass it as a param"]),
])
def test_messages_say_what_to_do(cause, words):
    err = next(e for e, c in _cases() if c == cause)
    text = str(device_errors.to_error(err, stage="running", function="kernel function 'f'",
                                      globals_read=[("TABLE", 160000)]))
    for w in words:
        assert w in text, (w, text)


def test_install_hint_names_the_real_packages():
    assert "gpucheck[" not in device_errors.INSTALL
    assert "cupy-cuda13x" in device_errors.INSTALL and "numba-cuda[cu13]" in device_errors.INSTALL
    from gpucheck.backends import cuda

    assert cuda._INSTALL == device_errors.INSTALL


def test_out_of_memory_includes_cublas_but_not_other_errors():
    assert device_errors.is_out_of_memory(MemoryError())
    assert device_errors.is_out_of_memory(CUBLASError(13, "CUBLAS_STATUS_EXECUTION_FAILED"))
    assert device_errors.is_out_of_memory(CUDARuntimeError(2, "cudaErrorMemoryAllocation"))
    assert not device_errors.is_out_of_memory(CUDARuntimeError(700, "cudaErrorIllegalAddress"))
    assert not device_errors.is_out_of_memory(ValueError("x"))


def test_first_line_prefers_the_ptxas_error():
    _, LinkerError, *_ = _numba_errors()
    err = LinkerError("ERROR_PTX_COMPILE (4)\nnvJitLink error log: ptxas error   : "
                      "Entry function uses too much shared data\nmore")
    assert device_errors.first_line(err).startswith("nvJitLink error log: ptxas error")


# --- the cuda backend without a device: real failures, before and at compile time ---------

def _host_backend(monkeypatch):
    from gpucheck.backends import cuda

    backend = cuda.device_backend()
    monkeypatch.setattr(cuda.CudaBackend, "_ops", lambda self: cuda._Host())
    return backend


BIG = np.arange(20000, dtype=np.float64)  # 160,000 bytes: more than 64 KB of constants


def reads_big_global(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * BIG[i]
    return s


def test_large_global_array_is_refused_before_compiling(monkeypatch):
    from gpucheck.functions import as_function, kernel

    backend = _host_backend(monkeypatch)
    with pytest.raises(GpuCheckError, match=r"`BIG` \(160,000 bytes\).*Pass them as params"):
        backend.evaluate(as_function(kernel(reads_big_global)), np.ones(3), np.array([0]),
                         np.array([2.0]))


def test_compiling_without_a_driver_names_the_cause(monkeypatch):
    import os

    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        pytest.skip("the simulator compiles nothing")
    from gpucheck._cuda import cuda as numba_cuda

    if numba_cuda.is_available():
        pytest.skip("a device is present: compiling succeeds")
    from gpucheck.functions import as_function, kernel
    from gpucheck.kernels import builtin

    backend = _host_backend(monkeypatch)
    with pytest.raises(GpuCheckError, match="no usable NVIDIA driver while compiling") as info:
        backend.evaluate(as_function(kernel(builtin.mse, np.zeros(3))), np.ones(3),
                         np.array([0]), np.array([2.0]))
    assert device_errors.classify(info.value.__cause__) == "no_driver"


def test_device_status_never_raises_and_reports_a_failing_probe(monkeypatch):
    from gpucheck.backends import cuda

    monkeypatch.setattr(cuda, "_DEVICE_STATUS", [])
    CudaAPIError = _numba_errors()[0]

    def broken_query():
        raise CudaAPIError(222, "the provided PTX was compiled with an unsupported toolchain")

    monkeypatch.setattr(cuda, "_query_device", broken_query)
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    ok, reason = cuda.device_status()
    assert not ok and "CudaAPIError" in reason
    assert cuda.device_status() == (ok, reason)  # kept for the process


def test_probe_failure_reason_names_the_cause():
    from gpucheck.backends import cuda

    CudaAPIError = _numba_errors()[0]
    reason = cuda._probe_reason(CudaAPIError(222, "unsupported toolchain"))
    assert "driver is older" in reason
    assert "wrote wrong values" in cuda._probe_reason(RuntimeError("the probe kernel wrote wrong values"))


shape = np.zeros(100000)  # a global named like an attribute: must not be taken for one read


def reads_only_attributes(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i]
    return s


def test_an_attribute_name_is_not_a_global_read():
    from gpucheck.kernels import contract

    assert contract.global_arrays(reads_only_attributes) == []
    assert contract.global_arrays(reads_big_global) == [("BIG", 160000)]


def test_global_arrays_follow_closures_and_called_functions():
    from gpucheck.kernels import contract

    table = np.ones(10)

    def helper(x):
        return x[0] * BIG[0]

    def outer(x):
        return helper(x) + table[0]

    assert dict(contract.global_arrays(outer)) == {"BIG": 160000, "table": 80}
