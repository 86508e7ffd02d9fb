"""The options the verdict added: their validation, and results that serialise and print."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gpucheck
from gpucheck import GpuCheckError


def sq(v):
    return float(np.sum(np.asarray(v, dtype=np.float64) ** 2))


def test_reference_must_be_float64_or_none():
    with pytest.raises(GpuCheckError, match="`reference` must be None or 'float64', got 'float32'"):
        gpucheck.check_gradient(sq, np.ones(3), 2 * np.ones(3), reference="float32")


def test_complex_step_needs_a_callable_or_batched_f_and_a_full_precision_x():
    with pytest.raises(GpuCheckError, match="`scheme` 'complex' needs float32 or float64 `x`"):
        gpucheck.check_gradient(sq, np.ones(3, np.float16), 2 * np.ones(3), scheme="complex")
    with pytest.raises(GpuCheckError, match="'central', 'central4', 'complex'"):
        gpucheck.check_gradient(sq, np.ones(3), 2 * np.ones(3), scheme="forward")


def test_kernel_functions_refuse_low_precision_with_a_reason():
    def k(x):
        return x[0] * 1.0

    with pytest.raises(GpuCheckError, match="kernel functions do not support"):
        gpucheck.check_gradient(gpucheck.kernel(k), np.ones(3, np.float16), np.ones(3))


def test_bfloat16_points_and_gradients_are_accepted():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf = ml_dtypes.bfloat16
    x = np.linspace(-1, 1, 5).astype(bf)
    f = gpucheck.batched(lambda xs: (xs * xs).sum(axis=1))
    r = gpucheck.check_gradient(f, x, (2 * x.astype(np.float64)).astype(bf))
    assert r.dtype == "bfloat16" and r.status == "pass", str(r)
    assert r.resolution == pytest.approx(0.0625)


def test_a_result_with_a_reference_serialises_and_prints():
    x = np.linspace(-1, 1, 6).astype(np.float16)
    f = gpucheck.batched(lambda xs: (np.sin(xs) * xs).sum(axis=1))
    x64 = x.astype(np.float64)
    r = gpucheck.check_gradient(f, x, -(np.cos(x64) * x64 + np.sin(x64)), reference="float64")
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["reference"]["dtype"] == "float64" and d["reference"]["status"] == "fail"
    assert "formula is wrong" in d["interpretation"]
    assert "float64 reference: FAIL" in r.summary() and "=>" in str(r)
    assert gpucheck.check_gradient(f, x, np.ones(6)).reference is None


def test_resolution_and_advice_reach_the_report():
    x = np.linspace(-1, 1, 6)
    r = gpucheck.check_gradient(lambda v: np.sum(np.sin(v)), x, np.cos(x))
    assert r.resolution == 0.003 and r.advice == ""
    assert "resolution" in str(r) and r.to_dict()["resolution"] == 0.003
