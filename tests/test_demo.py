"""``gpucheck demo``: every statement it prints holds for the numbers it computed.

The numbers are re-derived here independently where that is possible (the
one-shot central differences by hand in NumPy, the discrepancy metric, the
float32 default step), and each sentence of the narration is checked
against them, so the text cannot drift from what the code does.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gpucheck import demo
from gpucheck.cli import main


def _loss(accumulate=None):
    """The forum's layer written again, on one point (not a batch)."""
    rng = np.random.default_rng(1)
    target = rng.normal(size=(8, 8)).astype(np.float32)
    x = rng.normal(size=(8, 8)).astype(np.float32)

    def f(v):
        return float(np.mean(0.5 * np.mean((v - target) ** 2, axis=1, dtype=accumulate),
                             dtype=accumulate))

    return f, x, (x.astype(np.float64) - target) / 64


def _one_shot(f, x, eps):
    """(f(x + h e_i) - f(x - h e_i)) / (h+ + h-), the steps as rounded in x's dtype.

    ``f`` is the demo's own batched function, called on one point at a time:
    its float32 sums then round exactly as in the check.
    """
    if hasattr(f, "fn"):
        f = (lambda fn: lambda v: float(fn(v[None])[0]))(f.fn)
    n = np.empty(x.size)
    for i in range(x.size):
        h = eps * max(1.0, abs(float(x.flat[i])))
        xp, xm = x.copy(), x.copy()
        xp.flat[i] = float(x.flat[i]) + h          # x_i + h, rounded once to float32
        xm.flat[i] = float(x.flat[i]) - h
        step = (float(xp.flat[i]) - float(x.flat[i])) + (float(x.flat[i]) - float(xm.flat[i]))
        n[i] = (f(xp) - f(xm)) / step
    return n.reshape(x.shape)


def _disc(n, a):
    return float(np.linalg.norm(n - a) / (np.linalg.norm(n) + np.linalg.norm(a)))


@pytest.fixture(scope="module")
def computed():
    d = demo.compute()
    return d, "\n".join(demo.render(d))


def _flat(text):
    """The text with its line breaks undone, so sentences can be searched whole."""
    return " ".join(line.strip() for line in text.splitlines())


def test_the_point_and_gradient_are_the_forum_layer(computed):
    d, _ = computed
    f, x, g = _loss()
    assert np.array_equal(d.x, x)
    np.testing.assert_allclose(d.grad, g, rtol=1e-15)
    # the batched form the demo checks is the same function
    fb, _, _ = demo.forum_layer()
    assert float(fb.fn(x[None])[0]) == pytest.approx(f(x), rel=1e-6)


def test_section_1_the_classic_formula(computed):
    d, text = computed
    t = _flat(text)
    f, x, g = demo.forum_layer()
    n = _one_shot(f, x, demo.USER_EPS)
    np.testing.assert_allclose(d.classic, n, rtol=1e-7)  # f(x) enters where nodes are asymmetric
    disc = _disc(n, g)
    assert d.classic_discrepancy == pytest.approx(disc, rel=1e-7)
    assert f"gives the discrepancy {disc:.2e}" in t
    err = np.abs(n - g)
    worst = tuple(int(i) for i in np.unravel_index(np.argmax(err), err.shape))
    gmax = np.max(np.abs(g))
    assert (f"the worst entry, {worst}, is off by {np.max(err):.1e}, "
            f"{np.max(err) / gmax:.2%} of max|g| = {gmax:.1e}") in t
    h = demo.USER_EPS * np.maximum(1.0, np.abs(x.astype(np.float64)))
    assert f"({np.min(h):.1e}..{np.max(h):.1e})" in t
    # the user's large discrepancy: far above what the step the sweep recommends leaves
    assert disc > 100 * d.best.discrepancy


