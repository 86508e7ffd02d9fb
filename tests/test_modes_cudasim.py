"""Sampled and projected checks on the CUDA kernels, run by numba's simulator.

Run with ``NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim``.  Every form of f
that runs on a device (batched, kernel, row-wise, built-in layer) is checked
in mode='sample' and mode='project' on ``cudasim``: a correct gradient
passes, planted bugs fail, and the sampled numbers agree with the cpu
backend's.  Sizes are tiny: the simulator runs every thread as Python.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import gpucheck
from test_modes import problem

SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

pytestmark = [
    pytest.mark.cudasim,
    pytest.mark.skipif(not SIMULATING, reason="needs NUMBA_ENABLE_CUDASIM=1 (run: "
                       "NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim)"),
]

DEVICE_FORMS = ["batched", "kernel", "rowwise", "layer"]


@pytest.mark.parametrize("form", DEVICE_FORMS)
def test_sample_on_the_simulator(form):
    forms, x, g = problem(shape=(6, 5))
    f = forms[form]
    r = gpucheck.check_gradient(f, x, g, backend="cudasim", mode="sample", samples=4)
    assert r.status == "pass" and r.backend == "cudasim", r
    cpu = gpucheck.check_gradient(f, x, g, backend="cpu", mode="sample", samples=4)
    np.testing.assert_array_equal(r.element_status == "unchecked", cpu.element_status == "unchecked")
    checked = r.element_status != "unchecked"
    np.testing.assert_allclose(r.numeric[checked], cpu.numeric[checked], rtol=1e-7, atol=1e-12)
    bad = g.copy()
    bad[2] *= -1
    rb = gpucheck.check_gradient(f, x, bad, backend="cudasim", mode="sample", samples=4,
                                 indices=[(2, 0), (2, 3)])
    assert rb.status == "fail" and "row 2" in rb.diagnosis, rb


@pytest.mark.parametrize("form", DEVICE_FORMS)
def test_project_on_the_simulator(form):
    forms, x, g = problem(shape=(6, 5))
    f = forms[form]
    r = gpucheck.check_gradient(f, x, g, backend="cudasim", mode="project", directions=8)
    assert r.status == "pass", r
    # a kernel function's full forward runs on the host (one thread's work on a device)
    assert r.projection.backend == ("cpu" if form == "kernel" else "cudasim")
    one = g.copy()
    one[4, 1] += 0.5 * np.abs(g).max()
    for bad in (1.05 * g, one):
        rb = gpucheck.check_gradient(f, x, bad, backend="cudasim", mode="project", directions=8)
        assert rb.status == "fail", rb


def test_auto_falls_back_on_the_simulator():
    # a callable's first chunk is one point: timed, and far over a nanosecond
    forms, x, g = problem(shape=(6, 5))
    r = gpucheck.check_gradient(forms["callable"], x, 2 * g, backend="cudasim", max_seconds=1e-9,
                                samples=4, directions=8)
    assert r.mode == "sample+project" and r.status == "fail"
    assert r.coverage.checked >= 4 and r.projection.status == "fail"
