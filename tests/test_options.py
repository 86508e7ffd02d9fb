"""Options that used to slip through or fail deep inside: each gets a message naming it."""

from __future__ import annotations

import numpy as np
import pytest

import gpucheck
from gpucheck import GpuCheckError

X = np.linspace(-1, 1, 4)


def sq(v):
    return float(np.sum(v ** 2))


@pytest.mark.parametrize("eps", ["0.1", True, np.bool_(True), b"0.1", np.array(["0.1"]),
                                 np.array([True, False, True, True])])
def test_eps_must_be_numbers(eps):
    with pytest.raises(GpuCheckError, match="`eps` must be a number"):
        gpucheck.check_gradient(sq, X, 2 * X, eps=eps, backend="cpu")
    with pytest.raises(GpuCheckError, match="`eps` must be a number"):
        gpucheck.numerical_gradient(sq, X, eps=eps, backend="cpu")


@pytest.mark.parametrize("eps", ["abc", ["1e-3", "x"], [True, 1e-3], 1j, [[1e-3], [1e-2, 1e-1]]])
def test_sweep_eps_must_be_numbers(eps):
    with pytest.raises(GpuCheckError, match="`eps`"):
        gpucheck.sweep(sq, X, 2 * X, eps=eps, backend="cpu")


def test_sweep_eps_numbers_still_work():
    s = gpucheck.sweep(sq, X, 2 * X, eps=np.array([1e-3, 1e-2]), backend="cpu")
    assert s.eps.tolist() == [1e-3, 1e-2]
    assert gpucheck.sweep(sq, X, 2 * X, eps=1e-2, backend="cpu").eps.tolist() == [1e-2]


@pytest.mark.parametrize("progress", [3, "bar", [print]])
def test_progress_must_be_callable_and_is_not_blamed_on_f(progress):
    with pytest.raises(GpuCheckError, match="`progress` must be None or a callable") as info:
        gpucheck.check_gradient(sq, X, 2 * X, progress=progress, backend="cpu")
    assert "`f`" not in str(info.value)


def test_progress_callable_is_called():
    seen = []
    gpucheck.check_gradient(sq, X, 2 * X, progress=lambda d, t: seen.append((d, t)), backend="cpu")
    assert seen and seen[-1][0] == seen[-1][1]


@pytest.mark.parametrize("param,match", [
    ([[1.0, 2.0], [3.0]], "ragged"),
    ({"a": 1}, "dict"),
    (["a", "b"], "dtype <U1"),
])
def test_kernel_params_are_validated(param, match):
    with pytest.raises(GpuCheckError, match=rf"`params\[0\]` must be a numeric array.*{match}"):
        gpucheck.kernel(lambda x, p: 0.0, param)


def test_kernel_params_accept_other_array_types():
    k = gpucheck.kernel(lambda x, p: 0.0, [1.0, 2.0], np.arange(3))
    assert [p.dtype for p in k.params] == [np.float64, np.int64]
    assert all(p.flags.c_contiguous for p in k.params)
