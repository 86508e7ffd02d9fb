"""Row-wise functions on the cpu backend: delta and full paths against a per-point
reference, the row-alignment rule, errors, and checks that pass and fail."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpucheck
from delta_cases import row_softmax_ce, row_sse, rowwise_cases
from gpucheck import GpuCheckError
from gpucheck.backends import cpu, cpu_rowwise
from gpucheck.backends.rows import segments
from gpucheck.functions import as_function

DTYPES = ["float32", "float64"]
NAMES = [name for name, _, _, _ in rowwise_cases("float64")]


def case(name, dtype, seed=0, delta=True):
    for n, f, x, g in rowwise_cases(dtype, seed, delta=delta):
        if n == name:
            return f, x, g
    raise KeyError(name)


def points(x, seed=0, count=30):
    rng = np.random.default_rng(seed)
    flat = x.reshape(-1).astype(np.float64)
    idx = np.concatenate([[0], rng.integers(0, x.size, count)]).astype(np.int64)
    vals = flat[idx] + np.concatenate([[0.0], rng.normal(scale=0.1, size=count)])
    return idx, vals.astype(x.dtype)


def per_point(f, x, idx, vals):
    """The form's own Python evaluation (every row, in Python) at each point."""
    out = np.empty(idx.size)
    for p in range(idx.size):
        z = x.copy()
        z.reshape(-1)[idx[p]] = vals[p]
        out[p] = f(z)
    return out


def _tolerance(x, values):
    # fn may sum float32 terms; compiled code and Python order them alike
    # but may round differently (fused operations, reassociation)
    u = float(np.finfo(x.dtype).eps)
    return 16 * x.size * u * max(1.0, float(np.max(np.abs(values))))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_delta_and_full_paths_match_the_per_point_reference(name, dtype):
    f, x, _ = case(name, dtype)
    idx, vals = points(x)
    want = per_point(f, x, idx, vals)
    delta = cpu.evaluate(as_function(f), x, idx, vals).values
    full = cpu.evaluate(as_function(case(name, dtype, delta=False)[0]), x, idx, vals).values
    assert np.max(np.abs(delta - want)) <= _tolerance(x, want)
    assert np.max(np.abs(full - want)) <= _tolerance(x, want)


def test_the_delta_path_cancels_the_other_rows_exactly():
    f, x, _ = case("sse_long_rows", "float32")
    ev = cpu.evaluate(as_function(f), x, np.array([0, 7, 7]),
                      np.array([x.flat[0], x.flat[7], x.flat[7]]))
    # a point that changes nothing is f(x), bit for bit, however it is expressed
    assert ev.values[0] == ev.values[1] == ev.values[2]


