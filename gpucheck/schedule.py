"""Where and in what pieces the points of a stage are evaluated.

The engine hands every point of a stage (the stencil, the noise probes, the
entries to refine) to a :class:`Runner`; the runner splits them into chunks
and hands each chunk to a backend, in this process or on the workers of an
executor.  Backends decide *how* a chunk is evaluated; this module decides
*where*, *how much at once* and *in which order the results come back*.

Chunks are sized by measurement.  The first chunk is small (one point of a
plain callable, one batch of a batched function, a few milliseconds' worth
of work for a kernel function, 65,536 points of a row-wise function or a
built-in layer) and timed; the next ones are sized so that each takes a
fraction of a second (growing at most eightfold per chunk), which keeps
Ctrl-C and progress responsive however large the stage is.  A second into a stage, the pace of
the latest chunk gives the estimate of the time left, which a progress object
with an ``estimate`` method hears once (:class:`gpucheck.progress.Meter`
prints it before a long run).  A stage whose rest is cheap goes in
one more chunk, so a small check costs one or two backend calls and no
threads.  A chunk never spans more perturbed copies of x than a memory budget
allows; a copy larger than the budget is evaluated alone, one point per
chunk, and chunks are made one at a time, never queued by the million.

Batched functions see their points in sub-batches that start at multiples of
the backend's batch size (:func:`gpucheck.backends.cpu.chunk_rows`): chunk
boundaries are rounded to that grain, so every run of a check, local or on
any number of workers, hands f exactly the same batches and gets the same
bits back.

With an executor (a ``dask.distributed.Client`` or any
``concurrent.futures.Executor``, see :mod:`gpucheck.executors`) at most
:data:`IN_FLIGHT_PER_WORKER` chunks per worker thread are outstanding; results
are placed by position, so they come back in order whatever order the
workers finish in, and each point is counted once however often a chunk was
retried after a worker died.

Ctrl-C (or any :class:`KeyboardInterrupt`) during a stage leaves as an
:class:`Interrupted` that carries the values of every point evaluated so
far: the chunks that completed (in order locally, in any order on an
executor) are kept, the chunk under way and those not started are not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import backends
from .errors import GpuCheckError
from .functions import Function

__all__ = ["Runner", "Outcome", "Interrupted", "Pace", "TARGET_SECONDS", "REMOTE_TARGET_SECONDS",
           "HOST_CHUNK_BYTES", "FIRST_WORK", "IN_FLIGHT_PER_WORKER", "chunk_grain"]

#: Seconds one chunk should take, per backend: short enough that Ctrl-C and
#: progress respond at once, long enough that a chunk's fixed cost (a thread
#: pool, a parallel region, copying x to the device and filling its copies)
#: stays below a few percent.  The cuda backend bounds its own launches to
#: about 0.1 s and reports progress after each, so its chunks can be longer.
TARGET_SECONDS = {"cpu": 0.25, "cudasim": 0.25, "cuda": 2.0}
#: Seconds per chunk on an executor's workers: a task costs milliseconds to
#: schedule and its points travel over the network.
REMOTE_TARGET_SECONDS = 1.0
#: Bytes of perturbed copies of x that one chunk may span on a host backend
#: (cpu, cudasim) for the forms that copy x per point (batched, kernel): a
#: chunk covers at most this many bytes' worth of points,
#: whatever a backend keeps alive at once (the cpu thread pool: two batches
#: per thread).  A copy larger than this is evaluated alone.  The cuda
#: backend plans its copies from free device memory.
HOST_CHUNK_BYTES = 1 << 30
#: Elements read by the first chunk of a kernel function (points times
#: x.size), per backend: a few milliseconds of compiled work (numba's loops
#: read about 10^9 elements a second on two cores), so the timed chunk is
#: cheap, a small check is done in one call, and a larger one does not pay a
#: call's fixed cost (a parallel region: up to ~10 ms on a busy host) many
#: times while the chunks grow.  The simulator runs kernels as Python, about
#: a microsecond an element.
FIRST_WORK = {"cpu": 1 << 23, "cuda": 1 << 23, "cudasim": 1 << 18}
#: Points in the first chunk of a plain callable: its chunks cost nothing
#: to split, and one slow call should not hide the estimate for long.
FIRST_CALLABLE = 1
#: Points in the first chunk of a row-wise function or a built-in layer:
#: each point costs a row or a column, not a pass over x (65,536 points of
#: an MSE layer take about a millisecond, of a dense layer a few).
FIRST_DELTA = 1 << 16
#: A chunk may be at most this many times the previous one...
GROW = 8
#: ... or the square of that when the previous one took less than this many
#: seconds: then its time was mostly the call's fixed cost, which says little
#: about the points.
SHORT_CHUNK = 0.02
#: Seconds of work below which an executor's chunk is not split further.
MIN_REMOTE_SECONDS = 0.02
#: Chunks outstanding per worker thread of an executor: one running, one
#: waiting so that the worker never idles.
IN_FLIGHT_PER_WORKER = 2
#: Seconds between progress calls from inside a chunk.
PROGRESS_INTERVAL = 0.1
#: Seconds into a stage after which its remaining time is estimated.
ESTIMATE_BY = 1.0


@dataclass(frozen=True)
class Outcome:
    """What a :class:`Runner` returns for one stage.

    Attributes
    ----------
    values : numpy.ndarray
        f at every point, float64 (complex128 for complex x), in the order of the points.
    compile_seconds, run_seconds : float
        Compile time, and evaluation time with compile time excluded.
    backend : str
        The backend that evaluated the points (on an executor: what the
        workers resolved, names joined by ``+`` if they differ).
    chunks : int
        How many chunks the points were split into.
    """

    values: np.ndarray
    compile_seconds: float
    run_seconds: float
    backend: str
    chunks: int


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a stage, with what was evaluated before it.

    Attributes
    ----------
    values : numpy.ndarray
        f at every point of the stage, NaN where it was not evaluated.
    done : numpy.ndarray
        Which points were evaluated (bool, the stage's length).

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck.functions import as_function
    >>> def stop_after_first_chunk(done, total):
    ...     if done:
    ...         raise KeyboardInterrupt
    >>> r = Runner(as_function(lambda v: float(v[0])), np.zeros(1), "cpu")
    >>> try:
    ...     r.run(np.zeros(4, np.int64), np.arange(4.0), stop_after_first_chunk)
    ... except Interrupted as stop:
    ...     print(stop.done.tolist(), stop.values[stop.done].tolist())
    [True, False, False, False] [0.0]
    """

    def __init__(self, values: np.ndarray, done: np.ndarray):
        super().__init__(f"interrupted after {int(np.sum(done)):,} of {done.size:,} points")
        self.values = values
        self.done = done


