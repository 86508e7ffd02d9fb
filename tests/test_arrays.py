"""The caller's array type: f gets torch tensors or JAX arrays when x came in as them.

Skipped, with the package to install, where torch or JAX is missing
(``pip install torch jax``; CI installs both CPU builds).
"""

from __future__ import annotations

import numpy as np
import pytest

import gpucheck
from gpucheck.arrays import NUMPY, array_type, library_of, to_engine


def numpy_reference(x, grad):
    r = gpucheck.check_gradient(lambda v: np.sum(np.sin(v) * v), x, grad, backend="cpu")
    assert r.passed
    return r


def test_numpy_needs_no_conversion():
    a = np.ones(3)
    assert array_type(a) is NUMPY and NUMPY.to_caller(a) is a
    assert library_of(3.0) == "other" and to_engine(3.0, a) == 3.0


# -------------------------------------------------------------------- torch

@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="needs torch: pip install torch")


def test_torch_callable_gets_tensors_and_results_are_numpy(torch):
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    grad = np.cos(x) * x + np.sin(x)
    seen = set()

    def f(v):
        seen.add(type(v))
        return torch.sum(torch.sin(v) * v)  # TypeError on NumPy

    r = gpucheck.check_gradient(f, torch.from_numpy(x), torch.from_numpy(grad), backend="cpu")
    assert seen == {torch.Tensor}
    assert r.passed and isinstance(r.numeric, np.ndarray) and r.numeric.dtype == np.float64
    # torch's sin and NumPy's may differ in the last bit: the same values within rounding
    ref = numpy_reference(x, grad)
    np.testing.assert_allclose(r.numeric, ref.numeric, rtol=0, atol=ref.tolerance.max())
    np.testing.assert_array_equal(r.eps, ref.eps)


def test_torch_batched_gets_a_batch_of_tensors(torch):
    x = torch.linspace(-1, 1, 5, dtype=torch.float32)
    shapes = []

    @gpucheck.batched
    def f(xs):
        assert isinstance(xs, torch.Tensor) and xs.dtype == torch.float32
        shapes.append(tuple(xs.shape))
        return (xs ** 3).sum(dim=1)

    r = gpucheck.check_gradient(f, x, lambda v: 3 * v ** 2, backend="cpu")
    assert r.passed and r.dtype == "float32"
    assert all(s[1:] == (5,) for s in shapes) and max(s[0] for s in shapes) > 1


def test_torch_requires_grad_inputs_and_outputs(torch):
    x = torch.randn(4, dtype=torch.float64, requires_grad=True)
    r = gpucheck.check_gradient(lambda v: (v * v).sum(), x, 2 * x)  # grad has requires_grad too
    assert r.passed


def test_torch_several_inputs_and_grad_callable(torch):
    W = torch.randn(3, 2, dtype=torch.float64)
    b = torch.randn(2, dtype=torch.float64)
    xin = torch.randn(4, 3, dtype=torch.float64)

    def loss(W, b):
        return torch.tanh(xin @ W + b).sum()

    def grad(W, b):
        d = 1 - torch.tanh(xin @ W + b) ** 2
        return xin.T @ d, d.sum(0)

    r = gpucheck.check_gradient(loss, (W, b), grad, backend="cpu")
    assert r.passed and [v.name for v in r.inputs] == ["input 0", "input 1"]
    ng = gpucheck.numerical_gradient(loss, (W, b), backend="cpu")
    assert all(isinstance(g, np.ndarray) for g in ng)


def test_torch_half_results_widen(torch):
    out = to_engine(torch.tensor([1.5, 2.0], dtype=torch.bfloat16), np.zeros(1))
    assert out.dtype == np.float32 and out.tolist() == [1.5, 2.0]


def test_torch_kernel_function_reads_numpy(torch):
    def sq(x):
        s = 0.0
        for i in range(x.shape[0]):
            s += x[i] * x[i]
        return s

    x = torch.arange(4, dtype=torch.float64)
    assert gpucheck.check_gradient(gpucheck.kernel(sq), x, 2 * x, backend="cpu").passed


# ---------------------------------------------------------------------- JAX

@pytest.fixture(scope="module")
def jnp():
    pytest.importorskip("jax", reason="needs jax: pip install jax")
    import jax.numpy as jnp

    return jnp


def test_jax_callable_and_batched_get_jax_arrays(jnp):
    import jax

    x = jnp.linspace(-1.0, 1.0, 6, dtype=jnp.float32).reshape(2, 3)
    grad = jnp.cos(x) * x + jnp.sin(x)
    seen = set()

    def f(v):
        seen.add(isinstance(v, jax.Array))
        return jnp.sum(jnp.sin(v) * v)

    r = gpucheck.check_gradient(f, x, grad, backend="cpu")
    assert seen == {True} and r.passed and r.dtype == "float32"
    fb = gpucheck.batched(jax.jit(lambda xs: jnp.sum(jnp.sin(xs) * xs, axis=(1, 2))))
    rb = gpucheck.check_gradient(fb, x, grad, backend="cpu")
    assert rb.passed
    # the same check through NumPy sees the same values up to float32 rounding
    xn = np.asarray(x)
    rn = gpucheck.check_gradient(lambda v: np.sum(np.sin(v) * v), xn, np.asarray(grad), backend="cpu")
    np.testing.assert_allclose(r.numeric, rn.numeric, rtol=0, atol=5 * rn.tolerance.max())


def test_jax_arrays_are_copies_not_views_of_gpucheck_buffers(jnp):
    kept = []

    def f(v):
        kept.append(v)
        return jnp.sum(v ** 2)

    x = jnp.arange(3.0, dtype=jnp.float32)
    gpucheck.check_gradient(f, x, 2 * x, backend="cpu")
    # every array f saw still holds the point it was called at: at most one entry moved
    base = np.asarray(x)
    assert all(np.count_nonzero(np.asarray(v) != base) <= 1 for v in kept)


def _row_sse(row, t):
    s = 0.0
    for j in range(row.shape[0]):
        d = row[j] - t[j]
        s += d * d
    return s


def test_torch_point_for_rowwise_and_layer_forms(torch):
    # compiled and built-in forms read gpucheck's NumPy copy of a torch point
    T = np.random.default_rng(0).normal(size=(4, 3))
    X = np.random.default_rng(1).normal(size=(4, 3))
    layer = gpucheck.layers.mse(T)
    assert gpucheck.check_gradient(layer, torch.tensor(X), layer.grad(X), backend="cpu").passed
    f = gpucheck.rowwise(_row_sse, T)
    assert gpucheck.check_gradient(f, torch.tensor(X), 2 * (X - T), backend="cpu").passed


def test_several_inputs_refused_for_rowwise_and_layers():
    T = np.zeros((4, 3))
    X = np.ones((4, 3))
    for f in (gpucheck.rowwise(_row_sse, T), gpucheck.layers.mse(T)):
        with pytest.raises(gpucheck.GpuCheckError, match="takes one array x"):
            gpucheck.check_gradient(f, (X, X), (X, X), backend="cpu")
