"""Several inputs: tuple, list and dict of arrays, per-input verdicts, names, every form of f."""

from __future__ import annotations

import os

import numpy as np
import pytest

import gpucheck
from gpucheck import GpuCheckError
from gpucheck.validate import inputs as flatten

SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


# ----------------------------------------------------------- a two-layer MLP

def mlp_problem(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(8, 4)).astype(dtype)
    Y = rng.normal(size=(8, 3)).astype(dtype)
    params = {"W1": rng.normal(size=(4, 5)).astype(dtype) * 0.5,
              "b1": rng.normal(size=5).astype(dtype) * 0.1,
              "W2": rng.normal(size=(5, 3)).astype(dtype) * 0.5,
              "b2": rng.normal(size=3).astype(dtype) * 0.1}

    def loss(p):
        h = np.tanh(X @ p["W1"] + p["b1"])
        return np.mean((h @ p["W2"] + p["b2"] - Y) ** 2)

    def backward(p):
        z = X @ p["W1"] + p["b1"]
        h = np.tanh(z)
        d_out = 2 * (h @ p["W2"] + p["b2"] - Y) / Y.size
        d_z = (d_out @ p["W2"].T) * (1 - h ** 2)
        return {"W1": X.T @ d_z, "b1": d_z.sum(0), "W2": h.T @ d_out, "b2": d_out.sum(0)}

    return loss, params, backward


