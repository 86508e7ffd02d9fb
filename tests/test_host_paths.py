"""The host's fast paths against their textbook definitions, bit for bit.

A large check spends most of its host time in a few array passes: the
stencil weights, the output-precision screen, the worst entries of the
report.  Each was rewritten to touch fewer bytes; these tests hold every
rewrite to the plain formula it replaces (written out here, independent of
the library), on random data with the awkward cases (ties, -0.0, NaN and
infinite nodes, nodes that fell onto x), and run whole checks with the
plain formulas patched in to show that no result array moves.
"""

from __future__ import annotations

import numpy as np
import pytest

import corpus
import gpucheck
import gpucheck.layers
from gpucheck import engine, noise, partial, plan, stencils


# ------------------------------------------------------- textbook formulas

def ref_derivative_weights(t):
    """d/dz of the Lagrange basis at 0, with every product and sum written out."""
    t = np.asarray(t, dtype=np.float64)
    k = t.shape[0]
    w = np.empty_like(t)
    for j in range(k):
        others = [m for m in range(k) if m != j]
        denom = np.ones_like(t[0])
        for m in others:
            denom = denom * (t[j] - t[m])
        num = np.zeros_like(t[0])
        for drop in others:
            term = np.ones_like(t[0])
            for m in others:
                if m != drop:
                    term = term * (-t[m])
            num = num + term
        w[j] = num / denom
    return w


def ref_centered_weights(t):
    t = np.asarray(t, dtype=np.float64)
    w = ref_derivative_weights(t)
    center = np.zeros(t.shape[1:])
    with np.errstate(invalid="ignore"):
        srt = np.sort(t, axis=0)
        asym = ~np.all(srt == -srt[::-1], axis=0) & np.all(np.isfinite(t), axis=0)
    if np.any(asym):
        sub = t[:, asym]
        full = ref_derivative_weights(np.concatenate([sub, np.zeros((1, sub.shape[1]))]))
        w[:, asym] = full[:-1]
        center[asym] = full[-1]
    return w, center


def ref_output_roundoff(values, fallback=None):
    import sys

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if np.unique(v).size >= 8:
        low = [sys.modules["ml_dtypes"].bfloat16] if "ml_dtypes" in sys.modules else []
        for dt in low + [np.float16, np.float32]:
            with np.errstate(over="ignore", invalid="ignore"):
                if np.array_equal(v.astype(dt).astype(np.float64), v):
                    return plan.unit_roundoff(dt)
    elif fallback is not None:
        return float(fallback)
    return 2.0 ** -53


def ref_line_sigmas(f0, values, offsets):
    """Each line's cubic fits, one side of x at a time, as the noise module defines them."""
    v = np.asarray(values, dtype=np.float64)
    o = np.asarray(offsets, dtype=np.float64)
    m, k = v.shape
    w = k // 2
    with np.errstate(invalid="ignore", over="ignore"):
        y = v - f0
    finite = np.all(np.isfinite(y), axis=1) & np.all(np.isfinite(o), axis=1) & np.isfinite(f0)
    dof = 2 * (w + 1 - (noise.DEGREE + 1))
    if m == 0 or dof <= 0:  # too few points on a side for a cubic and a residual
        return np.zeros(m), np.zeros(m, bool)
    y = np.where(finite[:, None], y, 0.0)
    o = np.where(finite[:, None], o, 1.0)
    rss, ok = np.zeros(m), finite.copy()
    for cols in (slice(0, w), slice(w, k)):
        oo, yy = o[:, cols], y[:, cols]
        reach = np.max(np.abs(oo), axis=1)
        reach = np.where(reach > 0, reach, 1.0)
        t = np.concatenate([np.zeros((m, 1)), oo / reach[:, None]], axis=1)
        yv = np.concatenate([np.zeros((m, 1)), yy], axis=1)
        ys = np.max(np.abs(yv), axis=1)
        ys = np.where(ys > 0, ys, 1.0)
        yv = yv / ys[:, None]
        q, r = np.linalg.qr(np.stack([t ** p for p in range(noise.DEGREE + 1)], axis=2))
        ok &= np.min(np.abs(np.diagonal(r, axis1=1, axis2=2)), axis=1) > 1e-8
        resid = yv - np.einsum("mij,mj->mi", q, np.einsum("mij,mi->mj", q, yv))
        rss += ys ** 2 * np.sum(resid ** 2, axis=1)
    return np.where(ok, np.sqrt(rss / dof), np.nan), ok


