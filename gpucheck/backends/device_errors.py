"""What went wrong on the device, in words a user can act on.

The CUDA path can fail in layers that know nothing of each other: numba's
compiler (typing errors: the user's function), NVVM (the compiler library),
the linker (nvJitLink / ptxas), the CUDA driver at load or launch, CuPy's
runtime and cuBLAS.  Their exceptions share no base class (numba-cuda's
``LinkerError`` and ``CudaAPIError`` are not ``NumbaError``\\ s; CuPy's are
unrelated again), so an error is recognised here by the name and package of
its class and by the CUDA error code or name it carries, without importing
CuPy or the CUDA bindings.  :func:`classify` names the cause, :func:`to_error`
turns it into a :class:`~gpucheck.GpuCheckError` that says what failed and
what to do, and :func:`is_out_of_memory` tells the chunk loops when a smaller
chunk may succeed.

Codes are the CUDA driver's and runtime's (they agree for these).
"""

from __future__ import annotations

import re

from ..errors import GpuCheckError

__all__ = ["classify", "to_error", "is_out_of_memory", "first_line", "INSTALL"]

#: What to install for the CUDA path (the distribution ``gpucheck`` on PyPI is
#: another project: ours is ``gpucheck-grad``).
INSTALL = ("pip install cupy-cuda13x 'numba-cuda[cu13]' (a CUDA 12 driver: "
           "pip install cupy-cuda12x 'numba-cuda[cu12]')")

_PACKAGES = ("numba", "numba_cuda", "cuda", "cupy", "cupy_backends")

#: Class names of device-side errors, by the cause they stand for.
_BY_CLASS = {
    "OutOfMemoryError": "out_of_memory",
    "CUBLASError": "cublas",
    "CUSOLVERError": "cublas",
    "LinkerError": "link",
    "nvJitLinkError": "link",
    "NvvmError": "nvvm",
    "NvvmSupportError": "nvvm",
    "NvrtcError": "nvvm",
    "NvrtcSupportError": "nvvm",
    "NvrtcCompilationError": "nvvm",
    "CudaSupportError": "no_driver",
    "CudaAPIError": "cuda",
    "CudaDriverError": "cuda",
    "CudaRuntimeError": "cuda",
    "CUDARuntimeError": "cuda",
    "CUDADriverError": "cuda",
    "CUDAError": "cuda",
    "KernelRuntimeError": "cuda",
}

_BY_CODE = {
    2: "out_of_memory",
    35: "driver_too_old",  # cudaErrorInsufficientDriver
    100: "no_device",
    209: "no_binary",  # no kernel image for this device
    218: "driver_too_old",  # invalid PTX: newer than the driver's JIT
    222: "driver_too_old",  # unsupported PTX version
    700: "illegal_address",
    701: "out_of_resources",
    702: "timeout",
    714: "illegal_address",  # hardware stack error
    715: "illegal_address",  # illegal instruction
    716: "illegal_address",  # misaligned address
    717: "illegal_address",  # invalid address space
    718: "illegal_address",  # invalid program counter
    719: "illegal_address",  # launch failure: the context is lost as well
    803: "driver_too_old",  # system driver mismatch
    804: "driver_too_old",  # forward compatibility not supported
}

_BY_NAME = {
    "OUT_OF_MEMORY": "out_of_memory", "MemoryAllocation": "out_of_memory",
    "InsufficientDriver": "driver_too_old", "UNSUPPORTED_PTX_VERSION": "driver_too_old",
    "UnsupportedPtxVersion": "driver_too_old", "INVALID_PTX": "driver_too_old",
    "NO_BINARY_FOR_GPU": "no_binary", "NoKernelImageForDevice": "no_binary",
    "ILLEGAL_ADDRESS": "illegal_address", "IllegalAddress": "illegal_address",
    "MISALIGNED_ADDRESS": "illegal_address", "LAUNCH_FAILED": "illegal_address",
    "LaunchFailure": "illegal_address", "LAUNCH_TIMEOUT": "timeout", "LaunchTimeout": "timeout",
    "LAUNCH_OUT_OF_RESOURCES": "out_of_resources", "LaunchOutOfResources": "out_of_resources",
    "NO_DEVICE": "no_device", "NoDevice": "no_device",
}

