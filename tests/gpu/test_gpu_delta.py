"""Delta evaluation on a real CUDA device: built-in layers and row-wise functions.

The same comparisons the simulator session makes (tests/test_cudasim_delta.py),
on compiled kernels and at sizes a device makes cheap: every built-in layer's
point kernel against the cpu backend's delta path, the row-wise kernels (a
thread per short row, a warp per long row, few threads for the grid-stride
loop) against the cpu loops, and full checks end to end.  Skipped, with the
reason, where no usable device is present.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gpucheck  # noqa: E402
from delta_cases import layer_cases, row_sse, rowwise_cases  # noqa: E402
from gpucheck.backends import cpu  # noqa: E402
from gpucheck.functions import as_function  # noqa: E402


def _status():
    from gpucheck.backends import cuda

    return cuda.device_status()


_OK, _REASON = _status()

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _OK, reason=f"no CUDA device: {_REASON}")]


@pytest.fixture(scope="module")
def dev():
    from gpucheck.backends import cuda

    return cuda.device_backend()


def _points(x, count=200, seed=0):
    rng = np.random.default_rng(seed)
    flat = x.reshape(-1).astype(np.float64)
    idx = np.concatenate([[0], rng.integers(0, x.size, count)]).astype(np.int64)
    vals = flat[idx] + np.concatenate([[0.0], rng.normal(scale=0.05, size=count)])
    return idx, vals.astype(x.dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", [name for name, _, _ in layer_cases("float64")])
def test_layer_kernels_match_the_cpu_delta_path(dev, name, dtype):
    layer, x = next((lay, x) for n, lay, x in layer_cases(dtype) if n == name)
    idx, vals = _points(x)
    got = dev.evaluate(as_function(layer), x, idx, vals).values
    want = cpu.evaluate(as_function(layer), x, idx, vals).values
    # the same float64 arithmetic; the device may contract a product and a sum
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", [name for name, _, _, _ in rowwise_cases("float64")])
@pytest.mark.parametrize("threads", [None, 5])
def test_rowwise_kernels_match_the_cpu_loops(dev, name, dtype, threads):
    from gpucheck.backends import cuda_delta

    for delta in (True, False):
        f, x, _ = next((f, x, g) for n, f, x, g in rowwise_cases(dtype, delta=delta) if n == name)
        idx, vals = _points(x)
        got = cuda_delta.evaluate("cuda", as_function(f), x, idx, vals, threads=threads).values
        want = cpu.evaluate(as_function(f), x, idx, vals).values
        u = float(np.finfo(x.dtype).eps)
        tol = 16 * x.size * u * max(1.0, float(np.max(np.abs(want))))
        assert np.max(np.abs(got - want)) <= tol, (delta, threads)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_large_checks_end_to_end(dtype):
    rng = np.random.default_rng(9)
    t = rng.normal(size=(256, 300)).astype(dtype)
    x = rng.normal(size=(256, 300)).astype(dtype)
    grad = 2 * (x.astype(np.float64) - t) / 256
    r = gpucheck.check_gradient(gpucheck.layers.mse(t), x, grad, backend="cuda")
    assert r.passed, r.summary()
    bad = grad.copy()
    bad[100, 7] += 0.01 * np.abs(grad).max()
    r = gpucheck.check_gradient(gpucheck.layers.mse(t), x, bad, backend="cuda")
    assert r.status == "fail" and r.worst[0].index == (100, 7)
    if dtype == "float64":  # float32 terms: see tests/test_rowwise.py on issue 7
        f = gpucheck.rowwise(row_sse, t, scale=1 / 256)
        assert gpucheck.check_gradient(f, x, grad, backend="cuda").passed
