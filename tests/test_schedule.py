"""The chunk scheduler: sizes, order, exact counts, progress, bounded memory on big inputs."""

from __future__ import annotations

import os
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpucheck
from agreement import assert_agree, central_points
from gpucheck import schedule
from gpucheck.backends import cpu
from gpucheck.functions import as_function, batched, kernel
from gpucheck.kernels import builtin
from gpucheck.schedule import Pace, Runner


class Stop(BaseException):
    """Stands for Ctrl-C raised from a progress callback (not an error of f)."""


def _forms(x):
    t = np.linspace(-1.0, 1.0, x.size).reshape(x.shape).astype(x.dtype)
    return {
        "callable": as_function(lambda v: float(np.sum((v - t) ** 2) / 3)),
        "batched": as_function(batched(builtin.mse_batched(t))),
        "kernel": as_function(kernel(builtin.mse, t)),
    }


def _small_chunks(runner: Runner, first=3, target=1e-6) -> Runner:
    # as if every point were slow: many chunks, so boundaries are exercised
    runner.pace = Pace(target=target, first=first, grain=runner.pace.grain, cap=runner.pace.cap)
    return runner


@settings(max_examples=200, deadline=None)
@given(total=st.integers(1, 5000), grain=st.integers(1, 64), first=st.integers(1, 300),
       cap=st.integers(1, 4000), spp=st.floats(1e-7, 1e-1), spread=st.integers(1, 8))
def test_chunks_cover_every_point_once_on_grain_boundaries(total, grain, first, cap, spp, spread):
    cap = max(grain, cap - cap % grain)
    pace = Pace(target=0.25, first=first, grain=grain, cap=cap, spread=spread)
    start = 0
    while start < total:
        size = pace.next_size(total - start)
        assert 1 <= size <= total - start
        # every chunk but the stage's last starts and ends on the grain
        assert start % grain == 0
        if start + size < total:
            assert size % grain == 0 and size <= cap
        pace.observe(size, size * spp)
        start += size
    assert start == total


