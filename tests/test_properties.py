"""Property tests: the numerical gradient is within its predicted error, and the
verdict passes correct gradients and fails wrong ones."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import gpucheck
from gpucheck import plan
from gpucheck.stencils import get_scheme

U64 = 2.0 ** -53
FAST = settings(max_examples=40, deadline=None)

seeds = st.integers(0, 2 ** 32 - 1)
sizes = st.integers(1, 8)


def quadratic(n, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n)).astype(dtype)
    b = rng.normal(size=n).astype(dtype)
    x = (rng.normal(size=n) * rng.choice([0.1, 1.0, 10.0])).astype(dtype)
    A64, b64, x64 = (v.astype(np.float64) for v in (A, b, x))
    exact = (A64 + A64.T) @ x64 + b64

    def f(v):
        return v @ A @ v + b @ v

    return f, x, exact, (A64, b64, x64)


@FAST
@given(n=sizes, seed=seeds)
def test_quadratic_float64_within_predicted_error(n, seed):
    f, x, exact, (A, b, x64) = quadratic(n, seed)
    g = gpucheck.numerical_gradient(f, x, backend="cpu")
    stn = plan.points(x, scheme=get_scheme("central"))
    # rounding: f is a sum of about n^2 + n products, each off by at most
    # (n + 2) u of the sum of magnitudes; central differences carry no
    # truncation error for a quadratic, only (h+ - h-) A_ii from uneven nodes
    S = np.abs(x64) @ np.abs(A) @ np.abs(x64) + np.abs(b) @ np.abs(x64)
    S_pert = S + 2 * np.max(stn.h) * (np.abs(A) + np.abs(A.T)).sum() * (np.max(np.abs(x64)) + 1)
    rounding = 2 * (n + 2) * U64 * S_pert * stn.rounding_gain
    uneven = np.abs(stn.offsets.sum(axis=0)) * np.abs(np.diag(A)) * 2
    exact_err = 4 * (n + 2) * U64 * ((np.abs(A) + np.abs(A.T)) @ np.abs(x64) + np.abs(b))
    bound = 4 * (rounding + uneven) + exact_err
    assert np.all(np.abs(g - exact) <= bound), (g - exact, bound)
    # the bound is tight enough to mean something
    assert np.all(bound <= 1e-6 * (1 + S))


# derivative bounds of tanh^(k) over the real line (k = 2..5)
TANH_MAX = {2: 0.8, 3: 2.0, 4: 4.1, 5: 16.0}


def smooth(n, seed):
    """f(v) = sum a sin(b v) + c exp(d v) + tanh(e v) + sin(q . v), with f^(k) bounds."""
    rng = np.random.default_rng(seed)
    a, b, c, d, e = (rng.uniform(-2, 2, size=n) for _ in range(5))
    q = rng.uniform(-1, 1, size=n)
    x = rng.uniform(-2, 2, size=n)

    def f(v):
        return float(np.sum(a * np.sin(b * v) + c * np.exp(d * v) + np.tanh(e * v)) + np.sin(q @ v))

    exact = a * b * np.cos(b * x) + c * d * np.exp(d * x) + e / np.cosh(e * x) ** 2 + q * np.cos(q @ x)

    def deriv_bound(k, reach):
        """max |d^k f / d v_i^k| on [x_i - reach, x_i + reach], per i."""
        exp_max = np.exp(np.abs(d) * (np.abs(x) + reach)) if k else None
        return (np.abs(a) * np.abs(b) ** k + np.abs(c) * np.abs(d) ** k * exp_max
                + np.abs(e) ** k * TANH_MAX[k] + np.abs(q) ** k)

    magnitude = np.sum(np.abs(a) + np.abs(c) * np.exp(np.abs(d) * (np.abs(x) + 1)) + 1) + 1
    return f, x, exact, deriv_bound, magnitude


@FAST
@given(n=sizes, seed=seeds, scheme=st.sampled_from(["central", "central4"]))
def test_smooth_functions_within_predicted_error(n, seed, scheme):
    f, x, exact, deriv_bound, magnitude = smooth(n, seed)
    sch = get_scheme(scheme)
    g = gpucheck.numerical_gradient(f, x, scheme=scheme, backend="cpu")
    stn = plan.points(x, scheme=sch)
    t, w = stn.offsets, stn.weights
    reach = np.max(np.abs(t), axis=0) * 1.01
    p = sch.order  # the weights are exact for degree p (symmetric nodes up to rounding)
    # Taylor: sum_k w_k f(x + t_k) = f' + sum_{j=2..p} f^(j) / j! sum_k w_k t_k^j + R,
    # |R| <= M_{p+1} / (p+1)! sum_k |w_k| |t_k|^(p+1)
    fact = {2: 2, 3: 6, 4: 24, 5: 120}
    trunc = deriv_bound(p + 1, reach) / fact[p + 1] * (np.abs(w) * np.abs(t) ** (p + 1)).sum(axis=0)
    for j in range(2, p + 1):  # nonzero only because x + c h is rounded
        trunc += deriv_bound(j, reach) / fact[j] * np.abs((w * t ** j).sum(axis=0))
    rounding = 16 * (3 * n + 2) * U64 * magnitude * stn.rounding_gain
    bound = 2 * (trunc + rounding) + 1e-14 * (1 + np.abs(exact))
    assert np.all(np.abs(g - exact) <= bound), (g - exact, bound)
    assert np.all(bound <= 1e-5 * (1 + magnitude))


# ------------------------------------------------------------------ verdict

def typical_entry(g):
    """An entry with |g_i| >= median |g|: the upper median."""
    return int(np.argsort(np.abs(g), kind="stable")[g.size // 2])


dtypes = st.sampled_from([np.float32, np.float64])


@FAST
@given(n=st.integers(2, 12), seed=seeds, dtype=dtypes)
def test_verdict_passes_correct_quadratic_gradients(n, seed, dtype):
    f, x, exact, _ = quadratic(n, seed, dtype)
    r = gpucheck.check_gradient(f, x, exact, backend="cpu")
    assert r.status == "pass", str(r)


@FAST
@given(n=st.integers(2, 12), seed=seeds, dtype=dtypes, kind=st.sampled_from(["5%", "sign"]))
def test_verdict_fails_one_wrong_entry_of_typical_magnitude(n, seed, dtype, kind):
    f, x, exact, _ = quadratic(n, seed, dtype)
    i = typical_entry(exact)
    bad = exact.copy()
    if kind == "5%":
        bad[i] *= 1.05
    else:
        bad[i] = -bad[i]
    r = gpucheck.check_gradient(f, x, bad, backend="cpu")
    assert r.status == "fail", str(r)
    assert r.element_status.ravel()[i] == "fail"
    assert r.worst[0].index == (i,)


@FAST
@given(n=st.integers(2, 12), seed=seeds, dtype=dtypes)
def test_verdict_batched_agrees_with_callable(n, seed, dtype):
    f, x, exact, (A, b, _) = quadratic(n, seed, dtype)
    Ad, bd = A.astype(dtype), b.astype(dtype)

    def fb(xs):
        return np.einsum("bi,ij,bj->b", xs, Ad, xs) + xs @ bd

    r = gpucheck.check_gradient(gpucheck.batched(fb), x, exact, backend="cpu")
    assert r.status == "pass", str(r)
    bad = exact.copy()
    bad[typical_entry(exact)] *= 1.05
    assert gpucheck.check_gradient(gpucheck.batched(fb), x, bad, backend="cpu").status == "fail"


# ------------------------------------------------- invariants of the verdict

def smooth_batched(n, seed, dtype):
    """A random smooth f (sin, exp, tanh, a coupling term) as a batched function, with its gradient."""
    rng = np.random.default_rng(seed)
    a, b, c, d, e = (rng.uniform(-2, 2, size=n) for _ in range(5))
    q = rng.uniform(-1, 1, size=n)
    x = rng.uniform(-2, 2, size=n).astype(dtype)
    p = [v.astype(dtype) for v in (a, b, c, d, e, q)]

    def fb(xs):
        a_, b_, c_, d_, e_, q_ = p
        return (a_ * np.sin(b_ * xs) + c_ * np.exp(d_ * xs) + np.tanh(e_ * xs)).sum(axis=1) \
            + np.sin(xs @ q_)

    x64 = x.astype(np.float64)
    grad = a * b * np.cos(b * x64) + c * d * np.exp(d * x64) + e / np.cosh(e * x64) ** 2 \
        + q * np.cos(q @ x64)
    return fb, x, grad


@FAST
@given(n=st.integers(1, 10), seed=seeds, dtype=dtypes)
def test_a_correct_gradient_never_fails(n, seed, dtype):
    fb, x, grad = smooth_batched(n, seed, dtype)
    r = gpucheck.check_gradient(gpucheck.batched(fb), x, grad, backend="cpu")
    assert r.status != "fail", str(r)
    assert r.status == "pass" or dtype == np.float32, str(r)


@FAST
@given(n=st.integers(1, 10), seed=seeds, dtype=dtypes, k=st.integers(-30, 30),
       wrong=st.booleans())
def test_scaling_f_by_a_power_of_two_keeps_the_verdict(n, seed, dtype, k, wrong):
    fb, x, grad = smooth_batched(n, seed, dtype)
    if wrong:
        grad = grad.copy()
        grad[typical_entry(grad)] *= 1.02
    s = dtype(2.0 ** k)
    r1 = gpucheck.check_gradient(gpucheck.batched(fb), x, grad, backend="cpu")
    r2 = gpucheck.check_gradient(gpucheck.batched(lambda xs: fb(xs) * s), x, grad * 2.0 ** k,
                                 backend="cpu")
    assert r1.status == r2.status, (k, str(r1), str(r2))
    assert np.array_equal(r1.element_status, r2.element_status)


@FAST
@given(n=st.integers(2, 12), seed=seeds, dtype=dtypes, n_bad=st.integers(0, 4))
def test_the_worst_list_is_sorted(n, seed, dtype, n_bad):
    fb, x, grad = smooth_batched(n, seed, dtype)
    rng = np.random.default_rng(seed)
    bad = grad.copy()
    for j in rng.choice(n, size=min(n, n_bad), replace=False):
        bad[j] *= 1 + rng.uniform(0.01, 0.5)
    r = gpucheck.check_gradient(gpucheck.batched(fb), x, bad, backend="cpu", worst=n)
    rank = {"fail": 0, "inconclusive": 1, "pass": 2}
    keys = [(rank[w.status], -(w.abs_error / w.tolerance if w.tolerance > 0 else np.inf))
            for w in r.worst]
    assert keys == sorted(keys)
    # failing entries are exactly those whose error exceeds the tolerance
    st_ = np.asarray(r.element_status)
    assert np.all(r.abs_error[st_ == "pass"] <= r.tolerance[st_ == "pass"])
    assert np.all(~(r.abs_error[st_ == "fail"] <= r.tolerance[st_ == "fail"]))