def test_section_1_why_rounding_dominates(computed):
    d, text = computed
    t = _flat(text)
    s = d.sweep
    i = int(np.flatnonzero(s.eps == demo.USER_EPS)[0])
    pr, pt = s.predicted_rounding[i], s.predicted_truncation[i]
    assert f"f's rounding noise, measured at X, is {s.noise:.1e}" in t
    assert f"predicts a discrepancy of {pr:.1e} from rounding and {pt:.1e} from truncation" in t
    assert pr > pt and "rounding dominates: noise, not a bug" in t
    assert d.classic_discrepancy <= pr + pt and f"the measured {d.classic_discrepancy:.1e} is within" in t
    # "none: an MSE is quadratic along each coordinate": the third difference of f in
    # float64 along every coordinate is zero to rounding
    f64, x, _ = _loss(np.float64)
    xd = x.astype(np.float64)
    for i in range(0, xd.size, 7):
        e = np.zeros_like(xd)
        e.flat[i] = 0.5
        third = f64(xd + 3 * e) - 3 * f64(xd + 2 * e) + 3 * f64(xd + e) - f64(xd)
        assert abs(third) < 1e-12
    assert pt == 0 and "(none: an MSE is quadratic along each coordinate)" in t


def test_section_2_gpucheck_at_the_users_eps(computed):
    d, text = computed
    t = _flat(text)
    u = d.user
    assert u.status == "pass" and u.summary() in text
    ratio = np.asarray(u.eps).ravel() / d.user_steps
    # every entry was settled at a larger step than the user's, where rounding/step is smaller
    assert u.n_refined == u.numeric.size == 64 and np.all(ratio > 1)
    assert "judged all 64 entries again at other steps" in t
    assert f"{np.min(ratio):.0f}x to {np.max(ratio):.0f}x the user's, larger" in t
    lo, hi = np.min(u.eps), np.max(u.eps)
    assert (f"settled them at are {lo:.1e}" if f"{lo:.1e}" == f"{hi:.1e}"
            else f"settled them at are {lo:.1e}..{hi:.1e}") in t
    assert f"which put f's noise at {u.noise:.1e}" in t
    assert f"The verdict is PASS with discrepancy {u.discrepancy:.1e}" in t
    assert f"({d.classic_discrepancy / u.discrepancy:.0f}x below the one-shot" in t
    assert all(w.note == "within rounding error" for w in u.worst)
    assert f"about {1.5 * u.resolution:.1%} of max|g|" in t


def test_section_3_what_to_do(computed):
    d, text = computed
    t = _flat(text)
    s = d.sweep
    assert s.best_eps == s.eps[np.argmin(s.discrepancy)] > demo.USER_EPS
    assert "3. What to do: use a larger step" in text
    assert f"recommends eps = {demo._e(s.best_eps)}" in t
    assert "Use eps = " + f"{s.best_eps:.1e}" in t          # the sweep's own advice agrees
    b = d.best
    assert b.status == "pass" and np.all(np.asarray(b.eps) >= s.best_eps * 0.999)
    assert f"there gpucheck gives PASS with discrepancy {b.discrepancy:.1e}" in t
    u32 = 2.0 ** -24
    assert f"eps = u^(1/3) = {u32 ** (1 / 3):.1e}, gives {d.default.status.upper()}" in t
    assert d.default.status == "pass"
    # float64 sums of the same float32 terms: less noise, a smaller one-shot discrepancy
    f64, x, g = demo.forum_layer(accumulate=np.float64)
    wide = _disc(_one_shot(f64, x, demo.USER_EPS), g)
    assert d.wide_discrepancy == pytest.approx(wide, rel=1e-7)
    assert d.wide_noise < d.user.noise and wide < d.classic_discrepancy
    assert (f"lowers f's noise from {d.user.noise:.1e} to {d.wide_noise:.1e}, and the one-shot "
            f"discrepancy at 1e-4 from {d.classic_discrepancy:.1e} to {wide:.1e}") in t


