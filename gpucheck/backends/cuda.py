"""The CUDA backends: ``cuda`` on a device, ``cudasim`` in numba's simulator.

Both run the same code.  ``cuda`` keeps arrays on the device as CuPy arrays
(numba kernels take them through ``__cuda_array_interface__``); ``cudasim``
uses NumPy arrays, which the simulator accepts, so running the tests with
``NUMBA_ENABLE_CUDASIM=1`` exercises every line below except the few that
talk to CuPy (:class:`_Device`).

* Kernel-contract functions run in the kernels of
  :mod:`gpucheck.kernels.contract`: G threads each own an interleaved
  perturbed copy of x, G sized from free device memory (CuPy's pool
  included) so that every point of a check goes in one launch; when the
  copies do not fit, fewer threads each take more points, and an
  out-of-memory error halves G and retries.
* Batched functions receive chunks of perturbed copies as CuPy arrays
  (NumPy in the simulator), chunked to fit memory, halving on
  out-of-memory; the chunk loop is written once against an ``xp`` module.
* Plain callables run on the host through the ``cpu`` backend: a function
  of one point gains nothing from a device.

This module and ``gpucheck.kernels`` are the only ones that load numba's
CUDA target (through :mod:`gpucheck._cuda`) or CuPy, and only when used.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import GpuCheckError
from ..functions import Function
from . import Evaluation, Progress

__all__ = ["device_status", "simulator_status", "device_backend", "simulator_backend",
           "CudaBackend", "evaluate_batched"]

_INSTALL = "install the extra: pip install 'gpucheck[cuda13]' (or 'gpucheck[cuda12]')"


def _simulating() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def simulator_status() -> tuple:
    """Whether ``cudasim`` can run in this process, and why (never raises)."""
    if not _simulating():
        return False, "start Python with NUMBA_ENABLE_CUDASIM=1 to run the CUDA kernels in numba's simulator"
    try:
        from .. import _cuda
    except Exception as err:  # a status query never raises
        return False, f"numba's CUDA target cannot be imported ({type(err).__name__}: {err}); {_INSTALL}"
    if not _cuda.SIMULATOR:
        return False, "NUMBA_ENABLE_CUDASIM=1 was set after numba was imported; set it before starting Python"
    return True, "numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1): the CUDA kernels run as Python"


def device_status() -> tuple:
    """Whether ``cuda`` can run in this process, and why (never raises)."""
    if _simulating():
        return False, "this process runs numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), not a device"
    try:
        import cupy
    except Exception as err:
        return False, f"CuPy is not importable ({type(err).__name__}); {_INSTALL}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:
        return False, f"no usable CUDA device ({type(err).__name__}: {err})"
    if count < 1:
        return False, "no CUDA device found"
    try:
        from .. import _cuda

        if not _cuda.cuda.is_available():
            return False, "numba-cuda sees no usable device (driver too old for its toolkit?)"
        name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
    except Exception as err:
        return False, f"numba's CUDA target cannot be used ({type(err).__name__}: {err}); {_INSTALL}"
    return True, f"{name}, CuPy {cupy.__version__}"


class _Host:
    """Array operations for the simulator: NumPy arrays stand in for device memory."""

    xp = np
    oom_errors: tuple = (MemoryError,)
    #: The simulator runs each thread of a block as a Python thread: keep both small.
    threads_per_block = 32
    max_rows = 64
    max_blocks = 8

    def free_bytes(self) -> int:
        return 64 << 20

    def to_device(self, a):
        return np.ascontiguousarray(a)

    def to_host(self, a) -> np.ndarray:
        return np.asarray(a)

    def kernel_arg(self, a):
        return a

    def synchronize(self) -> None:
        pass


class _Device(_Host):
    """Array operations on a real device through CuPy."""

    threads_per_block = 256
    max_blocks = 65535

    def __init__(self):
        import cupy

        from .._cuda import cuda

        self.xp = cupy
        self._cuda = cuda
        self.oom_errors = (cupy.cuda.memory.OutOfMemoryError, MemoryError)
        dev = cupy.cuda.Device()
        sms = dev.attributes["MultiProcessorCount"]
        threads = dev.attributes["MaxThreadsPerMultiProcessor"]
        # Beyond a few waves of resident threads more copies of x only cost
        # memory and fill time.
        self.max_rows = 4 * sms * threads

    def free_bytes(self) -> int:
        free, _ = self.xp.cuda.runtime.memGetInfo()
        return int(free) + int(self.xp.get_default_memory_pool().free_bytes())

    def to_device(self, a):
        return self.xp.ascontiguousarray(self.xp.asarray(a))

    def to_host(self, a) -> np.ndarray:
        return self.xp.asnumpy(a)

    def kernel_arg(self, a):
        # One zero-copy wrap per array instead of one per launch.
        return self._cuda.as_cuda_array(a)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()
        self._cuda.synchronize()


def _rows_for(budget: int, row_bytes: int, total: int, cap: int) -> int:
    """How many perturbed copies to keep: all points if they fit, at least one."""
    return max(1, min(total, cap, budget // max(1, row_bytes)))


@dataclass(frozen=True)
class CudaBackend:
    """One of the CUDA backends; obtain it from :func:`device_backend` or :func:`simulator_backend`.

    Attributes
    ----------
    name : str
        ``'cuda'`` or ``'cudasim'``.
    """

    name: str

    def _ops(self):
        return _Host() if self.name == "cudasim" else _Device()

    def evaluate(self, func: Function, x: np.ndarray, idx: np.ndarray, vals: np.ndarray, *,
                 progress: Progress = None, memory_bytes: int | None = None,
                 launches: int | None = None) -> Evaluation:
        """Evaluate f at every perturbed point (the backend protocol).

        Parameters
        ----------
        func : Function
            The normalised function.
        x, idx, vals : numpy.ndarray
            The point and the perturbations (see :mod:`gpucheck.backends`).
        progress : callable, optional
            Called as ``progress(done, total)`` after each launch or chunk.
        memory_bytes : int, optional
            Device memory to plan for instead of what is free now (tests use
            it to force several chunks).
        launches : int, optional
            Split the points of a kernel function over this many launches
            (default: one, or ten when ``progress`` is given).

        Returns
        -------
        Evaluation

        Examples
        --------
        >>> import numpy as np, gpucheck
        >>> from gpucheck.functions import as_function
        >>> f = as_function(gpucheck.batched(lambda xs: xs.sum(axis=1)))
        >>> ev = simulator_backend().evaluate(f, np.zeros(3), np.array([1]), np.array([2.0]))  # doctest: +SKIP
        >>> ev.values.tolist()  # doctest: +SKIP
        [2.0]
        """
        if func.kind == "callable":
            from . import cpu

            return cpu.evaluate(func, x, idx, vals, progress=progress)
        ops = self._ops()
        x = np.ascontiguousarray(x)
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        vals = np.ascontiguousarray(vals, dtype=x.dtype)
        if func.kind == "batched":
            t0 = time.perf_counter()
            values = evaluate_batched(ops, func.fn, x, idx, vals, progress=progress,
                                      memory_bytes=memory_bytes)
            return Evaluation(values, 0.0, time.perf_counter() - t0)
        return self._evaluate_kernel(ops, func, x, idx, vals, progress, memory_bytes, launches)

    def _evaluate_kernel(self, ops, func, x, idx, vals, progress, memory_bytes, launches):
        from numba.core.errors import NumbaError

        from ..kernels import contract
        from .cpu_kernel import compile_error, writes_input_error

        if x.ndim == 0:  # the same rule as the cpu backend
            x = x.reshape(1)
        params = tuple(np.ascontiguousarray(p) for p in func.params)
        specs = tuple((p.dtype, p.ndim) for p in params)
        try:
            fill, verify, c_fill = contract.compile_fill(x.dtype)
            kern, c_eval = contract.compile_evaluate(func.fn, x.dtype, x.ndim, specs)
        except NumbaError as err:
            raise compile_error(func, self.name, err) from err
        total, n = idx.shape[0], x.size
        out_h = np.empty(total, dtype=np.float64)
        if total == 0:
            return Evaluation(out_h, c_fill + c_eval, 0.0)

        t0 = time.perf_counter()
        xflat = ops.to_device(x.reshape(-1))
        idx_d, vals_d = ops.to_device(idx), ops.to_device(vals)
        out_d = ops.xp.empty(total, dtype=np.float64)
        params_d = tuple(ops.to_device(p) for p in params)
        budget = int(0.8 * (ops.free_bytes() if memory_bytes is None else memory_bytes))
        rows = _rows_for(budget, n * x.itemsize, total, ops.max_rows)
        while True:
            try:
                scratch = ops.xp.empty(x.shape + (rows,), dtype=x.dtype)
                break
            except ops.oom_errors:
                if rows == 1:
                    raise GpuCheckError(
                        f"`x` does not fit in device memory: one perturbed copy needs "
                        f"{n * x.itemsize} bytes") from None
                rows //= 2
        k_args = [ops.kernel_arg(a) for a in (scratch, xflat, idx_d, vals_d, out_d)]
        k_params = [ops.kernel_arg(p) for p in params_d]
        tpb = ops.threads_per_block
        with warnings.catch_warnings():
            # Small checks launch few threads on purpose.
            warnings.filterwarnings("ignore", message=".*under-utilization.*")
            fill_blocks = min(ops.max_blocks, math.ceil(n * rows / tpb))
            sflat = ops.kernel_arg(scratch.reshape(n, rows))
            fill[fill_blocks, tpb](k_args[1], sflat)
            if launches is None:
                launches = 10 if progress is not None else 1
            per = max(rows, math.ceil(total / max(1, int(launches))))
            per = math.ceil(per / rows) * rows  # whole rounds of the G threads
            blocks = math.ceil(rows / tpb)
            for start in range(0, total, per):
                stop = min(total, start + per)
                kern[blocks, tpb](*k_args, start, stop, *k_params)
                if progress is not None:
                    ops.synchronize()
                    progress(stop, total)
            # Every copy must be x again; if not, f wrote into its argument.
            written = ops.xp.zeros(1, dtype=np.int64)
            verify[fill_blocks, tpb](k_args[1], sflat, ops.kernel_arg(written))
        ops.synchronize()
        run_seconds = time.perf_counter() - t0
        if int(ops.to_host(written)[0]):
            raise writes_input_error(func)
        out_h[:] = ops.to_host(out_d)
        return Evaluation(out_h, c_fill + c_eval, run_seconds)


def evaluate_batched(ops, fn, x: np.ndarray, idx: np.ndarray, vals: np.ndarray, *,
                     progress: Progress = None, memory_bytes: int | None = None) -> np.ndarray:
    """Evaluate a batched function over chunks of perturbed copies, on ``ops.xp`` arrays.

    The same code serves CuPy (device) and NumPy (simulator).  A chunk's
    copies are built in one reused buffer; a quarter of the memory budget
    goes to the copies, leaving the rest for the temporaries of ``fn``.  An
    out-of-memory error inside ``fn`` halves the chunk and retries it.

    Returns
    -------
    numpy.ndarray
        f at every point, float64, on the host.
    """
    xp = ops.xp
    total, n = idx.shape[0], x.size
    out_dtype = np.complex128 if np.iscomplexobj(x) else np.float64
    out = xp.empty(total, dtype=out_dtype)
    if total == 0:
        return ops.to_host(out)
    budget = (ops.free_bytes() if memory_bytes is None else memory_bytes) // 4
    rows = _rows_for(budget, n * x.itemsize, total, total)
    xflat = ops.to_device(x.reshape(1, n))
    idx_d, vals_d = ops.to_device(idx), ops.to_device(vals)
    buf = None
    start = 0
    while start < total:
        b = min(rows, total - start)
        try:
            if buf is None or buf.shape[0] < b:
                buf = None
                buf = xp.empty((b, n), dtype=x.dtype)
            xs = buf[:b]
            xs[...] = xflat
            xs[xp.arange(b), idx_d[start:start + b]] = vals_d[start:start + b]
            res = fn(xs.reshape((b,) + x.shape))
        except ops.oom_errors:
            if b == 1:
                raise GpuCheckError(
                    f"`f` ran out of device memory on a batch of one point of shape {x.shape}"
                ) from None
            rows = b // 2
            continue
        out[start:start + b] = _batch_result(xp, res, b, start, out_dtype)
        start += b
        if progress is not None:
            progress(start, total)
    return ops.to_host(out)


def _batch_result(xp, res, b: int, start: int, out_dtype=np.float64):
    shape = getattr(res, "shape", None)
    if shape != (b,):
        raise GpuCheckError(
            f"a batched `f` must return shape ({b},) for a batch of {b} points, got "
            f"{shape if shape is not None else type(res).__name__} (batch starting at point {start})"
        )
    res = xp.asarray(res)
    if res.dtype.kind == "c":
        if np.dtype(out_dtype).kind == "c":
            return res.astype(out_dtype, copy=False)
        if bool((res.imag != 0).any()):
            raise GpuCheckError(
                f"`f` returned complex values with a nonzero imaginary part (batch starting at "
                f"point {start}); a gradient check needs a real-valued f")
        res = res.real
    return res.astype(out_dtype, copy=False)


def device_backend() -> CudaBackend:
    """The ``cuda`` backend (check :func:`device_status` first).

    Examples
    --------
    >>> device_backend().name
    'cuda'
    """
    return CudaBackend("cuda")


def simulator_backend() -> CudaBackend:
    """The ``cudasim`` backend (check :func:`simulator_status` first).

    Examples
    --------
    >>> simulator_backend().name
    'cudasim'
    """
    return CudaBackend("cudasim")
