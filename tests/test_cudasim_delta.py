"""Delta evaluation on the CUDA kernels, run by numba's simulator.

Run with ``NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim``.  Every built-in layer
and row-wise case is evaluated on ``cudasim`` and compared with the cpu
backend's delta path and with the full forward; the row-wise kernels are
also run with few threads (the grid-stride loop) and on long rows (a warp
per row).  Sizes are tiny: the simulator runs every thread as Python.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import gpucheck
from delta_cases import layer_cases, row_sse, rowwise_cases
from gpucheck import GpuCheckError
from gpucheck.backends import cpu
from gpucheck.functions import as_function

SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

pytestmark = [
    pytest.mark.cudasim,
    pytest.mark.skipif(not SIMULATING, reason="needs NUMBA_ENABLE_CUDASIM=1 (run: "
                       "NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim)"),
]

LAYERS = [name for name, _, _ in layer_cases("float64")]
ROWWISE = [name for name, _, _, _ in rowwise_cases("float64")]


@pytest.fixture(scope="module")
def sim():
    from gpucheck.backends import cuda

    ok, reason = cuda.simulator_status()
    assert ok, reason
    return cuda.simulator_backend()


def some_points(x, count=12, seed=0):
    rng = np.random.default_rng(seed)
    flat = x.reshape(-1).astype(np.float64)
    idx = np.concatenate([[0], rng.integers(0, x.size, count)]).astype(np.int64)
    vals = flat[idx] + np.concatenate([[0.0], rng.normal(scale=0.05, size=count)])
    return idx, vals.astype(x.dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", LAYERS)
def test_layer_kernels_match_the_cpu_delta_path(sim, name, dtype):
    layer, x = next((lay, x) for n, lay, x in layer_cases(dtype) if n == name)
    idx, vals = some_points(x)
    got = sim.evaluate(as_function(layer), x, idx, vals).values
    want = cpu.evaluate(as_function(layer), x, idx, vals).values
    # the same float64 arithmetic; the simulator runs it as Python
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    full = cpu.evaluate(as_function(layer.full()), x, idx, vals).values
    u = float(np.finfo(x.dtype).eps)
    assert np.max(np.abs(got - full)) <= 64 * x.size * u * max(1.0, np.max(np.abs(full)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ROWWISE)
def test_rowwise_kernels_match_the_cpu_paths(sim, name, dtype):
    f, x, _ = next((f, x, g) for n, f, x, g in rowwise_cases(dtype) if n == name)
    f_full = next(f for n, f, _, _ in rowwise_cases(dtype, delta=False) if n == name)
    idx, vals = some_points(x)
    want = cpu.evaluate(as_function(f_full), x, idx, vals).values
    # float32 terms: the simulator keeps NumPy's scalar rules (0.0 + float32
    # stays float32), so allow float32 rounding per term there
    u = float(np.finfo(x.dtype).eps)
    tol = 16 * x.size * u * max(1.0, float(np.max(np.abs(want))))
    for form in (f, f_full):
        got = sim.evaluate(as_function(form), x, idx, vals).values
        assert np.max(np.abs(got - want)) <= tol, form.delta


def test_rowwise_grid_stride_and_long_rows(sim):
    # rows of 40 entries: 32 threads share a row; three threads in all take
    # every segment in turns
    from gpucheck.backends import cuda_delta

    f, x, _ = next((f, x, g) for n, f, x, g in rowwise_cases("float64") if n == "sse_long_rows")
    idx, vals = some_points(x, count=20)
    want = cpu.evaluate(as_function(f), x, idx, vals).values
    for threads in (1, 3, None):
        got = cuda_delta.evaluate("cudasim", as_function(f), x, idx, vals, threads=threads).values
        np.testing.assert_allclose(got, want, rtol=1e-14)


def test_rowwise_base_point_is_exact(sim):
    f, x, _ = next((f, x, g) for n, f, x, g in rowwise_cases("float32") if n == "softmax_ce")
    ev = sim.evaluate(as_function(f), x, np.array([0, 9, 9]),
                      np.array([x.flat[0], x.flat[9], x.flat[9]]))
    assert ev.values[0] == ev.values[1] == ev.values[2]


def test_rowwise_fn_writing_its_row_is_reported(sim):
    def scribbles(row):
        s = 0.0
        for j in range(row.shape[0]):
            s += row[j]
        row[0] = 5.0
        return s

    with pytest.raises(GpuCheckError, match="writes into its argument"):
        sim.evaluate(as_function(gpucheck.rowwise(scribbles)), np.ones((2, 3)),
                     np.array([1, 4]), np.array([2.0, 2.0]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_check_gradient_end_to_end_through_delta_kernels(dtype):
    rng = np.random.default_rng(8)
    t = rng.normal(size=(3, 4)).astype(dtype)
    x = rng.normal(size=(3, 4)).astype(dtype)
    grad = 2 * (x.astype(np.float64) - t) / 3
    forms = [gpucheck.layers.mse(t), gpucheck.rowwise(row_sse, t, scale=1 / 3)]
    for f in forms:
        assert gpucheck.check_gradient(f, x, grad, backend="cudasim").passed
        bad = grad.copy()
        bad[2, 1] += 0.01 * np.abs(grad).max()
        r = gpucheck.check_gradient(f, x, bad, backend="cudasim")
        assert r.status == "fail" and r.worst[0].index == (2, 1)


def test_progress_is_reported_per_launch(sim):
    layer, x = next((lay, x) for n, lay, x in layer_cases("float64") if n == "mse")
    idx, vals = some_points(x, count=30)
    seen = []
    sim.evaluate(as_function(layer), x, idx, vals, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (31, 31) and len(seen) > 1
