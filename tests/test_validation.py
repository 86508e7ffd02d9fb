"""Input validation: one exception class, messages that name the argument and the rule."""

from __future__ import annotations

import numpy as np
import pytest

import gpucheck
from gpucheck import GpuCheckError


def sq(v):
    return np.sum(v * v)


X = np.array([[1.0, -2.0, 0.5], [3.0, 0.25, -1.5]])


def check(f=sq, x=X, grad=None, **kw):
    kw.setdefault("backend", "cpu")
    if grad is None:
        grad = 2 * np.asarray(x, dtype=np.float64)
    return gpucheck.check_gradient(f, x, grad, **kw)


def test_error_class_is_a_value_error():
    assert issubclass(GpuCheckError, ValueError)


def test_grad_shape_mismatch():
    with pytest.raises(GpuCheckError, match=r"`grad` must have x's shape \(2, 3\), got \(3, 2\)"):
        check(grad=np.zeros((3, 2)))
    with pytest.raises(GpuCheckError, match="`grad`.*shape"):
        check(grad=np.zeros(6))


def test_callable_grad_with_wrong_shape():
    with pytest.raises(GpuCheckError, match="`grad`.*shape"):
        check(grad=lambda v: np.zeros(4))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_, np.complex128, np.longdouble])
def test_x_must_be_float32_or_float64(dtype):
    x = np.ones((2, 2), dtype=dtype)
    with pytest.raises(GpuCheckError, match="`x` must be float64, float32, float16 or bfloat16") as info:
        gpucheck.check_gradient(sq, x, np.ones((2, 2)), backend="cpu")
    assert np.dtype(dtype).name in str(info.value)


def test_integer_list_x_is_rejected_too():
    with pytest.raises(GpuCheckError, match="`x` must be float64, float32, float16 or bfloat16.*got int"):
        gpucheck.check_gradient(sq, [1, 2, 3], [2, 4, 6], backend="cpu")


@pytest.mark.parametrize("x", [np.zeros(0), np.zeros((3, 0)), []])
def test_empty_x(x):
    with pytest.raises(GpuCheckError, match="`x` must have at least one element"):
        gpucheck.check_gradient(sq, x, np.zeros(np.shape(x)), backend="cpu")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_x(bad):
    x = X.copy()
    x[1, 2] = bad
    with pytest.raises(GpuCheckError, match=r"`x` must be finite.*\(1, 2\)"):
        check(x=x, grad=np.zeros_like(x))


def test_ragged_x():
    with pytest.raises(GpuCheckError, match="`x`"):
        gpucheck.check_gradient(sq, [[1.0, 2.0], [3.0]], [0.0, 0.0], backend="cpu")


def test_f_not_callable():
    with pytest.raises(GpuCheckError, match="`f` must be callable"):
        check(f=3.0)


@pytest.mark.parametrize("out", [lambda v: v * 2, lambda v: np.ones(2), lambda v: [1.0, 2.0]])
def test_f_returning_non_scalar(out):
    with pytest.raises(GpuCheckError, match="`f` must return a scalar"):
        check(f=out)


def test_f_returning_a_string():
    with pytest.raises(GpuCheckError, match="`f`"):
        check(f=lambda v: "loss")


def test_f_returning_size_one_array_is_a_scalar():
    r = check(f=lambda v: np.array([[np.sum(v * v)]]))
    assert r.passed


@pytest.mark.parametrize("ret", [
    lambda xs: xs.reshape(xs.shape[0], -1).sum(axis=1, keepdims=True),  # (B, 1)
    lambda xs: xs.sum(),                                                # scalar
    lambda xs: xs.reshape(xs.shape[0], -1).sum(axis=0),                 # (N,)
    lambda xs: xs.reshape(xs.shape[0], -1).sum(axis=1)[:-1],            # (B - 1,)
])
def test_batched_f_returning_wrong_batch_shape(ret):
    with pytest.raises(GpuCheckError, match=r"batched `f` must return shape \(\d+,\)"):
        check(f=gpucheck.batched(ret))


def test_non_finite_f_at_the_base_point():
    x0 = X.copy()

    def f(v):
        return np.nan if np.array_equal(v, x0) else sq(v)

    with pytest.raises(GpuCheckError, match="`f` must be finite at x"):
        check(f=f)
    with pytest.raises(GpuCheckError, match="`f` must be finite at x"):
        check(f=lambda v: np.inf)
    with pytest.raises(GpuCheckError, match="`f` must be finite at x"):
        gpucheck.numerical_gradient(lambda v: np.nan, X, backend="cpu")


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(GpuCheckError, match="`backend`") as info:
        check(backend="tpu")
    msg = str(info.value)
    assert "'tpu'" in msg
    for name in ("auto", "cpu", "cuda", "cudasim"):
        assert repr(name) in msg
    with pytest.raises(GpuCheckError, match="`backend`"):
        gpucheck.numerical_gradient(sq, X, backend="CPU")


