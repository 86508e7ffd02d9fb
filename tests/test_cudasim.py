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
    got = sim.evaluate(kfunc, x, idx, vals, memory_bytes=3 * x.nbytes,
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
                       memory_bytes=5 * x.nbytes)
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


# --- launches sized by time, interruption, memory returned ---------------------------------

def test_time_bounded_launches_give_the_same_values(sim):
    kfunc, bfunc, x = case("mse", "n37", "float64")
    idx, vals = central_points(x)
    seen = []
    # 32 copies and a target far below one launch's time: one round first, then
    # every launch a quarter of the last, down to one point.
    got = sim.evaluate(kfunc, x, idx, vals, launch_seconds=1e-9, memory_bytes=32 * x.nbytes,
                       progress=lambda d, t: seen.append(d))
    assert_agree(got.values, cpu.evaluate(bfunc, x, idx, vals).values, x)
    assert seen[:5] == [32, 40, 42, 43, 44] and seen[-1] == 74 and len(seen) == 35


def test_launch_sizes_follow_the_measured_rate(sim):
    kfunc, _, x = case("mse", "n37", "float64")
    idx, vals = central_points(x)
    idx, vals = np.tile(idx, 4), np.tile(vals, 4)  # 296 points, G = 64
    seen = []
    sim.evaluate(kfunc, x, idx, vals, launch_seconds=1e9, progress=lambda d, t: seen.append(d))
    # One round first, then at most four times the last launch, in whole rounds.
    assert seen == [64, 296]


def test_ctrl_c_between_launches_stops_the_check_and_releases_memory(sim, monkeypatch):
    from gpucheck.backends import cuda

    released = []
    monkeypatch.setattr(cuda._Host, "release", lambda self: released.append(1))
    kfunc, bfunc, x = case("mse", "n37", "float64")
    idx, vals = central_points(x)

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sim.evaluate(kfunc, x, idx, vals, launches=3, progress=interrupt)
    assert released == [1]
    got = sim.evaluate(kfunc, x, idx, vals)  # the next check starts clean
    assert_agree(got.values, cpu.evaluate(bfunc, x, idx, vals).values, x)
    assert released == [1, 1]


def test_copies_are_whole_warps(sim, monkeypatch):
    from gpucheck.backends import cuda

    shapes = []
    original = cuda.CudaBackend._allocate

    def spy(ops, x, rows):
        scratch = original(ops, x, rows)
        shapes.append(scratch.shape)
        return scratch

    monkeypatch.setattr(cuda.CudaBackend, "_allocate", staticmethod(spy))
    kfunc, bfunc, x = case("mse", "n37", "float64")
    idx, vals = central_points(x)
    # A budget of 40 copies: 32 of them, not 40.
    got = sim.evaluate(kfunc, x, idx, vals, memory_bytes=40 * x.nbytes)
    assert shapes == [(37, 32)]
    assert_agree(got.values, cpu.evaluate(bfunc, x, idx, vals).values, x)


# --- device errors injected into the simulator's path --------------------------------------

def _numba_error(name):
    from numba.cuda.cudadrv import driver, error

    return getattr(driver, name, None) or getattr(error, name)


def test_link_error_for_constant_data_says_pass_it_as_a_param(monkeypatch):
    import gpucheck
    from gpucheck.kernels import contract

    LinkerError = _numba_error("LinkerError")

    def refuse(*args, **kwargs):
        raise LinkerError("nvJitLink error log: ptxas error   : File uses too much global "
                          "constant data (0x27100 bytes, 0x10000 max)")

    monkeypatch.setattr(contract, "compile_evaluate", refuse)
    t = np.zeros(4)
    with pytest.raises(GpuCheckError, match="64 KB of constant memory.*Pass it as a param"):
        gpucheck.check_gradient(gpucheck.kernel(builtin.mse, t), np.ones(4), np.full(4, 0.5),
                                backend="cudasim")


def test_missing_nvvm_names_the_packages(monkeypatch):
    import gpucheck
    from gpucheck.kernels import contract

    # numba-cuda's class (the simulator has none): an ImportError of numba.cuda.cudadrv.error.
    NvvmSupportError = type("NvvmSupportError", (ImportError,),
                            {"__module__": "numba.cuda.cudadrv.error"})

    def missing(*args, **kwargs):
        raise NvvmSupportError("libNVVM cannot be found")

    monkeypatch.setattr(contract, "compile_fill", missing)
    with pytest.raises(GpuCheckError, match=r"NVVM.*pip install cupy-cuda13x 'numba-cuda\[cu13\]'"):
        gpucheck.check_gradient(gpucheck.kernel(builtin.mse, np.zeros(4)), np.ones(4),
                                np.full(4, 0.5), backend="cudasim")


