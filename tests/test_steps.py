"""Steps and stencils: representable steps, their scale, default eps, weights."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import gpucheck
from gpucheck import plan
from gpucheck.stencils import SCHEMES, derivative_weights, get_scheme

CENTRAL = get_scheme("central")
CENTRAL4 = get_scheme("central4")


def awkward_point(dtype, n=40, seed=0):
    """Values of every magnitude, where x + h is rarely representable."""
    rng = np.random.default_rng(seed)
    mags = 10.0 ** rng.uniform(-3, 4, size=n)
    x = (rng.choice([-1.0, 1.0], size=n) * mags * (1 + rng.random(n) / 3)).astype(dtype)
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scheme", ["central", "central4"])
def test_offsets_are_the_steps_really_applied(dtype, scheme):
    x = awkward_point(dtype)
    st = plan.points(x, scheme=get_scheme(scheme))
    assert st.vals.dtype == np.dtype(dtype)
    for k in range(st.vals.shape[0]):
        for i in range(x.size):
            # exact rational arithmetic: offset == value f sees minus x
            exact = Fraction(float(st.vals[k, i])) - Fraction(float(x[i]))
            assert Fraction(float(st.offsets[k, i])) == exact


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scheme", ["central", "central4"])
def test_offsets_of_tiny_x_within_one_float64_rounding(dtype, scheme):
    # |x| far below the step: x + h - x may need more bits than float64 has,
    # but the offset is still the applied one to one rounding of float64
    x = np.array([0.0, 1e-30, -3e-12, 7e-9, -2.5e-7, np.finfo(dtype).tiny], dtype=dtype)
    st = plan.points(x, scheme=get_scheme(scheme))
    np.testing.assert_array_equal(st.offsets, st.vals.astype(np.float64) - x.astype(np.float64))
    for k in range(st.vals.shape[0]):
        for i in range(x.size):
            exact = Fraction(float(st.vals[k, i])) - Fraction(float(x[i]))
            off = Fraction(float(st.offsets[k, i]))
            assert abs(off - exact) <= Fraction(2.0 ** -53) * abs(exact)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_central_divides_by_h_plus_plus_h_minus(dtype):
    x = awkward_point(dtype, seed=1)
    st = plan.points(x, scheme=CENTRAL)
    lo, hi = st.vals.astype(np.float64)  # multipliers (-1, 1)
    x64 = x.astype(np.float64)
    h_plus = hi - x64   # (x + h) - x
    h_minus = x64 - lo  # x - (x - h)
    np.testing.assert_array_equal(st.offsets[1], h_plus)
    np.testing.assert_array_equal(st.offsets[0], -h_minus)
    # at such points the rounded step differs from the nominal one
    assert np.any(h_plus != st.h)
    np.testing.assert_allclose(st.weights[1], 1.0 / (h_plus + h_minus), rtol=1e-15)
    np.testing.assert_allclose(st.weights[0], -1.0 / (h_plus + h_minus), rtol=1e-15)


def test_representable_steps_make_linear_functions_exact_in_float32():
    # f is evaluated exactly enough (float64 of float32 inputs) that only the
    # step matters: dividing by the nominal 2h instead of h+ + h- would leave
    # a relative error of up to u32 / eps ~ 1e-5
    x = awkward_point(np.float32, n=25, seed=2)
    c = np.random.default_rng(3).normal(size=x.size)

    def f(v):
        return float(np.dot(c, v.astype(np.float64)))

    g = gpucheck.numerical_gradient(f, x, backend="cpu")
    err = np.max(np.abs(g - c))
    assert err < 1e-8
    st = plan.points(x, scheme=CENTRAL)
    lo, hi = st.vals.astype(np.float64)
    nominal = c * (hi - lo) / (2 * st.h)  # what 2h would give
    assert np.max(np.abs(nominal - c)) > 100 * err


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scheme", ["central", "central4"])
def test_steps_scale_with_max_one_abs_x(dtype, scheme):
    x = np.array([0.0, 1e-3, -0.5, 1.0, -3.0, 250.0, -1e4], dtype=dtype)
    sch = get_scheme(scheme)
    st = plan.points(x, scheme=sch)
    eps = plan.default_eps(dtype, sch)
    np.testing.assert_allclose(st.h, eps * np.maximum(1.0, np.abs(x.astype(np.float64))), rtol=1e-15)
    # the offsets follow the nominal steps up to the dtype's rounding of x + c h
    u = plan.unit_roundoff(dtype)
    for k, m in enumerate(sch.multipliers):
        scale = np.maximum(1.0, np.abs(x.astype(np.float64)))
        assert np.all(np.abs(st.offsets[k] - m * st.h) <= 4 * u * scale)


def test_explicit_relative_eps_scales_too():
    x = np.array([0.25, -2.0, 8.0])
    st = plan.points(x, scheme=CENTRAL, eps=1e-4)
    np.testing.assert_allclose(st.h, [1e-4, 2e-4, 8e-4], rtol=1e-15)


def test_unit_roundoff():
    assert plan.unit_roundoff(np.float32) == 2.0 ** -24
    assert plan.unit_roundoff(np.float64) == 2.0 ** -53


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_default_eps_is_u_to_the_third_and_fifth(dtype):
    u = plan.unit_roundoff(dtype)
    assert plan.default_eps(dtype, CENTRAL) == pytest.approx(u ** (1 / 3), rel=1e-12)
    assert plan.default_eps(dtype, CENTRAL4) == pytest.approx(u ** (1 / 5), rel=1e-12)


def test_default_eps_values():
    # the numbers a user would look up
    assert plan.default_eps(np.float32, CENTRAL) == pytest.approx(3.906e-3, rel=1e-3)
    assert plan.default_eps(np.float64, CENTRAL) == pytest.approx(4.806e-6, rel=1e-3)
    assert plan.default_eps(np.float64, CENTRAL4) == pytest.approx(6.443e-4, rel=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scheme", ["central", "central4"])
def test_check_reports_the_default_steps(dtype, scheme):
    x = np.array([[0.5, -4.0], [10.0, 1.0]], dtype=dtype)
    r = gpucheck.check_gradient(lambda v: np.sum(v * v), x, 2 * x.astype(np.float64),
                                scheme=scheme, backend="cpu")
    eps = plan.default_eps(dtype, get_scheme(scheme))
    assert r.eps.shape == x.shape
    np.testing.assert_allclose(r.eps, eps * np.maximum(1.0, np.abs(x.astype(np.float64))), rtol=1e-12)


def test_schemes_and_their_nodes():
    assert set(SCHEMES) == {"central", "central4"}
    assert sorted(CENTRAL.multipliers) == [-1, 1] and CENTRAL.order == 2
    assert sorted(CENTRAL4.multipliers) == [-2, -1, 1, 2] and CENTRAL4.order == 4
    x = np.array([1.5, -2.0])
    st = plan.points(x, scheme=CENTRAL4, eps=1e-2)
    assert st.vals.shape == (4, 2)
    assert st.idx.tolist() == [0, 1, 0, 1, 0, 1, 0, 1]


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_weights_exact_for_polynomials_of_degree_k_minus_1_on_nonuniform_nodes(k):
    rng = np.random.default_rng(k)
    m = 30
    # distinct nonzero nodes, unevenly spaced and not symmetric
    t = np.sort(rng.uniform(-1.0, 1.0, size=(k, m)), axis=0)
    t = t + np.where(t >= 0, 0.05, -0.05) + 0.01 * np.arange(k)[:, None]
    w = derivative_weights(t)
    for degree in range(k):
        coef = rng.normal(size=(degree + 1, m))  # p(z) = sum_j coef_j z^j
        p_at = sum(coef[j] * t ** j for j in range(degree + 1))
        dp0 = coef[1] if degree >= 1 else np.zeros(m)
        np.testing.assert_allclose((w * p_at).sum(axis=0), dp0, rtol=0, atol=1e-9)
    # and not for degree k in general: the test above can tell
    coef = rng.normal(size=(k + 1, m))
    p_at = sum(coef[j] * t ** j for j in range(k + 1))
    assert np.max(np.abs((w * p_at).sum(axis=0) - coef[1])) > 1e-3


def test_central_weights_on_uneven_nodes():
    w = derivative_weights(np.array([[-0.3], [0.5]]))
    np.testing.assert_allclose(w.ravel(), [-1 / 0.8, 1 / 0.8], rtol=1e-15)
    w4 = derivative_weights(np.array([[-2.0], [-1.0], [1.0], [2.0]]))
    np.testing.assert_allclose(w4.ravel(), [1 / 12, -8 / 12, 8 / 12, -1 / 12], rtol=1e-14)


def test_scheme_orders_show_in_a_cubic():
    # ((x+h)^3 - (x-h)^3) / 2h = 3x^2 + h^2 exactly; central4 is exact on cubics
    x = np.array([0.5, -0.8, 2.0, 3.0])
    f = lambda v: float(np.sum(v ** 3))
    g2 = gpucheck.numerical_gradient(f, x, eps=1e-2, scheme="central", backend="cpu")
    h = 1e-2 * np.maximum(1.0, np.abs(x))
    np.testing.assert_allclose(g2 - 3 * x ** 2, h ** 2, rtol=1e-6)
    g4 = gpucheck.numerical_gradient(f, x, eps=1e-2, scheme="central4", backend="cpu")
    np.testing.assert_allclose(g4, 3 * x ** 2, rtol=1e-11)


@pytest.mark.parametrize("dtype,eps", [(np.float32, 1e-9), (np.float64, 1e-18)])
def test_eps_too_small_raises_naming_eps(dtype, eps):
    x = np.array([1.0, 2.0, 3.0], dtype=dtype)
    with pytest.raises(gpucheck.GpuCheckError, match="`eps`") as info:
        gpucheck.check_gradient(lambda v: np.sum(v * v), x, 2 * x, eps=eps, backend="cpu")
    assert "too small" in str(info.value)
    with pytest.raises(gpucheck.GpuCheckError, match="`eps`"):
        gpucheck.numerical_gradient(lambda v: np.sum(v * v), x, eps=eps, backend="cpu")


def test_eps_that_overflows_raises_naming_eps():
    x = np.array([1e38, 1.0], dtype=np.float32)
    with pytest.raises(gpucheck.GpuCheckError, match="`eps`.*overflow"):
        gpucheck.numerical_gradient(lambda v: float(np.sum(v)), x, eps=10.0, backend="cpu")


def test_absolute_steps_array():
    x = np.array([1.0, 100.0])
    h = np.array([1e-3, 1e-1])
    st = plan.points(x, scheme=CENTRAL, eps=h)
    np.testing.assert_array_equal(st.h, h)