def central_fd(fun, arrays, h=1e-6):
    """Independent float64 reference: plain central differences, one entry at a time."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    out = []
    for k, a in enumerate(arrays):
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            plus = [b.copy() for b in arrays]
            minus = [b.copy() for b in arrays]
            plus[k][i] += h
            minus[k][i] -= h
            g[i] = (fun(*plus) - fun(*minus)) / (2 * h)
        out.append(g)
    return out


def test_mlp_with_a_dict_of_four_parameters_passes():
    loss, params, backward = mlp_problem()
    r = gpucheck.check_gradient(loss, params, backward(params), backend="cpu")
    assert r.status == "pass", r
    assert [v.name for v in r.inputs] == ["W1", "b1", "W2", "b2"]
    assert [v.shape for v in r.inputs] == [(4, 5), (5,), (5, 3), (3,)]
    assert all(v.status == "pass" for v in r.inputs)
    assert r.numeric.shape == (20 + 5 + 15 + 3,)


def test_a_bug_in_one_parameter_is_named_there():
    loss, params, backward = mlp_problem()
    g = backward(params)
    g["b1"] = g["b1"] * 2  # a factor of two in one bias
    r = gpucheck.check_gradient(loss, params, g, backend="cpu")
    assert r.status == "fail"
    by_name = {v.name: v for v in r.inputs}
    assert by_name["b1"].status == "fail" and by_name["b1"].n_failed == 5
    assert all(by_name[k].status == "pass" for k in ("W1", "W2", "b2"))
    assert r.worst[0].input == "b1" and r.worst[0].label.startswith("b1[")
    assert "b1: constant factor" in r.diagnosis
    text = str(r)
    assert "b1[" in text and "per input:" in text


def test_one_percent_of_one_entry_is_caught_and_located():
    loss, params, backward = mlp_problem()
    g = backward(params)
    g["W2"][3, 1] *= 1.01
    r = gpucheck.check_gradient(loss, params, g, backend="cpu")
    assert r.status == "fail"
    assert (r.worst[0].input, r.worst[0].index) == ("W2", (3, 1))
    assert r.worst[0].label == "W2[3, 1]"
    assert r.n_failed == 1


def test_tuple_is_passed_as_separate_arguments_and_named_by_position():
    loss, params, backward = mlp_problem()
    order = ("W1", "b1", "W2", "b2")
    seen = []

    def f(W1, b1, W2, b2):
        seen.append((W1.shape, b1.shape, W2.shape, b2.shape))
        return loss(dict(zip(order, (W1, b1, W2, b2))))

    g = backward(params)
    bad = [g[k].copy() for k in order]
    bad[2][0, 0] += 1.0
    r = gpucheck.check_gradient(f, tuple(params[k] for k in order), bad, backend="cpu")
    assert seen[0] == ((4, 5), (5,), (5, 3), (3,))
    assert r.status == "fail"
    assert [v.name for v in r.inputs] == ["input 0", "input 1", "input 2", "input 3"]
    assert r.worst[0].label == "input 2[0, 0]"
    # a list works the same way, and grads may be a tuple for a list x
    r2 = gpucheck.check_gradient(f, [params[k] for k in order], tuple(g[k] for k in order),
                                 backend="cpu")
    assert r2.passed, r2


def test_numerical_gradient_returns_x_structure_and_matches_plain_differences():
    loss, params, _ = mlp_problem()
    order = list(params)
    got = gpucheck.numerical_gradient(loss, params, backend="cpu")
    assert isinstance(got, dict) and list(got) == order
    want = central_fd(lambda *a: loss(dict(zip(order, a))), [params[k] for k in order])
    for k, w in zip(order, want):
        assert got[k].shape == params[k].shape and got[k].dtype == np.float64
        np.testing.assert_allclose(got[k], w, rtol=1e-6, atol=1e-8)
    tup = gpucheck.numerical_gradient(lambda a, b: float(np.sum(a * b ** 2)),
                                      (np.ones(2), np.arange(3.0)[:, None] * np.ones((3, 2))))
    assert isinstance(tup, tuple) and tup[0].shape == (2,) and tup[1].shape == (3, 2)


def test_results_split_per_input():
    loss, params, backward = mlp_problem()
    r = gpucheck.check_gradient(loss, params, backward(params), backend="cpu")
    parts = r.split("analytic")
    for k, v in backward(params).items():
        np.testing.assert_array_equal(parts[k], v)
    assert r.split("element_status")["b2"].shape == (3,)
    d = r.to_dict()
    assert [i["name"] for i in d["inputs"]] == ["W1", "b1", "W2", "b2"]


def test_batched_f_gets_a_batch_of_each_input():
    loss, params, backward = mlp_problem()
    X = np.random.default_rng(0).normal(size=(8, 4))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 4))
    Y = rng.normal(size=(8, 3))
    shapes = []

    @gpucheck.batched
    def fb(p):
        shapes.append(p["W1"].shape[0])
        h = np.tanh(np.einsum("ni,bij->bnj", X, p["W1"]) + p["b1"][:, None, :])
        out = np.einsum("bnj,bjk->bnk", h, p["W2"]) + p["b2"][:, None, :]
        return np.mean((out - Y) ** 2, axis=(1, 2))

    r = gpucheck.check_gradient(fb, params, backward(params), backend="cpu")
    assert r.passed, r
    assert max(shapes) > 1


def test_kernel_function_of_several_inputs_with_params():
    def loss(W, b, c, t):  # c is a 0-d input: it arrives as a 1-element array
        s = 0.0
        for i in range(W.shape[0]):
            z = c[0]
            for j in range(W.shape[1]):
                z += W[i, j] * b[j]
            d = z - t[i]
            s += d * d
        return s

    rng = np.random.default_rng(3)
    W, b, t = rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=3)
    c = np.array(0.5)
    z = W @ b + c - t
    grads = [2 * np.outer(z, b), 2 * W.T @ z, np.array(2 * z.sum())]
    r = gpucheck.check_gradient(gpucheck.kernel(loss, t), (W, b, c), grads, backend="cpu")
    assert r.passed, r
    assert [v.shape for v in r.inputs] == [(3, 4), (4,), ()]
    grads[0] = grads[0].T.copy().T
    grads[0][1, 2] = -grads[0][1, 2]
    r = gpucheck.check_gradient(gpucheck.kernel(loss, t), (W, b, c), grads, backend="cpu")
    assert r.status == "fail" and r.worst[0].label == "input 0[1, 2]"


def test_kernel_wrapper_is_cached_across_checks():
    def loss(a, b):
        s = 0.0
        for i in range(a.shape[0]):
            s += a[i] * b[i, 0]
        return s

    a, b = np.ones(3), np.ones((3, 1))
    r1 = gpucheck.check_gradient(gpucheck.kernel(loss), (a, b), (b[:, 0], a[:, None]), backend="cpu")
    r2 = gpucheck.check_gradient(gpucheck.kernel(loss), (a, b), (b[:, 0], a[:, None]), backend="cpu")
    assert r1.passed and r2.passed
    assert r2.compile_seconds == 0.0


def test_kernel_function_refuses_a_dict():
    def loss(a):
        return a[0]

    with pytest.raises(GpuCheckError, match="tuple or list"):
        gpucheck.check_gradient(gpucheck.kernel(loss), {"a": np.ones(2)}, {"a": np.ones(2)},
                                backend="cpu")


def test_sweep_with_several_inputs():
    loss, params, backward = mlp_problem()
    s = gpucheck.sweep(loss, params, backward(params), eps=[1e-6, 1e-4, 1e-2], backend="cpu")
    assert s.regime in ("balanced", "truncation", "roundoff")
    g = backward(params)
    g["W1"] = -g["W1"]
    assert gpucheck.sweep(loss, params, g, eps=[1e-6, 1e-4, 1e-2], backend="cpu").regime == "bug"


def test_eps_per_input_structure():
    f = lambda a, b: float(np.sum(a ** 3) + np.sum(b ** 3))  # noqa: E731
    a, b = np.linspace(0.5, 1, 3), np.linspace(1, 2, 2)
    r = gpucheck.check_gradient(f, (a, b), (3 * a ** 2, 3 * b ** 2),
                                eps=(np.full(3, 1e-5), 1e-4), backend="cpu")
    assert r.passed
    np.testing.assert_allclose(r.split("eps")["input 0"], 1e-5, rtol=1e-3)


def test_mixed_dtypes_are_rejected_with_the_fix():
    with pytest.raises(GpuCheckError, match="share one dtype") as info:
        gpucheck.check_gradient(lambda a, b: 0.0, (np.ones(2), np.ones(2, np.float32)),
                                (np.ones(2), np.ones(2)), backend="cpu")
    assert "float32" in str(info.value) and "convert" in str(info.value)


@pytest.mark.parametrize("grad,match", [
    ((np.ones(2),), "tuple or list of 2 arrays"),
    ({"a": np.ones(2)}, "tuple or list"),
    ((np.ones(2), np.ones(3)), r"input 1's shape \(2,\)"),
])
def test_grad_structure_must_match(grad, match):
    with pytest.raises(GpuCheckError, match=match):
        gpucheck.check_gradient(lambda a, b: float(a @ b), (np.ones(2), np.ones(2)), grad,
                                backend="cpu")


def test_dict_grad_keys_must_match():
    x = {"w": np.ones(2), "b": np.ones(1)}
    with pytest.raises(GpuCheckError, match=r"missing \['b'\]; unexpected \['c'\]"):
        gpucheck.check_gradient(lambda p: 0.0, x, {"w": np.ones(2), "c": np.ones(1)}, backend="cpu")
    # any key order is fine
    r = gpucheck.check_gradient(lambda p: float(p["w"].sum() * p["b"][0]), x,
                                {"b": np.array([2.0]), "w": np.ones(2)}, backend="cpu")
    assert r.passed


@pytest.mark.parametrize("x,match", [
    ({}, "empty dict"),
    ({1: np.ones(2)}, "str keys"),
    ((np.ones(2), 3.0), "arrays only"),
    ((np.ones(2), np.ones(2, dtype=np.int64)), r"`x\[1\]` must be float64, float32, float16 or bfloat16"),
    ({"w": np.array([1.0, np.nan])}, r"`x\['w'\]` must be finite"),
])
def test_bad_structures(x, match):
    with pytest.raises(GpuCheckError, match=match):
        gpucheck.check_gradient(lambda *a: 0.0, x, x, backend="cpu")


def test_a_list_of_numbers_is_still_one_array():
    s, point = flatten([[1.0, 2.0], [3.0, 4.0]])
    assert s.single and point.shape == (2, 2)
    r = gpucheck.check_gradient(lambda v: float(np.sum(v ** 2)), [1.0, 2.0], [2.0, 4.0], backend="cpu")
    assert r.passed and not r.inputs


def test_callable_grad_takes_the_inputs_like_f():
    loss, params, backward = mlp_problem()
    r = gpucheck.check_gradient(loss, params, backward, backend="cpu")
    assert r.passed
    r = gpucheck.check_gradient(lambda a, b: float(a @ b), (np.ones(2), np.arange(2.0)),
                                lambda a, b: (b, a), backend="cpu")
    assert r.passed


def test_f_cannot_corrupt_later_points_through_an_input_view():
    def f(a, b):
        out = float(np.sum(a ** 2) + np.sum(b ** 2))
        a[...] = 0.0  # writes into its argument
        return out

    a, b = np.arange(1.0, 4.0), np.arange(2.0)
    r = gpucheck.check_gradient(f, (a, b), (2 * a, 2 * b), backend="cpu")
    assert r.passed, r

    @gpucheck.batched
    def fb(a, b):
        out = np.sum(a ** 2, axis=1) + np.sum(b ** 2, axis=1)
        b[...] = 7.0
        return out

    with pytest.raises(GpuCheckError, match="modified its input"):
        gpucheck.check_gradient(fb, (a, b), (2 * a, 2 * b), backend="cpu")


def test_float32_inputs_are_evaluated_in_float32():
    seen = set()

    def f(a, b):
        seen.update({a.dtype, b.dtype})
        return np.sum(a * b)

    a, b = np.ones(3, np.float32), np.arange(3, dtype=np.float32)
    r = gpucheck.check_gradient(f, (a, b), (b, a), backend="cpu")
    assert seen == {np.dtype(np.float32)} and r.dtype == "float32" and r.passed


# --------------------------------------------------- CUDA paths of the wrapper

@pytest.mark.cudasim
@pytest.mark.skipif(not SIMULATING, reason="needs NUMBA_ENABLE_CUDASIM=1 (run: "
                    "NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim)")
def test_kernel_of_several_inputs_in_the_simulator_agrees_with_cpu():
    def loss(W, b, t):
        s = 0.0
        for i in range(W.shape[0]):
            z = 0.0
            for j in range(W.shape[1]):
                z += W[i, j] * b[j]
            d = z - t[i]
            s += d * d
        return s

    rng = np.random.default_rng(5)
    W, b, t = rng.normal(size=(2, 3)), rng.normal(size=3), rng.normal(size=2)
    z = W @ b - t
    grads = (2 * np.outer(z, b), 2 * W.T @ z)
    sim = gpucheck.check_gradient(gpucheck.kernel(loss, t), (W, b), grads, backend="cudasim")
    cpu = gpucheck.check_gradient(gpucheck.kernel(loss, t), (W, b), grads, backend="cpu")
    assert sim.passed and cpu.passed
    np.testing.assert_allclose(sim.numeric, cpu.numeric, rtol=1e-9, atol=1e-12)
    bad = (grads[0], grads[1] * np.array([1.0, 1.0, 1.02]))
    r = gpucheck.check_gradient(gpucheck.kernel(loss, t), (W, b), bad, backend="cudasim")
    assert r.status == "fail" and r.worst[0].label == "input 1[2]"


def _nvvm_missing():
    if SIMULATING:
        return "a simulator process cannot compile PTX"
    try:
        from gpucheck._cuda import cuda

        cuda.compile_ptx(lambda a: None, "void(float64[::1])", cc=(9, 0))
    except Exception as err:
        return f"cannot compile PTX here ({type(err).__name__}); pip install 'numba-cuda[cu13]'"
    return None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernel_wrapper_of_several_inputs_compiles_to_ptx(dtype):
    missing = _nvvm_missing()
    if missing:
        pytest.skip(missing)
    from gpucheck.functions import as_function
    from gpucheck.kernel_inputs import wrap_kernel
    from gpucheck.kernels import contract

    def loss(W, b, c, t):
        s = 0.0
        for i in range(W.shape[0]):
            z = c[0]
            for j in range(W.shape[1]):
                z += W[i, j] * b[j]
            s += (z - t[i]) ** 2
        return s

    structure, _ = flatten((np.zeros((3, 4), dtype), np.zeros(4, dtype), np.array(0.5, dtype)))
    fn = wrap_kernel(as_function(gpucheck.kernel(loss, np.zeros(3))), structure, "cuda").fn
    out = contract.ptx(fn, dtype, 1, [("float64", 1)], cc=(9, 0))
    assert ".entry" in out["evaluate"] and ".target sm_90" in out["evaluate"]
