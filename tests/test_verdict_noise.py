"""The noise model against deterministic rounding, asymmetric nodes and steps beyond f's scale.

Each test is a wrong verdict seen after row-wise functions and low-precision
points met the verdict, reduced to a few lines, with an independent
reference where there is one (the rounding of a float32 term computed
exactly in float64).
"""

from __future__ import annotations

import numpy as np
import pytest

import corpus
import gpucheck
from gpucheck import noise
from gpucheck.stencils import centered_weights


def row_loss(row, t):
    s = 0.0
    for j in range(row.shape[0]):
        d = row[j] - t[j]
        s += d * d
    return s


def _readme_rowwise(rows=64):
    # the README's row-wise example on float32 data, the first rows of it
    rng = np.random.default_rng(0)
    T = rng.normal(size=(1024, 1024)).astype(np.float32)
    X = rng.normal(size=(1024, 1024)).astype(np.float32)
    x, t = X[:rows], T[:rows]
    g = 2 * (x.astype(np.float64) - t) / rows
    return gpucheck.rowwise(row_loss, t, scale=1 / rows), x, g


def test_rowwise_float32_mse_passes_with_no_kinks():
    # f = scale * (S + fn(row') - fn(row)): what is left is the float32
    # rounding of the one changed term d*d, a deterministic staircase that
    # equally spaced noise probes on the float32 step's power-of-two lattice
    # (2**-8) saw as almost no noise, or as a kink where it wrapped
    f, x, g = _readme_rowwise()
    r = gpucheck.check_gradient(f, x, g, backend="cpu")
    assert r.status == "pass", str(r)
    assert r.n_kinks == 0 and r.n_failed == 0
    assert r.nfev <= 2.2 * x.size


@pytest.mark.parametrize("frac", [0.01, 0.005])
def test_rowwise_float32_mse_catches_one_entry(frac):
    f, x, g = _readme_rowwise()
    bad, where = corpus.one_entry_bug(g, frac, seed=3)
    r = gpucheck.check_gradient(f, x, bad, backend="cpu")
    assert r.status == "fail" and r.n_failed == 1, str(r)
    assert r.element_status[where] == "fail"


def _term_rounding(x, t):
    """fl32(fl32(x - t)**2) - (x - t)**2, exactly (float64 holds both)."""
    d = (x.astype(np.float32) - np.float32(t)).astype(np.float32)
    q = (d * d).astype(np.float32).astype(np.float64)
    exact = (x.astype(np.float64) - float(t)) ** 2
    return q - exact


def test_line_noise_matches_the_rounding_of_a_float32_term():
    # the noise a line measures along a coordinate must be the spread of the
    # rounding at the points a stencil uses, however they fall on the
    # lattice: compare with that spread sampled at 4000 random float32 points
    rng = np.random.default_rng(7)
    x = rng.normal(size=300).astype(np.float32)
    t = rng.normal(size=300).astype(np.float32)
    h = 2.0 ** -8 * np.maximum(1.0, np.abs(x.astype(np.float64)))
    els = np.arange(x.size)
    pts = noise.line_points(x, els, noise.REACH * h, half_width=noise.LINE_HALF_WIDTH, seed=1)
    offs = pts.astype(np.float64) - x.astype(np.float64)[:, None]
    ratios = []
    for i in els:
        # f along coordinate i: a smooth part plus the term's rounding
        vals = (pts[i].astype(np.float64) - t[i]) ** 2 + _term_rounding(pts[i], t[i])
        f0 = (float(x[i]) - float(t[i])) ** 2 + _term_rounding(x[i:i + 1], t[i])[0]
        sigma, ok = noise.line_sigmas(f0, vals[None], offs[i][None])
        near = (x[i] + rng.uniform(-1, 1, 4000) * h[i]).astype(np.float32)
        truth = np.std(_term_rounding(near, t[i]))
        assert ok[0]
        ratios.append(sigma[0] / truth)
    ratios = np.array(ratios)
    assert 0.8 < np.median(ratios) < 1.25
    assert ratios.min() > 0.35 and ratios.max() < 2.5


