"""``executor=`` with a Dask cluster: two worker processes on the CPU.

Skipped, visibly, when dask.distributed is not installed (CI installs it).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
import sys
import time

import numpy as np
import pytest

pytest.importorskip("distributed", reason="dask.distributed is not installed "
                    "(pip install 'dask[distributed]')")

import gpucheck  # noqa: E402
from gpucheck import schedule  # noqa: E402
from gpucheck.cli import main  # noqa: E402
from gpucheck.errors import GpuCheckError  # noqa: E402
from remote_problems import FORMS, GRAD, X, loss, loss_batched  # noqa: E402


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.CRITICAL)
    c = Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture
def many_chunks(monkeypatch):
    # chunks of a few points: both workers busy, several chunks in flight
    orig = schedule.Runner.__post_init__

    def post(self):
        orig(self)
        self.pace = schedule.Pace(target=1e-6, first=7, grain=self.pace.grain, cap=self.pace.cap)

    monkeypatch.setattr(schedule.Runner, "__post_init__", post)


def _same(r, want):
    assert r.status == want.status
    assert r.nfev == want.nfev
    assert np.array_equal(r.numeric, want.numeric)
    assert np.array_equal(r.tolerance, want.tolerance)


@pytest.mark.parametrize("form", list(FORMS))
def test_dask_gives_the_local_bits(client, form, many_chunks):
    want = gpucheck.check_gradient(FORMS[form], X, GRAD, backend="cpu")
    bad = GRAD.copy()
    bad[1, 2] *= 1.01
    want_bad = gpucheck.check_gradient(FORMS[form], X, bad, backend="cpu")
    got = gpucheck.check_gradient(FORMS[form], X, GRAD, executor=client)
    _same(got, want)
    assert got.backend == "cpu"  # 'auto', resolved on the workers
    got_bad = gpucheck.check_gradient(FORMS[form], X, bad, executor=client)
    _same(got_bad, want_bad)
    assert got_bad.status == "fail"


def test_dask_numerical_gradient_and_sweep(client, many_chunks):
    g = gpucheck.numerical_gradient(loss, X, executor=client)
    assert np.array_equal(g, gpucheck.numerical_gradient(loss, X))
    f = gpucheck.batched(loss_batched)
    s = gpucheck.sweep(f, X, GRAD, executor=client)
    s0 = gpucheck.sweep(f, X, GRAD)
    assert np.array_equal(s.discrepancy, s0.discrepancy) and s.nfev == s0.nfev
    assert s.regime == s0.regime


def _dies_once(marker, v):
    # the first call anywhere kills its worker process, mid-chunk
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return loss(v)
    os.close(fd)
    os._exit(1)


def test_nfev_is_exact_when_a_worker_dies_and_its_chunk_is_retried(client, many_chunks, tmp_path):
    marker = str(tmp_path / "died")
    f = functools.partial(_dies_once, marker)
    want = gpucheck.check_gradient(loss, X, GRAD, backend="cpu")
    got = gpucheck.check_gradient(f, X, GRAD, executor=client)
    assert os.path.exists(marker)  # a worker did die
    _same(got, want)
    client.wait_for_workers(2, timeout=60)


def test_a_worker_that_cannot_import_f_gives_one_clear_error(client, tmp_path, monkeypatch):
    # the module exists on the client only (the workers started before it did)
    (tmp_path / "client_only_loss.py").write_text(
        "import numpy as np\n\ndef f(v):\n    return float(np.sum(v ** 2))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import client_only_loss

    monkeypatch.setitem(sys.modules, "client_only_loss", client_only_loss)
    with pytest.raises(GpuCheckError, match=r"a worker \(.*\) could not load `f`: "
                                            r"ModuleNotFoundError.*client_only_loss"):
        gpucheck.check_gradient(client_only_loss.f, X, 2 * X, executor=client)


def _no_compile(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i].no_such_method()
    return s


def test_a_kernel_that_does_not_compile_on_the_workers_is_one_clear_error(client):
    with pytest.raises(GpuCheckError, match="did not compile for backend 'cpu'"):
        gpucheck.check_gradient(gpucheck.kernel(_no_compile), X[0], 2 * X[0], executor=client)


def _slow(v):
    time.sleep(0.5)
    return loss(v)


def test_ctrl_c_cancels_the_chunks_on_the_cluster(client, monkeypatch):
    # chunks of three points, 1.5 s each: when the first is back three more
    # are in flight, seconds of work that Ctrl-C must cancel at once
    orig = schedule.Runner.__post_init__

    def post(self):
        orig(self)
        self.pace = schedule.Pace(target=1e-6, first=3, grain=1)

    monkeypatch.setattr(schedule.Runner, "__post_init__", post)

    def progress(done, total):
        if done:
            raise KeyboardInterrupt

    def running(dask_scheduler):
        # a finished chunk may stay in memory while the traceback holds its
        # future; none may still be waiting or running
        return sum(1 for k, ts in dask_scheduler.tasks.items()
                   if "run_chunk" in str(k) and ts.state in ("waiting", "queued", "processing",
                                                             "no-worker"))

    # the traceback is kept, as an interactive session keeps the last one: the
    # chunks' futures stay referenced, so only an explicit cancel stops them
    with pytest.raises(KeyboardInterrupt) as kept:
        gpucheck.numerical_gradient(_slow, X, executor=client, progress=progress)
    deadline = time.monotonic() + 0.5
    while client.run_on_scheduler(running) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.run_on_scheduler(running) == 0
    assert kept.traceback is not None


def test_cli_scheduler_option(client, tmp_path):
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "g.npy", GRAD)
    (tmp_path / "user_loss.py").write_text(
        "import numpy as np\n"
        "T = np.linspace(-1.0, 1.0, 24).reshape(4, 6)\n\n"
        "def loss(v):\n    return float(np.sum((v - T) ** 2) / 4)\n")
    argv = [str(tmp_path / "user_loss.py:loss"), "--x", str(tmp_path / "x.npy"),
            "--grad", str(tmp_path / "g.npy"), "--json"]
    out_local, out_dask = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out_local):
        assert main(["check", *argv, "--backend", "cpu"]) == 0
    with contextlib.redirect_stdout(out_dask):
        assert main(["check", *argv, "--scheduler", client.scheduler.address]) == 0
    local, remote = json.loads(out_local.getvalue()), json.loads(out_dask.getvalue())
    for key in ("status", "discrepancy", "nfev", "noise", "worst", "backend"):
        assert remote[key] == local[key], key


def test_a_closed_client_is_a_clear_error():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0",
                      silence_logs=logging.CRITICAL) as cluster:
        c = Client(cluster, set_as_default=False)
        c.close()
        with pytest.raises(GpuCheckError, match="`executor`: the Dask client is closed"):
            gpucheck.check_gradient(loss, X, GRAD, executor=c)


def test_batched_chunks_on_workers_keep_the_local_batches(client, monkeypatch):
    from remote_problems import X64, batch_size_shows

    f = gpucheck.batched(batch_size_shows)
    local = gpucheck.numerical_gradient(f, X64, backend="cpu")
    orig = schedule.Runner.__post_init__

    def small(self):
        orig(self)
        # chunks of a few batches: many chunks spread over both workers
        self.pace = schedule.Pace(target=1e-6, first=self.pace.grain, grain=self.pace.grain,
                                  cap=self.pace.cap)

    monkeypatch.setattr(schedule.Runner, "__post_init__", small)
    assert np.array_equal(gpucheck.numerical_gradient(f, X64, executor=client), local)
    # the guard works: chunks that ignore the batch grain give f other batches
    monkeypatch.setattr(schedule, "chunk_grain", lambda func, x: 1)
    monkeypatch.setattr(schedule.Pace, "next_size", lambda self, remaining: min(remaining, 100))
    assert not np.array_equal(gpucheck.numerical_gradient(f, X64, executor=client), local)


@pytest.mark.parametrize("form", ["layer", "rowwise"])
def test_dask_delta_forms_give_the_local_bits(client, form):
    import gpucheck.layers
    from remote_problems import T, row_sse

    f = {"layer": gpucheck.layers.mse(T), "rowwise": gpucheck.rowwise(row_sse, T, scale=0.25)}[form]
    _same(gpucheck.check_gradient(f, X, GRAD, executor=client),
          gpucheck.check_gradient(f, X, GRAD, backend="cpu"))