def chunk_grain(func: Function, x: np.ndarray) -> int:
    """Points per sub-batch a batched function receives; chunk sizes are multiples of it.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> from gpucheck.functions import as_function
    >>> chunk_grain(as_function(gpucheck.batched(lambda xs: xs.sum(axis=1))), np.zeros(1024))
    512
    >>> chunk_grain(as_function(lambda v: v.sum()), np.zeros(1024))
    1
    """
    if func.kind != "batched":
        return 1
    from .backends import cpu

    return cpu.chunk_rows(x.size, x.itemsize, cpu.DEFAULT_CHUNK_BYTES)


@dataclass
class Pace:
    """Chunk sizes from measured seconds per point.

    Parameters
    ----------
    target : float
        Seconds one chunk should take.
    first : int
        Points in the first chunk, before anything was measured.
    grain : int
        Chunk sizes are multiples of this (except a stage's last chunk).
    cap : int
        At most this many points per chunk (memory).
    spread : int
        Chunks in flight at once (workers times chunks per worker).  More
        than one gives each chunk at most an equal share of the rest of the
        stage, so chunks shrink as the stage ends and the workers finish
        together (guided self-scheduling) instead of one waiting for another.

    Examples
    --------
    >>> p = Pace(target=2.0, first=4, grain=1, cap=10**6)
    >>> p.next_size(10**6)
    4
    >>> p.observe(4, 0.04)            # 10 ms per point
    >>> p.next_size(10**6)            # at most eight times the last chunk
    32
    >>> p.observe(32, 0.32)
    >>> p.next_size(10**6)            # two seconds' worth
    200
    >>> p.next_size(150)              # the rest takes less than a chunk
    150
    >>> q = Pace(target=0.25, first=10, grain=1)
    >>> q.observe(10, 0.001)          # a short chunk: mostly the call's fixed cost
    >>> q.next_size(10**6)            # may grow 64-fold
    640
    """

    target: float
    first: int
    grain: int = 1
    cap: int = 1 << 62
    spread: int = 1
    seconds_per_point: float | None = None
    last: int = 0
    last_seconds: float = 0.0

    def next_size(self, remaining: int) -> int:
        """Points in the next chunk, when ``remaining`` points are left."""
        if remaining <= 0:
            return 0
        g = max(1, int(self.grain))
        spp = self.seconds_per_point
        if spp is None:
            size = self.first
        elif self.spread == 1 and remaining * spp <= self.target:
            size = remaining
        else:
            size = self.target / spp
            if self.last:
                grow = GROW * GROW if self.last_seconds < SHORT_CHUNK else GROW
                size = min(size, grow * self.last)
            if self.spread > 1:
                # an equal share of the rest for every slot, but no chunk so
                # small that scheduling it costs more than evaluating it
                share = -(-remaining // self.spread)
                size = min(size, max(share, MIN_REMOTE_SECONDS / spp))
        size = int(max(1, min(size, self.cap, remaining)))
        size = max(g, size - size % g)
        # a tail shorter than a grain joins this chunk
        if remaining - size < g:
            size = remaining
        return min(size, remaining)

    def observe(self, points: int, seconds: float) -> None:
        """Record that ``points`` took ``seconds`` (compile time excluded)."""
        if points <= 0:
            return
        spp = max(float(seconds), 1e-9) / points
        old = self.seconds_per_point
        # weigh the newer chunk more: costs drift (caches warm, other load)
        self.seconds_per_point = spp if old is None else 0.3 * old + 0.7 * spp
        self.last = points
        self.last_seconds = float(seconds)


class _Report:
    """``progress(done, total)`` calls of one stage: monotonic, the last exactly once."""

    def __init__(self, progress, total: int):
        self.progress = progress
        self.total = total
        self.done = -1
        self.last_call = 0.0
        self.estimated = False
        self.started = time.monotonic()
        if progress is not None:
            self.emit(0, force=True)

    def emit(self, done: int, *, force: bool = False) -> None:
        if self.progress is None or done <= self.done:
            return
        now = time.monotonic()
        if not force and done < self.total and now - self.last_call < PROGRESS_INTERVAL:
            return
        self.done = done
        self.last_call = now
        self.progress(done, self.total)

    def inner(self, base: int):
        """A ``progress`` for a backend call over the points from ``base`` on."""
        if self.progress is None:
            return None
        return lambda d, t: self.emit(base + min(int(d), int(t)))

    def estimate(self, done: int, seconds_per_point: float, workers: int = 1) -> None:
        """Tell a progress object with an ``estimate`` method, once per stage.

        Called after every chunk with that chunk's own pace.  The first chunks
        pay one-off costs (first touch of buffers, new threads' memory arenas,
        lazy imports in f: ten times the steady cost is common), so the
        estimate comes from the chunk that ends after the stage has run
        :data:`ESTIMATE_BY` seconds; a stage that ends sooner needs none.
        """
        if self.estimated or self.progress is None or done >= self.total:
            return
        if time.monotonic() - self.started < ESTIMATE_BY:
            return
        seconds_left = (self.total - done) * seconds_per_point / max(1, workers)
        self.estimated = True
        hook = getattr(self.progress, "estimate", None)
        if callable(hook):
            hook(seconds_left, done, self.total)


@dataclass
class Runner:
    """Evaluates the points of each stage of one check, chunk by chunk.

    Parameters
    ----------
    func : Function
        The normalised function.
    x : numpy.ndarray
        The point (validated, C-contiguous).
    backend : str
        A resolved backend name; with an executor, the ``backend`` option as
        the user gave it, resolved by each worker for itself.
    executor : optional
        A ``dask.distributed.Client`` or ``concurrent.futures.Executor``
        (validated); None evaluates in this process.

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck.functions import as_function
    >>> r = Runner(as_function(lambda v: float(v @ v)), np.ones(3), "cpu")
    >>> r.run(np.array([0, 2]), np.array([2.0, 0.0])).values.tolist()
    [6.0, 2.0]
    """

    func: Function
    x: np.ndarray
    backend: str
    executor: object = None
    pace: Pace = field(init=False)
    workers: int = field(init=False, default=1)
    _remote: object = field(init=False, default=None, repr=False)

    def __post_init__(self):
        if self.executor is not None:
            target = REMOTE_TARGET_SECONDS
        else:
            target = TARGET_SECONDS.get(self.backend, TARGET_SECONDS["cpu"])
        grain = chunk_grain(self.func, self.x)
        if self.func.kind == "callable":
            first = FIRST_CALLABLE
        elif self.func.kind == "batched":
            # one batch: timed without starting a thread pool
            first = grain
        elif self.func.kind in ("rowwise", "layer"):
            first = FIRST_DELTA
        else:
            work = FIRST_WORK.get(self.backend, FIRST_WORK["cudasim"])
            first = max(1, work // max(1, self.x.size))
        if self.backend in ("cpu", "cudasim") and self.func.kind in ("batched", "kernel"):
            cap = max(1, HOST_CHUNK_BYTES // max(1, self.x.nbytes))
            cap = max(grain, cap - cap % grain)
        else:
            # cuda (or 'auto' on workers that may have a GPU) plans device memory
            # itself; a callable holds one copy of x, a row-wise function or a
            # layer none per point (and prepares its intermediates once a chunk)
            cap = 1 << 62
        self.pace = Pace(target=target, first=first, grain=grain, cap=cap)

    def estimate_seconds(self, points: int):
        """Seconds ``points`` more points should take at the pace measured so far.

        None before anything was measured.  With an executor, the pace is
        shared by its workers.

        Examples
        --------
        >>> import numpy as np
        >>> from gpucheck.functions import as_function
        >>> r = Runner(as_function(lambda v: float(v @ v)), np.ones(3), "cpu")
        >>> r.estimate_seconds(1000) is None
        True
        >>> _ = r.run(np.zeros(50, np.int64), np.ones(50))
        >>> r.estimate_seconds(1000) > 0
        True
        """
        spp = self.pace.seconds_per_point
        if spp is None:
            return None
        return int(points) * spp / self.workers

    def run(self, idx: np.ndarray, vals: np.ndarray, progress=None) -> Outcome:
        """Evaluate f at every point ``(idx[p], vals[p])``; see :mod:`gpucheck.backends`.

        ``progress(done, total)`` is called with 0 first and ``total`` last;
        an object with an ``estimate(seconds, done, total)`` method also hears,
        once, how long the rest of the stage should take, from the pace of
        the chunk that ends a second (:data:`ESTIMATE_BY`) into the stage.
        """
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        vals = np.ascontiguousarray(vals, dtype=self.x.dtype)
        report = _Report(progress, int(idx.size))
        if self.executor is not None:
            return self._run_remote(idx, vals, report)
        return self._run_local(idx, vals, report)

    @property
    def _value_dtype(self):
        # complex x (the complex-step scheme) keeps f's imaginary part; for
        # real x the backends have already refused a nonzero one
        return np.complex128 if np.iscomplexobj(self.x) else np.float64

    def _run_local(self, idx, vals, report: _Report) -> Outcome:
        impl = backends.get(self.backend)
        total = idx.size
        # NaN marks what was not evaluated: written on an interrupt only, as
        # every value is written over when the stage completes
        out = np.empty(total, dtype=self._value_dtype)
        compile_s = run_s = 0.0
        start = chunks = 0
        try:
            while start < total:
                size = self.pace.next_size(total - start)
                stop = start + size
                t0 = time.perf_counter()
                ev = impl.evaluate(self.func, self.x, idx[start:stop], vals[start:stop],
                                   progress=report.inner(start))
                wall = time.perf_counter() - t0
                values = np.asarray(ev.values, dtype=self._value_dtype)
                if values.shape != (size,):
                    raise GpuCheckError(f"backend {self.backend!r} returned {values.shape} values "
                                        f"for {size} points")
                out[start:stop] = values
                compile_s += ev.compile_seconds
                run_s += ev.run_seconds
                measured = wall - ev.compile_seconds
                self.pace.observe(size, measured)
                chunks += 1
                start = stop
                report.estimate(start, max(measured, 1e-9) / size)
                report.emit(start, force=True)
        except KeyboardInterrupt:
            # chunks complete in order here: everything before `start` is in
            out[start:] = np.nan
            done = np.zeros(total, bool)
            done[:start] = True
            raise Interrupted(out, done) from None
        return Outcome(out, compile_s, run_s, self.backend, chunks)

    def _run_remote(self, idx, vals, report: _Report) -> Outcome:
        from . import executors

        if self._remote is None:
            self._remote = executors.Remote(self.executor, self.func, self.x, self.backend)
        remote = self._remote
        total = idx.size
        out = np.full(total, np.nan, dtype=self._value_dtype)
        finished = np.zeros(total, bool)
        t_start = time.perf_counter()
        compile_s = 0.0
        names = set()
        pending = {}
        start = done = chunks = 0
        try:
            workers = remote.workers()
            limit = IN_FLIGHT_PER_WORKER * workers
            self.workers = workers
            self.pace.spread = limit
            while start < total or pending:
                while start < total and len(pending) < limit:
                    size = self.pace.next_size(total - start)
                    stop = start + size
                    fut = remote.submit(idx[start:stop].copy(), vals[start:stop].copy())
                    pending[fut] = (start, stop)
                    start = stop
                for fut in remote.wait(list(pending)):
                    a, b = pending.pop(fut)
                    values, c_s, r_s, name = remote.result(fut, a)
                    values = np.asarray(values, dtype=self._value_dtype)
                    if values.shape != (b - a,):
                        raise GpuCheckError(f"a worker returned {values.shape} values for "
                                            f"{b - a} points")
                    out[a:b] = values
                    finished[a:b] = True
                    compile_s = max(compile_s, c_s)
                    names.add(name)
                    self.pace.observe(b - a, r_s)
                    done += b - a
                    chunks += 1
                    report.estimate(done, max(r_s, 1e-9) / (b - a), workers)
                    report.emit(done, force=True)
        except KeyboardInterrupt:
            # chunks finish in any order: keep each one that came back
            remote.cancel(list(pending))
            raise Interrupted(out, finished) from None
        except BaseException:
            remote.cancel(list(pending))
            raise
        backend = "+".join(sorted(names)) if names else self.backend
        return Outcome(out, compile_s, time.perf_counter() - t_start, backend, chunks)

