"""The verdict on a broad corpus: no false fail on correct gradients, no missed bug.

Layers, dtypes, shapes and random points vary with the seed; every check
uses default options and evaluates f in the user's dtype.
"""

from __future__ import annotations

import numpy as np
import pytest

import gpucheck
from gpucheck import layers as L

SEEDS = range(12)
DTYPES = (np.float32, np.float64)


def corpus(seed):
    rng = np.random.default_rng(seed)
    s = int(rng.integers(3, 9))
    yield "mse", L.mse(rng.normal(size=(s, s + 1))), rng.normal(size=(s, s + 1))
    yield "mse_square", L.mse(rng.normal(size=(s, s))), rng.normal(size=(s, s))
    yield "dense", L.dense(rng.normal(size=(16, s)), rng.normal(size=(16, s))), rng.normal(size=(s, s))
    yield ("softmax_ce", L.softmax_cross_entropy(rng.integers(0, s, size=s)),
           3 * rng.normal(size=(s, s)))
    yield "tanh", L.tanh_sum(rng.normal(size=(s, s))), 2 * rng.normal(size=(s, s))
    yield "steep_tanh", L.tanh_sum(rng.normal(size=(s, s))), 0.05 * rng.normal(size=(s, s))
    yield "layer_norm", L.layer_norm(rng.normal(size=(s, s))), rng.normal(size=(s, s))
    yield "logsumexp_large", L.logsumexp(), 5 * rng.normal(size=(s, s)) + 50


def planted_bugs(g, seed):
    """Wrong gradients, each at least 5% of the largest entry away from g."""
    rng = np.random.default_rng(seed)
    mag = np.abs(g)
    candidates = np.flatnonzero(mag >= 0.25 * mag.max())
    j = np.unravel_index(int(rng.choice(candidates)), g.shape)
    one_off = g.copy()
    one_off[j] *= 1.05
    bugs = {"one entry 5% off": one_off, "sign": -g, "missing factor 1/2": 0.5 * g,
            "extra factor 2": 2.0 * g}
    if g.ndim == 2 and g.shape[0] == g.shape[1]:
        bugs["transposed"] = g.T.copy()
    return {k: b for k, b in bugs.items() if np.max(np.abs(b - g)) >= 0.05 * mag.max()}


CASES = [(seed, dt, name) for seed in SEEDS for dt in DTYPES
         for name, _, _ in corpus(seed)]


def _case(seed, dt, name):
    for n, layer, x in corpus(seed):
        if n == name:
            return layer, x.astype(dt)
    raise KeyError(name)


@pytest.mark.parametrize("seed,dtype,name", CASES)
def test_correct_gradients_pass_and_bugs_fail(seed, dtype, name):
    layer, x = _case(seed, dtype, name)
    g = layer.grad(x)
    r = gpucheck.check_gradient(layer.batched, x, g)
    assert r.status == "pass", (r.summary(), r.worst[0])
    assert np.all(r.abs_error <= r.tolerance)
    for bug, wrong in planted_bugs(g, seed).items():
        rb = gpucheck.check_gradient(layer.batched, x, wrong)
        assert rb.status == "fail", (bug, rb.summary())


def test_honesty_costs_about_2n():
    layer, x = _case(0, np.float32, "mse")
    r = gpucheck.check_gradient(layer.batched, x, layer.grad(x))
    assert r.n_refined == 0
    assert r.nfev <= 2 * x.size + 80


def _relu_sum(w):
    return gpucheck.batched(
        lambda xs: (np.maximum(xs, 0) * w[None]).reshape(xs.shape[0], -1).sum(axis=1))