def test_unknown_scheme_lists_the_valid_ones():
    with pytest.raises(GpuCheckError, match="`scheme`") as info:
        check(scheme="forward")
    assert "'central'" in str(info.value) and "'central4'" in str(info.value)
    assert "'forward'" in str(info.value)
    with pytest.raises(GpuCheckError, match="`scheme`"):
        gpucheck.numerical_gradient(sq, X, scheme="backward", backend="cpu")


@pytest.mark.parametrize("eps", [-1e-3, 0.0, np.nan, np.inf])
def test_bad_eps(eps):
    with pytest.raises(GpuCheckError, match="`eps` must be positive"):
        check(eps=eps)
    with pytest.raises(GpuCheckError, match="`eps` must be positive"):
        gpucheck.numerical_gradient(sq, X, eps=eps, backend="cpu")


def test_bad_eps_array():
    with pytest.raises(GpuCheckError, match="`eps`.*shape"):
        check(eps=np.full(4, 1e-3))
    bad = np.full(X.shape, 1e-3)
    bad[0, 1] = -1.0
    with pytest.raises(GpuCheckError, match="`eps` must be positive"):
        check(eps=bad)


def test_bad_sweep_eps():
    with pytest.raises(GpuCheckError, match="`eps`"):
        gpucheck.sweep(sq, X, 2 * X, eps=[1e-3, -1e-2], backend="cpu")
    with pytest.raises(GpuCheckError, match="`eps`"):
        gpucheck.sweep(sq, X, 2 * X, eps=[], backend="cpu")


@pytest.mark.parametrize("name", ["rtol", "atol"])
@pytest.mark.parametrize("value,rule", [(-1e-3, "must be non-negative"), (np.nan, "must be non-negative"),
                                        ("1e-3", "must be a number"), (True, "must be a number")])
def test_bad_tolerances(name, value, rule):
    with pytest.raises(GpuCheckError, match=f"`{name}` {rule}"):
        check(**{name: value})


def test_bad_worst():
    with pytest.raises(GpuCheckError, match="`worst` must be a positive integer"):
        check(worst=0)


def test_user_f_raising_is_chained():
    class Boom(RuntimeError):
        pass

    def f(v):
        raise Boom("shape mismatch inside my layer")

    with pytest.raises(GpuCheckError, match="`f` raised Boom") as info:
        check(f=f)
    assert isinstance(info.value.__cause__, Boom)
    assert "shape mismatch inside my layer" in str(info.value)


def test_user_batched_f_raising_is_chained():
    def f(xs):
        raise ZeroDivisionError("oops")

    with pytest.raises(GpuCheckError) as info:
        check(f=gpucheck.batched(f))
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_user_grad_raising_is_chained():
    def g(v):
        raise KeyError("w2")

    with pytest.raises(GpuCheckError, match="`grad") as info:
        check(grad=g)
    assert isinstance(info.value.__cause__, KeyError)


def test_f_raising_only_away_from_x_is_chained():
    x0 = X.copy()

    def f(v):
        if not np.array_equal(v, x0):
            raise FloatingPointError("overflow in exp")
        return sq(v)

    with pytest.raises(GpuCheckError) as info:
        check(f=f)
    assert isinstance(info.value.__cause__, FloatingPointError)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_f_sees_x_dtype_callable(dtype):
    seen = set()

    def f(v):
        seen.add((type(v), v.dtype, v.shape))
        return np.sum(v * v)

    x = X.astype(dtype)
    r = gpucheck.check_gradient(f, x, 2 * x.astype(np.float64), backend="cpu")
    assert seen == {(np.ndarray, np.dtype(dtype), X.shape)}
    assert r.passed
    assert r.dtype == np.dtype(dtype).name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_f_sees_x_dtype_batched(dtype):
    seen = set()

    def f(xs):
        seen.add((xs.dtype, xs.shape[1:]))
        return (xs * xs).reshape(xs.shape[0], -1).sum(axis=1)

    x = X.astype(dtype)
    for fn in (gpucheck.check_gradient, gpucheck.sweep):
        fn(gpucheck.batched(f), x, 2 * x.astype(np.float64), backend="cpu")
    gpucheck.numerical_gradient(gpucheck.batched(f), x, backend="cpu")
    assert seen == {(np.dtype(dtype), X.shape)}


def test_float32_x_is_not_upcast_in_the_values_f_sees():
    # a float32 point whose every perturbed value is a float32 number
    x = np.array([1.1, -0.3, 7.0], dtype=np.float32)
    values = []
    gpucheck.numerical_gradient(lambda v: values.append(v.copy()) or float(np.sum(v)), x,
                                backend="cpu")
    assert all(v.dtype == np.float32 for v in values)


