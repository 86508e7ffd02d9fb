"""gpucheck.torch and gpucheck.jax: a hand-written backward and a custom_vjp, checked.

Skipped, with the package to install, where torch or JAX is missing
(``pip install torch jax``; CI installs both CPU builds).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from gpucheck import GpuCheckError

# ---------------------------------------------------- without the libraries


@pytest.mark.parametrize("module,lib", [("gpucheck.torch", "torch"), ("gpucheck.jax", "jax")])
def test_a_missing_library_names_the_package_to_install(monkeypatch, module, lib):
    import importlib

    adapter = importlib.import_module(module)  # importing the adapter never imports its library
    monkeypatch.setitem(sys.modules, lib, None)
    if lib == "jax":
        monkeypatch.setitem(sys.modules, "jax.numpy", None)
    check = adapter.check_function if lib == "torch" else adapter.check_vjp
    with pytest.raises(GpuCheckError, match=rf"pip install {lib} \(or pip install 'gpucheck-grad\[{lib}\]'\)"):
        check(lambda x: x, np.ones(2))


# ------------------------------------------------------------------- torch


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="needs torch: pip install torch")


@pytest.fixture(scope="module")
def gtorch(torch):
    import gpucheck.torch

    return gpucheck.torch


def make_linear(torch, *, vmap: bool, bug: str = ""):
    """tanh(x @ W + b) with a hand-written backward; ``bug`` plants one."""

    class Linear(torch.autograd.Function):
        generate_vmap_rule = vmap

        @staticmethod
        def forward(x, W, b):
            return torch.tanh(x @ W + b)

        @staticmethod
        def setup_context(ctx, inputs, output):
            x, W, _ = inputs
            ctx.save_for_backward(x, W, output)

        @staticmethod
        def backward(ctx, g):
            x, W, y = ctx.saved_tensors
            d = g * (1 - y * y)
            gx, gW, gb = d @ W.T, x.T @ d, d.sum(0)
            if bug == "W":
                gW = gW.clone()
                gW[1, 0] = gW[1, 0] * 1.01
            if bug == "b":
                gb = -gb
            return gx, gW, gb

    return Linear


def linear_inputs(torch, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, dtype=dtype, generator=g)
    W = torch.randn(3, 2, dtype=dtype, generator=g, requires_grad=True)
    b = torch.randn(2, dtype=dtype, generator=g, requires_grad=True)
    return x, W, b


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("vmap", [True, False])
def test_torch_function_with_a_hand_written_backward_passes(torch, gtorch, dtype, vmap):
    x, W, b = linear_inputs(torch, getattr(torch, dtype))
    r = gtorch.check_function(make_linear(torch, vmap=vmap), x, W, b, backend="cpu")
    assert r.status == "pass", r
    # only the inputs that require grad are checked, named as torch.autograd.gradcheck does
    assert [v.name for v in r.inputs] == ["input 1", "input 2"]
    assert r.dtype == dtype


@pytest.mark.parametrize("bug,name", [("W", "input 1"), ("b", "input 2")])
def test_torch_planted_bugs_fail_in_the_right_input(torch, gtorch, bug, name):
    x, W, b = linear_inputs(torch, torch.float64)
    r = gtorch.check_function(make_linear(torch, vmap=True, bug=bug), x, W, b, backend="cpu")
    assert r.status == "fail"
    assert {v.name for v in r.inputs if v.status == "fail"} == {name}
    if bug == "W":
        assert r.worst[0].label.startswith("input 1[1, 0]")


def test_torch_without_requires_grad_checks_every_float_tensor(torch, gtorch):
    x, W, b = (t.detach() for t in linear_inputs(torch, torch.float64))
    r = gtorch.check_function(make_linear(torch, vmap=False), x, W, b, backend="cpu")
    assert r.passed and [v.name for v in r.inputs] == ["input 0", "input 1", "input 2"]


def test_torch_vmap_is_used_when_it_works_and_refused_when_it_cannot(torch, gtorch):
    x, W, b = linear_inputs(torch, torch.float64)
    calls = []

    def plain(x, W, b):
        calls.append(x.dim())
        return torch.tanh(x @ W + b)

    assert gtorch.check_function(plain, x, W, b, batch="vmap", backend="cpu").passed
    with pytest.raises(GpuCheckError, match="vmap cannot batch"):
        gtorch.check_function(make_linear(torch, vmap=False), x, W, b, batch="vmap", backend="cpu")
    with pytest.raises(GpuCheckError, match="`batch` must be one of"):
        gtorch.check_function(plain, x, W, b, batch="yes")


def test_torch_tuple_outputs_and_non_tensor_arguments(torch, gtorch):
    def f(x, scale, name):
        assert name == "label"
        return torch.sin(x) * scale, (x ** 2).sum()

    x = torch.linspace(-1, 1, 4, dtype=torch.float64, requires_grad=True)
    assert gtorch.check_function(f, x, 2.0, "label", backend="cpu").passed


def test_torch_output_without_autograd_is_an_error(torch, gtorch):
    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(GpuCheckError, match="no grad_fn"):
        gtorch.check_function(lambda v: v.detach() * 2, x, backend="cpu")
    with pytest.raises(GpuCheckError, match="at least one floating-point tensor"):
        gtorch.check_function(lambda v: v, torch.ones(3, dtype=torch.int64))


# --------------------------------------------------------------------- JAX


@pytest.fixture(scope="module")
def jax():
    return pytest.importorskip("jax", reason="needs jax: pip install jax")


@pytest.fixture(scope="module")
def gjax(jax):
    import gpucheck.jax

    return gpucheck.jax


def make_layer(jax, bug=False):
    jnp = jax.numpy

    @jax.custom_vjp
    def layer(W, b, x):
        return jnp.tanh(x @ W + b)

    def fwd(W, b, x):
        y = jnp.tanh(x @ W + b)
        return y, (W, x, y)

    def bwd(res, g):
        W, x, y = res
        d = g * (1 - y * y)
        gW = x.T @ d
        if bug:
            gW = gW.at[0, 1].multiply(1.01)
        return gW, d.sum(0), d @ W.T

    layer.defvjp(fwd, bwd)
    return layer


def layer_args(jax):
    jnp = jax.numpy
    W = jax.random.normal(jax.random.PRNGKey(0), (3, 2))
    b = jnp.array([0.1, -0.2])
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
    return W, b, x


@pytest.mark.parametrize("batch", ["auto", "none"])
def test_jax_custom_vjp_passes(jax, gjax, batch):
    r = gjax.check_vjp(make_layer(jax), *layer_args(jax), batch=batch, backend="cpu")
    assert r.status == "pass", r
    assert [v.name for v in r.inputs] == ["arg 0", "arg 1", "arg 2"]
    assert r.dtype == "float32"


def test_jax_custom_vjp_with_a_planted_bug_fails(jax, gjax):
    r = gjax.check_vjp(make_layer(jax, bug=True), *layer_args(jax), backend="cpu")
    assert r.status == "fail"
    assert {v.name: v.status for v in r.inputs} == {"arg 0": "fail", "arg 1": "pass", "arg 2": "pass"}
    assert r.worst[0].label.startswith("arg 0[0, 1]")


def test_jax_argnums_and_pytree_outputs(jax, gjax):
    jnp = jax.numpy

    def f(W, b, x):
        return {"y": jnp.tanh(x @ W + b), "s": jnp.sum(W ** 2)}

    r = gjax.check_vjp(f, *layer_args(jax), argnums=(0, 1), backend="cpu")
    assert r.passed and [v.name for v in r.inputs] == ["arg 0", "arg 1"]
    with pytest.raises(GpuCheckError, match="`argnums`"):
        gjax.check_vjp(f, *layer_args(jax), argnums=5)


def test_jax_numpy_arguments_become_jax_arrays(jax, gjax):
    seen = []

    def f(x):
        seen.append(type(x).__module__.split(".")[0])
        return jax.numpy.sin(x)

    r = gjax.check_vjp(f, np.linspace(0.1, 0.9, 3).astype(np.float32), batch="none", backend="cpu")
    assert r.passed and set(seen) <= {"jax", "jaxlib"}
