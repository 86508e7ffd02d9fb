"""Chunks of points evaluated elsewhere: on a Dask cluster or any ``concurrent.futures`` pool.

:class:`gpucheck.schedule.Runner` decides the chunks; this module moves them.
f, x and the ``backend`` option travel once per check (pickled with
cloudpickle when it is installed, so functions defined in a script or a
notebook travel by value); each chunk then carries only its points.  Every
worker evaluates a chunk with its *own* backend: ``backend="auto"`` becomes
``cuda`` on a worker that owns a GPU (dask-cuda's ``LocalCUDACluster`` gives
each worker one) and ``cpu`` elsewhere.

Nothing here imports dask until a Dask client is actually used.
"""

from __future__ import annotations

import os
import pickle
import socket
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np

from .errors import GpuCheckError

__all__ = ["is_dask_client", "Remote", "run_chunk", "connect", "INSTALL_DASK"]

#: What to install for ``executor=`` with Dask and for ``--scheduler``.
INSTALL_DASK = "pip install 'dask[distributed]' (the extra gpucheck-grad[distributed])"
#: Seconds between checks for Ctrl-C while waiting for workers.
POLL_SECONDS = 0.25
#: How long to wait for a Dask cluster that has no worker yet.
WORKER_WAIT_SECONDS = 60.0
#: Checks whose f and x a worker process keeps loaded.
KEEP_JOBS = 2


def is_dask_client(obj) -> bool:
    """Whether ``obj`` is a ``dask.distributed.Client`` (without importing dask).

    Examples
    --------
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> is_dask_client(ThreadPoolExecutor(1))
    False
    """
    module = type(obj).__module__ or ""
    return (module.split(".")[0] == "distributed" and hasattr(obj, "submit")
            and hasattr(obj, "scatter") and hasattr(obj, "nthreads"))


def is_executor(obj) -> bool:
    """Whether ``obj`` can serve as ``executor=``: a Dask client or a futures executor."""
    return is_dask_client(obj) or isinstance(obj, Executor)


def _dumps(obj) -> bytes:
    try:
        import cloudpickle
    except ImportError:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


