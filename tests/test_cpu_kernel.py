"""The kernel contract on the cpu backend (numba parallel loop)."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agreement import CASES, assert_agree, case, central_points, moved
from gpucheck.backends import cpu, cpu_kernel
from gpucheck.errors import GpuCheckError
from gpucheck.functions import as_function, kernel
from gpucheck.kernels import builtin


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,shape", CASES)
def test_kernel_agrees_with_numpy_path(name, shape, dtype):
    kfunc, bfunc, x = case(name, shape, dtype)
    idx, vals = central_points(x)
    got = cpu.evaluate(kfunc, x, idx, vals)
    want = cpu.evaluate(bfunc, x, idx, vals)
    assert_agree(got.values, want.values, x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernel_agrees_with_callable_path(dtype):
    kfunc, _, x = case("mse", "3d", dtype)
    idx, vals = central_points(x)
    got = cpu.evaluate(kfunc, x, idx, vals).values
    one_at_a_time = as_function(lambda z: builtin.mse(z, *kfunc.params))
    want = cpu.evaluate(one_at_a_time, x, idx, vals).values
    assert_agree(got, want, x)


def test_compile_is_cached_and_reported_apart():
    def cubes(x, t):
        s = 0.0
        for i in range(x.shape[0]):
            s += (x[i] - t[i]) ** 3
        return s

    x = np.linspace(-1, 1, 7)
    func = as_function(kernel(cubes, np.zeros(7)))
    idx, vals = central_points(x)
    first = cpu_kernel.evaluate(func, x, idx, vals)
    second = cpu_kernel.evaluate(func, x, idx, vals)
    assert first.compile_seconds > 0 and second.compile_seconds == 0.0
    assert second.run_seconds >= 0
    np.testing.assert_array_equal(first.values, second.values)
    # Another dtype is another compile.
    third = cpu_kernel.evaluate(as_function(kernel(cubes, np.zeros(7, np.float32))),
                                x.astype(np.float32), idx, vals.astype(np.float32))
    assert third.compile_seconds > 0


def test_every_point_is_independent():
    # The scratch copy must be restored after every point: f counts how far
    # the copy is from the base point, which must be exactly one element.
    x = np.arange(50.0)
    idx = np.repeat(np.arange(50), 3).astype(np.int64)
    vals = x[idx] + 0.5
    for chunks in (1, 3, 150, 1000):
        ev = cpu_kernel.evaluate(as_function(kernel(moved, x.copy())), x, idx, vals,
                                 n_chunks=chunks)
        np.testing.assert_array_equal(ev.values, np.ones(150))


def test_njit_function_and_zero_d_point():
    @numba.njit
    def sq(x):
        return x[0] * x[0]

    ev = cpu_kernel.evaluate(as_function(kernel(sq)), np.array(3.0), np.array([0]),
                             np.array([2.0]))
    assert ev.values.tolist() == [4.0]


def test_no_points():
    ev = cpu_kernel.evaluate(as_function(kernel(builtin.mse, np.zeros(3))), np.ones(3),
                             np.zeros(0, np.int64), np.zeros(0))
    assert ev.values.shape == (0,)


def test_uncompilable_function_names_the_rule():
    def bad(x):
        return x + "a"

    with pytest.raises(GpuCheckError, match=r"kernel function 'bad'\) did not compile .*add\(array"):
        cpu_kernel.evaluate(as_function(kernel(bad)), np.ones(3), np.array([0]),
                            np.array([1.0]))


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**16))
def test_random_points_match_per_point_reference(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    t = rng.standard_normal(shape).astype(dtype)
    p = int(rng.integers(1, 20))
    idx = rng.integers(0, x.size, p).astype(np.int64)
    vals = rng.standard_normal(p).astype(dtype)
    ev = cpu_kernel.evaluate(as_function(kernel(builtin.mse, t)), x, idx, vals)
    want = np.empty(p)
    for k in range(p):
        z = x.copy().reshape(-1)
        z[idx[k]] = vals[k]
        sq = (z.astype(np.float64) - t.reshape(-1).astype(np.float64)) ** 2
        want[k] = np.sum(sq) / x.shape[0]
    assert_agree(ev.values, want, x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_check_gradient_end_to_end(dtype):
    import gpucheck

    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 2)).astype(dtype)
    t = rng.standard_normal((4, 3, 2)).astype(dtype)
    grad = 2 * (x.astype(np.float64) - t) / x.shape[0]
    f = gpucheck.kernel(builtin.mse, t)
    assert gpucheck.check_gradient(f, x, grad, backend="cpu").passed
    bad = grad.copy()
    bad[3, 0, 1] += 0.05
    r = gpucheck.check_gradient(f, x, bad, backend="cpu")
    assert r.status == "fail" and r.worst[0].index == (3, 0, 1)


def test_function_writing_its_input_is_reported():
    def scribbles(x):
        s = 0.0
        for i in range(x.shape[0]):
            s += x[i]
        x[0] = 7.0
        return s

    with pytest.raises(GpuCheckError, match="writes into its argument `x`"):
        cpu_kernel.evaluate(as_function(kernel(scribbles)), np.ones(4), np.array([1, 2, 3]),
                            np.array([2.0, 2.0, 2.0]))