def ref_by_entry(st):
    k = len(st.multipliers)
    return np.repeat(st.elements, k), np.ascontiguousarray(st.vals.T).reshape(-1)


def ref_worst_order(status, ratio, k):
    rank = np.select([status == 1, status == 2], [0, 1], 2)
    return np.lexsort((np.arange(status.size), -ratio, rank))[:k]


def same_bits(a, b):
    """Equal values, NaN where NaN, and the same sign on every number (0.0 and -0.0 differ)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
        return False
    num = ~np.isnan(a)
    return bool(np.array_equal(np.signbit(a[num]), np.signbit(b[num])))


# ------------------------------------------------------------------ helpers

def _awkward_offsets(rng, k, m):
    t = rng.standard_normal((k, m)) * 10.0 ** rng.integers(-10, 10)
    t[:, :6] = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-300])[rng.integers(0, 6, (k, 6))]
    # symmetric columns, some of them off by a rounding
    base = np.abs(rng.standard_normal((k // 2, m)))
    sym = np.concatenate([-base, base] + ([np.zeros((1, m))] if k % 2 else []))
    t[:, 10:40] = rng.permuted(sym, axis=0)[:, 10:40]
    t[:, 20:25] *= 1 + 2.0 ** -52 * rng.integers(-3, 4, (k, 5))
    return t


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 9])
def test_weights_match_the_textbook_formulas(k):
    rng = np.random.default_rng(k)
    for _ in range(40):
        t = _awkward_offsets(rng, k, 64)
        with np.errstate(all="ignore"):
            assert same_bits(stencils.derivative_weights(t), ref_derivative_weights(t))
            w, c = stencils.centered_weights(t)
            w_ref, c_ref = ref_centered_weights(t)
            given = stencils.centered_weights(t, weights=stencils.derivative_weights(t))
        assert same_bits(w, w_ref) and same_bits(c, c_ref)
        assert same_bits(given[0], w_ref) and same_bits(given[1], c_ref)


@pytest.mark.parametrize("mult", [(-1, 1), (-2, -1, 1, 2), (-1, 1, 2), (1,)])
@pytest.mark.parametrize("strict", [True, False])
def test_stencil_formulas_match_the_centered_weights(mult, strict):
    rng = np.random.default_rng(len(mult) + 10 * strict)
    for dt in (np.float16, np.float32, np.float64):
        x = (rng.standard_normal(200) * 10.0 ** rng.integers(-3, 4)).astype(dt)
        # steps of a few units in the last place of x, and more
        ulp = np.spacing(np.abs(x)).astype(np.float64)
        h = ulp * (1.5 + 100 * np.abs(rng.standard_normal(200)))
        if not strict:
            h[:15] = 0.0            # nodes that fall onto x
            h[15:20] = 1e300        # nodes that overflow
        with np.errstate(all="ignore"):
            st = plan.stencil(x, mult, h, strict=strict)
        v = rng.standard_normal(st.offsets.shape)
        v[0, :3] = [np.nan, np.inf, -0.0]
        v[:, 30:40] = -0.0
        for f0 in (1.5, -2.0, 0.0, -0.0, np.inf):
            with np.errstate(all="ignore"):
                w, c = ref_centered_weights(st.offsets)
                assert same_bits(st.derivative(v, f0), (w * v).sum(axis=0) + c * f0)
                assert same_bits(st.centered_gain(), np.abs(w).sum(axis=0) + np.abs(c))
                got_w, got_c = st.centered()
            assert same_bits(got_w, w) and same_bits(got_c, c)


def test_output_roundoff_matches_its_definition():
    rng = np.random.default_rng(0)
    for trial in range(600):
        n = int(rng.integers(0, 12000))
        kind = trial % 6
        if kind == 0:
            v = rng.standard_normal(n)
        elif kind == 1:  # few distinct values
            v = rng.integers(0, int(rng.integers(1, 12)), n).astype(float)
        elif kind == 2:  # constant but for a few
            v = np.full(n, 2.0)
            if n:
                v[rng.integers(0, n, int(rng.integers(0, 10)))] = rng.standard_normal()
        elif kind == 3:
            v = rng.standard_normal(n).astype(np.float32).astype(float)
        elif kind == 4:  # float16 values but one, far from the start
            v = rng.standard_normal(n).astype(np.float16).astype(float)
            if n > 5000:
                v[-1] = 0.1
        else:
            v = np.where(rng.random(n) < 0.1, np.nan, rng.standard_normal(n).astype(np.float32))
        for fallback in (None, 2.0 ** -24):
            assert noise.output_roundoff(v, fallback) == ref_output_roundoff(v, fallback)


def test_worst_order_is_the_lexsort_order():
    rng = np.random.default_rng(1)
    for trial in range(400):
        n = int(rng.integers(1, 12000)) if trial % 3 else int(rng.integers(1, 40))
        p = rng.dirichlet([1, 1, 1]) if trial % 4 else [0.99, 0.005, 0.005]
        if trial % 7 == 0:
            p = [1.0, 0.0, 0.0]  # every entry passed
        status = rng.choice(np.array([0, 1, 2], np.uint8), size=n, p=p)
        ratio = [rng.random(n), rng.integers(0, 3, n).astype(float), np.zeros(n),
                 np.where(rng.random(n) < 0.1, np.inf, rng.random(n)),
                 np.round(rng.random(n), 2)][trial % 5]
        k = int(rng.choice([1, 3, 5, 16, 17, 40, 300, n + 3]))
        before = ratio.copy()
        assert np.array_equal(engine.worst_order(status, ratio, k), ref_worst_order(status, ratio, k))
        assert np.array_equal(ratio, before)  # left as it was
    frozen = np.ones(50)
    frozen.flags.writeable = False
    assert engine.worst_order(np.zeros(50, np.uint8), frozen, 3).tolist() == [0, 1, 2]


def test_discrepancy_against_exact_sums():
    import math

    rng = np.random.default_rng(2)
    for _ in range(50):
        n = rng.standard_normal(int(rng.integers(1, 5000))) * 10.0 ** rng.integers(-200, 200)
        a = n * (1 + 1e-3 * rng.standard_normal(n.size))
        s = max(np.abs(n).max(), np.abs(a).max())
        ref = math.sqrt(math.fsum(((n - a) / s) ** 2)) / (
            math.sqrt(math.fsum((n / s) ** 2)) + math.sqrt(math.fsum((a / s) ** 2)))
        assert engine.discrepancy(n, a) == pytest.approx(ref, rel=1e-13)
        assert engine.discrepancy(n, a) == engine._discrepancy(n, a, np.abs(n - a))
    assert engine.discrepancy(np.zeros(0), np.zeros(0)) == 0.0
    for bad in (np.nan, np.inf, -np.inf):
        n = rng.standard_normal(100)
        for where in (0, 57, 99):
            m = n.copy()
            m[where] = bad
            assert np.isnan(engine.discrepancy(m, n)) and np.isnan(engine.discrepancy(n, m))


def test_line_sigmas_fit_each_side_as_alone():
    rng = np.random.default_rng(3)
    for trial in range(700):
        m, w = int(rng.integers(1, 30)), int(rng.choice([2, 3, 4, 6, 8]))
        o = np.sort(rng.standard_normal((m, 2 * w)), axis=1) * 10.0 ** rng.integers(-12, 3)
        f0 = float(rng.standard_normal()) * 10.0 ** rng.integers(-5, 5)
        v = f0 + rng.standard_normal() * o + rng.standard_normal((m, 2 * w)) * 10.0 ** rng.integers(-16, 0)
        kind = trial % 7
        if kind == 1:
            v[rng.integers(m), rng.integers(2 * w)] = np.nan
        elif kind == 2:
            o[rng.integers(m), rng.integers(2 * w)] = np.inf
        elif kind == 3:  # f that does not move: sigma 0
            v = np.full_like(v, f0)
        elif kind == 4:  # a line with every point on x
            o[rng.integers(m)] = 0.0
        elif kind == 5:  # coarse values and offsets
            v, o = np.round(v, 3), np.round(o, 14)
        elif kind == 6:  # points that coincide on one side: no unique fit there
            row, side = int(rng.integers(m)), slice(0, w) if trial % 2 else slice(w, 2 * w)
            o[row, side] = o[row, side][0]
        sigma, ok = noise.line_sigmas(f0, v, o)
        ref_sigma, ref_ok = ref_line_sigmas(f0, v, o)
        assert same_bits(sigma, ref_sigma) and np.array_equal(ok, ref_ok)
    assert [a.size for a in noise.line_sigmas(0.0, np.zeros((0, 12)), np.zeros((0, 12)))] == [0, 0]


def test_upper_quantile_is_numpys():
    rng = np.random.default_rng(6)
    for trial in range(3000):
        n = int(rng.integers(1, 40))
        v = [rng.random(n), np.abs(rng.standard_normal(n)) * 10.0 ** rng.integers(-300, 300, n),
             rng.integers(1, 4, n).astype(float), 5e-324 * rng.integers(1, 100, n),
             np.full(n, rng.random()) + 1e-16 * rng.random(n)][trial % 5]
        if trial % 7 == 0:
            v[rng.integers(n)] = [np.inf, np.nan][trial % 2]
        with np.errstate(invalid="ignore"):  # (inf - inf in both)
            assert same_bits(noise._upper_quantile(v), np.quantile(v, noise.QUANTILE))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_by_entry_is_the_stencil_entry_by_entry(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(37).astype(dtype)
    for name in ("central", "central4"):
        mult = stencils.get_scheme(name).multipliers
        for st in (plan.stencil(x, mult, np.full(37, 1e-2)),
                   plan.stencil(x, mult, np.full(3, 1e-2), np.array([30, 2, 2]))):
            for got, want in zip(partial.by_entry(st), ref_by_entry(st)):
                assert got.dtype == want.dtype and got.flags.c_contiguous
                assert np.array_equal(got, want)


# ------------------------------------------- whole checks, fast and plain

def _plain(monkeypatch):
    """Patch the textbook formulas in for the fast ones."""
    def derivative(self, values, f0=None):
        v = np.asarray(values, dtype=np.float64).reshape(len(self.multipliers), -1)
        if f0 is None:
            return (self.weights * v).sum(axis=0)
        w, c = ref_centered_weights(self.offsets)
        return (w * v).sum(axis=0) + c * f0

    def gain(self):
        w, c = ref_centered_weights(self.offsets)
        return np.abs(w).sum(axis=0) + np.abs(c)

    monkeypatch.setattr(plan.Stencil, "derivative", derivative)
    monkeypatch.setattr(plan.Stencil, "centered_gain", gain)
    monkeypatch.setattr(plan, "centered_weights", ref_centered_weights)
    monkeypatch.setattr(noise, "output_roundoff", ref_output_roundoff)
    monkeypatch.setattr(engine, "worst_order", ref_worst_order)
    monkeypatch.setattr(noise, "line_sigmas", ref_line_sigmas)
    monkeypatch.setattr(partial, "by_entry", ref_by_entry)
    monkeypatch.setattr(noise, "_upper_quantile", lambda v: float(np.quantile(v, noise.QUANTILE)))


def _cases():
    rng = np.random.default_rng(5)
    t = rng.standard_normal((48, 48)).astype(np.float32)
    x = rng.standard_normal((48, 48)).astype(np.float32)
    mse = gpucheck.layers.mse(t)
    g = mse.grad(x)
    bug = g.copy()
    bug.flat[::97] *= 1.02
    yield "mse float32", mse, x, g
    yield "mse float32, bugs", mse, x, bug
    a = rng.standard_normal((8, 24))
    w = rng.standard_normal((24, 24)) / 5
    dense = gpucheck.layers.dense(a, rng.standard_normal((8, 24)))
    yield "dense float64", dense, w, dense.grad(w)
    one = dense.grad(w).copy()
    one.flat[3] += 0.01 * np.abs(one).max()
    yield "dense float64, one entry", dense, w, one
    for c in corpus.cases(0, np.float32, 6, [corpus.relu_kinks, corpus.tanh, corpus.coarse_output]):
        f = next(iter(c.forms.values()))
        yield f"{c.name}", f, c.x, c.grad
        for bug_name, bad in list(corpus.bugs(c, 0).items())[:2]:
            yield f"{c.name}, {bug_name}", f, c.x, bad


@pytest.mark.parametrize("name, f, x, g", list(_cases()), ids=lambda v: v if isinstance(v, str) else "")
def test_checks_are_identical_with_the_plain_formulas(monkeypatch, name, f, x, g):
    fast = gpucheck.check_gradient(f, x, g, backend="cpu", worst=7)
    _plain(monkeypatch)
    slow = gpucheck.check_gradient(f, x, g, backend="cpu", worst=7)
    for field in ("numeric", "analytic", "abs_error", "rel_error", "tolerance", "eps"):
        assert same_bits(getattr(fast, field), getattr(slow, field)), field
    assert np.array_equal(fast.element_status, slow.element_status)
    assert fast.element_status.dtype == slow.element_status.dtype
    assert [w.to_dict() for w in fast.worst] == [w.to_dict() for w in slow.worst]
    for field in ("status", "nfev", "noise", "n_failed", "n_inconclusive", "n_kinks", "n_refined",
                  "diagnosis", "advice", "n_joint_failed", "n_kink_decided", "n_refined_decided"):
        assert getattr(fast, field) == getattr(slow, field), field
    assert fast.discrepancy == pytest.approx(slow.discrepancy, rel=1e-12)
