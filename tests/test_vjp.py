"""Vector-valued f: check_vjp and check_jvp against independent float64 references."""

from __future__ import annotations

import numpy as np
import pytest

import gpucheck
from gpucheck import GpuCheckError

RNG = np.random.default_rng(7)
A = RNG.normal(size=(6, 4))
B = RNG.normal(size=(6,))


def layer(x):
    """R^(4,) -> R^(6,): softplus(A x + B)."""
    return np.log1p(np.exp(A @ x + B))


def layer_vjp(x, c):
    s = 1 / (1 + np.exp(-(A @ x + B)))
    return A.T @ (c * s)


def layer_jvp(x, t):
    s = 1 / (1 + np.exp(-(A @ x + B)))
    return s * (A @ t)


X = RNG.normal(size=4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_correct_vjp_passes(dtype):
    x = X.astype(dtype)
    r = gpucheck.check_vjp(layer, x, layer_vjp, cotangents=3, backend="cpu")
    assert r.status == "pass", r
    assert r.cotangents == 3 and r.numeric.shape == (3, 4) and r.dtype == np.dtype(dtype).name


def test_numeric_part_is_the_gradient_of_each_contraction():
    seen = []

    def vjp(x, c):
        seen.append(np.array(c, dtype=np.float64))
        return layer_vjp(x, c)

    r = gpucheck.check_vjp(layer, X, vjp, cotangents=2, backend="cpu")
    assert len(seen) == 2 and seen[0].shape == (6,)
    h = 1e-6
    for j, c in enumerate(seen):
        ref = np.array([(c @ layer(X + h * e) - c @ layer(X - h * e)) / (2 * h) for e in np.eye(4)])
        np.testing.assert_allclose(r.numeric[j], ref, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(r.analytic[j], layer_vjp(X, c), rtol=1e-12)


def test_one_percent_off_in_one_entry_of_the_backward_fails():
    def vjp(x, c):
        g = layer_vjp(x, c)
        g[2] *= 1.01
        return g

    r = gpucheck.check_vjp(layer, X, vjp, backend="cpu")
    assert r.status == "fail"
    assert {w.index for w in r.worst if w.status == "fail"} == {(2,)}
    assert r.worst[0].cotangent in (0, 1) and r.worst[0].label.startswith("(2,) (cotangent ")


def test_transposed_jacobian_fails():
    M = RNG.normal(size=(4, 4))
    f = lambda x: np.tanh(M @ x)  # noqa: E731
    right = lambda x, c: M.T @ (c * (1 - np.tanh(M @ x) ** 2))  # noqa: E731
    wrong = lambda x, c: M @ (c * (1 - np.tanh(M @ x) ** 2))  # noqa: E731
    assert gpucheck.check_vjp(f, X, right, backend="cpu").passed
    assert gpucheck.check_vjp(f, X, wrong, backend="cpu").status == "fail"


def test_several_inputs_and_a_matrix_output():
    rng = np.random.default_rng(2)
    xin = rng.normal(size=(5, 3))
    params = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}

    def f(p):  # (5, 2) output
        return np.tanh(xin @ p["W"] + p["b"])

    def vjp(p, c):
        d = c * (1 - f(p) ** 2)
        return {"W": xin.T @ d, "b": d.sum(0)}

    r = gpucheck.check_vjp(f, params, vjp, backend="cpu")
    assert r.passed, r
    assert [v.name for v in r.inputs] == ["W", "b"]
    assert r.split("numeric")["W"].shape == (2, 3, 2)

    def vjp_bad(p, c):
        g = vjp(p, c)
        g["b"] = g["b"] * 0.0
        return g

    bad = gpucheck.check_vjp(f, params, vjp_bad, backend="cpu")
    assert bad.status == "fail"
    assert {v.name: v.status for v in bad.inputs} == {"W": "pass", "b": "fail"}
    assert bad.worst[0].input == "b"


def test_batched_vector_valued_f():
    fb = gpucheck.batched(lambda xs: np.log1p(np.exp(xs @ A.T + B)))
    r = gpucheck.check_vjp(fb, X, layer_vjp, cotangents=2, backend="cpu")
    assert r.passed
    plain = gpucheck.check_vjp(layer, X, layer_vjp, cotangents=2, backend="cpu")
    np.testing.assert_allclose(r.numeric, plain.numeric, rtol=1e-8, atol=1e-10)


def test_tuple_inputs_vjp_takes_the_cotangent_last():
    def f(a, b):
        return np.array([a @ b, np.sum(a ** 2)])

    def vjp(a, b, c):
        return c[0] * b + 2 * a * c[1], c[0] * a

    r = gpucheck.check_vjp(f, (np.arange(3.0), np.ones(3)), vjp, backend="cpu")
    assert r.passed and [v.name for v in r.inputs] == ["input 0", "input 1"]


def test_jvp_correct_and_wrong():
    assert gpucheck.check_jvp(layer, X, layer_jvp, backend="cpu").passed

    def wrong(x, t):
        out = layer_jvp(x, t)
        return out * np.array([1, 1, 1, 1, 1, 1.02])

    assert gpucheck.check_jvp(layer, X, wrong, backend="cpu").status == "fail"


def test_jvp_with_several_inputs_takes_tangents_in_x_structure():
    def f(p):
        return np.array([p["a"][0] * p["b"], np.sin(p["a"][1])])

    def jvp(p, t):
        return np.array([t["a"][0] * p["b"] + p["a"][0] * t["b"], np.cos(p["a"][1]) * t["a"][1]])

    x = {"a": np.array([0.3, 0.7]), "b": np.array(2.0)}
    r = gpucheck.check_jvp(f, x, jvp, backend="cpu")
    assert r.passed, r


def test_scalar_output_works_too():
    r = gpucheck.check_vjp(lambda x: np.sum(x ** 2), X, lambda x, c: 2 * x * c, backend="cpu")
    assert r.passed


@pytest.mark.parametrize("kwargs,match", [
    ({"cotangents": 0}, "`cotangents` must be a positive integer"),
    ({"seed": "a"}, "`seed` must be an integer"),
    ({"eps": -1.0}, "`eps` must be positive"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(GpuCheckError, match=match):
        gpucheck.check_vjp(layer, X, layer_vjp, backend="cpu", **kwargs)


def test_bad_functions():
    with pytest.raises(GpuCheckError, match="kernel function returns one float"):
        gpucheck.check_vjp(gpucheck.kernel(lambda x: 0.0), X, layer_vjp, backend="cpu")
    with pytest.raises(GpuCheckError, match=r"`vjp\(x, c\)` must have x's shape \(4,\)"):
        gpucheck.check_vjp(layer, X, lambda x, c: c, backend="cpu")
    with pytest.raises(GpuCheckError, match="non-empty float array"):
        gpucheck.check_vjp(lambda x: np.array([1, 2]), X, layer_vjp, backend="cpu")
    with pytest.raises(GpuCheckError, match="`vjp` must be callable"):
        gpucheck.check_vjp(layer, X, None, backend="cpu")
    with pytest.raises(GpuCheckError, match=r"`jvp\(x, t\)` must return f's output shape"):
        gpucheck.check_jvp(layer, X, lambda x, t: t, backend="cpu")
    with pytest.raises(GpuCheckError, match=r"raised ZeroDivisionError at test_vjp.py:\d+"):
        gpucheck.check_vjp(layer, X, lambda x, c: 1 / 0, backend="cpu")

    def changes_shape(x):
        return layer(x) if x[0] == X[0] else layer(x)[:3]

    with pytest.raises(GpuCheckError, match="output shape"):
        gpucheck.check_vjp(changes_shape, X, layer_vjp, backend="cpu")


@pytest.mark.cudasim
@pytest.mark.skipif(__import__("os").environ.get("NUMBA_ENABLE_CUDASIM") != "1",
                    reason="needs NUMBA_ENABLE_CUDASIM=1 (run: NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim)")
def test_batched_vjp_on_the_simulator_backend_agrees_with_cpu():
    fb = gpucheck.batched(lambda xs: np.log1p(np.exp(xs @ A.T + B)))
    sim = gpucheck.check_vjp(fb, X, layer_vjp, backend="cudasim")
    cpu = gpucheck.check_vjp(fb, X, layer_vjp, backend="cpu")
    assert sim.passed and sim.backend == "cudasim"
    np.testing.assert_allclose(sim.numeric, cpu.numeric, rtol=1e-9, atol=1e-12)