def test_callable_grad_is_accepted():
    calls = []

    def g(v):
        calls.append(v.dtype)
        return 2 * v

    r = check(grad=g)
    assert r.passed and calls == [np.float64]
    np.testing.assert_array_equal(r.analytic, 2 * X)
    r32 = check(x=X.astype(np.float32), grad=g)
    assert r32.passed and calls[-1] == np.float32


def test_grad_as_list_and_int_array():
    x = np.array([1.0, 2.0, 3.0])
    assert check(x=x, grad=[2.0, 4.0, 6.0]).passed
    assert check(x=x, grad=np.array([2, 4, 6])).passed


def correct_or_refused(run, expected):
    """A function that writes into its argument must get either the right
    answer or a GpuCheckError that says so; never a silently wrong result."""
    try:
        r = run()
    except GpuCheckError as err:
        assert "`f`" in str(err) and "modif" in str(err), str(err)
        return None
    assert r.passed, str(r)
    np.testing.assert_allclose(r.numeric, expected, rtol=1e-7, atol=1e-9)
    return r


def test_f_that_mutates_its_input_does_not_corrupt_results():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5))
    x_before = x.copy()

    def f(v):
        s = np.sum(v * v)
        v[...] = 1e3  # a careless in-place update of the argument
        return s

    correct_or_refused(lambda: gpucheck.check_gradient(f, x, 2 * x, backend="cpu"), 2 * x)
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("when", [1, 7, 40])
def test_f_that_mutates_its_input_once_does_not_corrupt_results(when):
    # a single late write, between any periodic checks the backend may make
    x = np.random.default_rng(when).normal(size=(6, 5))
    calls = [0]

    def f(v):
        calls[0] += 1
        s = np.sum(v * v)
        if calls[0] == when:
            v.reshape(-1)[(when * 7) % v.size - 1] += 0.5
        return s

    correct_or_refused(lambda: gpucheck.check_gradient(f, x, 2 * x, backend="cpu"), 2 * x)


def test_f_that_clips_in_place_does_not_corrupt_results():
    # np.clip(..., out=v) only writes where an entry is out of range
    x = np.array([0.2, 1.7, -0.4, -2.5, 0.9])

    def f(v):
        s = np.sum(np.sin(v))
        np.clip(v, -1.0, 1.0, out=v)
        return s

    correct_or_refused(lambda: gpucheck.check_gradient(f, x, np.cos(x), backend="cpu"), np.cos(x))


def test_batched_f_that_mutates_its_input_does_not_corrupt_results():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5))

    def f(xs):
        s = (xs * xs).reshape(xs.shape[0], -1).sum(axis=1)
        xs[...] = -7.0
        return s

    correct_or_refused(
        lambda: gpucheck.check_gradient(gpucheck.batched(f), x, 2 * x, backend="cpu"), 2 * x)


def test_batched_f_that_mutates_a_later_chunk_does_not_corrupt_results():
    # many small chunks: the write happens in the third call only
    from gpucheck import plan
    from gpucheck.backends import cpu
    from gpucheck.functions import as_function
    from gpucheck.stencils import get_scheme

    x = np.random.default_rng(2).normal(size=40)
    calls = [0]

    def f(xs):
        calls[0] += 1
        s = (xs * xs).sum(axis=1)
        if calls[0] == 3:
            xs[:, 5] = 100.0
        return s

    st = plan.points(x, scheme=get_scheme("central"))

    def run():
        ev = cpu.evaluate(as_function(gpucheck.batched(f)), x, st.idx, st.vals.ravel(),
                          chunk_bytes=8 * x.size * 4, workers=1)
        return ev.values

    try:
        values = run()
    except GpuCheckError as err:
        assert "`f`" in str(err) and "modif" in str(err)
        return
    ref = np.empty(st.idx.size)
    for p, (i, v) in enumerate(zip(st.idx, st.vals.ravel())):
        y = x.copy()
        y[i] = v
        ref[p] = np.sum(y * y)
    np.testing.assert_allclose(values, ref, rtol=1e-12)


def test_grad_that_mutates_its_input_does_not_move_x():
    x = X.copy()

    def g(v):
        out = 2 * v
        v[...] = 0.0
        return out

    r = check(x=x, grad=g)
    assert r.passed
    np.testing.assert_array_equal(x, X)


def test_check_does_not_modify_the_user_arrays():
    x = X.copy()
    g = 2 * X
    check(x=x, grad=g)
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(g, 2 * X)


def test_keyword_only_options():
    with pytest.raises(TypeError):
        gpucheck.check_gradient(sq, X, 2 * X, 1e-3)


def test_batched_marks_only_callables():
    with pytest.raises(GpuCheckError, match="`fn` must be callable"):
        gpucheck.batched(3)
    with pytest.raises(GpuCheckError, match="already marked"):
        gpucheck.batched(gpucheck.batched(sq))
