"""Delta evaluation on ``cuda`` and ``cudasim``: built-in layers and row-wise functions.

* A built-in layer's intermediates are prepared on the host in float64
  (:func:`gpucheck.backends.cpu_layers.prepared`, O(forward) once per call),
  copied to the device, and the kernel of :mod:`gpucheck.kernels.points`
  evaluates ``f0 + point(...)`` with one thread per point.
* A row-wise function's points are planned on the host
  (:mod:`gpucheck.backends.rows`) and evaluated by the kernels of
  :mod:`gpucheck.kernels.rowwise`: one thread per short row, 32 threads per
  row of 32 entries or more, each with its own interleaved copy of the row;
  as many threads as memory allows (a grid-stride loop takes the rest).

Device memory goes through numba's own arrays (``cuda.to_device``), which
the simulator provides too, so ``NUMBA_ENABLE_CUDASIM=1`` runs every line
here.  This module loads numba's CUDA target through
:mod:`gpucheck._cuda` and only when used.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from ..errors import GpuCheckError
from ..functions import Function
from . import Evaluation, Progress

__all__ = ["evaluate"]

#: Simulated threads are Python threads: keep launches small there.
_SIM_THREADS_PER_BLOCK, _SIM_MAX_THREADS, _SIM_MEMORY = 32, 64, 64 << 20


class _Launch:
    """Launch geometry and memory of this process's CUDA target."""

    def __init__(self):
        from .._cuda import SIMULATOR, cuda

        self.cuda = cuda
        self.simulator = SIMULATOR
        if SIMULATOR:
            self.tpb, self.max_threads, self.max_blocks = _SIM_THREADS_PER_BLOCK, _SIM_MAX_THREADS, 8
            return
        dev = cuda.get_current_device()
        sms = int(getattr(dev, "MULTIPROCESSOR_COUNT", 132))
        per_sm = int(getattr(dev, "MAX_THREADS_PER_MULTI_PROCESSOR", 2048))
        self.tpb = 256
        # a few waves of resident threads; more only cost scratch memory
        self.max_threads = 4 * sms * per_sm
        self.max_blocks = 32 * sms

    def free_bytes(self) -> int:
        if self.simulator:
            return _SIM_MEMORY
        free, _ = self.cuda.current_context().get_memory_info()
        return int(free)

    def blocks(self, threads: int) -> int:
        return max(1, min(self.max_blocks, math.ceil(threads / self.tpb)))


def evaluate(backend: str, func: Function, x: np.ndarray, idx: np.ndarray, vals: np.ndarray, *,
             progress: Progress = None, memory_bytes: int | None = None,
             threads: int | None = None) -> Evaluation:
    """Evaluate a built-in layer or a row-wise function at every perturbed point.

    Parameters
    ----------
    backend : {'cuda', 'cudasim'}
        For messages.
    func : Function
        ``func.kind`` is ``'layer'`` or ``'rowwise'``.
    x, idx, vals : numpy.ndarray
        The point and the perturbations (see :mod:`gpucheck.backends`).
    progress : callable, optional
        ``progress(done, total)`` after each launch.
    memory_bytes : int, optional
        Device memory to plan the row copies for, instead of what is free.
    threads : int, optional
        Number of threads (row copies) of a row-wise launch; tests use it to
        exercise the grid-stride loop.

    Returns
    -------
    Evaluation
    """
    x = np.ascontiguousarray(x)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    vals = np.ascontiguousarray(vals, dtype=x.dtype)
    launch = _Launch()
    with warnings.catch_warnings():
        # small checks launch few threads on purpose
        warnings.filterwarnings("ignore", message=".*under-utilization.*")
        if func.kind == "layer":
            return _layer(launch, func, x, idx, vals, progress)
        return _rowwise(launch, backend, func, x, idx, vals, progress, memory_bytes, threads)


