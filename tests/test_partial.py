"""Ctrl-C during a check: the partial result judges what was evaluated, never passes.

In process: KeyboardInterrupt raised from f after k calls, from f at the
points of one stage, or from the progress callback, on the cpu backend and
(marked ``cudasim``) in the CUDA simulator.  Each partial result is
compared with the complete check of the same problem.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import gpucheck
from gpucheck.result import UNCHECKED

SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


class StopAfter:
    """f that raises KeyboardInterrupt at its call number ``after + 1``.

    A millisecond a call keeps every chunk at most 250 points (a quarter of
    a second), so at least ``after - 250`` points are in when it stops,
    however loaded the machine.
    """

    def __init__(self, f, after: int, delay: float = 1e-3):
        self.f, self.after, self.delay, self.calls = f, after, delay, 0

    def __call__(self, v):
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt
        time.sleep(self.delay)
        return self.f(v)


def sines(v):
    return float(np.sum(np.sin(v)))


def _interrupted(f, x, grad, **kw):
    with pytest.raises(gpucheck.GpuCheckInterrupted) as info:
        gpucheck.check_gradient(f, x, grad, backend="cpu", **kw)
    assert isinstance(info.value, KeyboardInterrupt)   # code that stops on Ctrl-C still stops
    r = info.value.partial
    assert r.partial and not r.passed and r.status != "pass"
    return r


@pytest.fixture(scope="module")
def problem():
    x = np.linspace(-1.0, 1.0, 600)
    g = np.cos(x)
    g[5] *= 1.05       # planted bugs: one early (checked), one last (never reached)
    g[-1] *= 1.05
    return x, g


def test_first_pass_interrupt_judges_whole_entries_and_never_passes(problem):
    x, g = problem
    full = gpucheck.check_gradient(sines, x, g, backend="cpu")
    assert full.status == "fail"
    r = _interrupted(StopAfter(sines, 500), x, g)
    st = r.element_status
    k = r.n_checked
    assert 5 < k < x.size - 1
    assert r.summary().startswith(f"PARTIAL (INCONCLUSIVE): interrupted after {k} of 600 entries")
    # the stencil goes entry by entry: the checked entries are a prefix
    assert np.all(st[:k] != UNCHECKED) and np.all(st[k:] == UNCHECKED)
    assert np.all(np.isnan(r.numeric[k:])) and np.all(np.isfinite(r.numeric[:k]))
    # the early bug needed refinement that never came: open, not passed
    assert st[5] == "inconclusive" and st[-1] == UNCHECKED
    # what passed passes in the complete check, with the same estimate
    ok = st == "pass"
    assert ok.sum() == k - 1
    assert np.all(full.element_status[ok] == "pass")
    np.testing.assert_array_equal(r.numeric[ok], full.numeric[ok])
    assert r.n_inconclusive == 1 and r.n_failed == 0
    d = r.to_dict()
    assert d["partial"] is True and d["n_checked"] == k and d["status"] == "inconclusive"
    assert "interrupted" in str(r).lower() and "unchecked" not in r.worst[0].status


def test_fixed_tolerance_partial_fails_a_checked_bug(problem):
    x, g = problem
    r = _interrupted(StopAfter(sines, 500), x, g, rtol=1e-5, atol=1e-8)
    assert r.status == "fail" and r.n_failed == 1
    assert r.element_status[5] == "fail" and r.element_status[-1] == UNCHECKED
    assert r.worst[0].index == (5,)


def kinked(v):
    return float(np.sum(np.sin(v)) + abs(v[0]) + abs(v[1]))


def test_interrupt_in_the_joint_test_keeps_a_decided_fail():
    x = np.linspace(-1.0, 1.0, 40)
    x[:2] = 0.0
    g = np.cos(x)
    g[0] += 0.5          # valid subgradients of |v| at 0
    g[1] -= 0.25
    g[10] *= 1.05        # a bug, decided while refining
    full = gpucheck.check_gradient(kinked, x, g, backend="cpu")
    assert full.status == "fail" and full.n_kinks == 2 and list(full.element_status[:2]) == ["pass"] * 2

    def stop_at_joint(v):
        # only the joint test of kinks moves both kink coordinates at once
        if v[0] != 0 and v[1] != 0:
            raise KeyboardInterrupt
        return kinked(v)

    r = _interrupted(stop_at_joint, x, g)
    assert r.status == "fail" and r.n_checked == x.size
    assert r.element_status[10] == "fail"
    # passed alone at a kink, but the joint test did not finish: not a pass
    assert list(r.element_status[:2]) == ["inconclusive"] * 2
    assert np.all(r.element_status[2:10] == "pass")
    # the same fault without the bug: still no pass
    g2 = g.copy()
    g2[10] = np.cos(x[10])
    assert _interrupted(stop_at_joint, x, g2).status == "inconclusive"


def test_interrupt_before_the_noise_probes_judges_nothing(problem):
    x, g = problem
    r = _interrupted(StopAfter(sines, 1, delay=0.0), x, g)
    assert r.n_checked == 0 and r.status == "inconclusive"
    assert np.all(r.element_status == UNCHECKED) and np.all(np.isnan(r.numeric))
    assert r.summary() == "PARTIAL (INCONCLUSIVE): interrupted after 0 of 600 entries were checked"


def test_a_progress_callback_can_stop_the_check(problem):
    x, g = problem
    seen = []

    def progress(done, total):
        seen.append(done)
        if done >= 500:
            raise KeyboardInterrupt

    r = _interrupted(StopAfter(sines, 10 ** 9), x, g, progress=progress)
    assert 0 < r.n_checked < x.size
    assert 0 < r.nfev <= max(seen)


def test_numerical_gradient_keeps_the_entries_computed(problem):
    x, _ = problem
    full = gpucheck.numerical_gradient(sines, x, backend="cpu")
    with pytest.raises(gpucheck.GpuCheckInterrupted) as info:
        gpucheck.numerical_gradient(StopAfter(sines, 500), x, backend="cpu")
    g = info.value.partial
    done = np.isfinite(g)
    assert 0 < done.sum() < x.size
    np.testing.assert_array_equal(g[done], full[done])
    assert np.all(done[:done.sum()])


def test_several_inputs_are_labelled_with_their_checked_counts():
    W = np.linspace(-1.0, 1.0, 300).reshape(20, 15)
    b = np.linspace(0.5, 1.5, 15)

    def f(p):
        return float(np.sum(np.sin(p["W"])) + np.sum(p["b"] ** 2))

    grad = {"W": np.cos(W), "b": 2 * b}
    grad["W"][0, 1] *= 1.05
    r = _interrupted(StopAfter(f, 500), {"W": W, "b": b}, grad, rtol=1e-5, atol=1e-8)
    names = [v.name for v in r.inputs]
    assert names == ["W", "b"]
    w, bv = r.inputs
    assert 0 < w.checked < w.entries and bv.checked == 0 and bv.status == UNCHECKED
    assert w.status == "fail" and r.worst[0].label == "W[0, 1]"


def test_sampled_check_interrupted_reports_its_sample(problem):
    x, g = problem
    r = _interrupted(StopAfter(sines, 400), x, g, mode="sample", samples=100)
    assert r.coverage is not None and r.mode == "sample"
    assert 0 < r.n_checked < r.coverage.checked
    assert f"of {r.coverage.checked} sampled entries" in r.summary()
    assert np.sum(r.element_status != UNCHECKED) == r.n_checked


def test_complete_check_is_not_partial(problem):
    x, g = problem
    r = gpucheck.check_gradient(sines, x, np.cos(x), backend="cpu")
    assert r.status == "pass" and not r.partial and r.n_checked is None
    assert r.to_dict()["partial"] is False


@pytest.mark.cudasim
@pytest.mark.skipif(not SIMULATING, reason="needs NUMBA_ENABLE_CUDASIM=1 (run: "
                    "NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim)")
def test_simulator_partial_matches_the_cpu_verdict(monkeypatch):
    from gpucheck import schedule
    from gpucheck.kernels import builtin

    # small first chunks, so that a stage of a few hundred points takes several
    monkeypatch.setitem(schedule.FIRST_WORK, "cudasim", 16 * 64)
    # and every later chunk one grain, whatever the pace of this host: a
    # fast one would otherwise take the rest of the stage in one chunk
    monkeypatch.setitem(schedule.TARGET_SECONDS, "cudasim", 1e-9)
    n = 8
    t = np.linspace(-1.0, 1.0, n * n).reshape(n, n)
    x = t + np.linspace(0.1, 0.5, n * n).reshape(n, n)
    g = 2 * (x - t) / n
    g[0, 3] *= 1.05
    f = gpucheck.kernel(builtin.mse, t)
    calls = []

    def progress(done, total):
        calls.append(done)
        # once the probes are in and whole entries after them
        if done >= 140:
            raise KeyboardInterrupt

    with pytest.raises(gpucheck.GpuCheckInterrupted) as info:
        gpucheck.check_gradient(f, x, g, backend="cudasim", progress=progress, rtol=1e-6,
                                atol=1e-9)
    r = info.value.partial
    assert r.partial and r.backend == "cudasim" and max(calls) < 227
    k = r.n_checked
    flat = r.element_status.reshape(-1)
    assert np.all(flat[k:] == UNCHECKED) and np.all(flat[:k] != UNCHECKED)
    cpu = gpucheck.check_gradient(f, x, g, backend="cpu", rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(flat[:k], cpu.element_status.reshape(-1)[:k])
    np.testing.assert_allclose(r.numeric.reshape(-1)[:k], cpu.numeric.reshape(-1)[:k],
                               rtol=1e-9, atol=1e-12)
    if k > 3:
        assert r.status == "fail" and flat[3] == "fail" and r.n_failed == 1
    else:
        assert r.status == "inconclusive" and r.n_failed == 0


@pytest.mark.cudasim
@pytest.mark.skipif(not SIMULATING, reason="needs NUMBA_ENABLE_CUDASIM=1 (run: "
                    "NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim)")
def test_simulator_joint_test_interrupt_keeps_the_fail():
    # a batched f on the simulator backend, stopped in the joint test of kinks
    x = np.linspace(-1.0, 1.0, 40)
    x[:2] = 0.0
    g = np.cos(x)
    g[0] += 0.5
    g[1] -= 0.25
    g[10] *= 1.05

    @gpucheck.batched
    def f(xs):
        if np.any((xs[:, 0] != 0) & (xs[:, 1] != 0)):
            raise KeyboardInterrupt
        return np.sin(xs).sum(axis=1) + np.abs(xs[:, 0]) + np.abs(xs[:, 1])

    with pytest.raises(gpucheck.GpuCheckInterrupted) as info:
        gpucheck.check_gradient(f, x, g, backend="cudasim")
    r = info.value.partial
    assert r.status == "fail" and r.n_checked == x.size and r.element_status[10] == "fail"
    assert list(r.element_status[:2]) == ["inconclusive"] * 2


def test_executor_chunks_that_came_back_are_kept(problem):
    from concurrent.futures import ThreadPoolExecutor

    x, g = problem
    full = gpucheck.check_gradient(sines, x, g, backend="cpu")

    def progress(done, total):
        if done >= 700:
            raise KeyboardInterrupt

    with ThreadPoolExecutor(2) as pool:
        r = _interrupted(StopAfter(sines, 10 ** 9), x, g, progress=progress,
                         executor=pool)
    st = r.element_status
    checked = st != UNCHECKED
    assert 0 < r.n_checked == checked.sum() < x.size
    ok = st == "pass"
    assert np.all(full.element_status[ok] == "pass")
    np.testing.assert_array_equal(r.numeric[ok], full.numeric[ok])
    assert not checked[-1]


def test_interrupted_reference_keeps_the_complete_check_and_never_passes():
    x = np.linspace(-1.0, 1.0, 50).astype(np.float32)

    def f(v):
        if v.dtype == np.float64:      # the float64 reference check
            raise KeyboardInterrupt
        return np.sum(np.sin(v.astype(np.float64)))

    g = np.cos(x.astype(np.float64))
    r = _interrupted(f, x, g, reference="float64")
    assert r.status == "inconclusive" and r.n_checked == x.size and r.reference is None
    assert np.all(r.element_status == "pass")
    assert "float64 reference" in r.advice
    g[7] *= 1.1
    r = _interrupted(f, x, g, reference="float64")
    assert r.status == "fail" and r.element_status[7] == "fail"


def test_partial_verdicts_never_exceed_the_complete_checks_over_the_corpus(monkeypatch):
    """Interrupted anywhere, no entry passes (or fails) that the complete check does not."""
    from gpucheck import schedule

    import corpus

    # chunks of a few points, so that every call count is near a chunk's end
    monkeypatch.setitem(schedule.TARGET_SECONDS, "cpu", 1e-4)
    monkeypatch.setattr(schedule, "GROW", 2)
    checked = 0
    for c in corpus.cases(0, np.float32, 4):
        f = c.forms.get("callable")
        if f is None:
            continue
        for g in [c.grad, *corpus.bugs(c, 0).values()]:
            full = gpucheck.check_gradient(f, c.x, g, backend="cpu", mode="full")
            for k in (130, full.nfev - 10):
                try:
                    gpucheck.check_gradient(StopAfter(f, k, delay=0.0), c.x, g, backend="cpu",
                                            mode="full")
                    continue
                except gpucheck.GpuCheckInterrupted as stop:
                    r = stop.partial
                st = r.element_status
                assert r.status != "pass", c.name
                assert np.all(full.element_status[st == "pass"] == "pass"), c.name
                assert np.all(full.element_status[st == "fail"] == "fail"), c.name
                checked += int(r.n_checked)
    assert checked > 0
