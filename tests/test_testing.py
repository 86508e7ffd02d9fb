"""gpucheck.testing and the pytest plugin: the assertion message is the full report."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import unittest

import numpy as np
import pytest

import gpucheck
from gpucheck import GpuCheckError
from gpucheck.testing import advice, assert_gradient, assert_jvp, assert_vjp

X = np.linspace(-1, 1, 6).reshape(2, 3)
PARAMS = {"W": np.arange(6.0).reshape(2, 3) / 6, "b": np.array([0.5, -0.5])}


def loss(p):
    return float(np.sum(np.tanh(p["W"].T @ p["b"])))


def grad(p):
    d = 1 - np.tanh(p["W"].T @ p["b"]) ** 2
    return {"W": np.outer(p["b"], d), "b": p["W"] @ d}


def noisy(v):  # float32 with a huge constant: rounding swamps the gradient
    return np.sum(v ** 2) + np.float32(1e6)


X32 = np.ones(3, dtype=np.float32)


def test_pass_returns_the_result():
    r = assert_gradient(loss, PARAMS, grad(PARAMS), backend="cpu")
    assert r.passed and r.inputs


def test_failure_message_is_the_full_report_with_names():
    g = grad(PARAMS)
    g["b"] = g["b"] * np.array([1.0, 1.05])
    with pytest.raises(AssertionError) as info:
        assert_gradient(loss, PARAMS, g, backend="cpu")
    msg = str(info.value)
    r = gpucheck.check_gradient(loss, PARAMS, g, backend="cpu")
    # everything but the timing line is the report itself
    strip = [ln for ln in msg.splitlines() if "evaluations in" not in ln]
    assert strip == [ln for ln in str(r).splitlines() if "evaluations in" not in ln]
    for part in ("gradient check: FAIL", "per input:", "b[1]", "tol", "likely cause: b:"):
        assert part in msg


@pytest.mark.parametrize("mode", ["fail", "skip", "pass"])
def test_inconclusive_modes(mode):
    if mode == "fail":
        with pytest.raises(AssertionError) as info:
            assert_gradient(noisy, X32, 2 * X32, backend="cpu", inconclusive=mode)
        msg = str(info.value)
        assert "INCONCLUSIVE" in msg and "what to try" in msg and "float64" in msg
    elif mode == "skip":
        with pytest.raises(pytest.skip.Exception) as info:
            assert_gradient(noisy, X32, 2 * X32, backend="cpu", inconclusive=mode)
        assert "what to try" in str(info.value)
    else:
        r = assert_gradient(noisy, X32, 2 * X32, backend="cpu", inconclusive=mode)
        assert r.status == "inconclusive"


def test_skip_without_pytest_is_unittest_skip(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytest", None)  # import pytest now fails
    with pytest.raises(unittest.SkipTest):
        assert_gradient(noisy, X32, 2 * X32, backend="cpu", inconclusive="skip")


def test_a_failure_is_never_skipped_or_passed():
    for mode in ("skip", "pass"):
        with pytest.raises(AssertionError, match="FAIL"):
            assert_gradient(lambda v: float(np.sum(v ** 2)), X, -2 * X, backend="cpu",
                            inconclusive=mode)


def test_bad_inconclusive_option():
    with pytest.raises(GpuCheckError, match="`inconclusive` must be one of"):
        assert_gradient(loss, PARAMS, grad(PARAMS), inconclusive="maybe")


def test_vjp_and_jvp_assertions():
    A = np.arange(6.0).reshape(2, 3)
    assert assert_vjp(lambda v: A @ v, np.ones(3), lambda v, c: A.T @ c, backend="cpu").passed
    with pytest.raises(AssertionError, match="cotangent"):
        assert_vjp(lambda v: A @ v, np.ones(3), lambda v, c: A.T @ c * 1.1, backend="cpu")
    with pytest.raises(AssertionError, match="FAIL"):
        assert_jvp(lambda v: A @ v, np.ones(3), lambda v, t: A @ t + 1e-2, backend="cpu")


def test_advice_names_what_to_try():
    r = gpucheck.check_gradient(noisy, X32, 2 * X32, backend="cpu")
    text = advice(r)
    assert "gpucheck.sweep" in text and "rtol" in text


def test_the_fixture_in_a_test_suite(tmp_path):
    """A user's test file run by pytest with the plugin: pass, fail with the report, skip."""
    (tmp_path / "test_user.py").write_text(textwrap.dedent("""
        import numpy as np

        def loss(w, b):
            return float(np.sum((w * b - 1.0) ** 2))

        W, B = np.arange(1.0, 4.0), np.full(3, 0.5)

        def test_good(gradcheck):
            gradcheck(loss, (W, B), (2 * (W * B - 1) * B, 2 * (W * B - 1) * W))

        def test_bad(gradcheck):
            gradcheck(loss, (W, B), (2 * (W * B - 1) * B, 2 * (W * B - 1) * B))

        def test_noisy(gradcheck):
            x = np.ones(3, dtype=np.float32)
            gradcheck(lambda v: np.sum(v ** 2) + np.float32(1e6), x, 2 * x)

        def test_vjp(gradcheck):
            A = np.eye(3)
            gradcheck.vjp(lambda v: A @ v, W, lambda v, c: A.T @ c)
    """))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "gpucheck.pytest_plugin", "-p",
            "no:cacheprovider", "--gpucheck-backend", "cpu", "--gpucheck-inconclusive", "skip",
            "-rs", "test_user.py"]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "2 passed" in out and "1 failed" in out and "1 skipped" in out, out
    assert "gradient check: FAIL" in out and "input 1[0]" in out, out
    assert "what to try" in out, out