def test_pace_grows_by_measurement_and_respects_memory():
    pace = Pace(target=10.0, first=1, grain=1, cap=40)
    sizes = []
    for _ in range(4):
        sizes.append(pace.next_size(10**9))
        pace.observe(sizes[-1], sizes[-1] * 0.03)
    assert sizes == [1, 8, 40, 40]  # eightfold at most, then the memory cap
    # several chunks in flight: each gets at most an equal share of the rest
    shared = Pace(target=0.25, first=1, grain=1, spread=4, seconds_per_point=1e-3, last=100)
    assert shared.next_size(400) == 100
    assert shared.next_size(40) == 20  # 20 ms of work at least per chunk
    # a copy of x larger than the budget: one point per chunk (a broadcast
    # view stands for the big x, the cap comes from its size alone)
    one_copy_too_big = Runner(as_function(batched(lambda xs: xs.sum(axis=1))),
                              np.broadcast_to(np.zeros(1), (schedule.HOST_CHUNK_BYTES // 8 + 1,)), "cpu")
    assert one_copy_too_big.pace.cap == 1


@pytest.mark.parametrize("form", ["callable", "batched", "kernel"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_chunked_values_are_those_of_one_call_bit_for_bit(form, dtype, monkeypatch):
    x = np.random.default_rng(3).normal(size=(7, 9)).astype(dtype)
    # batches of 5 points, so that batched chunks are several batches long
    monkeypatch.setattr(cpu, "DEFAULT_CHUNK_BYTES", 5 * x.nbytes)
    func = _forms(x)[form]
    idx, vals = central_points(x)
    want = cpu.evaluate(func, x, idx, vals).values
    out = _small_chunks(Runner(func, x, "cpu")).run(idx, vals)
    assert out.chunks > 5
    assert np.array_equal(out.values, want)


def test_batched_function_sees_the_same_batches_however_the_points_are_chunked():
    x = np.random.default_rng(4).normal(size=300)
    seen = []

    def f(xs):
        seen.append(xs[:, :3].copy())  # enough to tell the batches apart
        return (xs ** 2).sum(axis=1)

    func = as_function(batched(f))
    idx, vals = central_points(x)
    chunk_bytes = 37 * x.itemsize * x.size  # 37 points per batch
    rows = cpu.chunk_rows(x.size, x.itemsize, chunk_bytes)
    cpu.evaluate(func, x, idx, vals, chunk_bytes=chunk_bytes, workers=1)
    one_call = [b.shape[0] for b in seen]

    def chunked(grain):
        seen.clear()
        start = 0
        pace = Pace(target=0.0, first=50, grain=grain)  # target 0: grow by 8x, from 50
        while start < idx.size:
            size = pace.next_size(idx.size - start)
            cpu.evaluate(func, x, idx[start:start + size], vals[start:start + size],
                         chunk_bytes=chunk_bytes, workers=1)
            pace.observe(size, 1.0)
            start += size
        return [b.shape[0] for b in seen]

    assert chunked(rows) == one_call
    # the guard works: chunks not aligned to the grain give f other batches
    assert chunked(1) != one_call


def test_every_point_counted_once_and_f_called_once_per_point(monkeypatch):
    calls = []

    def f(v):
        calls.append(1)
        return float(np.sum(np.cos(v)))

    x = np.linspace(-2, 2, 40)
    orig = Runner.__post_init__

    def slow_pace(self):
        orig(self)
        _small_chunks(self, first=2, target=1e-5)

    r0 = gpucheck.check_gradient(f, x, -np.sin(x))
    n0 = len(calls)
    calls.clear()
    monkeypatch.setattr(Runner, "__post_init__", slow_pace)
    r = gpucheck.check_gradient(f, x, -np.sin(x))
    assert r.nfev == r0.nfev == n0 == len(calls)
    assert np.array_equal(r.numeric, r0.numeric) and r.status == r0.status == "pass"


def test_progress_starts_at_zero_ends_once_at_total_and_never_goes_back():
    x = np.linspace(-1, 1, 30)
    calls = []
    runner = _small_chunks(Runner(_forms(x)["callable"], x, "cpu"), first=1)
    idx, vals = central_points(x)
    runner.run(idx, vals, lambda d, t: calls.append((d, t)))
    done = [d for d, _ in calls]
    assert calls[0] == (0, idx.size) and calls[-1] == (idx.size, idx.size)
    assert done == sorted(set(done))  # strictly increasing: no repeats
    assert {t for _, t in calls} == {idx.size}


class Recorder:
    """A progress object with the optional ``estimate`` method.

    With ``stop_after``, it stops the run (as Ctrl-C would) once that many
    points are done and the estimate has come.
    """

    def __init__(self, stop_after=None):
        self.calls, self.estimates = [], []
        self.stop_after = stop_after

    def __call__(self, done, total):
        self.calls.append((done, total))
        if self.stop_after is not None and done >= self.stop_after and self.estimates:
            raise Stop

    def estimate(self, seconds, done, total):
        self.estimates.append((seconds, done, total))


def test_the_estimate_comes_once_per_long_stage_from_measured_chunks(monkeypatch):
    monkeypatch.setattr(schedule, "ESTIMATE_BY", 0.05)

    def slow(v):
        time.sleep(0.002)
        return float(np.sum(v ** 2))

    x = np.linspace(-1, 1, 60)
    idx, vals = central_points(x)
    runner = Runner(as_function(slow), x, "cpu")
    runner.pace.target = 0.02  # short chunks, so the stage has many
    rec = Recorder()
    runner.run(idx, vals, rec)
    assert len(rec.estimates) == 1
    seconds, done, total = rec.estimates[0]
    assert total == idx.size and 0 < done < total
    # 2 ms a point: the estimate of what is left is in that range (a loose
    # band: a shared host may be slow, never many times faster)
    assert 0.5 * 0.002 * (total - done) <= seconds <= 20 * 0.002 * (total - done)


def test_small_stage_is_one_call_with_no_thread():
    x = np.random.default_rng(0).normal(size=(8, 8))
    for form, func in _forms(x).items():
        idx, vals = central_points(x)
        out = Runner(func, x, "cpu").run(idx, vals)
        assert out.chunks == (2 if form == "callable" else 1), form


def test_batched_cpu_keeps_few_batches_in_flight():
    # 100,000 batches of one point each (a copy of x larger than chunk_bytes):
    # queuing them all up front, as the backend once did, holds a future per
    # point (about 150 MB here, gigabytes for a 2e6-entry x) before the first
    # result.  Stop after 500 points and look at the peak.
    x = np.zeros(2000)
    func = as_function(batched(lambda xs: xs.sum(axis=1)))
    total = 100_000
    idx = np.arange(total, dtype=np.int64) % x.size
    vals = np.ones(total)
    seen = []

    def progress(done, _total):
        seen.append(done)
        if done >= 500:
            raise Stop

    tracemalloc.start()
    try:
        with pytest.raises(Stop):
            cpu.evaluate(func, x, idx, vals, progress=progress, chunk_bytes=1, workers=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen[-1] >= 500
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("form", ["batched", "callable"])
def test_two_million_entry_black_box_check_stays_under_a_gibibyte(form):
    # The run is stopped once it has estimated its time, after a second or
    # so (the full check is 4,000,065 points, hours); the planning of all of
    # them, the chunks and the estimate are what is measured.
    n = 2_000_000
    x = np.full(n, 0.5)

    if form == "batched":
        f = gpucheck.batched(lambda xs: (xs * xs).sum(axis=1))
    else:
        def f(v):
            return float(v @ v)
    rec = Recorder(stop_after=100)
    tracemalloc.start()
    try:
        with pytest.raises(Stop):
            # mode='full': the default 'auto' would sample and project instead
            gpucheck.check_gradient(f, x, 2 * x, backend="cpu", progress=rec, mode="full")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 30, f"peak {peak / 2**30:.2f} GiB"
    total = rec.calls[0][1]
    assert total > 2 * n  # the whole stencil and the noise probes, in one stage
    assert len(rec.estimates) == 1
    seconds, done, est_total = rec.estimates[0]
    # long, not seconds: 4e6 points of 4e6 flops each (1.6e13) cannot take
    # under 100 s on any host, and take about an hour on a busy 2-core one;
    # the band is physical, not this host's pace
    assert est_total == total and 100 < seconds < 30 * 86400 and done < total // 1000


def test_runner_reports_bad_backend_output(monkeypatch):
    class Broken:
        @staticmethod
        def evaluate(func, x, idx, vals, progress=None):
            from gpucheck.backends import Evaluation

            return Evaluation(np.zeros(idx.size + 1))

    monkeypatch.setattr(schedule.backends, "get", lambda name: Broken)
    with pytest.raises(gpucheck.GpuCheckError, match="returned"):
        Runner(as_function(lambda v: 0.0), np.zeros(3), "cpu").run(np.zeros(2, np.int64),
                                                                    np.zeros(2))


SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
needs_simulator = pytest.mark.skipif(not SIMULATING, reason="needs NUMBA_ENABLE_CUDASIM=1 (run: "
                                     "NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim)")


@pytest.mark.parametrize("form", ["batched", "kernel"])
@pytest.mark.cudasim
@needs_simulator
def test_simulator_chunked_matches_one_launch(form, monkeypatch):
    from gpucheck.backends import cuda

    x = np.random.default_rng(5).normal(size=(5, 6))
    monkeypatch.setattr(cpu, "DEFAULT_CHUNK_BYTES", 3 * x.nbytes)  # a grain of 3 points
    func = _forms(x)[form]
    idx, vals = central_points(x)
    want = cuda.simulator_backend().evaluate(func, x, idx, vals).values
    out = _small_chunks(Runner(func, x, "cudasim"), first=7).run(idx, vals)
    assert out.chunks > 5
    if form == "kernel":  # every point is its own thread's work: the same bits
        assert np.array_equal(out.values, want)
    else:
        assert_agree(out.values, want, x)


@pytest.mark.cudasim
@needs_simulator
def test_simulator_on_a_thread_pool_gives_the_local_bits():
    from concurrent.futures import ThreadPoolExecutor

    x = np.random.default_rng(6).normal(size=(3, 4))
    t = np.linspace(-1, 1, 12).reshape(3, 4)
    f = gpucheck.kernel(builtin.mse, t)
    grad = 2 * (x - t) / 3
    want = gpucheck.check_gradient(f, x, grad, backend="cudasim")
    with ThreadPoolExecutor(2) as pool:
        got = gpucheck.check_gradient(f, x, grad, backend="cudasim", executor=pool)
    assert got.backend == "cudasim" and got.nfev == want.nfev and got.status == want.status
    assert np.array_equal(got.numeric, want.numeric)
