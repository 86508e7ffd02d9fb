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


def raises_above_one(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i]
    if s > 4.5:
        raise ValueError("sum above 4.5 in my kernel")
    return s


def test_an_exception_in_the_kernel_keeps_its_message():
    import gpucheck

    with pytest.raises(GpuCheckError, match="`f` raised ValueError .*: sum above 4.5 in my kernel") \
            as info:
        gpucheck.check_gradient(gpucheck.kernel(raises_above_one), np.ones(4), np.ones(4),
                                backend="cpu", eps=0.9)
    cause = info.value.__cause__
    assert isinstance(cause, ValueError)
    # the user's own line is in the traceback, and the note names the point
    assert "raises_above_one" in "".join(__import__("traceback").format_tb(cause.__traceback__))
    assert any("flat index" in note for note in cause.__notes__)


def kahan(x):
    s = 0.0
    c = 0.0
    for i in range(x.shape[0]):
        y = x[i] - c
        t = s + y
        c = (t - s) - y
        s = t
    return s


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,shape", [("mse", "3d"), ("softplus", "n37"), ("dense", "")])
@pytest.mark.parametrize("seed", range(3))
def test_reassociation_stays_within_the_measured_noise(name, shape, dtype, seed):
    # A reassociated sum rounds differently (float64: a few units in the last
    # place); what the verdict relies on is the numerical derivative, which
    # must move by well under the tolerance built on the noise it measures.
    from gpucheck import judge, noise, plan
    from gpucheck.stencils import get_scheme

    kfunc, _, x = case(name, shape, dtype, seed=seed)
    strict = as_function(kernel(kfunc.fn, *kfunc.params, reassoc=False))
    st = plan.points(x, scheme=get_scheme("central"))
    probe = noise.probe_points(x, st.h)
    idx = np.concatenate([[0], st.idx, probe.idx]).astype(np.int64)
    vals = np.concatenate([x.reshape(-1)[:1], st.vals.reshape(-1), probe.vals.reshape(-1)])
    n = st.idx.size
    derivs, sigmas = [], []
    for func in (kfunc, strict):
        v = cpu_kernel.evaluate(func, x, idx, vals).values
        sigmas.append(noise.level(probe, v[0], v[1 + n:], v[1:1 + n]))
        derivs.append(st.derivative(v[1:1 + n]))
    tol = judge.KAPPA * min(sigmas) * st.rounding_gain
    assert np.all(np.abs(derivs[0] - derivs[1]) <= 0.5 * tol)
    assert 0.5 <= sigmas[0] / sigmas[1] <= 2.0


def test_reassoc_can_be_turned_off_for_order_dependent_code():
    x = np.concatenate([[1.0], np.full(1000, 1e-16)])
    strict = cpu_kernel.evaluate(as_function(kernel(kahan, reassoc=False)), x, np.array([0]),
                                 np.array([1.0])).values[0]
    assert strict == 1.0 + 1000 * 1e-16  # compensated: the small terms are kept
    with pytest.raises(GpuCheckError, match="`reassoc` must be True or False"):
        kernel(kahan, reassoc="no")


_CACHE_SCRIPT = """
import sys, numpy as np
from gpucheck.backends import cpu_kernel
from gpucheck.functions import as_function, kernel
sys.path.insert(0, {tests!r})
from agreement import softplus_dot
x = np.linspace(-1, 1, 6)
func = as_function(kernel(softplus_dot, np.ones(6), np.array([2], np.int32)))
ev = cpu_kernel.evaluate(func, x, np.array([0, 5]), np.array([0.5, 0.25]))
print(ev.compile_seconds, *ev.values)
"""


def test_compiled_loops_are_cached_on_disk_across_processes(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, GPUCHECK_CACHE_DIR=str(tmp_path), PYTHONPATH=os.getcwd())
    script = _CACHE_SCRIPT.format(tests=os.path.dirname(__file__))
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, check=True).stdout.split() for _ in range(2)]
    (first, *v1), (second, *v2) = runs
    assert v1 == v2
    assert float(second) < 0.5 * float(first)  # loaded, not compiled
    assert any(p.name.startswith("kernel_") for p in tmp_path.iterdir())
    assert (tmp_path / "__pycache__").is_dir()


def test_the_disk_cache_key_follows_the_function_and_what_it_reads():
    from gpucheck.backends.cpu_cache import fingerprint

    table = np.ones(3)

    def f(x):
        return x[0] * table[0]

    def g(x):
        return x[0] * table[0] + 1.0

    before = fingerprint(f)
    assert before is not None and fingerprint(f) == before and fingerprint(g) != before
    table[0] = 2.0  # an array the function reads is part of the key
    assert fingerprint(f) != before
    import types

    opaque = types.SimpleNamespace(v=1.0)
    assert fingerprint(lambda x: x[0] + opaque.v) is None  # not described: not cached
