"""The CPU backend: NumPy for callables and batched functions, numba for kernels.

Callables are called once per point on a fresh copy of x.  Batched functions
are called on chunks of perturbed copies sized to ``chunk_bytes``; chunks run
on a thread pool (NumPy releases the GIL inside its loops) with one reusable
buffer per worker, restored entry by entry after each chunk and compared with
x, because allocating or re-writing a stack per chunk costs as much as the
forward pass itself.  A function that writes into its argument is detected
and reported.  Kernel functions go to a ``numba.njit(parallel=True)`` loop
built from the same source as the CUDA kernel.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import numpy as np

from ..errors import GpuCheckError
from ..functions import Function
from . import Evaluation, Progress

__all__ = ["name", "evaluate", "DEFAULT_CHUNK_BYTES"]

name = "cpu"

#: Bytes of perturbed copies handed to a batched function per call.  Measured
#: on a 2-core host (bench/bench_cpu.py): 1 to 8 MiB are within a few percent
#: of each other, much smaller chunks pay Python overhead per call.
DEFAULT_CHUNK_BYTES = 4 << 20
#: Batches queued or running per thread of the pool: enough to keep every
#: thread busy, few enough that memory does not grow with the number of points.
IN_FLIGHT_PER_THREAD = 2


def evaluate(func: Function, x: np.ndarray, idx: np.ndarray, vals: np.ndarray, *,
             progress: Progress = None, chunk_bytes: int | None = None,
             workers: int | None = None) -> Evaluation:
    """Evaluate f at every perturbed point on the host.

    Parameters
    ----------
    func : Function
        The normalised function.
    x : numpy.ndarray
        The point, C-contiguous, float32 or float64.
    idx, vals : numpy.ndarray
        Flat index and new value per point (see :mod:`gpucheck.backends`).
    progress : callable, optional
        Called as ``progress(done, total)`` as points complete.
    chunk_bytes : int, optional
        Size of one chunk of perturbed copies for batched functions.
    workers : int, optional
        Threads for batched chunks; default: the number of usable cores.

    Returns
    -------
    Evaluation
    """
    if func.kind in ("rowwise", "layer"):
        from . import cpu_layers, cpu_rowwise

        delta = cpu_rowwise if func.kind == "rowwise" else cpu_layers
        return delta.evaluate(func, x, idx, vals, progress=progress)
    if func.kind == "kernel":
        from . import cpu_kernel

        return cpu_kernel.evaluate(func, x, idx, vals, progress=progress)
    t0 = time.perf_counter()
    if func.kind == "batched":
        values = _evaluate_batched(func, x, idx, vals, progress,
                                   chunk_bytes or DEFAULT_CHUNK_BYTES, workers)
    else:
        values = _evaluate_callable(func, x, idx, vals, progress)
    return Evaluation(values, 0.0, time.perf_counter() - t0)


def _scalar(value, where: str, complex_ok: bool = False):
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype == object:
        raise GpuCheckError(
            f"`f` must return a scalar, got {type(value).__name__} of shape {arr.shape} {where}"
        )
    if complex_ok:
        return complex(arr.reshape(()))
    return float(real_values(arr, where).reshape(()))


def real_values(arr, where: str) -> np.ndarray:
    """``arr`` as real values; a nonzero imaginary part is an error, not something to drop."""
    if np.iscomplexobj(arr):
        if np.any(arr.imag != 0):
            raise GpuCheckError(
                f"`f` returned complex values with a nonzero imaginary part {where}; a gradient "
                f"check needs a real-valued f (scheme='complex' passes complex x on purpose)")
        arr = arr.real
    return arr


def _check_untouched(buf: np.ndarray, x: np.ndarray, what: str) -> None:
    if not np.array_equal(buf, x):
        raise GpuCheckError(f"`f` modified its input {what}; gpucheck reuses the perturbed "
                            "copies it hands to f, so f must not write into its argument")


def _evaluate_callable(func, x, idx, vals, progress) -> np.ndarray:
    # A fresh copy per call: this is the universal, slow path, and a copy
    # of x costs no more than f reading it, while it makes a function that
    # writes into its argument harmless to every later point.
    total = idx.size
    cx = np.iscomplexobj(x)
    out = np.empty(total, dtype=np.complex128 if cx else np.float64)
    buf = np.empty_like(x)
    flat = buf.reshape(-1)
    step = max(1, total // 100)
    for p in range(total):
        np.copyto(buf, x)
        flat[idx[p]] = vals[p]
        out[p] = _scalar(func.fn(buf), f"at point {p}", cx)
        if progress is not None and (p + 1) % step == 0:
            progress(p + 1, total)
    if progress is not None:
        progress(total, total)
    return out


def chunk_rows(n_elements: int, itemsize: int, chunk_bytes: int) -> int:
    """How many perturbed copies of an ``n_elements`` point fit in a chunk."""
    return max(1, int(chunk_bytes) // max(1, n_elements * itemsize))


def _evaluate_batched(func, x, idx, vals, progress, chunk_bytes, workers) -> np.ndarray:
    total = idx.size
    n = x.size
    rows = max(1, min(total, chunk_rows(n, x.itemsize, chunk_bytes)))
    starts = range(0, total, rows)
    cx = np.iscomplexobj(x)
    out = np.empty(total, dtype=np.complex128 if cx else np.float64)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(int(workers), len(starts)))
    xflat = x.reshape(-1)
    local = threading.local()

    def run(start: int) -> int:
        stop = min(start + rows, total)
        b = stop - start
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = np.empty((rows, n), dtype=x.dtype)
            buf[...] = x.reshape(1, n)
        xs = buf[:b]
        r = np.arange(b)
        cols = idx[start:stop]
        xs[r, cols] = vals[start:stop]
        res = func.fn(xs.reshape((b,) + x.shape))
        out[start:stop] = _batch_values(res, b, start, cx)
        # restore only what was perturbed: re-copying x into every row would
        # cost as much as the forward pass itself
        xs[r, cols] = xflat[cols]
        # reading the chunk once is cheaper than writing it again, and a
        # function that wrote into its argument cannot poison later chunks
        _check_untouched(xs, np.broadcast_to(xflat, xs.shape),
                         f"(the batch starting at point {start})")
        return b

    if workers == 1:
        done = 0
        for s in starts:
            done += run(s)
            if progress is not None:
                progress(done, total)
        return out
    # A few batches in flight per thread, submitted as others finish: queuing
    # every batch up front costs a future per point when a copy of x exceeds
    # chunk_bytes (gigabytes for a large x) and makes Ctrl-C wait for them all.
    # Progress is reported from this thread only.
    pool = ThreadPoolExecutor(max_workers=workers)
    pending = set()
    done = 0
    try:
        for s in starts:
            if len(pending) >= IN_FLIGHT_PER_THREAD * workers:
                done += _collect(pending)
                if progress is not None:
                    progress(done, total)
            pending.add(pool.submit(run, s))
        while pending:
            done += _collect(pending)
            if progress is not None:
                progress(done, total)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return out


def _collect(pending: set) -> int:
    """Wait for at least one of ``pending`` (removing it); points done, errors raised."""
    finished, rest = wait(pending, return_when=FIRST_COMPLETED)
    pending.intersection_update(rest)
    return sum(fut.result() for fut in finished)


def _batch_values(res, b: int, start: int, complex_ok: bool = False) -> np.ndarray:
    if hasattr(res, "get") and not isinstance(res, np.ndarray):  # a CuPy array
        res = res.get()
    arr = np.asarray(res)
    if arr.dtype == object or arr.shape != (b,):
        raise GpuCheckError(
            f"a batched `f` must return shape ({b},) for a batch of {b} points, "
            f"got {getattr(arr, 'shape', None)} (batch starting at point {start})"
        )
    if complex_ok:
        return arr.astype(np.complex128, copy=False)
    return real_values(arr, f"(batch starting at point {start})").astype(np.float64, copy=False)
