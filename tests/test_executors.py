"""``executor=`` with concurrent.futures pools: the same bits as a local run, exact nfev.

The Dask client is tested in tests/test_dask.py (skipped when dask is absent).
"""

from __future__ import annotations

import multiprocessing
import pickle
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

import gpucheck
from gpucheck import executors, schedule
from gpucheck.errors import GpuCheckError
from remote_problems import FORMS, GRAD, T, X, loss, loss_bad_at_start

def _same(r, want):
    assert r.status == want.status
    assert r.nfev == want.nfev
    assert np.array_equal(r.numeric, want.numeric)
    assert np.array_equal(r.tolerance, want.tolerance)


def _many_chunks(monkeypatch):
    # chunks of a few points, so that several are in flight at once
    orig = schedule.Runner.__post_init__

    def post(self):
        orig(self)
        self.pace = schedule.Pace(target=1e-6, first=5, grain=self.pace.grain, cap=self.pace.cap)

    monkeypatch.setattr(schedule.Runner, "__post_init__", post)


@pytest.mark.parametrize("bad", [3, "tcp://127.0.0.1:1", object()])
def test_an_executor_must_be_a_client_or_a_futures_executor(bad):
    with pytest.raises(GpuCheckError, match=r"`executor` must be a dask.distributed.Client or a "
                                            r"concurrent.futures.Executor, got"):
        gpucheck.check_gradient(loss, X, GRAD, executor=bad)


def test_executor_checks_the_backend_name_but_leaves_resolving_to_workers():
    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(GpuCheckError, match="`backend` must be one of"):
            gpucheck.check_gradient(loss, X, GRAD, executor=pool, backend="gpu")
        # 'auto' is resolved where the points run: here, the cpu
        assert gpucheck.check_gradient(loss, X, GRAD, executor=pool).backend == "cpu"


@pytest.mark.parametrize("form", list(FORMS))
def test_thread_pool_gives_the_local_bits(form, monkeypatch):
    want = gpucheck.check_gradient(FORMS[form], X, GRAD, backend="cpu")
    _many_chunks(monkeypatch)
    with ThreadPoolExecutor(3) as pool:
        got = gpucheck.check_gradient(FORMS[form], X, GRAD, backend="cpu", executor=pool)
    _same(got, want)


class CountingPool(ThreadPoolExecutor):
    """A thread pool that records the most chunks outstanding at once."""

    def __init__(self, n):
        super().__init__(n)
        self.outstanding = self.most = 0
        self.lock = threading.Lock()

    def submit(self, fn, *args, **kwargs):
        with self.lock:
            self.outstanding += 1
            self.most = max(self.most, self.outstanding)
        fut = super().submit(fn, *args, **kwargs)
        fut.add_done_callback(self._done)
        return fut

    def _done(self, _fut):
        with self.lock:
            self.outstanding -= 1


def test_at_most_two_chunks_in_flight_per_worker(monkeypatch):
    _many_chunks(monkeypatch)
    with CountingPool(2) as pool:
        r = gpucheck.numerical_gradient(loss, X, executor=pool)
    assert np.allclose(r, GRAD)
    assert 2 <= pool.most <= schedule.IN_FLIGHT_PER_WORKER * 2


def test_an_error_in_f_is_one_clear_error_and_cancels_the_rest(monkeypatch):
    _many_chunks(monkeypatch)
    with CountingPool(2) as pool:
        with pytest.raises(GpuCheckError, match="`f` raised ArithmeticError .*planted failure"):
            gpucheck.check_gradient(loss_bad_at_start, X, GRAD, backend="cpu", executor=pool)
    assert pool.outstanding == 0


def test_ctrl_c_while_waiting_cancels_the_chunks_not_started(monkeypatch):
    _many_chunks(monkeypatch)
    seen = []

    def progress(done, total):
        seen.append(done)
        if done:
            raise KeyboardInterrupt

    with CountingPool(1) as pool:
        with pytest.raises(KeyboardInterrupt):
            gpucheck.numerical_gradient(loss, X, executor=pool, progress=progress)
        submitted = pool.most
    # one chunk finished; the others in flight were cancelled, none queued after
    assert seen[-1] > 0 and submitted <= schedule.IN_FLIGHT_PER_WORKER


