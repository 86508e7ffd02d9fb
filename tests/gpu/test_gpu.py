"""The agreement tests on a real CUDA device (CuPy arrays, compiled kernels).

Skipped, with the reason, where no usable device is present.  Sizes are
larger than in the simulator: a device makes them cheap.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agreement import CASES, assert_agree, case, central_points  # noqa: E402
from gpucheck.backends import cpu  # noqa: E402
from gpucheck.functions import as_function, batched, kernel  # noqa: E402
from gpucheck.kernels import builtin  # noqa: E402


def _status():
    from gpucheck.backends import cuda

    return cuda.device_status()


_OK, _REASON = _status()

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _OK, reason=f"no CUDA device: {_REASON}")]


@pytest.fixture(scope="module")
def dev():
    from gpucheck.backends import cuda

    return cuda.device_backend()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,shape", CASES)
def test_kernel_agrees_with_numpy_path(dev, name, shape, dtype):
    kfunc, bfunc, x = case(name, shape, dtype)
    idx, vals = central_points(x)
    got = dev.evaluate(kfunc, x, idx, vals)
    assert_agree(got.values, cpu.evaluate(bfunc, x, idx, vals).values, x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,shape", [("mse", "n37"), ("mse", "3d"), ("dense", "")])
def test_batched_agrees_with_numpy_path(dev, name, shape, dtype):
    _, bfunc, x = case(name, shape, dtype)
    idx, vals = central_points(x)
    got = dev.evaluate(bfunc, x, idx, vals)
    assert_agree(got.values, cpu.evaluate(bfunc, x, idx, vals).values, x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_larger_mse_kernel_matches_cpu_kernel(dev, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((67, 45)).astype(dtype)  # N = 3015, not a multiple of 256
    t = rng.standard_normal((67, 45)).astype(dtype)
    f = as_function(kernel(builtin.mse, t))
    idx, vals = central_points(x)
    got = dev.evaluate(f, x, idx, vals)
    assert_agree(got.values, cpu.evaluate(f, x, idx, vals).values, x)
    # Few copies, several launches: the same numbers.
    again = dev.evaluate(f, x, idx, vals, memory_bytes=100 * x.nbytes, launches=7)
    assert_agree(again.values, got.values, x)
    assert dev.evaluate(f, x, idx, vals).compile_seconds == 0.0


def test_batched_receives_cupy_arrays(dev):
    import cupy

    seen = []

    def f(xs):
        seen.append(type(xs))
        return (xs * xs).sum(axis=1)

    x = np.arange(4.0)
    idx, vals = central_points(x)
    dev.evaluate(as_function(batched(f)), x, idx, vals)
    assert seen and all(t is cupy.ndarray for t in seen)
