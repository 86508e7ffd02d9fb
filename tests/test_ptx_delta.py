"""Compile the delta-evaluation kernels to PTX, as a device would.

Every built-in layer's point kernel (with the arrays its ``prepare`` really
produces) and the row-wise kernels (delta and full, rows of one and two
dimensions, row-aligned and whole params) go through NVVM for sm_90; the
simulator checks no types, this does.  Skipped where the NVVM library is
missing or in a simulator process, like tests/test_ptx.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from delta_cases import block_energy, layer_cases, row_softmax_ce, row_sse
from test_ptx import _MISSING

pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))

def _distinct_kernels():
    """One layer case per point function and array types: the kernels there are."""
    seen, names = set(), []
    for name, layer, x in layer_cases("float32"):
        _, arrays = layer.evaluator.prepare(x)
        key = (layer.evaluator.point, tuple((a.dtype.str, a.ndim) for a in arrays))
        if key not in seen:
            seen.add(key)
            names.append(name)
    return names


LAYERS = _distinct_kernels()


@pytest.mark.parametrize("name", LAYERS)
def test_layer_point_kernels_compile(name):
    from gpucheck.kernels import points

    layer, x = next((lay, x) for n, lay, x in layer_cases("float32") if n == name)
    _, arrays = layer.evaluator.prepare(x)
    text = points.ptx(layer.evaluator.point, "float64", [(a.dtype, a.ndim) for a in arrays])
    assert ".target sm_90" in text and ".entry" in text


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("full", [False, True], ids=["delta", "full"])
@pytest.mark.parametrize("fn,row_ndim,specs,aligned", [
    (row_sse, 1, [(None, 2)], (True,)),
    (row_softmax_ce, 1, [("int64", 1)], (True,)),
    (block_energy, 2, [(None, 2)], (False,)),
], ids=["sse", "softmax_ce_labels", "block_3d"])
def test_rowwise_kernels_compile(fn, row_ndim, specs, aligned, full, dtype):
    from gpucheck.kernels import rowwise

    specs = [(d or dtype, n) for d, n in specs]
    text = rowwise.ptx(fn, dtype, row_ndim, specs, aligned, full=full)
    assert ".target sm_90" in text and ".entry" in text


def test_rowwise_kernel_compiles_for_an_older_architecture():
    from gpucheck.kernels import rowwise

    text = rowwise.ptx(row_sse, "float32", 1, [("float32", 2)], (True,), cc=(7, 5))
    assert ".target sm_75" in text


def test_a_mistyped_row_function_fails_to_compile():
    from numba.core.errors import TypingError

    from gpucheck.kernels import rowwise

    def mistyped(row, t):
        return row + t  # an array, not a float

    with pytest.raises(TypingError):
        rowwise.ptx(mistyped, "float64", 1, [("float64", 2)], (True,))


def test_point_kernel_source_has_one_argument_per_array():
    from gpucheck.kernels import points

    src = points.points_source(3)
    assert "def run(idx, vals, out, f0, a0, a1, a2):" in src
    assert np.all([f"a{k}" in src.splitlines()[5] for k in range(3)])
