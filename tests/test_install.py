"""The three ways to use a checkout: ``PYTHONPATH=.``, ``pip install .``, ``pip install -e .``.

.ci/run runs this file once per way with ``GPUCHECK_INSTALL`` set to
``source``, ``wheel`` or ``editable``; the way-specific checks skip (visibly)
in an ordinary session.  Whatever the way, gpucheck and its kernels must come
from the same place, and a kernel check must run.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import gpucheck

WAY = os.environ.get("GPUCHECK_INSTALL")
ROOT = pathlib.Path(__file__).resolve().parent.parent
needs_way = pytest.mark.skipif(WAY is None, reason="run by .ci/run with GPUCHECK_INSTALL="
                               "source|wheel|editable")


def test_kernels_come_from_the_same_tree_as_the_library():
    import gpucheck.kernels
    from gpucheck.kernels import builtin

    lib = pathlib.Path(gpucheck.__file__).resolve().parent
    kern = pathlib.Path(gpucheck.kernels.__file__).resolve().parent
    # a source tree keeps kernels/ beside gpucheck/; an installed copy inside it
    assert kern in (lib / "kernels", lib.parent / "kernels"), (lib, kern)
    assert pathlib.Path(builtin.__file__).resolve().parent == kern


def test_a_kernel_check_runs():
    from gpucheck.kernels import builtin

    t = np.zeros((2, 3))
    x = np.arange(6.0).reshape(2, 3)
    r = gpucheck.check_gradient(gpucheck.kernel(builtin.mse, t), x, 2 * x / 2, backend="cpu")
    assert r.passed, r


def test_command_line_version():
    proc = subprocess.run([sys.executable, "-m", "gpucheck", "--version"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"gpucheck {gpucheck.__version__} (distribution gpucheck-grad)"


@needs_way
def test_this_way_imports_from_where_it_should(request):
    from importlib import metadata

    lib = pathlib.Path(gpucheck.__file__).resolve().parent
    assert lib == ROOT / "gpucheck", "in the checkout the source tree comes first"
    if WAY == "source":
        return  # metadata may still be found: setuptools leaves *.egg-info in the checkout
    meta = metadata.metadata("gpucheck-grad")
    assert meta["Version"] == gpucheck.__version__
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert request.config.pluginmanager.has_plugin("gpucheck.pytest_plugin")


@needs_way
def test_outside_the_checkout(tmp_path):
    """Away from the source tree only an installed copy is importable, with its kernels."""
    code = ("import gpucheck, gpucheck.kernels, pathlib;"
            "print(pathlib.Path(gpucheck.__file__).resolve().parent);"
            "print(pathlib.Path(gpucheck.kernels.__file__).resolve().parent)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=env)
    if WAY == "source":
        assert proc.returncode != 0 and "No module named 'gpucheck'" in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    lib, kern = (pathlib.Path(p) for p in proc.stdout.split())
    if WAY == "wheel":
        assert lib != ROOT / "gpucheck" and "site-packages" in lib.parts and kern == lib / "kernels"
    else:
        assert lib == ROOT / "gpucheck" and kern == ROOT / "kernels"
