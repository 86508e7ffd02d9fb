"""The CUDA backends: ``cuda`` on a device, ``cudasim`` in numba's simulator.

Both run the same code.  ``cuda`` keeps arrays on the device as CuPy arrays
(numba kernels take them through ``__cuda_array_interface__``); ``cudasim``
uses NumPy arrays, which the simulator accepts, so running the tests with
``NUMBA_ENABLE_CUDASIM=1`` exercises every line below except the few that
talk to CuPy (:class:`_Device`).

* Kernel-contract functions run in the kernels of
  :mod:`gpucheck.kernels.contract`: G threads each own an interleaved
  perturbed copy of x.  G is sized from free device memory (CuPy's pool
  included), at most :func:`memory_fraction` of it, and made a multiple of
  32 so that every warp's loads start on a cache line; when the copies do
  not fit, fewer threads each take more points, and an out-of-memory error
  halves G and retries.
* Launches are bounded in time: the first launch is one round of the G
  threads, timed; later ones are sized from the measured rate to take about
  :data:`LAUNCH_SECONDS` (0.1 s), growing at most fourfold per launch.  So a
  display GPU's watchdog does not fire, progress is reported after every
  launch, and Ctrl-C stops a check within about a launch.
* Batched functions receive chunks of perturbed copies as CuPy arrays
  (NumPy in the simulator), chunked to fit memory, halving on out-of-memory
  or a cuBLAS error; the chunk loop is written once against an ``xp`` module.
* After every call the memory gpucheck used goes back to the device (CuPy's
  pool keeps freed blocks otherwise), so torch or JAX in the same process
  can allocate it.
* Errors of the device path (compiler, linker, driver, CuPy, cuBLAS) become
  :class:`~gpucheck.GpuCheckError` messages that name the cause
  (:mod:`gpucheck.backends.device_errors`).
* Plain callables run on the host through the ``cpu`` backend: a function
  of one point gains nothing from a device.

This module and ``gpucheck.kernels`` are the only ones that load numba's
CUDA target (through :mod:`gpucheck._cuda`) or CuPy, and only when used.
"""

from __future__ import annotations

import math
import os
import threading
import time
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import GpuCheckError
from ..functions import Function
from . import Evaluation, Progress
from . import device_errors

__all__ = ["device_status", "simulator_status", "device_backend", "simulator_backend",
           "CudaBackend", "evaluate_batched", "memory_fraction", "set_memory_fraction",
           "LAUNCH_SECONDS", "DEFAULT_MEMORY_FRACTION", "copies_for", "next_launch",
           "launch_shape"]

_INSTALL = device_errors.INSTALL

#: Target duration of one kernel launch, seconds.
LAUNCH_SECONDS = 0.1
#: Fraction of free device memory the perturbed copies may take, unless set.
DEFAULT_MEMORY_FRACTION = 0.5
#: Environment variable that sets the fraction for a whole process.
MEMORY_FRACTION_ENV = "GPUCHECK_MEMORY_FRACTION"

_FRACTION: list = []
_STATUS_LOCK = threading.Lock()
_DEVICE_STATUS: list = []


def memory_fraction() -> float:
    """The fraction of free device memory a check may use for its copies.

    :func:`set_memory_fraction` wins, then the environment variable
    ``GPUCHECK_MEMORY_FRACTION``, then :data:`DEFAULT_MEMORY_FRACTION` (0.5).
    The rest stays free for f's own temporaries and for other libraries in
    the process (torch, JAX).

    Examples
    --------
    >>> memory_fraction()
    0.5
    """
    from .. import validate

    if _FRACTION:
        return _FRACTION[-1]
    env = os.environ.get(MEMORY_FRACTION_ENV)
    if env is None or not env.strip():
        return DEFAULT_MEMORY_FRACTION
    try:
        value = float(env)
    except ValueError:
        raise GpuCheckError(f"`{MEMORY_FRACTION_ENV}` must be a number in (0, 1], got {env!r}") from None
    return validate.fraction_option(value, MEMORY_FRACTION_ENV)


