"""The discrepancy metric and the result objects: fields, freezing, JSON, text."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import gpucheck
from gpucheck.engine import discrepancy


# ---------------------------------------------------------------- the metric

def test_discrepancy_has_the_parentheses():
    n = np.array([1.0, 0.0])
    a = np.array([0.0, 1.0])
    # ||n - a|| / (||n|| + ||a||) = sqrt(2) / 2; without the parentheses it
    # would be sqrt(2) / 1 + 1 = 2.414
    assert discrepancy(n, a) == pytest.approx(math.sqrt(2) / 2, rel=1e-15)


def test_discrepancy_values():
    n = np.array([3.0, 4.0])
    assert discrepancy(n, n) == 0.0
    assert discrepancy(n, -n) == pytest.approx(1.0)
    assert discrepancy(n, np.zeros(2)) == pytest.approx(1.0)
    assert discrepancy(n, 2 * n) == pytest.approx(5.0 / 15.0)
    assert discrepancy(np.zeros(3), np.zeros(3)) == 0.0


def test_discrepancy_is_scale_invariant_and_symmetric():
    rng = np.random.default_rng(0)
    n, a = rng.normal(size=7), rng.normal(size=7)
    assert discrepancy(n, a) == pytest.approx(discrepancy(a, n), rel=1e-15)
    assert discrepancy(1e6 * n, 1e6 * a) == pytest.approx(discrepancy(n, a), rel=1e-12)


def test_result_discrepancy_uses_the_metric():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4))
    g = 2 * x
    g[1, 2] *= 3.0
    r = gpucheck.check_gradient(lambda v: np.sum(v * v), x, g, backend="cpu")
    n, a = r.numeric.ravel(), r.analytic.ravel()
    expected = np.linalg.norm(n - a) / (np.linalg.norm(n) + np.linalg.norm(a))
    assert r.discrepancy == pytest.approx(expected, rel=1e-12)


def test_zero_gradient_checked_against_zero():
    x = np.array([1.0, -2.0, 3.0])
    r = gpucheck.check_gradient(lambda v: 5.0, x, np.zeros(3), backend="cpu")
    assert r.discrepancy == 0.0
    assert r.status == "pass"


# ------------------------------------------------------------ GradCheckResult

@pytest.fixture(scope="module")
def failed():
    """A 3x4 check with one wrong entry at (2, 1)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 4)) + 0.5
    g = np.cos(x)
    g[2, 1] += 0.75
    r = gpucheck.check_gradient(lambda v: float(np.sum(np.sin(v))), x, g, backend="cpu", worst=3)
    return x, g, r


def test_result_fields(failed):
    x, g, r = failed
    assert r.status == "fail" and r.passed is False and not r
    for name in ("numeric", "analytic", "abs_error", "rel_error", "eps"):
        arr = getattr(r, name)
        assert isinstance(arr, np.ndarray) and arr.shape == x.shape, name
    np.testing.assert_allclose(r.numeric, np.cos(x), rtol=1e-8)
    np.testing.assert_array_equal(r.analytic, g)
    np.testing.assert_allclose(r.abs_error, np.abs(r.numeric - r.analytic), rtol=1e-15)
    big = np.maximum(np.abs(r.numeric), np.abs(r.analytic))
    np.testing.assert_allclose(r.rel_error, r.abs_error / big, rtol=1e-12)
    assert r.backend == "cpu"
    assert isinstance(r.nfev, int) and r.nfev >= 2 * x.size
    assert isinstance(r.seconds, float) and r.seconds >= 0
    assert 0 < r.discrepancy < 1


def test_worst_entries(failed):
    x, g, r = failed
    assert len(r.worst) == 3
    w = r.worst[0]
    assert w.index == (2, 1)
    assert all(isinstance(i, int) for i in w.index)
    assert w.numeric == pytest.approx(math.cos(x[2, 1]), rel=1e-8)
    assert w.analytic == g[2, 1]
    assert w.abs_error == pytest.approx(0.75, rel=1e-6)
    assert w.status == "fail"
    # the other worst entries are distinct and sorted by error relative to tolerance
    assert len({e.index for e in r.worst}) == 3
    ratios = [e.abs_error / e.tolerance for e in r.worst[1:]]
    assert ratios == sorted(ratios, reverse=True)