def _abs_sum(w):
    return gpucheck.batched(lambda xs: (np.abs(xs) * w[None]).reshape(xs.shape[0], -1).sum(axis=1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(6))
def test_kinks_accept_subgradients_and_reject_others(dtype, seed):
    rng = np.random.default_rng(100 + seed)
    x = rng.normal(size=(6, 6)).astype(dtype)
    x[0, :3] = 0.0          # exactly on the kink
    x[1, 1] = 1e-6          # within one step of it
    w = rng.normal(size=(6, 6))
    relu = _relu_sum(w)
    for sub in (0.0, 1.0, 0.5):  # any value in [0, w] is a valid subgradient at 0
        g = w * (x > 0) + sub * w * (x == 0)
        r = gpucheck.check_gradient(relu, x, g)
        assert r.status == "pass", (sub, r.summary(), r.worst[0])
        if sub == 0.0:
            assert r.n_kinks >= 3  # the central difference there is w/2, not 0
    g = w * (x > 0)
    g[0, 0] = -abs(w[0, 0]) - 1.0  # outside [min(0, w), max(0, w)]
    assert gpucheck.check_gradient(relu, x, g).status == "fail"
    r = gpucheck.check_gradient(_abs_sum(w), x, w * np.sign(x))
    assert r.status == "pass", r.summary()
    bad = w * np.sign(x)
    bad[0, 1] = 2.0 * abs(w[0, 1]) + 0.5
    assert gpucheck.check_gradient(_abs_sum(w), x, bad).status == "fail"


def test_noise_swamping_the_gradient_is_inconclusive():
    # f adds a large constant in float32: its rounding is far bigger than what
    # one coordinate contributes, so no step can resolve the gradient
    w = np.float32(1e-3)
    f = gpucheck.batched(lambda xs: np.float32(1e4) + w * xs.reshape(xs.shape[0], -1).sum(axis=1))
    x = np.linspace(-1, 1, 10, dtype=np.float32)
    r = gpucheck.check_gradient(f, x, np.full(10, 1e-3))
    assert r.status == "inconclusive", r.summary()


def test_nonfinite_analytic_entry_fails():
    layer, x = _case(1, np.float64, "mse")
    g = layer.grad(x)
    g.flat[3] = np.nan
    r = gpucheck.check_gradient(layer.batched, x, g)
    assert r.status == "fail"
    assert r.element_status.flat[3] == "fail"


@pytest.mark.parametrize("dtype", DTYPES)
def test_sweep_regimes(dtype):
    layer, x = _case(0, dtype, "mse")
    s = gpucheck.sweep(layer.batched, x, layer.grad(x))
    assert s.regime == "roundoff"
    assert "no truncation error" in s.explanation and "not a bug" in s.explanation
    assert s.best_eps == s.eps.max()
    bug = gpucheck.sweep(layer.batched, x, 1.1 * layer.grad(x))
    assert bug.regime == "bug"
    assert "constant factor" in bug.explanation


def test_sweep_cubic_float64_large_steps_is_truncation():
    x = np.linspace(0.5, 1.5, 9)
    s = gpucheck.sweep(lambda v: np.sum(v ** 3), x, 3 * x ** 2, eps=[1e-3, 1e-2, 1e-1, 1.0])
    assert s.regime == "truncation"
    assert "eps^2" in s.explanation
    ratios = s.discrepancy[1:] / s.discrepancy[:-1]
    assert np.all((ratios > 50) & (ratios < 200))  # grows like eps^2


def test_sweep_smooth_float64_default_steps_is_balanced():
    x = np.linspace(-1, 1, 9)
    s = gpucheck.sweep(lambda v: np.sum(np.sin(3 * v)), x, 3 * np.cos(3 * x))
    assert s.regime == "balanced"
    assert s.eps.min() < s.best_eps < s.eps.max()


def test_demo_table_falls_tenfold_per_decade():
    from gpucheck.cli import demo_problem

    layer, x = demo_problem()
    s = gpucheck.sweep(layer.batched, x, layer.grad(x), eps=[1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    ratios = s.discrepancy[:-1] / s.discrepancy[1:]
    assert np.all((ratios > 3) & (ratios < 30)), s.discrepancy
    assert s.regime == "roundoff"