def set_memory_fraction(fraction) -> float:
    """Set the fraction of free device memory a check may use; returns the previous one.

    ``None`` goes back to the environment variable or the default.

    Examples
    --------
    >>> previous = set_memory_fraction(0.25)
    >>> memory_fraction()
    0.25
    >>> _ = set_memory_fraction(previous if previous != DEFAULT_MEMORY_FRACTION else None)
    """
    from .. import validate

    previous = memory_fraction()
    _FRACTION.clear()
    if fraction is not None:
        _FRACTION.append(validate.fraction_option(fraction, "fraction"))
    return previous


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
    """Whether ``cuda`` can run in this process, and why (never raises).

    The first call compiles and launches a probe kernel (about a second),
    so a missing compiler, a driver older than the toolkit or a broken
    linker shows up here rather than in the first check; the answer is kept
    for the rest of the process.
    """
    if _simulating():
        return False, "this process runs numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), not a device"
    with _STATUS_LOCK:
        if not _DEVICE_STATUS:
            try:
                _DEVICE_STATUS.append(_query_device())
            except BaseException as err:  # never raise from a status query
                if not isinstance(err, Exception):
                    raise
                _DEVICE_STATUS.append((False, f"{type(err).__name__}: {err}"))
        return _DEVICE_STATUS[0]


def _query_device() -> tuple:
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
    try:
        _run_probe(cupy)
    except Exception as err:
        return False, f"{name}: the probe kernel failed: {_probe_reason(err)}"
    return True, f"{name}, CuPy {cupy.__version__}"


def _run_probe(cupy) -> None:
    from .._cuda import cuda
    from ..kernels import contract

    kern = contract.compile_probe()
    out = cupy.zeros(64, dtype=np.float64)
    with warnings.catch_warnings():
        # One block on purpose: the probe only has to run.
        warnings.filterwarnings("ignore", message=".*under-utilization.*")
        kern[1, 64](cuda.as_cuda_array(out))
    cupy.cuda.get_current_stream().synchronize()
    cuda.synchronize()
    got = cupy.asnumpy(out)
    if not np.array_equal(got, 2.0 * np.arange(64) + 1.0):
        raise RuntimeError(f"the probe kernel wrote wrong values: {got[:4].tolist()} ...")


def _probe_reason(err: Exception) -> str:
    if device_errors.classify(err) is None:
        return f"{type(err).__name__}: {device_errors.first_line(err)}"
    return str(device_errors.to_error(err, stage="probing", function="a probe kernel"))


class _Host:
    """Array operations for the simulator: NumPy arrays stand in for device memory."""

    xp = np
    #: The simulator runs each thread of a block as a Python thread: keep both small.
    threads_per_block = 32
    max_rows = 64
    max_blocks = 8
    warp = 32
    sms = 1
    #: Threads that run at once; the simulator runs them one after another.
    resident = 1

    def free_bytes(self) -> int:
        return 64 << 20

    def driver_free_bytes(self) -> int:
        return 64 << 20

    def to_device(self, a):
        return np.ascontiguousarray(a)

    def to_host(self, a) -> np.ndarray:
        return np.asarray(a)

    def kernel_arg(self, a):
        return a

    def synchronize(self) -> None:
        pass

    def release(self) -> None:
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
        dev = cupy.cuda.Device()
        self.sms = sms = dev.attributes["MultiProcessorCount"]
        threads = dev.attributes["MaxThreadsPerMultiProcessor"]
        # Beyond a few waves of resident threads more copies of x only cost
        # memory and fill time.
        self.max_rows = 4 * sms * threads
        self.resident = sms * threads

    def free_bytes(self) -> int:
        return self.driver_free_bytes() + int(self.xp.get_default_memory_pool().free_bytes())

    def driver_free_bytes(self) -> int:
        free, _ = self.xp.cuda.runtime.memGetInfo()
        return int(free)

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

    def release(self) -> None:
        # Give the blocks CuPy's pool keeps after a check back to the device.
        try:
            self.xp.get_default_memory_pool().free_all_blocks()
        except Exception:
            # After a failed kernel the context refuses every call; the error
            # on its way to the user says so, and must not be replaced.
            pass