def test_worst_count_is_capped_by_size():
    x = np.array([1.0, 2.0])
    r = gpucheck.check_gradient(lambda v: np.sum(v * v), x, 2 * x, backend="cpu", worst=10)
    assert len(r.worst) == 2


def test_result_is_frozen(failed):
    _, _, r = failed
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.status = "pass"
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.worst[0].numeric = 0.0


def test_to_dict_is_json(failed):
    _, _, r = failed
    d = r.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["status"] == "fail" and back["passed"] is False
    assert back["discrepancy"] == pytest.approx(r.discrepancy)
    assert np.array(back["numeric"]).shape == (3, 4)
    np.testing.assert_allclose(back["numeric"], r.numeric)
    assert back["worst"][0]["index"] == [2, 1]
    for key in ("analytic", "abs_error", "rel_error", "eps", "backend", "nfev", "seconds"):
        assert key in back


def test_to_dict_with_inf_and_nan():
    x = np.array([1.0, 2.0, 3.0])
    g = np.array([np.inf, np.nan, 6.0])
    r = gpucheck.check_gradient(lambda v: np.sum(v * v), x, g, backend="cpu")
    assert r.status == "fail"
    text = json.dumps(r.to_dict(), allow_nan=False)  # strict JSON: no NaN / Infinity
    back = json.loads(text)
    assert back["status"] == "fail"
    str(r)  # renders


def test_to_dict_when_f_is_not_finite_near_x():
    # sqrt(x) at x = 0: the nodes at x - h are negative at every step
    x = np.array([0.0, 1.0])
    with np.errstate(invalid="ignore"):
        r = gpucheck.check_gradient(lambda v: float(np.sum(np.sqrt(v))), x, [1.0, 0.5],
                                    backend="cpu")
    assert r.status != "pass"
    json.dumps(r.to_dict(), allow_nan=False)


def test_str_is_readable(failed):
    _, _, r = failed
    s = str(r)
    assert "FAIL" in s
    assert "(2, 1)" in s
    assert "numeric" in s and "analytic" in s
    assert len(s.splitlines()) >= 5
    assert "cpu" in s
    ok = gpucheck.check_gradient(lambda v: np.sum(v * v), np.ones(3), 2 * np.ones(3), backend="cpu")
    assert "PASS" in str(ok)
    assert "pass" in repr(ok)


# ---------------------------------------------------------------- SweepResult

@pytest.fixture(scope="module")
def swept():
    x = np.linspace(0.5, 1.5, 6)
    return gpucheck.sweep(lambda v: float(np.sum(v ** 3)), x, 3 * x ** 2,
                          eps=[1e-4, 1e-3, 1e-2, 1e-1], backend="cpu")


def test_sweep_result_fields(swept):
    s = swept
    np.testing.assert_array_equal(s.eps, [1e-4, 1e-3, 1e-2, 1e-1])
    assert s.discrepancy.shape == (4,)
    assert s.best_eps in s.eps
    assert s.discrepancy[list(s.eps).index(s.best_eps)] == s.discrepancy.min()
    assert s.regime in ("roundoff", "truncation", "balanced", "bug")
    assert isinstance(s.explanation, str) and s.explanation
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.regime = "bug"


def test_sweep_to_dict(swept):
    d = json.loads(json.dumps(swept.to_dict(), allow_nan=False))
    assert d["eps"] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert d["discrepancy"] == pytest.approx(swept.discrepancy.tolist())
    assert d["regime"] == swept.regime
    assert d["best_eps"] == swept.best_eps
    assert d["explanation"] == swept.explanation


def test_sweep_table_and_str(swept):
    table = swept.table()
    lines = table.splitlines()
    assert len(lines) == 1 + swept.eps.size  # header + one row per step
    assert "eps" in lines[0] and "discrepancy" in lines[0]
    assert sum("best" in line for line in lines) == 1
    for line, d in zip(lines[1:], swept.discrepancy):
        assert f"{d:.3e}" in line
    s = str(swept)
    assert swept.regime.upper() in s
    assert table in s
    assert swept.explanation.split()[0] in s