def test_equally_spaced_dyadic_points_would_underestimate_it():
    # why the points are placed at random: on x + k * 2**-12 the rounding of
    # the term drifts slowly for some coordinates, and a fit sees too little
    rng = np.random.default_rng(7)
    x = rng.normal(size=300).astype(np.float32)
    t = rng.normal(size=300).astype(np.float32)
    low = 0
    k = np.concatenate([np.arange(-8, 0), np.arange(1, 9)]) * 2.0 ** -12 / 2
    for i in range(x.size):
        pts = (x[i] + k).astype(np.float32)
        vals = (pts.astype(np.float64) - t[i]) ** 2 + _term_rounding(pts, t[i])
        f0 = (float(x[i]) - float(t[i])) ** 2 + _term_rounding(x[i:i + 1], t[i])[0]
        s, _ = noise.line_sigmas(f0, vals[None], (pts.astype(np.float64) - float(x[i]))[None])
        near = (x[i] + rng.uniform(-1, 1, 4000) * 2.0 ** -8).astype(np.float32)
        low += s[0] < 0.35 * np.std(_term_rounding(near, t[i]))
    assert low >= 5


def test_centered_weights_remove_the_first_order_error_of_asymmetric_nodes():
    rng = np.random.default_rng(0)
    o = np.stack([-rng.uniform(0.9, 1.1, 50), rng.uniform(0.9, 1.1, 50)])
    w, c = centered_weights(o)
    f = lambda z: 2.0 * z + 0.7 * z ** 2          # noqa: E731 - f'(0) = 2
    d = (w * f(o)).sum(axis=0) + c * f(0.0)
    np.testing.assert_allclose(d, 2.0, rtol=1e-13)
    # symmetric nodes keep the two-point weights exactly, and x's weight is 0
    w_s, c_s = centered_weights(np.array([[-0.5], [0.5]]))
    assert w_s.ravel().tolist() == [-1.0, 1.0] and c_s[0] == 0.0


def test_bfloat16_quadratic_with_asymmetric_nodes_is_not_failed():
    # bfloat16 x + h lands on a grid of 2**-8 relative: h+ != h-, and the
    # two-point difference of a quadratic carried f''(h+ - h-)/2 at every
    # step alike, where no Richardson estimate could see it
    pytest.importorskip("ml_dtypes")
    c = next(corpus.cases(0, corpus.BFLOAT16, 6, [corpus.dense]))
    r = gpucheck.check_gradient(c.forms["batched"], c.x, c.grad, backend="cpu")
    assert r.status in ("pass", "inconclusive"), str(r)


def test_a_step_beyond_f_scale_never_passes_a_wrong_entry():
    # softmax cross-entropy in bfloat16: only steps of ~12 (logits ~3) bring
    # rounding down, and there f is linear on both sides of x; D(h/2), D(h)
    # and D(2h) agree with each other, 16% below f'.  A gradient entry equal
    # to that secant must not pass, and the correct one must not fail.
    pytest.importorskip("ml_dtypes")
    c = next(corpus.cases(1, corpus.BFLOAT16, 6, [corpus.softmax_ce]))
    r = gpucheck.check_gradient(c.forms["batched"], c.x, c.grad, backend="cpu")
    assert r.status != "fail", str(r)
    bad = c.grad.copy()
    bad.flat[24] = 0.0878
    assert abs(bad.flat[24] - c.grad.flat[24]) > 0.09 * np.abs(c.grad).max()
    rb = gpucheck.check_gradient(c.forms["batched"], c.x, bad, backend="cpu")
    assert rb.element_status.flat[24] != "pass", str(rb)


def test_quantum_sample_screen_decides_as_the_full_sort(monkeypatch):
    # the screen may only skip the sort where the sort would say 0 anyway
    from gpucheck import noise

    rng = np.random.default_rng(7)
    n = 200_000
    cases = {
        "rounded to 1e-3": np.round(3 * rng.normal(size=n), 3),
        "rounded to 0.25 near 1e4": 1e4 + np.round(4 * rng.normal(size=n)) / 4,
        "plain normals": rng.normal(size=n),
        "a large f moved by tiny steps": 2049.0 + 1e-7 * rng.normal(size=n).astype(np.float32),
        "few distinct values": rng.integers(0, 5, n) * 0.5,
        "pairs of repeats": np.repeat(rng.normal(size=n // 2), 2),
        "rounded, with NaN and inf": np.where(rng.random(n) < 0.3, np.nan,
                                              np.round(3 * rng.normal(size=n), 3)),
        "fine, with inf": np.where(rng.random(n) < 0.3, np.inf, rng.normal(size=n)),
    }
    screened = {k: noise.quantum(v) for k, v in cases.items()}
    monkeypatch.setattr(noise, "SCREEN_FROM", 1 << 62)
    full = {k: noise.quantum(v) for k, v in cases.items()}
    assert screened == full
    assert full["rounded to 1e-3"] == pytest.approx(1e-3, rel=1e-9)
    assert full["rounded to 0.25 near 1e4"] == pytest.approx(0.25, rel=1e-9)
