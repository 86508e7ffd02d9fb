"""The CUDA kernels and the batched chunk loop, run by numba's simulator.

Run with ``NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim`` (the second session of
``.ci/run``).  Sizes are tiny: the simulator runs every thread as Python.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from agreement import CASES, assert_agree, case, central_points, moved
from gpucheck.backends import cpu
from gpucheck.errors import GpuCheckError
from gpucheck.functions import as_function, batched, kernel
from gpucheck.kernels import builtin

SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

pytestmark = [
    pytest.mark.cudasim,
    pytest.mark.skipif(not SIMULATING, reason="needs NUMBA_ENABLE_CUDASIM=1 (run: "
                       "NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim)"),
]


@pytest.fixture(scope="module")
def sim():
    from gpucheck.backends import cuda

    ok, reason = cuda.simulator_status()
    assert ok, reason
    return cuda.simulator_backend()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,shape", CASES)
def test_kernel_agrees_with_numpy_path(sim, name, shape, dtype):
    kfunc, bfunc, x = case(name, shape, dtype)
    idx, vals = central_points(x)
    got = sim.evaluate(kfunc, x, idx, vals)
    want = cpu.evaluate(bfunc, x, idx, vals)
    assert_agree(got.values, want.values, x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,shape", [("mse", "n37"), ("mse", "3d"), ("dense", "")])
def test_batched_agrees_with_numpy_path(sim, name, shape, dtype):
    _, bfunc, x = case(name, shape, dtype)
    idx, vals = central_points(x)
    got = sim.evaluate(bfunc, x, idx, vals)
    want = cpu.evaluate(bfunc, x, idx, vals)
    assert_agree(got.values, want.values, x)


def test_kernel_in_several_launches_with_few_copies(sim):
    # A memory budget of three copies: fewer threads, each taking many
    # points, over several launches, with progress after each.
    kfunc, bfunc, x = case("mse", "n37", "float64")
    idx, vals = central_points(x)
    seen = []
    got = sim.evaluate(kfunc, x, idx, vals, memory_bytes=int(3 * x.nbytes / 0.8) + 1,
                       launches=4, progress=lambda d, t: seen.append((d, t)))
    assert_agree(got.values, cpu.evaluate(bfunc, x, idx, vals).values, x)
    assert len(seen) == 4 and seen[-1] == (74, 74)


def test_kernel_copies_restored_between_points(sim):
    x = np.arange(5.0)
    idx = np.repeat(np.arange(5), 4).astype(np.int64)
    vals = x[idx] + 0.5
    ev = sim.evaluate(as_function(kernel(moved, x.copy())), x, idx, vals,
                      memory_bytes=200, launches=3)
    np.testing.assert_array_equal(ev.values, np.ones(20))


def test_batched_chunks_and_halves_on_out_of_memory(sim):
    t = np.linspace(0, 1, 6)
    ref = builtin.mse_batched(t)
    sizes = []

    def picky(xs):
        sizes.append(xs.shape[0])
        if xs.shape[0] > 2:
            raise MemoryError("pretend the device is full")
        return ref(xs)

    x = np.ones(6)
    idx, vals = central_points(x)
    got = sim.evaluate(as_function(batched(picky)), x, idx, vals,
                       memory_bytes=4 * 5 * x.nbytes)
    assert_agree(got.values, cpu.evaluate(as_function(batched(ref)), x, idx, vals).values, x)
    assert sizes[0] == 5 and max(sizes[1:]) <= 2


def test_batched_wrong_shape_is_an_error(sim):
    x = np.ones(4)
    idx, vals = central_points(x)
    with pytest.raises(GpuCheckError, match=r"must return shape \(8,\)"):
        sim.evaluate(as_function(batched(lambda xs: xs.sum())), x, idx, vals)


def test_callable_runs_on_the_host(sim):
    x = np.arange(3.0)
    idx, vals = central_points(x)
    got = sim.evaluate(as_function(lambda z: float((z ** 2).sum())), x, idx, vals)
    want = [float(np.sum(np.where(np.arange(3) == i, v, x) ** 2)) for i, v in zip(idx, vals)]
    np.testing.assert_allclose(got.values, want, rtol=1e-15)


def test_zero_d_point_and_no_points(sim):
    def sq(x):
        return x[0] * x[0]

    ev = sim.evaluate(as_function(kernel(sq)), np.array(3.0), np.array([0]), np.array([2.0]))
    assert ev.values.tolist() == [4.0]
    ev = sim.evaluate(as_function(kernel(sq)), np.ones(2), np.zeros(0, np.int64), np.zeros(0))
    assert ev.values.shape == (0,)


def test_status_in_a_simulator_process():
    from gpucheck.backends import cuda

    assert cuda.simulator_status()[0]
    ok, reason = cuda.device_status()
    assert not ok and "simulator" in reason


@pytest.mark.parametrize("form", ["kernel", "batched"])
def test_compare_cudasim_with_cpu(form):
    from gpucheck.compare import compare

    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    t = rng.standard_normal((3, 4)).astype(np.float32)
    f = kernel(builtin.mse, t) if form == "kernel" else batched(builtin.mse_batched(t))
    r = compare(f, x, backends=["cudasim"], repeat=1)
    sim = [run for run in r.runs if run.backend == "cudasim"][0]
    assert sim.available and sim.agrees, str(r)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_check_gradient_end_to_end(dtype):
    import gpucheck

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 2)).astype(dtype)
    t = rng.standard_normal((2, 3, 2)).astype(dtype)
    grad = 2 * (x.astype(np.float64) - t) / x.shape[0]
    for f in (gpucheck.kernel(builtin.mse, t), gpucheck.batched(builtin.mse_batched(t))):
        assert gpucheck.check_gradient(f, x, grad, backend="cudasim").passed
        bad = grad.copy()
        bad[1, 2, 0] *= -1
        r = gpucheck.check_gradient(f, x, bad, backend="cudasim")
        assert r.status == "fail" and r.worst[0].index == (1, 2, 0)


def test_function_writing_its_input_is_reported(sim):
    def scribbles(x):
        s = 0.0
        for i in range(x.shape[0]):
            s += x[i]
        x[0] = 7.0
        return s

    with pytest.raises(GpuCheckError, match="writes into its argument `x`"):
        sim.evaluate(as_function(kernel(scribbles)), np.ones(4), np.array([1, 2, 3]),
                     np.array([2.0, 2.0, 2.0]))