_CONSTANT = re.compile(r"too much global constant data[^\n]*", re.IGNORECASE)


def _family(err: BaseException):
    """The device class name in err's MRO, or None for an error of another kind."""
    for cls in type(err).__mro__:
        package = (cls.__module__ or "").split(".")[0]
        if cls.__name__ in _BY_CLASS and package in _PACKAGES:
            return cls.__name__
    return None


def _code(err: BaseException):
    # numba-cuda keeps the code in .code, CuPy in .status, numba's simulator
    # only in the arguments.
    candidates = [getattr(err, "code", None), getattr(err, "status", None)]
    candidates += list(err.args[:1])
    for value in candidates:
        if value is None or isinstance(value, (str, bytes)):
            continue
        try:
            return int(value)
        except (TypeError, ValueError):
            continue
    return None


def classify(err: BaseException):
    """The cause of a device-side error, or None when ``err`` is not one.

    One of ``'out_of_memory'``, ``'cublas'``, ``'constant_memory'``,
    ``'link'``, ``'nvvm'``, ``'no_driver'``, ``'no_device'``,
    ``'driver_too_old'``, ``'no_binary'``, ``'illegal_address'``,
    ``'out_of_resources'``, ``'timeout'`` or ``'cuda'`` (another CUDA error).

    Examples
    --------
    >>> from numba.cuda.cudadrv.driver import CudaAPIError, LinkerError
    >>> classify(CudaAPIError(700, "an illegal memory access was encountered"))
    'illegal_address'
    >>> classify(LinkerError("ptxas error: File uses too much global constant data"))
    'constant_memory'
    >>> classify(ValueError("not from CUDA")) is None
    True
    """
    family = _family(err)
    if family is None:
        return None
    text = str(err)
    if _CONSTANT.search(text):
        return "constant_memory"
    base = _BY_CLASS[family]
    if base == "cuda":
        code = _code(err)
        if code in _BY_CODE:
            return _BY_CODE[code]
        for name, cause in _BY_NAME.items():
            if name in text:
                return cause
    return base


def is_out_of_memory(err: BaseException) -> bool:
    """Whether a smaller chunk might succeed: out of memory, or a cuBLAS failure.

    cuBLAS reports a workspace it could not allocate as an error of its own
    (often ``NOT_INITIALIZED`` or ``ALLOC_FAILED``), so any cuBLAS error
    counts; a batch of one point that still fails is reported as it is.
    """
    return isinstance(err, MemoryError) or classify(err) in ("out_of_memory", "cublas")