def _rows_for(budget: int, row_bytes: int, total: int, cap: int) -> int:
    """How many perturbed copies to keep: all points if they fit, at least one."""
    return max(1, min(total, cap, budget // max(1, row_bytes)))


def copies_for(budget: int, row_bytes: int, total: int, cap: int, warp: int = 32) -> int:
    """G, the number of interleaved copies: a multiple of ``warp`` once there are that many.

    Rounded up when the budget allows (a few idle copies cost less than a
    second round for the last points), else down.

    Examples
    --------
    >>> copies_for(10**9, 8, 2113, 10**6), copies_for(100 * 8, 8, 2113, 10**6), copies_for(800, 8, 5, 64)
    (2144, 96, 5)
    """
    fit = max(1, budget // max(1, row_bytes))
    rows = max(1, min(total, cap, fit))
    if rows < warp:
        return rows
    up = -(-rows // warp) * warp
    return up if up <= fit else rows - rows % warp


def next_launch(points: int, seconds: float, *, rows: int, target: float = LAUNCH_SECONDS,
                resident: int = 1) -> int:
    """Points for the next launch, from the last one's size and duration.

    Aims at ``target`` seconds, changing the size by at most 4x either way
    (the first launches may not fill the device, so their rate understates
    it); whole rounds of the ``rows`` threads once a launch spans a round.
    ``resident`` is how many threads the device runs at once: a launch of at
    most one point per thread, all of them resident, takes as long as one
    point does whatever their number, so the size never drops below
    ``min(rows, resident)`` (an f whose one point takes longer than the
    target, a pass over a million entries, would otherwise shrink to a
    point per launch).

    Examples
    --------
    >>> next_launch(1024, 0.01, rows=1024), next_launch(4096, 0.4, rows=1024)
    (4096, 1024)
    >>> next_launch(1000, 1.0, rows=1024)
    250
    >>> next_launch(17824, 0.2, rows=17824, resident=270336)
    17824
    """
    scale = target / max(seconds, 1e-9)
    want = int(points * min(4.0, max(0.25, scale)))
    want = min(max(want, min(rows, max(1, int(resident)))), 4 * points)
    if want >= rows:
        return (want // rows) * rows
    return max(1, want)


def launch_shape(active: int, *, sms: int, threads_per_block: int, warp: int = 32) -> tuple:
    """``(blocks, threads)`` for ``active`` threads, spread over every SM.

    Large copies leave few threads (a 4 MB x leaves about 10^4 on an 80 GB
    device); in blocks of 256 they would occupy a quarter of an H100's SMs.
    Blocks shrink, in whole warps, until there is one per SM.

    Examples
    --------
    >>> launch_shape(9408, sms=132, threads_per_block=256)
    (147, 64)
    >>> launch_shape(100000, sms=132, threads_per_block=256), launch_shape(5, sms=132, threads_per_block=256)
    ((391, 256), (1, 32))
    """
    per_sm = (active // max(1, sms)) // warp * warp
    tpb = max(warp, min(threads_per_block, per_sm))
    return -(-active // tpb), tpb


def _function_name(func: Function) -> str:
    return f"{func.kind} function {func.name!r}"


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
                 launches: int | None = None, launch_seconds: float | None = None) -> Evaluation:
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
            Bytes the perturbed copies may take, instead of
            :func:`memory_fraction` of what is free now (tests use it to
            force few copies or several chunks).
        launches : int, optional
            Split the points of a kernel function over this many launches of
            equal size instead of sizing launches by time.
        launch_seconds : float, optional
            Target duration of one launch (default :data:`LAUNCH_SECONDS`).

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
        if func.kind in ("rowwise", "layer"):
            from . import cuda_delta

            return cuda_delta.evaluate(self.name, func, x, idx, vals, progress=progress)
        if func.kind == "callable":
            from . import cpu

            return cpu.evaluate(func, x, idx, vals, progress=progress)
        try:
            ops = self._ops()
        except Exception as err:
            if device_errors.classify(err) is None:
                raise
            raise device_errors.to_error(err, stage="loading", function=_function_name(func),
                                         backend=self.name) from err
        x = np.ascontiguousarray(x)
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        vals = np.ascontiguousarray(vals, dtype=x.dtype)
        try:
            if func.kind == "batched":
                t0 = time.perf_counter()
                values = evaluate_batched(ops, func.fn, x, idx, vals, progress=progress,
                                          memory_bytes=memory_bytes, name=_function_name(func),
                                          backend=self.name)
                return Evaluation(values, 0.0, time.perf_counter() - t0)
            return self._evaluate_kernel(ops, func, x, idx, vals, progress, memory_bytes,
                                         launches, launch_seconds)
        finally:
            ops.release()

    def _compile(self, func, x, specs):
        from numba.core.errors import NumbaError

        from ..kernels import contract
        from .cpu_kernel import compile_error

        arrays = contract.global_arrays(func.fn, x.ndim)
        if sum(b for _, b in arrays) > contract.CONSTANT_BYTES:
            raise _constant_memory_error(func, arrays)
        try:
            fill, verify, c_fill = contract.compile_fill(x.dtype)
            kern, c_eval = contract.compile_evaluate(func.fn, x.dtype, x.ndim, specs)
        except Exception as err:
            if device_errors.classify(err) is not None:
                raise device_errors.to_error(err, stage="compiling", function=_function_name(func),
                                             backend=self.name, globals_read=arrays) from err
            if isinstance(err, NumbaError):
                raise compile_error(func, self.name, err) from err
            raise
        return fill, verify, kern, c_fill + c_eval, arrays

    def _evaluate_kernel(self, ops, func, x, idx, vals, progress, memory_bytes, launches,
                         launch_seconds):
        from .cpu_kernel import writes_input_error

        if x.ndim == 0:  # the same rule as the cpu backend
            x = x.reshape(1)
        params = tuple(np.ascontiguousarray(p) for p in func.params)
        specs = tuple((p.dtype, p.ndim) for p in params)
        fill, verify, kern, c_seconds, arrays = self._compile(func, x, specs)
        total, n = idx.shape[0], x.size
        out_h = np.empty(total, dtype=np.float64)
        if total == 0:
            return Evaluation(out_h, c_seconds, 0.0)

        stage = "loading"
        try:
            t0 = time.perf_counter()
            xflat = ops.to_device(x.reshape(-1))
            idx_d, vals_d = ops.to_device(idx), ops.to_device(vals)
            out_d = ops.xp.empty(total, dtype=np.float64)
            params_d = tuple(ops.to_device(p) for p in params)
            if memory_bytes is None:
                budget = int(memory_fraction() * ops.free_bytes())
            else:
                budget = int(memory_bytes)
            rows = copies_for(budget, n * x.itemsize, total, ops.max_rows, ops.warp)
            scratch = self._allocate(ops, x, rows)
            rows = scratch.shape[-1]
            k_args = [ops.kernel_arg(a) for a in (scratch, xflat, idx_d, vals_d, out_d)]
            k_params = [ops.kernel_arg(p) for p in params_d]
            tpb = ops.threads_per_block
            with warnings.catch_warnings():
                # Small checks launch few threads on purpose.
                warnings.filterwarnings("ignore", message=".*under-utilization.*")
                fill_grid = (min(ops.max_blocks, n), min(tpb, -(-rows // ops.warp) * ops.warp))
                sflat = ops.kernel_arg(scratch.reshape(n, rows))
                stage = "launching"
                fill[fill_grid](k_args[1], sflat)
                target = LAUNCH_SECONDS if launch_seconds is None else float(launch_seconds)
                fixed = None if launches is None else max(1, math.ceil(total / max(1, int(launches))))
                per = fixed or min(total, rows)
                start = 0
                while start < total:
                    stop = min(total, start + per)
                    active = min(rows, stop - start)
                    shape = launch_shape(active, sms=ops.sms, threads_per_block=tpb, warp=ops.warp)
                    t_launch = time.perf_counter()
                    kern[shape](*k_args, start, stop, *k_params)
                    stage = "running"
                    ops.synchronize()
                    seconds = time.perf_counter() - t_launch
                    if progress is not None:
                        progress(stop, total)
                    if fixed is None:
                        per = next_launch(stop - start, seconds, rows=rows, target=target,
                                          resident=ops.resident)
                    start = stop
                    stage = "launching"
                # Every copy must be x again; if not, f wrote into its argument.
                written = ops.xp.zeros(1, dtype=np.int64)
                verify[fill_grid](k_args[1], sflat, ops.kernel_arg(written))
            stage = "running"
            ops.synchronize()
            run_seconds = time.perf_counter() - t0
            wrote = int(ops.to_host(written)[0])
            out_h[:] = ops.to_host(out_d)
        except GpuCheckError:
            raise
        except Exception as err:
            if device_errors.classify(err) is None:
                raise
            raise device_errors.to_error(err, stage=stage, function=_function_name(func),
                                         backend=self.name, globals_read=arrays) from err
        if wrote:
            raise writes_input_error(func)
        return Evaluation(out_h, c_seconds, run_seconds)

    @staticmethod
    def _allocate(ops, x, rows):
        while True:
            try:
                return ops.xp.empty(x.shape + (rows,), dtype=x.dtype)
            except Exception as err:
                if not device_errors.is_out_of_memory(err):
                    raise
                if rows == 1:
                    raise GpuCheckError(
                        f"`x` does not fit in device memory: one perturbed copy needs "
                        f"{x.size * x.itemsize} bytes") from None
                half = rows // 2
                rows = half - half % ops.warp if half >= ops.warp else half


def _constant_memory_error(func: Function, arrays) -> GpuCheckError:
    from ..kernels.contract import CONSTANT_BYTES

    listed = ", ".join(f"`{name}` ({nbytes:,} bytes)" for name, nbytes in arrays)
    return GpuCheckError(
        f"`f` ({_function_name(func)}) reads {listed} as globals: more than the "
        f"{CONSTANT_BYTES // 1024} KB of constant memory a CUDA kernel may hold, so the device "
        f"would refuse to load it. Pass them as params instead: gpucheck.kernel(fn, ..., array), "
        f"with fn taking each as an argument.")


def evaluate_batched(ops, fn, x: np.ndarray, idx: np.ndarray, vals: np.ndarray, *,
                     progress: Progress = None, memory_bytes: int | None = None,
                     name: str = "batched function", backend: str = "cuda") -> np.ndarray:
    """Evaluate a batched function over chunks of perturbed copies, on ``ops.xp`` arrays.

    The same code serves CuPy (device) and NumPy (simulator).  A chunk's
    copies are built in one reused buffer.  The budget is
    :func:`memory_fraction` of the memory the *driver* reports free (CuPy's
    pool may hold more, but cuBLAS allocates outside it), and a quarter of it
    goes to the copies, leaving the rest for the temporaries of ``fn``
    (``memory_bytes``, when given, is the copies' share itself).  An
    out-of-memory error or a cuBLAS error inside ``fn`` halves the chunk and
    retries it; other device errors are reported with their cause.

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
    if memory_bytes is None:
        budget = int(memory_fraction() * ops.driver_free_bytes()) // 4
    else:
        budget = int(memory_bytes)
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
            chunk = _batch_result(xp, res, b, start, out_dtype)
        except GpuCheckError:
            raise
        except Exception as err:
            if device_errors.is_out_of_memory(err):
                if b > 1:
                    buf = res = None
                    ops.release()
                    rows = b // 2
                    continue
                cause = "ran out of device memory" if device_errors.classify(err) != "cublas" \
                    else "failed in cuBLAS"
                raise GpuCheckError(
                    f"`f` ({name}) {cause} even on a batch of one point of shape {x.shape} "
                    f"({type(err).__name__}: {device_errors.first_line(err)}); free device memory "
                    f"held elsewhere in this process or use backend='cpu'") from err
            if device_errors.classify(err) is not None:
                raise device_errors.to_error(err, stage="running", function=name,
                                             backend=backend) from err
            raise
        out[start:start + b] = chunk
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
