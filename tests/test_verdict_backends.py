"""Every path to f gives the same verdict: the CPU kernel loop, NumPy, and the CUDA kernels.

The normal session compares the compiled CPU loop of a kernel function
with the batched NumPy twin of the same loss; the simulator session
(``NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim``) runs the CUDA kernels and
the CUDA batched path in numba's simulator and compares them with the CPU
paths.  Correct gradients and 0.5% single-entry bugs, float32 and float64.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import corpus
import gpucheck

SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _verdicts(c, form, backend, seed):
    bad, _ = corpus.one_entry_bug(c.grad, 0.005, seed)
    out = []
    for g in (c.grad, bad):
        r = gpucheck.check_gradient(c.forms[form], c.x, g, backend=backend)
        out.append((r.status, tuple(np.flatnonzero(np.asarray(r.element_status).ravel() == "fail"))))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("builder", [corpus.mse, corpus.tanh, corpus.softmax_ce])
def test_cpu_kernel_loop_agrees_with_numpy(builder, dtype):
    for seed in range(2):
        (c,) = corpus.cases(seed, dtype, 8, [builder])
        kernel = _verdicts(c, "kernel", "cpu", seed)
        numpy_ = _verdicts(c, "batched", "cpu", seed)
        assert kernel == numpy_
        assert kernel[0][0] == "pass" and kernel[1][0] == "fail"


@pytest.mark.cudasim
@pytest.mark.skipif(not SIMULATING, reason="needs NUMBA_ENABLE_CUDASIM=1 (run: "
                    "NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim)")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("builder", [corpus.mse, corpus.tanh])
def test_simulator_agrees_with_cpu(builder, dtype):
    (c,) = corpus.cases(0, dtype, 4, [builder])
    want = _verdicts(c, "kernel", "cpu", 0)
    assert want[0][0] == "pass" and want[1][0] == "fail"
    assert _verdicts(c, "kernel", "cudasim", 0) == want
    assert _verdicts(c, "batched", "cudasim", 0) == _verdicts(c, "batched", "cpu", 0)


@pytest.mark.cudasim
@pytest.mark.skipif(not SIMULATING, reason="needs NUMBA_ENABLE_CUDASIM=1 (run: "
                    "NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim)")
def test_simulator_refuses_complex_output_and_runs_the_complex_step():
    fc = gpucheck.batched(lambda xs: (xs ** 2).sum(axis=1) + 1j * xs.sum(axis=1))
    with pytest.raises(gpucheck.GpuCheckError, match="imaginary part"):
        gpucheck.check_gradient(fc, np.ones(4), 2 * np.ones(4), backend="cudasim")
    x = np.linspace(-1, 1, 5)
    fb = gpucheck.batched(lambda xs: np.sin(xs).sum(axis=1))
    r = gpucheck.check_gradient(fb, x, np.cos(x), scheme="complex", backend="cudasim")
    assert r.status == "pass" and np.max(np.abs(r.numeric - np.cos(x))) < 1e-14


@pytest.mark.cudasim
@pytest.mark.skipif(not SIMULATING, reason="needs NUMBA_ENABLE_CUDASIM=1 (run: "
                    "NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim)")
@pytest.mark.parametrize("builder,form", [(corpus.mse, "rowwise"), (corpus.softmax_ce, "layer"),
                                          (corpus.layer_norm, "layer")])
def test_simulator_agrees_with_cpu_on_rowwise_and_layer_forms(builder, form):
    (c,) = corpus.cases(0, np.float32, 4, [builder])
    want = _verdicts(c, form, "cpu", 0)
    assert want[0][0] == "pass" and want[1][0] == "fail"
    assert _verdicts(c, form, "cudasim", 0) == want


@pytest.mark.cudasim
@pytest.mark.skipif(not SIMULATING, reason="needs NUMBA_ENABLE_CUDASIM=1 (run: "
                    "NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim)")
def test_simulator_holds_each_input_to_its_own_resolution():
    (c,) = corpus.cases(0, np.float32, 4, [corpus.two_inputs])
    gw, gb = c.grad
    bad = gb.copy()
    bad[int(np.argmax(np.abs(gb)))] += 0.01 * np.abs(gb).max()
    for backend in ("cpu", "cudasim"):
        r = gpucheck.check_gradient(c.forms["kernel"], c.x, c.grad, backend=backend)
        assert r.status == "pass", str(r)
        rb = gpucheck.check_gradient(c.forms["kernel"], c.x, (gw, bad), backend=backend)
        assert [v.status for v in rb.inputs] == ["pass", "fail"], str(rb)