@pytest.mark.parametrize("segment", [1, 3, 1000])
def test_segment_lengths_do_not_change_the_values(segment):
    f, x, _ = case("softmax_ce", "float64")
    idx, vals = points(x, count=60)
    want = cpu_rowwise.evaluate(as_function(f), x, idx, vals, segment=7).values
    got = cpu_rowwise.evaluate(as_function(f), x, idx, vals, segment=segment).values
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_check_through_rowwise_passes_and_catches_one_percent_bugs(name, dtype):
    f, x, g = case(name, dtype)
    if dtype == "float64":
        # In float32 these functions round every term to float32, and the
        # verdict estimates that noise on a few coordinates only: a correct
        # gradient can fail on the full kernel path as on this one (issue 7).
        # test_float32_rows_with_float64_terms_pass covers float32 points.
        r = gpucheck.check_gradient(f, x, g, backend="cpu")
        assert r.status == "pass", (r.summary(), r.worst[0])
    m = np.abs(g)
    for j in (int(np.argmax(m)), int(np.argsort(m, axis=None)[m.size // 2])):
        bad = g.copy()
        bad.flat[j] += 0.01 * m.max()
        rb = gpucheck.check_gradient(f, x, bad, backend="cpu")
        assert rb.status == "fail", rb.summary()
        assert rb.element_status.flat[j] == "fail"


def row_sse_wide(row, t):
    """Squared error with every term widened to float64 before it is rounded."""
    s = 0.0
    for j in range(row.shape[0]):
        d = np.float64(row[j]) - np.float64(t[j])
        s += d * d
    return s


@pytest.mark.parametrize("seed", range(3))
def test_float32_rows_with_float64_terms_pass(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(7, 33)).astype(np.float32)
    t = rng.normal(size=(7, 33)).astype(np.float32)
    f = gpucheck.rowwise(row_sse_wide, t, scale=1 / 7)
    g = 2 * (x.astype(np.float64) - t) / 7
    r = gpucheck.check_gradient(f, x, g, backend="cpu")
    assert r.status == "pass", r.summary()


def test_row_alignment_rule_and_the_explicit_option():
    x = np.arange(12.0).reshape(3, 4)
    t_rows = np.ones((3, 4))
    square = np.ones((3, 3))  # a whole param that happens to have 3 rows

    def fn(row, t, m):
        s = 0.0
        for j in range(row.shape[0]):
            s += row[j] * t[j]
        return s + m.size  # m.size is 3 if sliced, 9 if whole

    by_shape = gpucheck.rowwise(fn, t_rows, square)
    assert by_shape.row_aligned(3) == (True, True)
    assert by_shape(x) == x.sum() + 3 * 3
    explicit = gpucheck.rowwise(fn, t_rows, square, aligned=[0])
    assert explicit.row_aligned(3) == (True, False)
    assert explicit(x) == x.sum() + 3 * 9
    ev = cpu.evaluate(as_function(explicit), x, np.array([5]), np.array([0.0]))
    assert ev.values[0] == x.sum() - 5.0 + 27


def test_one_dimensional_aligned_param_is_a_scalar_per_row():
    z = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    f = gpucheck.rowwise(row_softmax_ce, np.array([0, 2]))
    lse = np.log(np.exp(z).sum(axis=1))
    assert math.isclose(f(z), float(np.sum(lse - z[[0, 1], [0, 2]])))
    assert gpucheck.check_gradient(f, z, gpucheck.numerical_gradient(f, z, backend="cpu"),
                                   backend="cpu").passed


@pytest.mark.parametrize("call,match", [
    (lambda: gpucheck.rowwise(3.0), "`fn` must be callable"),
    (lambda: gpucheck.rowwise(gpucheck.kernel(row_sse)), "already marked"),
    (lambda: gpucheck.rowwise(row_sse, scale="1"), "`scale` must be a real number"),
    (lambda: gpucheck.rowwise(row_sse, np.ones(2), aligned=[1]), "`aligned` entries must be"),
    (lambda: gpucheck.rowwise(row_sse, np.ones(2), aligned=0), "sequence of param indices"),
    (lambda: gpucheck.rowwise(row_sse, np.ones(2), aligned=[0, 0]), "names param 0 twice"),
    (lambda: gpucheck.rowwise(row_sse, np.ones(2), delta=1), "`delta` must be True or False"),
    (lambda: gpucheck.rowwise(row_sse, [[1.0], [2.0, 3.0]]), "`params\\[0\\]` must be a numeric"),
])
def test_bad_rowwise_arguments(call, match):
    with pytest.raises(GpuCheckError, match=match):
        call()


def test_aligned_param_with_the_wrong_number_of_rows():
    f = gpucheck.rowwise(row_sse, np.ones((4, 3)), aligned=[0])
    with pytest.raises(GpuCheckError, match=r"`params\[0\]` is row-aligned .* 3 rows"):
        gpucheck.check_gradient(f, np.ones((3, 3)), np.zeros((3, 3)), backend="cpu")


def raises_on_big_rows(row):
    s = 0.0
    for j in range(row.shape[0]):
        s += row[j]
    if s > 10.0:
        raise ValueError("row sum above 10")
    return s


@pytest.mark.parametrize("delta", [True, False])
def test_an_exception_in_fn_reaches_the_user_with_its_message(delta):
    x = np.ones((3, 4))
    f = gpucheck.rowwise(raises_on_big_rows, delta=delta)
    # a stencil node at x + 8 lifts a row sum above 10
    with pytest.raises(GpuCheckError, match="`f` raised ValueError .*: row sum above 10") as info:
        gpucheck.check_gradient(f, x, np.ones((3, 4)), backend="cpu", eps=8.0)
    cause = info.value.__cause__
    assert isinstance(cause, ValueError)
    assert any("row" in note for note in getattr(cause, "__notes__", []))


def scribbles(row):
    s = 0.0
    for j in range(row.shape[0]):
        s += row[j]
    row[0] = 5.0
    return s


def test_fn_writing_into_its_row_is_reported():
    with pytest.raises(GpuCheckError, match="row-wise function 'scribbles'.* writes into its"):
        cpu.evaluate(as_function(gpucheck.rowwise(scribbles)), np.ones((2, 3)),
                     np.array([1, 4]), np.array([2.0, 2.0]))


def test_uncompilable_fn_names_the_rule():
    def bad(row):
        return row + "a"

    with pytest.raises(GpuCheckError, match=r"row-wise function 'bad'\) did not compile .*its row"):
        cpu.evaluate(as_function(gpucheck.rowwise(bad)), np.ones((2, 2)), np.array([0]),
                     np.array([1.0]))


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.integers(0, 6), min_size=0, max_size=60),
       max_len=st.integers(1, 9))
def test_segments_cover_every_point_once_within_one_row(rows, max_len):
    rows = np.array(rows, dtype=np.int64)
    order, start, stop, row = segments(rows, 7, max_len)
    seen = np.concatenate([order[a:b] for a, b in zip(start, stop)]) if start.size else order[:0]
    assert sorted(seen.tolist()) == list(range(rows.size))
    for a, b, r in zip(start, stop, row):
        assert 0 < b - a <= max_len
        assert np.all(rows[order[a:b]] == r)