def test_section_4_the_planted_bug(computed):
    d, text = computed
    t = _flat(text)
    bad = d.bug
    assert str(bad).splitlines()[0] in text and "likely cause: 1 isolated wrong entry (at (2, 5))" in text
    assert bad.status == "fail" and bad.n_failed == 1
    w = bad.worst[0]
    assert tuple(w.index) == demo.BUG_INDEX == (2, 5) and w.status == "fail"
    off = 0.05 * abs(d.grad[2, 5])
    assert w.abs_error == pytest.approx(off, rel=0.05)   # the numeric side is right
    gmax = np.max(np.abs(d.grad))
    assert f"The planted error is {off:.1e}, {off / gmax:.1%} of max|g|" in t
    assert "Entry (2, 5) is the one that fails" in t
    assert f"error {w.abs_error:.1e} against its tolerance {w.tolerance:.1e}" in t
    assert "63 of 64 entries agree" in t
    assert "entry (2, 5) of the gradient 5% off" in text


def test_section_5_the_table_and_its_columns(computed):
    d, text = computed
    t = _flat(text)
    s = d.sweep
    assert str(s).splitlines()[0] in text
    # 'discrepancy' is measured: the one-shot formula at each step (by hand here)
    f, x, g = demo.forum_layer()
    for e, disc in zip(s.eps, s.discrepancy):
        assert disc == pytest.approx(_disc(_one_shot(f, x, e), g), rel=1e-9)
    assert f"the first row is section 1's {s.discrepancy[0]:.2e}" in t
    de = s.discrepancy * s.eps
    assert f"({np.min(de):.1e} to {np.max(de):.1e} here: nearly constant" in t
    assert np.max(de) / np.min(de) < 2
    # 'rounding' is a prediction from the noise divided by the step: it scales as 1/eps
    np.testing.assert_allclose(s.predicted_rounding * s.eps,
                               s.predicted_rounding[0] * s.eps[0], rtol=1e-3)
    assert "PREDICTIONS of the discrepancy, not measurements" in t
    assert np.all(s.predicted_truncation == 0) and "(zero here:" in t


def test_no_stale_statements(computed):
    _, text = computed
    for stale in ("rather than a false", "INCONCLUSIVE", "inconclusive"):
        assert stale not in text


def test_sentences_follow_the_numbers():
    """Planted changes of the numbers change the sentences built on them."""
    d = demo.compute()
    s = d.sweep
    trunc = s.predicted_rounding * 10
    t = _flat("\n".join(demo.render(dataclasses.replace(
        d, sweep=dataclasses.replace(s, predicted_truncation=trunc)))))
    assert "truncation dominates" in t and "rounding dominates: noise" not in t
    assert "(none: an MSE" not in t and "(zero here:" not in t
    # a best step below the user's: no advice to go larger
    t = "\n".join(demo.render(dataclasses.replace(d, sweep=dataclasses.replace(s, best_eps=1e-5))))
    assert "use a larger step" not in t


def test_the_command_prints_what_it_computed(monkeypatch, capsys):
    seen = []
    real = demo.compute

    def spy():
        seen.append(real())
        return seen[-1]

    monkeypatch.setattr(demo, "compute", spy)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert out == "\n".join(demo.render(seen[0])) + "\n"


def test_the_readme_quotes_the_demo(computed):
    """README.md's description of the demo quotes numbers the demo computes today."""
    import pathlib
    import re

    d, _ = computed
    readme = pathlib.Path(__file__).resolve().parent.parent / "README.md"
    text = " ".join(readme.read_text().split())
    start = text.index("The demo checks the layer")
    para = text[start:text.index("## Use", start)]

    def sci(v):
        m, e = f"{v:.1e}".split("e")
        return f"{m}e{int(e)}"

    assert f"discrepancy {sci(d.classic_discrepancy)}" in para
    ratio = np.asarray(d.user.eps).ravel() / d.user_steps
    assert f"steps {np.min(ratio):.0f}× to {np.max(ratio):.0f}× larger" in para
    assert d.user.status == "pass" and "and passes" in para
    assert f"cut f's noise {d.user.noise / d.wide_noise:.0f}×" in para
    assert d.sweep.regime == "roundoff" and "falls tenfold per tenfold larger step" in para
    assert f"one gradient entry is {demo.BUG_FACTOR - 1:.0%} off" in para
    assert not re.search(r"INCONCLUSIVE|inconclusive", para)