def test_a_typing_error_is_still_the_users_function(monkeypatch):
    import gpucheck

    def mistyped(x, t):
        s = 0.0
        for i in range(x.shape[0]):
            s += x[i] - t  # array + scalar
        return s

    from numba.core.errors import TypingError
    from gpucheck.kernels import contract

    def typing_fails(*args, **kwargs):
        raise TypingError("Cannot unify array(float64, 1d, C) and float64")

    monkeypatch.setattr(contract, "compile_evaluate", typing_fails)
    with pytest.raises(GpuCheckError, match="did not compile for backend 'cudasim'"):
        gpucheck.check_gradient(gpucheck.kernel(mistyped, np.zeros(4)), np.ones(4),
                                np.full(4, 0.5), backend="cudasim")


def test_illegal_address_at_launch_is_reported_with_what_to_do(monkeypatch):
    import gpucheck
    from gpucheck.kernels import contract

    CudaAPIError = _numba_error("CudaAPIError")
    real = contract.compile_evaluate

    class Crashing:
        def __getitem__(self, config):
            def launch(*args):
                raise CudaAPIError(700, "an illegal memory access was encountered")
            return launch

    monkeypatch.setattr(contract, "compile_evaluate",
                        lambda *a, **k: (Crashing(), real(*a, **k)[1]))
    with pytest.raises(GpuCheckError) as info:
        gpucheck.check_gradient(gpucheck.kernel(builtin.mse, np.zeros(4)), np.ones(4),
                                np.full(4, 0.5), backend="cudasim")
    text = str(info.value)
    assert "while launching" in text and "restart Python" in text and "raised" not in text
    assert type(info.value.__cause__) is CudaAPIError


def _cupy_error(name, module, status, message):
    cls = type(name, (RuntimeError,), {"__module__": module})
    err = cls(message)
    err.status = status
    return err


def test_batched_halves_on_a_cublas_error(sim):
    t = np.linspace(0, 1, 6)
    ref = builtin.mse_batched(t)
    sizes = []

    def picky(xs):
        sizes.append(xs.shape[0])
        if xs.shape[0] > 3:
            raise _cupy_error("CUBLASError", "cupy_backends.cuda.libs.cublas", 3,
                              "CUBLAS_STATUS_ALLOC_FAILED")
        return ref(xs)

    x = np.ones(6)
    idx, vals = central_points(x)
    got = sim.evaluate(as_function(batched(picky)), x, idx, vals)
    assert_agree(got.values, cpu.evaluate(as_function(batched(ref)), x, idx, vals).values, x)
    assert sizes[:3] == [12, 6, 3] and max(sizes[2:]) <= 3


def test_batched_cublas_failure_at_one_point_is_reported(sim):
    def always(xs):
        raise _cupy_error("CUBLASError", "cupy_backends.cuda.libs.cublas", 13,
                          "CUBLAS_STATUS_EXECUTION_FAILED")

    x = np.ones(3)
    idx, vals = central_points(x)
    with pytest.raises(GpuCheckError, match="failed in cuBLAS even on a batch of one point"):
        sim.evaluate(as_function(batched(always)), x, idx, vals)


def test_batched_illegal_address_is_not_blamed_on_memory(sim):
    calls = []

    def crashes(xs):
        calls.append(xs.shape[0])
        raise _cupy_error("CUDARuntimeError", "cupy_backends.cuda.api.runtime", 700,
                          "cudaErrorIllegalAddress: an illegal memory access was encountered")

    x = np.ones(3)
    idx, vals = central_points(x)
    with pytest.raises(GpuCheckError, match="restart Python"):
        sim.evaluate(as_function(batched(crashes)), x, idx, vals)
    assert calls == [6]  # no halving: a smaller chunk would not help


def test_large_global_array_is_refused_in_the_simulator_too():
    import gpucheck

    big = np.arange(10000, dtype=np.float64)

    def reads_closure(x):
        s = 0.0
        for i in range(x.shape[0]):
            s += x[i] * big[i]
        return s

    with pytest.raises(GpuCheckError, match=r"`big` \(80,000 bytes\)"):
        gpucheck.check_gradient(gpucheck.kernel(reads_closure), np.ones(3), big[:3],
                                backend="cudasim")
    # The same array as a param is fine.

    def as_param(x, w):
        s = 0.0
        for i in range(x.shape[0]):
            s += x[i] * w[i]
        return s

    assert gpucheck.check_gradient(gpucheck.kernel(as_param, big[:3]), np.ones(3), big[:3],
                                   backend="cudasim").passed