def test_process_pool_gives_the_local_bits_and_the_worker_error():
    want = {k: gpucheck.check_gradient(f, X, GRAD, backend="cpu") for k, f in FORMS.items()
            if k != "kernel"}
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        for form, r in want.items():
            _same(gpucheck.check_gradient(FORMS[form], X, GRAD, backend="cpu", executor=pool), r)
        # a lambda travels by value (cloudpickle) or is refused with a clear error
        lam = gpucheck.batched(lambda xs: ((xs - T) ** 2).reshape(len(xs), -1).sum(axis=1) / 4)
        try:
            r = gpucheck.check_gradient(lam, X, GRAD, backend="cpu", executor=pool)
        except GpuCheckError as err:
            assert "cannot be sent to the executor's workers" in str(err)
        else:
            _same(r, want["batched"])
        with pytest.raises(GpuCheckError, match="on a worker .*planted failure"):
            gpucheck.check_gradient(loss_bad_at_start, X, GRAD, backend="cpu", executor=pool)


def test_a_job_that_cannot_be_loaded_names_f_and_the_cure(tmp_path, monkeypatch):
    # f from a module the worker cannot import: pickled by reference here,
    # then the module disappears, as it would on a worker without it
    (tmp_path / "only_on_the_client.py").write_text("def f(v):\n    return float(v.sum())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import only_on_the_client

    from gpucheck.functions import as_function

    blob = pickle.dumps((as_function(only_on_the_client.f), X, "cpu"))
    monkeypatch.delitem(sys.modules, "only_on_the_client")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    with pytest.raises(GpuCheckError, match="could not load `f`: ModuleNotFoundError: No module "
                                            "named 'only_on_the_client'.*install its module"):
        executors.run_chunk("a token not seen before", blob, np.zeros(1, np.int64), np.zeros(1))


def test_a_shut_down_pool_is_a_clear_error():
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    with pytest.raises(GpuCheckError, match="`executor` refused the work: RuntimeError"):
        gpucheck.check_gradient(loss, X, GRAD, executor=pool)


def _delta_forms():
    import gpucheck.layers
    from remote_problems import row_sse

    return {"layer": gpucheck.layers.mse(T), "rowwise": gpucheck.rowwise(row_sse, T, scale=0.25)}


@pytest.mark.parametrize("form", ["layer", "rowwise"])
def test_delta_forms_on_a_thread_pool_give_the_local_bits(form, monkeypatch):
    f = _delta_forms()[form]
    want = gpucheck.check_gradient(f, X, GRAD, backend="cpu")
    _many_chunks(monkeypatch)
    with ThreadPoolExecutor(2) as pool:
        got = gpucheck.check_gradient(f, X, GRAD, backend="cpu", executor=pool)
    _same(got, want)


def test_several_inputs_on_an_executor():
    from remote_problems import two_inputs

    W, b = np.ones((2, 3)), np.arange(3.0)
    g = {"W": np.outer(1 - np.tanh(W @ b) ** 2, b), "b": W.T @ (1 - np.tanh(W @ b) ** 2)}
    want = gpucheck.check_gradient(two_inputs, {"W": W, "b": b}, g, backend="cpu")
    with ThreadPoolExecutor(2) as pool:
        got = gpucheck.check_gradient(two_inputs, {"W": W, "b": b}, g, executor=pool)
        # a kernel of several inputs is compiled for one backend: it must be named
        k = gpucheck.kernel(lambda w, c: 0.0)
        with pytest.raises(GpuCheckError, match="`backend` must be named"):
            gpucheck.check_gradient(k, (W, b), (W, b), executor=pool)
    _same(got, want)
    assert [v.name for v in got.inputs] == ["W", "b"]