class Remote:
    """One check's link to an executor: its shared job and its chunk tasks.

    Parameters
    ----------
    executor : dask.distributed.Client or concurrent.futures.Executor
    func : Function
    x : numpy.ndarray
    backend : str
        The ``backend`` option; each worker resolves it for itself.
    """

    def __init__(self, executor, func, x: np.ndarray, backend: str):
        self.executor = executor
        self.dask = is_dask_client(executor)
        status = str(getattr(executor, "status", "running")) if self.dask else "running"
        if status in ("closing", "closed", "failed"):
            raise GpuCheckError(f"`executor`: the Dask client is {status}; connect a new one")
        self.token = uuid.uuid4().hex
        job = (func, x, backend)
        if isinstance(executor, ThreadPoolExecutor):
            self.handle = job  # same process: nothing to copy
            return
        try:
            blob = _dumps(job)
        except Exception as err:
            raise GpuCheckError(
                f"`f` cannot be sent to the executor's workers: pickling it raised "
                f"{type(err).__name__}: {err}. Define f at module level (or install "
                f"cloudpickle, which also sends lambdas and closures)") from err
        if not self.dask:
            self.handle = blob
            return
        try:
            self.handle = executor.scatter(blob, broadcast=True, hash=False)
        except Exception as err:
            raise GpuCheckError(f"`executor`: sending f and x to the Dask workers failed: "
                                f"{type(err).__name__}: {err}") from err

    def workers(self) -> int:
        """Worker threads available now (Dask: waits for the first worker)."""
        if not self.dask:
            n = getattr(self.executor, "_max_workers", None)
            return max(1, int(n or os.cpu_count() or 1))
        threads = sum(self.executor.nthreads().values())
        if threads == 0:
            try:
                self.executor.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
            except Exception as err:
                raise GpuCheckError(
                    f"`executor`: the Dask cluster has no worker (waited "
                    f"{WORKER_WAIT_SECONDS:.0f} s: {type(err).__name__})") from None
            threads = sum(self.executor.nthreads().values())
        return max(1, threads)

    def submit(self, idx: np.ndarray, vals: np.ndarray):
        """Start one chunk; returns its future."""
        try:
            if self.dask:
                return self.executor.submit(run_chunk, self.token, self.handle, idx, vals,
                                            pure=False)
            return self.executor.submit(run_chunk, self.token, self.handle, idx, vals)
        except Exception as err:
            raise GpuCheckError(f"`executor` refused the work: {type(err).__name__}: "
                                f"{err}") from err

    def wait(self, futures) -> list:
        """Futures among ``futures`` that are finished; blocks until one is (Ctrl-C works)."""
        if self.dask:
            # distributed.wait needs a default client; polling done() needs none,
            # and a chunk lasts about a second, so a few ms of delay is nothing
            pause = 0.002
            while True:
                done = [f for f in futures if f.done()]
                if done:
                    return done
                time.sleep(pause)
                pause = min(2 * pause, 0.01)
        from concurrent.futures import FIRST_COMPLETED, wait

        while True:
            done, _ = wait(futures, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            if done:
                return list(done)

    def result(self, fut, start: int) -> tuple:
        """``(values, compile_seconds, run_seconds, backend)`` of a finished chunk."""
        try:
            return fut.result()
        except GpuCheckError:
            raise
        except ImportError as err:
            raise GpuCheckError(
                f"a worker of the executor could not import gpucheck to evaluate the points "
                f"from {start} on ({type(err).__name__}: {err}); install gpucheck-grad, the "
                f"same version, on every worker") from err
        except Exception as err:
            raise GpuCheckError(
                f"the executor failed on the chunk of points from {start} on: "
                f"{type(err).__name__}: {err}") from err

    def cancel(self, futures) -> None:
        """Cancel chunks not needed any more (after an error or Ctrl-C); never raises."""
        try:
            if self.dask:
                self.executor.cancel(futures)
            else:
                for fut in futures:
                    fut.cancel()
        except Exception:  # already failing: keep the first error
            pass


_JOBS: OrderedDict = OrderedDict()
_RESOLVED: dict = {}
_LOCK = threading.Lock()
# numba's parallel loops, the simulator and a device are not shared safely by
# threads of one process: a worker with several threads runs those one at a time.
_SERIAL = threading.Lock()


def _where() -> str:
    return f"{socket.gethostname()}, pid {os.getpid()}"


def _job(token: str, handle):
    if not isinstance(handle, (bytes, bytearray)):
        return handle
    with _LOCK:
        job = _JOBS.get(token)
        if job is not None:
            _JOBS.move_to_end(token)
            return job
    try:
        job = pickle.loads(handle)
    except Exception as err:
        raise GpuCheckError(
            f"a worker ({_where()}) could not load `f`: {type(err).__name__}: {err}. Every "
            f"worker must be able to import what f refers to: install its module there (with "
            f"Dask, client.upload_file('module.py') sends one file), or define f in the "
            f"script that runs the check so that it travels by value") from None
    with _LOCK:
        _JOBS[token] = job
        while len(_JOBS) > KEEP_JOBS:
            _JOBS.popitem(last=False)
    return job


def _backend(option: str) -> str:
    from . import backends

    name = _RESOLVED.get(option)
    if name is None:
        name = _RESOLVED[option] = backends.resolve(option)
    return name


def run_chunk(token: str, handle, idx: np.ndarray, vals: np.ndarray) -> tuple:
    """Evaluate one chunk on a worker with the worker's own backend.

    Returns
    -------
    tuple
        ``(values, compile_seconds, run_seconds, backend)``.

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck.functions import as_function
    >>> job = (as_function(lambda v: float(v.sum())), np.zeros(3), "cpu")
    >>> values, _, _, backend = run_chunk("t", job, np.array([1]), np.array([2.0]))
    >>> values.tolist(), backend
    ([2.0], 'cpu')
    """
    from . import backends

    func, x, option = _job(token, handle)
    name = _backend(option)
    impl = backends.get(name)
    serial = name != "cpu" or func.kind == "kernel"
    t0 = time.perf_counter()
    try:
        if serial:
            with _SERIAL:
                ev = impl.evaluate(func, x, idx, vals)
        else:
            ev = impl.evaluate(func, x, idx, vals)
    except GpuCheckError:
        raise
    except Exception as err:
        raise GpuCheckError(
            f"`f` raised {type(err).__name__} while being evaluated on backend {name!r} "
            f"on a worker ({_where()}): {err}") from None
    wall = time.perf_counter() - t0
    values = np.asarray(ev.values, dtype=np.float64)
    return values, float(ev.compile_seconds), max(wall - ev.compile_seconds, 0.0), name


def connect(address: str, *, timeout: float = 10.0):
    """A ``dask.distributed.Client`` connected to the scheduler at ``address``.

    Parameters
    ----------
    address : str
        ``tcp://host:8786`` or anything ``Client`` accepts.
    timeout : float
        Seconds to wait for the scheduler.

    Raises
    ------
    GpuCheckError
        When dask.distributed is not installed or the scheduler cannot be reached.
    """
    try:
        from distributed import Client
    except ImportError:
        raise GpuCheckError(f"`--scheduler` needs dask.distributed: {INSTALL_DASK}") from None
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except Exception as err:
        raise GpuCheckError(f"`--scheduler`: cannot connect to {address!r}: "
                            f"{type(err).__name__}: {err}") from None