def _layer(launch, func, x, idx, vals, progress) -> Evaluation:
    from ..kernels import points
    from .cpu_layers import prepared

    cuda = launch.cuda
    t0 = time.perf_counter()
    f0, arrays = prepared(func, x)
    prep_seconds = time.perf_counter() - t0
    kern, compile_seconds = points.compile_points(func.form.evaluator.point, np.float64,
                                                  [(a.dtype, a.ndim) for a in arrays])
    vals = vals.astype(np.float64)  # exactly; one kernel serves both dtypes
    t1 = time.perf_counter()
    total = idx.shape[0]
    out = np.empty(total, dtype=np.float64)
    if total:
        d_idx, d_vals = cuda.to_device(idx), cuda.to_device(vals)
        d_out = cuda.device_array(total, dtype=np.float64)
        d_arrays = [cuda.to_device(a) for a in arrays]
        step = total if progress is None else max(1, math.ceil(total / 10))
        for start in range(0, total, step):
            stop = min(total, start + step)
            kern[launch.blocks(stop - start), launch.tpb](
                d_idx[start:stop], d_vals[start:stop], d_out[start:stop], f0, *d_arrays)
            if progress is not None:
                cuda.synchronize()
                progress(stop, total)
        cuda.synchronize()
        out = d_out.copy_to_host()
    return Evaluation(out, compile_seconds, prep_seconds + time.perf_counter() - t1)


def _rowwise(launch, backend, func, x, idx, vals, progress, memory_bytes, threads) -> Evaluation:
    from numba.core.errors import NumbaError

    from ..kernels import rowwise as kernels
    from .cpu_kernel import compile_error, writes_input_error
    from .rows import plan_rows

    cuda = launch.cuda
    full = not func.form.delta
    plan = plan_rows(func, x, idx, vals, delta=not full)
    row_shape = plan.rows.shape[1:]
    try:
        kern, compile_seconds = kernels.compile_rowwise(
            func.fn, x.dtype, len(row_shape), [(p.dtype, p.ndim) for p in plan.params],
            plan.aligned, full=full)
    except NumbaError as err:
        raise compile_error(func, backend, err) from err
    total = plan.idx.size
    out = np.empty(total, dtype=np.float64)
    if total == 0:
        return Evaluation(out, compile_seconds, 0.0)
    t0 = time.perf_counter()
    if full:
        items = total
    else:
        lanes = kernels.LANES if plan.width >= kernels.LANES else 1
        counts = np.bincount(plan.row_of, minlength=plan.n_rows)
        order, start, stop, seg_row = plan.segments(math.ceil(int(counts.max()) / lanes))
        items = seg_row.size
    budget = int(0.5 * (launch.free_bytes() if memory_bytes is None else memory_bytes))
    per_copy = plan.width * x.itemsize
    if threads is None:
        threads = min(items, launch.max_threads, budget // per_copy)
    threads = max(1, min(int(threads), items))
    if budget < per_copy:
        raise GpuCheckError(f"a row of x ({per_copy} bytes) does not fit in the device memory "
                            f"available to backend {backend!r}")
    scratch = cuda.device_array(row_shape + (threads,), dtype=x.dtype)
    d_rows, d_idx = cuda.to_device(plan.rows), cuda.to_device(plan.idx)
    d_vals, d_out = cuda.to_device(plan.vals), cuda.device_array(total, dtype=np.float64)
    d_params = [cuda.to_device(p) for p in plan.params]
    blocks = math.ceil(threads / launch.tpb)
    if full:
        kern[blocks, launch.tpb](d_rows, d_idx, d_vals, d_out, scratch, *d_params)
    else:
        written = cuda.to_device(np.zeros(1, dtype=np.int64))
        kern[blocks, launch.tpb](d_rows, d_idx, d_vals, cuda.to_device(order),
                                 cuda.to_device(start), cuda.to_device(stop),
                                 cuda.to_device(seg_row), d_out, written, scratch, *d_params)
    cuda.synchronize()
    out = d_out.copy_to_host()
    run_seconds = time.perf_counter() - t0
    if not full and int(written.copy_to_host()[0]):
        raise writes_input_error(func)
    values = plan.scale * out if full else plan.combine(out)
    if progress is not None:
        progress(values.size, values.size)
    return Evaluation(values, compile_seconds, run_seconds)