def first_line(err: BaseException) -> str:
    """The first meaningful line of an error message (linker logs run long)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    ptxas = [ln for ln in lines if "ptxas" in ln and "error" in ln.lower()]
    text = (ptxas or lines or [type(err).__name__])[0]
    return text if len(text) <= 300 else text[:297] + "..."


def _versions() -> str:
    """Driver and toolkit versions, as far as they can be read without raising."""
    parts = []
    try:
        import cupy

        v = cupy.cuda.runtime.driverGetVersion()
        parts.append(f"driver supports CUDA {v // 1000}.{v % 1000 // 10}")
        v = cupy.cuda.runtime.runtimeGetVersion()
        parts.append(f"CuPy built for CUDA {v // 1000}.{v % 1000 // 10}")
    except Exception:
        pass
    try:
        from cuda.bindings import nvjitlink

        parts.append("nvJitLink %d.%d" % nvjitlink.version())
    except Exception:
        pass
    return "; ".join(parts)


def to_error(err: BaseException, *, stage: str, function: str, backend: str = "cuda",
             globals_read=()) -> GpuCheckError:
    """A :class:`~gpucheck.GpuCheckError` for a device error: what failed, why, what to do.

    Parameters
    ----------
    err : BaseException
        The error raised by numba-cuda, nvJitLink, the driver, CuPy or cuBLAS.
    stage : str
        What gpucheck was doing: ``'compiling'``, ``'loading'``, ``'launching'``,
        ``'running'``, ``'probing'``.
    function : str
        A readable name of f (``"kernel function 'loss'"``).
    backend : str
        The backend's name, for the message.
    globals_read : sequence of (str, int)
        Global arrays f reads (from :func:`gpucheck.kernels.contract.global_arrays`).

    Examples
    --------
    >>> from numba.cuda.cudadrv.driver import CudaAPIError
    >>> print(to_error(CudaAPIError(702, "the launch timed out"), stage="running",
    ...                function="kernel function 'loss'"))  # doctest: +ELLIPSIS
    `f` (kernel function 'loss') ran longer than the display watchdog allows on backend 'cuda' (CudaAPIError: [702] the launch timed out): ...
    """
    cause = classify(err) or "cuda"
    detail = f"{type(err).__name__}: {first_line(err)}"
    who = f"`f` ({function})"
    if cause == "constant_memory":
        arrays = ", ".join(f"`{n}` ({b:,} bytes)" for n, b in globals_read)
        return GpuCheckError(
            f"{who} reads {'global arrays: ' + arrays if arrays else 'global arrays'} that "
            f"exceed the 64 KB of constant memory a CUDA kernel may hold, and ptxas refused the "
            f"kernel ({detail}). Pass it as a param instead: gpucheck.kernel(fn, ..., array), "
            f"with fn taking it as an argument.")
    if cause == "link":
        return GpuCheckError(
            f"linking the CUDA kernel for {who} failed ({detail}). The kernel compiled, so this "
            f"is a limit of the device code (registers, constant or local memory) or a broken "
            f"nvJitLink install; check that it runs with backend='cudasim', and reinstall: "
            f"{INSTALL}.")
    if cause == "nvvm":
        return GpuCheckError(
            f"the CUDA compiler (NVVM) is missing or failed while {stage} {who} ({detail}); "
            f"install numba-cuda with its toolkit wheels: {INSTALL}.")
    if cause == "no_driver":
        return GpuCheckError(
            f"no usable NVIDIA driver while {stage} {who} ({detail}); use backend='cpu', or "
            f"install the driver.")
    if cause == "no_device":
        return GpuCheckError(f"no CUDA device is visible while {stage} {who} ({detail}); "
                             f"check CUDA_VISIBLE_DEVICES or use backend='cpu'.")
    if cause == "driver_too_old":
        versions = _versions()
        return GpuCheckError(
            f"the NVIDIA driver is older than the CUDA toolkit that built the kernels for {who} "
            f"({detail}{'; ' + versions if versions else ''}). Update the driver, or install the "
            f"builds for its CUDA version: pip install cupy-cuda12x 'numba-cuda[cu12]'.")
    if cause == "no_binary":
        return GpuCheckError(
            f"this device has no compiled code for {who} ({detail}): the toolkit does not "
            f"support the GPU's architecture; install the builds that do: {INSTALL}.")
    if cause == "illegal_address":
        return GpuCheckError(
            f"the CUDA kernel for {who} failed while {stage} ({detail}): most likely f reads "
            f"outside `x` or a param (an index past the end). The CUDA context of this process "
            f"is now unusable: restart Python. To find the index, run the check with "
            f"backend='cudasim' (which checks bounds) or backend='cpu' with NUMBA_BOUNDSCHECK=1.")
    if cause == "timeout":
        return GpuCheckError(
            f"{who} ran longer than the display watchdog allows on backend {backend!r} "
            f"({detail}): gpucheck keeps launches near 0.1 s, so one pass of f alone is too slow "
            f"for a GPU that drives a display. Use a GPU without a display, or backend='cpu'.")
    if cause == "out_of_resources":
        return GpuCheckError(
            f"the CUDA kernel for {who} needs more registers or local memory than a launch of "
            f"this size allows ({detail}); simplify f (fewer live variables) or use backend='cpu'.")
    if cause in ("out_of_memory", "cublas"):
        return GpuCheckError(
            f"the device ran out of memory while {stage} {who} ({detail}); free device memory "
            f"held elsewhere in this process, lower gpucheck.backends.cuda.set_memory_fraction(), "
            f"or use backend='cpu'.")
    return GpuCheckError(
        f"CUDA failed while {stage} {who} on backend {backend!r} ({detail}); run the same "
        f"check with backend='cudasim' or 'cpu' to see whether f or the device is at fault.")
