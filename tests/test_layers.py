"""Built-in layers: delta evaluation agrees with the full forward and with float64 NumPy,
their reference gradients are right, and checks through the delta path pass correct
gradients and fail 1% single-entry bugs (cpu backend; the simulator session runs the
CUDA kernels in tests/test_cudasim_delta.py)."""

from __future__ import annotations

import numpy as np
import pytest

import gpucheck
from delta_cases import layer_cases
from gpucheck import GpuCheckError, layers
from gpucheck.backends import cpu
from gpucheck.functions import as_function

DTYPES = ["float32", "float64"]
NAMES = [name for name, _, _ in layer_cases("float64")]


def case(name, dtype, seed=0):
    for n, layer, x in layer_cases(dtype, seed):
        if n == name:
            return layer, x
    raise KeyError(name)


def perturbations(x, seed=0, count=40):
    """Random single-entry perturbations of x of several sizes, plus the base point."""
    rng = np.random.default_rng(seed)
    flat = x.reshape(-1).astype(np.float64)
    idx = rng.integers(0, x.size, count)
    step = rng.choice([-0.3, -1e-2, -1e-4, 1e-4, 1e-2, 0.3], count) * np.maximum(1.0, abs(flat[idx]))
    vals = (flat[idx] + step).astype(x.dtype)
    return np.concatenate([[0], idx]).astype(np.int64), np.concatenate([flat[:1].astype(x.dtype), vals])


def reference(layer, x, idx, vals):
    """f at each point by the layer's own forward in float64, one point at a time."""
    out = np.empty(idx.size)
    x64 = x.astype(np.float64)
    for p in range(idx.size):
        z = x64.copy()
        z.reshape(-1)[idx[p]] = vals[p]
        out[p] = float(layer.f(z))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_delta_values_match_the_float64_forward(name, dtype):
    # the delta path computes in float64 from the values x's dtype holds: it
    # must agree with the forward run in float64 on those values to float64
    # rounding, whatever the perturbation
    layer, x = case(name, dtype)
    idx, vals = perturbations(x)
    got = cpu.evaluate(as_function(layer), x, idx, vals).values
    want = reference(layer, x, idx, vals)
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * scale)
    assert got[0] == layer.evaluator.prepare(x)[0]  # the base point is f(x) exactly


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_delta_and_full_paths_agree(name, dtype):
    layer, x = case(name, dtype)
    idx, vals = perturbations(x, seed=1)
    delta = cpu.evaluate(as_function(layer), x, idx, vals).values
    full_func = as_function(layer.full())
    assert full_func.kind in ("kernel", "batched")
    full = cpu.evaluate(full_func, x, idx, vals).values
    # the full forward rounds in x's dtype: allow a few units per term
    u = float(np.finfo(x.dtype).eps)
    scale = max(1.0, float(np.max(np.abs(delta))))
    assert np.max(np.abs(delta - full)) <= 64 * x.size * u * scale


@pytest.mark.parametrize("name", NAMES)
def test_reference_gradient_matches_finite_differences(name):
    # independent of the delta path: central differences of the float64
    # forward, one call per point
    layer, x = case(name, "float64")
    g = gpucheck.numerical_gradient(layer.f, x, backend="cpu")
    np.testing.assert_allclose(layer.grad(x), g, rtol=1e-6, atol=1e-8 * np.max(np.abs(g)))


