"""Planted bugs in the built-in layers must fail; their correct gradients must pass."""

from __future__ import annotations

import numpy as np
import pytest

import gpucheck
from gpucheck import layers
from gpucheck.diagnose import diagnose

DTYPES = [np.float32, np.float64]


def build(name, dtype, seed=0, n=6):
    """``(layer, x)`` with a square x of side n (so a transpose is defined)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if name == "mse":
        layer = layers.mse(rng.normal(size=(n, n)).astype(dt))
        x = rng.normal(size=(n, n))
    elif name == "dense":
        layer = layers.dense(rng.normal(size=(5, n)).astype(dt), rng.normal(size=(5, n)).astype(dt))
        x = rng.normal(size=(n, n)) / np.sqrt(n)
    elif name == "softmax_cross_entropy":
        layer = layers.softmax_cross_entropy(rng.integers(0, n, size=n))
        x = 2.0 * rng.normal(size=(n, n))
    elif name == "tanh_sum":
        layer = layers.tanh_sum(rng.normal(size=(n, n)).astype(dt))
        x = rng.normal(size=(n, n))
    elif name == "layer_norm":
        layer = layers.layer_norm(rng.normal(size=(n, n)).astype(dt))
        x = 3.0 * rng.normal(size=(n, n)) + 1.0
    elif name == "logsumexp":
        layer = layers.logsumexp()
        x = 1.5 * rng.normal(size=(n, n))
    elif name == "logsumexp_large":
        layer = layers.logsumexp()
        x = 100.0 + 1.5 * rng.normal(size=(n, n))  # large logits
    else:  # pragma: no cover
        raise KeyError(name)
    return layer, x.astype(dt)


LAYERS = ["mse", "dense", "softmax_cross_entropy", "tanh_sum", "layer_norm", "logsumexp",
          "logsumexp_large"]


def typical_entry(g):
    """Multi-index of an entry with |g_i| >= median |g| (the upper median)."""
    flat = np.abs(g).ravel()
    j = int(np.argsort(flat, kind="stable")[flat.size // 2])
    assert flat[j] >= np.median(flat)
    return np.unravel_index(j, g.shape)


def check(layer, x, g, form="f"):
    f = layer.batched if form == "batched" else layer.f
    return gpucheck.check_gradient(f, x, g, backend="cpu")


# ------------------------------------------------------------ correct passes

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("form", ["f", "batched"])
def test_correct_gradient_passes(name, dtype, form):
    for seed in range(3):
        layer, x = build(name, dtype, seed)
        r = check(layer, x, layer.grad(x), form)
        assert r.status == "pass", f"seed {seed}\n{r}"
        assert r.dtype == np.dtype(dtype).name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["mse", "tanh_sum", "logsumexp"])
def test_correct_gradient_passes_other_shapes(name, dtype):
    rng = np.random.default_rng(7)
    for shape in [(1,), (17,), (2, 3, 4)]:
        if name == "mse":
            layer = layers.mse(rng.normal(size=shape).astype(dtype))
        elif name == "tanh_sum":
            layer = layers.tanh_sum(rng.normal(size=shape).astype(dtype))
        else:
            layer = layers.logsumexp()
        x = rng.normal(size=shape).astype(dtype)
        r = check(layer, x, layer.grad(x), "batched")
        assert r.status == "pass", f"{shape}\n{r}"


# ------------------------------------------------------------- planted bugs

BUGS = {
    "factor 2": lambda g: 2.0 * g,
    "factor 1/2": lambda g: 0.5 * g,
    "sign": lambda g: -g,
    "transposed": lambda g: g.T.copy(),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("bug", list(BUGS))
def test_planted_bug_fails(name, dtype, bug):
    layer, x = build(name, dtype)
    g = layer.grad(x)
    bad = BUGS[bug](g)
    assert not np.allclose(bad, g)  # the bug changes the gradient
    r = check(layer, x, bad)
    assert r.status == "fail", str(r)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("seed", [0, 1])
def test_one_entry_five_percent_off_fails(name, dtype, seed):
    layer, x = build(name, dtype, seed)
    g = layer.grad(x)
    i = typical_entry(g)
    bad = g.copy()
    bad[i] *= 1.05
    r = check(layer, x, bad)
    assert r.status == "fail", str(r)
    assert r.element_status[i] == "fail"
    assert r.worst[0].index == tuple(int(k) for k in i)
    assert r.n_failed == 1, str(r)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["mse", "dense", "tanh_sum"])
def test_one_entry_sign_flipped_fails(name, dtype):
    layer, x = build(name, dtype, seed=3)
    g = layer.grad(x)
    i = typical_entry(g)
    bad = g.copy()
    bad[i] = -bad[i]
    r = check(layer, x, bad, "batched")
    assert r.status == "fail", str(r)
    assert r.element_status[i] == "fail"


def test_the_planted_bugs_are_not_trivially_detectable_by_scale():
    # a 5% error in one entry leaves the discrepancy tiny: a fixed threshold
    # on the metric would miss it, the per-element verdict must not
    layer, x = build("mse", np.float32)
    g = layer.grad(x)
    bad = g.copy()
    bad[typical_entry(g)] *= 1.05
    r = check(layer, x, bad)
    assert r.discrepancy < 5e-3
    assert r.status == "fail"


# ------------------------------------------------------------------ diagnose

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["mse", "dense", "tanh_sum", "layer_norm"])
def test_diagnosis_hints(name, dtype):
    layer, x = build(name, dtype)
    g = layer.grad(x)
    assert "sign flipped" in check(layer, x, -g).diagnosis
    d = check(layer, x, 2.0 * g).diagnosis
    assert "constant factor" in d and "2" in d
    d = check(layer, x, 0.5 * g).diagnosis
    assert "constant factor" in d and "0.5" in d
    assert "transposed" in check(layer, x, g.T.copy()).diagnosis
    assert check(layer, x, g).diagnosis == ""


def test_diagnosis_appears_in_the_text():
    layer, x = build("mse", np.float64)
    r = check(layer, x, -layer.grad(x))
    assert "likely cause" in str(r) and "sign flipped" in str(r)


def test_diagnose_patterns_directly():
    rng = np.random.default_rng(0)
    n = rng.normal(size=(5, 5))
    everywhere = np.ones(n.shape, dtype=bool)
    assert diagnose(n, -n, everywhere).startswith("sign flipped")
    assert "constant factor" in diagnose(n, 3.0 * n, everywhere)
    assert "3" in diagnose(n, 3.0 * n, everywhere)
    assert diagnose(n, n.T, everywhere).startswith("transposed")
    rows = n.copy()
    rows[2] = 0.0
    assert "row" in diagnose(n, rows, everywhere) and "2" in diagnose(n, rows, everywhere)
    cols = n.copy()
    cols[:, 4] = 0.0
    assert "column" in diagnose(n, cols, everywhere)
    perm = n.ravel()[rng.permutation(n.size)].reshape(n.shape)
    assert "permutation" in diagnose(n, perm, everywhere)
    one = n.copy()
    one[1, 3] *= 1.05
    failed = np.zeros(n.shape, dtype=bool)
    failed[1, 3] = True
    assert "(1, 3)" in diagnose(n, one, failed)
    assert diagnose(n, n, np.zeros(n.shape, dtype=bool)) == ""
    # a symmetric gradient transposed is no bug: no transposition hint
    s = n + n.T
    assert "transposed" not in diagnose(s, s.T * 1.5, everywhere)