def _planted(g, where):
    m = np.abs(g)
    if where == "largest":
        j = int(np.argmax(m))
    else:  # a typical entry: the upper median
        j = int(np.argsort(m, axis=None, kind="stable")[m.size // 2])
    bad = g.copy()
    bad.flat[j] += 0.01 * m.max()
    return bad, np.unravel_index(j, g.shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_check_through_delta_path_passes_and_catches_one_percent_bugs(name, dtype):
    for seed in (0, 1):
        layer, x = case(name, dtype, seed)
        g = layer.grad(x)
        r = gpucheck.check_gradient(layer, x, g, backend="cpu")
        assert r.status == "pass", (seed, r.summary(), r.worst[0])
        for where in ("largest", "typical"):
            bad, j = _planted(g, where)
            rb = gpucheck.check_gradient(layer, x, bad, backend="cpu")
            assert rb.status == "fail", (seed, where, rb.summary())
            assert rb.element_status[j] == "fail"


def test_delta_is_the_default_and_delta_false_forces_the_full_forward():
    layer, x = case("dense_mse", "float32")
    assert as_function(layer).kind == "layer"
    assert as_function(layers.dense(np.ones((2, 3)), np.ones((2, 2)), delta=False)).kind == "kernel"
    assert as_function(layers.softmax_cross_entropy([0, 1], delta=False)).kind == "batched"
    r = gpucheck.check_gradient(layer.full(), x, layer.grad, backend="cpu")
    assert r.status == "pass"


def test_a_layer_is_accepted_wherever_f_is():
    layer, x = case("mse", "float64")
    g = gpucheck.numerical_gradient(layer, x, backend="cpu")
    np.testing.assert_allclose(g, layer.grad(x), rtol=1e-7, atol=1e-8)
    assert gpucheck.sweep(layer, x, layer.grad(x), backend="cpu").regime in ("roundoff", "balanced")
    from gpucheck.compare import compare

    assert compare(layer, x, backends=["cpu"], repeat=1).agree
    assert float(layer(x)) == float(layer.f(x))


def test_a_layer_is_not_wrapped_again():
    layer, _ = case("mse", "float64")
    for wrap in (gpucheck.batched, gpucheck.kernel, gpucheck.rowwise):
        with pytest.raises(GpuCheckError, match="is a built-in layer"):
            wrap(layer)


def test_gpucheck_layers_is_importable_both_ways():
    import gpucheck.layers as gl

    assert gpucheck.layers is gl and callable(gpucheck.layers.mse)
    from gpucheck.layers import LAYERS, Layer, dense, mse  # noqa: F401

    assert set(LAYERS) <= set(layers.REGISTRY)


def test_mse_reductions_and_the_forum_loss():
    rng = np.random.default_rng(0)
    T, X = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    sse = float(np.sum((X - T) ** 2))
    assert np.isclose(layers.mse(T).f(X), sse / 4)
    assert np.isclose(layers.mse(T, reduction="sum", scale=3.0).f(X), 3 * sse)
    half_mean = layers.mse(T, reduction="mean", scale=0.5)
    assert np.isclose(half_mean.f(X), 0.5 * np.mean((X - T) ** 2))
    np.testing.assert_allclose(half_mean.grad(X), (X - T) / X.size)


def _conv_loops(x, w, stride, pad):
    """Direct-loop cross-correlation, the independent reference."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh = (h + 2 * pad[0] - kh) // stride[0] + 1
    ow = (wd + 2 * pad[1] - kw) // stride[1] + 1
    y = np.zeros((n, o, oh, ow))
    for a in range(n):
        for b in range(o):
            for i in range(oh):
                for j in range(ow):
                    patch = xp[a, :, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
                    y[a, b, i, j] = np.sum(patch * w[b])
    return y


def test_conv2d_forward_matches_direct_loops():
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(2, 3, 7, 6)), rng.normal(size=(4, 3, 3, 2))
    for stride, pad in [((1, 1), (0, 0)), ((2, 3), (1, 2)), ((2, 1), (2, 0))]:
        y = _conv_loops(x, w, stride, pad)
        cot = rng.normal(size=y.shape)
        by_input = layers.conv2d(weight=w, cotangent=cot, stride=stride, padding=pad)
        by_weight = layers.conv2d(inputs=x, cotangent=cot, stride=stride, padding=pad)
        assert np.isclose(by_input.f(x), np.sum(cot * y))
        assert np.isclose(by_weight.f(w), np.sum(cot * y))


def test_attention_forward_matches_a_plain_implementation():
    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), rng.normal(size=(5, 2))
    s = q @ k.T / 2.0
    p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    t = rng.normal(size=(3, 2))
    layer = layers.attention(k=k, v=v, target=t, reduction="sum")
    assert np.isclose(layer.f(q), np.sum((p @ v - t) ** 2))


def test_layers_reject_points_of_the_wrong_shape():
    layer, x = case("dense_mse", "float64")
    with pytest.raises(GpuCheckError, match=r"`x` must be weights of shape \(6, 5\)"):
        gpucheck.check_gradient(layer, x.T, x.T, backend="cpu")
    with pytest.raises(GpuCheckError, match="target's shape"):
        gpucheck.check_gradient(layers.mse(np.zeros((2, 3))), np.zeros((3, 2)), np.zeros((3, 2)),
                                backend="cpu")
    conv = layers.conv2d(weight=np.ones((2, 3, 3, 3)), cotangent=np.ones((1, 2, 2, 2)))
    with pytest.raises(GpuCheckError, match="`cotangent` must have the shape of the output"):
        conv.f(np.ones((1, 3, 5, 5)))
    with pytest.raises(GpuCheckError, match="input channels"):
        conv.f(np.ones((1, 2, 4, 4)))


@pytest.mark.parametrize("call,match", [
    (lambda: layers.mse(np.zeros((2, 2)), reduction="avg"), "`reduction` must be one of"),
    (lambda: layers.mse(np.zeros((2, 2)), scale=np.inf), "`scale` must be finite"),
    (lambda: layers.mse([]), "`target` must be a non-empty"),
    (lambda: layers.softmax_cross_entropy([0.5, 1.0]), "`labels` must be an integer array"),
    (lambda: layers.dense(np.ones((3, 2))), "exactly one of `target`"),
    (lambda: layers.dense(np.ones((3, 2)), np.ones((4, 2))), "must share B"),
    (lambda: layers.dense(np.ones((3, 2)), labels=[0, 1, 5], bias=np.ones(4)), "go up to 5"),
    (lambda: layers.layer_norm(np.ones(3), eps=-1.0), "`eps` must be non-negative"),
    (lambda: layers.conv2d(weight=np.ones((1, 1, 1, 1))), "exactly one of `cotangent`"),
    (lambda: layers.conv2d(cotangent=np.ones((1, 1, 1, 1))), "exactly one of `weight`"),
    (lambda: layers.conv2d(weight=np.ones((1, 1, 1, 1)), target=np.ones((1, 1, 1, 1)),
                           stride=0), "`stride` must be an integer >= 1"),
    (lambda: layers.attention(q=np.ones((2, 2)), cotangent=np.ones((2, 2))), "exactly two of"),
    (lambda: layers.attention(q=np.ones((2, 3)), k=np.ones((4, 2)), cotangent=np.ones((2, 2))),
     "do not fit"),
    (lambda: layers.mse(np.zeros(2), delta="no"), "`delta` must be True or False"),
])
def test_bad_layer_arguments_name_the_rule(call, match):
    with pytest.raises(GpuCheckError, match=match):
        call()


def test_registry_builds_every_layer_by_name():
    rng = np.random.default_rng(4)
    arrays = {
        "mse": dict(target=rng.normal(size=(2, 3))),
        "softmax_cross_entropy": dict(labels=np.array([1, 0])),
        "dense": dict(inputs=rng.normal(size=(4, 3)), labels=np.array([0, 1, 1, 0]),
                      bias=np.zeros(2)),
        "layer_norm": dict(weights=rng.normal(size=3), eps=1e-3),
        "conv2d": dict(inputs=rng.normal(size=(1, 2, 4, 4)), cotangent=rng.normal(size=(1, 3, 2, 2)),
                       stride=2),
        "attention": dict(q=rng.normal(size=(2, 3)), v=rng.normal(size=(4, 2)),
                          target=rng.normal(size=(2, 2))),
        "tanh_sum": dict(weights=rng.normal(size=(2, 3))),
        "logsumexp": dict(scale=2.0),
    }
    assert set(arrays) == set(layers.REGISTRY)
    for name, kw in arrays.items():
        layer = layers.build(name, **kw)
        assert isinstance(layer, layers.Layer) and layer.name.startswith(name.split("_")[0])
        info = layers.REGISTRY[name]
        assert info.usage().startswith(f"{name}: x = ")
        assert set(kw) <= set(info.arrays) | set(info.options)
    assert not layers.build("mse", target=np.ones(2), delta=False).delta
    assert layers.build("attention", q=np.ones((2, 3)), v=np.ones((4, 2)),
                        cotangent=np.ones((2, 2))).shape == (4, 3)


@pytest.mark.parametrize("kw,match", [
    (dict(), r"needs inputs \(got none\)"),
    (dict(inputs=np.ones((2, 2))), r"needs one of target, labels \(got none\)"),
    (dict(inputs=np.ones((2, 2)), target=np.ones((2, 2)), labels=np.zeros(2, int)),
     r"needs one of target, labels \(got target, labels\)"),
    (dict(inputs=np.ones((2, 2)), target=np.ones((2, 2)), weights=np.ones(2)),
     "does not take weights"),
])
def test_registry_names_what_is_missing_or_extra(kw, match):
    with pytest.raises(GpuCheckError, match=match):
        layers.build("dense", **kw)
    with pytest.raises(GpuCheckError, match="`layer` must be one of 'mse'"):
        layers.build("relu")
