"""The verdict on a broad corpus: no false fail, no false pass, no needless inconclusive.

Cases come from tests/corpus.py (every form of f: plain callables, batched
functions, kernel functions with float64 accumulators over float32 terms,
the built-in layers; kinks, ties, coarse or offset or nondeterministic f,
tiny and huge x; float64, float32, float16, bfloat16).  This is the slice CI
runs; bench/verdict_corpus.py sweeps many more seeds and sizes.  The
``issue`` tests are the wrong verdicts reported against the first version
of the check, each in a few lines.
"""

from __future__ import annotations

import numpy as np
import pytest

import corpus
import gpucheck
from gpucheck import layers as L
from gpucheck.diagnose import diagnose

SEEDS = range(3)
DTYPES = (np.float64, np.float32)


def _cases(seed, dt, n, builders=None):
    return {c.name: c for c in corpus.cases(seed, dt, n, builders)}


def _check(c, form, grad, **kw):
    return gpucheck.check_gradient(c.forms[form], c.x, grad, backend="cpu", **kw)


def assert_consistent(r):
    """Per-entry statuses and printed numbers never contradict each other."""
    st = np.asarray(r.element_status)
    assert np.all(r.abs_error[st == "pass"] <= r.tolerance[st == "pass"])
    assert np.all(~(r.abs_error[st == "fail"] <= r.tolerance[st == "fail"]))
    for w in r.worst:
        if w.status == "pass":
            assert w.abs_error <= w.tolerance
        if w.status == "fail":
            assert not w.abs_error <= w.tolerance


NAMES = [b.__name__ for b in corpus.SMOOTH + corpus.SPECIAL]
MORE = [b.__name__ for b in corpus.LAYERS + corpus.SEVERAL]


@pytest.mark.parametrize("seed,dtype,name", [
    (seed, dt, name) for seed in SEEDS for dt in DTYPES for name in NAMES + MORE
    if not (seed and name in MORE)])
def test_corpus_verdicts(seed, dtype, name):
    # seed 0: every form the case has (callable, batched, kernel, row-wise,
    # layer by delta); the other seeds: the plain forms of the first cases
    # (bench/verdict_corpus.py runs them all over many seeds)
    c = _cases(seed, dtype, 5, [getattr(corpus, name)])[name]
    for form in c.forms:
        if seed and form not in ("batched", "callable"):
            continue
        r = _check(c, form, c.grad)
        assert r.status == c.expect, f"{form}\n{r}"
        assert_consistent(r)
        if c.expect != "pass":
            continue
        for bug, bad in corpus.bugs(c, seed).items():
            rb = _check(c, form, bad)
            assert rb.status == "fail", f"{form}, {bug}\n{rb}"
            assert_consistent(rb)


def test_corpus_covers_every_form_and_bug():
    forms, bug_names = set(), set()
    for c in corpus.cases(0, np.float32, 5, corpus.SMOOTH + corpus.LAYERS + corpus.SEVERAL):
        forms |= set(c.forms)
        bug_names |= {b.split(": ")[-1].split(" ")[0] for b in corpus.bugs(c, 0)}
    assert forms == {"callable", "batched", "kernel", "rowwise", "layer"}
    assert {"one", "factor", "zero", "transpose"} <= bug_names
    kinds = {gpucheck.functions.as_function(c.forms["layer"]).kind
             for c in corpus.cases(0, np.float32, 5, corpus.LAYERS)}
    assert kinds == {"layer"}    # evaluated by delta, not by the full forward


# ------------------------------------------------ several inputs, 1000x apart

def _two(dtype, seed=0, n=5):
    return _cases(seed, dtype, n, [corpus.two_inputs])["two_inputs"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", ["callable", "batched", "kernel"])
def test_a_one_percent_bug_in_the_small_input_fails(form, dtype):
    # in float32 the bound of every entry at the default step is far above
    # 1% of the bias's max|g|: held to the weights' max|g|, each of these
    # bugs passed
    c = _two(dtype)
    gw, gb = c.grad
    assert np.abs(gb).max() < 2e-3 * np.abs(gw).max()
    for j in range(gb.size):
        bad = gb.copy()
        bad[j] += 0.01 * np.abs(gb).max()
        r = _check(c, form, (gw, bad))
        assert r.status == "fail", f"{j}\n{r}"
        v = {v.name: v for v in r.inputs}
        assert v["input 0"].status == "pass" and v["input 1"].status == "fail"
        assert r.worst[0].input == "input 1" and r.worst[0].index == (j,)
        # the bug is far below the weights' resolution, not below the bias's own
        assert v["input 1"].resolution < 0.01 * np.abs(gb).max() < v["input 0"].resolution


def test_each_input_reports_its_own_resolution():
    c = _two(np.float64)
    r = _check(c, "batched", c.grad)
    assert r.status == "pass"
    gw, gb = c.grad
    v = r.inputs
    assert v[0].scale == pytest.approx(np.abs(gw).max()) and v[1].scale == pytest.approx(np.abs(gb).max())
    assert v[1].resolution == pytest.approx(r.resolution * v[1].scale)
    assert len(r.scales) == 2 and r.to_dict()["inputs"][1]["resolution"] == pytest.approx(v[1].resolution)
    text = " ".join(str(r).split())
    assert f"resolution {v[1].resolution:.2e}" in text and "of its own input" in text


def test_one_array_holds_every_entry_to_the_global_max():
    # the same numbers as one flat array: one max|g|, as before (the bias bug,
    # 1e-5 of the weights' max|g|, is below that resolution and passes)
    c = _two(np.float32)
    w, b = c.x
    gw, gb = c.grad
    f = c.forms["callable"]
    flat = lambda v: f(v[:w.size].reshape(w.shape), v[w.size:])  # noqa: E731
    bad = gb.copy()
    bad[0] += 0.01 * np.abs(gb).max()
    x = np.concatenate([w.ravel(), b])
    r = gpucheck.check_gradient(flat, x, np.concatenate([gw.ravel(), bad]))
    assert r.status == "pass" and r.scales == (pytest.approx(np.abs(gw).max()),)
    assert _check(c, "callable", (gw, bad)).status == "fail"


def test_one_group_is_exactly_no_groups():
    # several inputs change nothing for one: the engine with every entry in
    # group 0 gives the verdicts, tolerances and evaluations of no groups
    from gpucheck import engine
    from gpucheck.functions import as_function
    from gpucheck.stencils import get_scheme

    for c in corpus.cases(1, np.float32, 5, [corpus.mse, corpus.relu_kinks, corpus.offset]):
        f = as_function(c.forms["batched"])
        out = []
        for groups in (None, np.zeros(c.x.size, np.int64)):
            ev = engine.Evaluator(f, c.x, "cpu")
            out.append(engine.check(ev, c.grad, scheme=get_scheme("central"), eps=None,
                                    groups=groups))
        a, b = out
        assert a.status == b.status and a.nfev == b.nfev
        np.testing.assert_array_equal(a.element_status, b.element_status)
        np.testing.assert_array_equal(a.tolerance, b.tolerance)
        np.testing.assert_array_equal(a.numeric, b.numeric)


def test_a_sampled_check_judges_each_input_at_its_own_resolution():
    c = _two(np.float64, n=8)
    gw, gb = c.grad
    bad = gb.copy()
    j = int(np.argmax(np.abs(gb)))
    bad[j] += 0.01 * np.abs(gb).max()
    r = _check(c, "batched", (gw, bad), mode="sample", samples=3)
    v = {v.name: v for v in r.inputs}
    assert r.status == "fail" and v["input 1"].status == "fail" and v["input 0"].status == "pass"
    assert v["input 1"].resolution < 0.01 * np.abs(gb).max()


KERNELS = [corpus.mse, corpus.dense, corpus.softmax_ce, corpus.tanh, corpus.logsumexp_large]


@pytest.mark.parametrize("n", [8, 32])
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_forms_float64_accumulators(n, dtype):
    # f sums terms of x's dtype in float64: the noise that is left comes from
    # the one perturbed term and differs from coordinate to coordinate
    builders = KERNELS if n == 8 else [corpus.mse, corpus.softmax_ce]
    for seed in range(2 if n == 8 else 1):
        for c in corpus.cases(seed, dtype, n, builders):
            r = _check(c, "kernel", c.grad)
            assert r.status == "pass", f"{c.name}\n{r}"
            bad, where = corpus.one_entry_bug(c.grad, 0.005, seed)
            rb = _check(c, "kernel", bad)
            assert rb.status == "fail", f"{c.name}\n{rb}"
            assert rb.element_status[where] == "fail"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["mse", "tanh", "dense"])
def test_low_precision_never_wrong_and_reference_decides(dtype, name):
    pytest.importorskip("ml_dtypes")
    dt = corpus.BFLOAT16 if dtype == "bfloat16" else np.dtype(dtype)
    for seed in range(2):
        c = _cases(seed, dt, 4, [getattr(corpus, name)])[name]
        r = _check(c, "batched", c.grad, reference="float64")
        assert r.dtype == dtype
        assert r.status in ("pass", "inconclusive"), str(r)
        assert r.reference.status == "pass" and r.reference.dtype == "float64"
        assert "formula is right" in r.interpretation()
        for bug, bad in corpus.bugs(c, seed).items():
            rb = _check(c, "batched", bad, reference="float64")
            assert rb.status in ("fail", "inconclusive"), f"{bug}\n{rb}"
            assert rb.reference.status == "fail", f"{bug}\n{rb.reference}"
            assert "formula is wrong" in rb.interpretation()


def test_low_precision_mse_decides_in_its_own_dtype():
    pytest.importorskip("ml_dtypes")
    for dt in (np.dtype(np.float16), corpus.BFLOAT16):
        c = _cases(0, dt, 4, [corpus.mse])["mse"]
        assert _check(c, "batched", c.grad).status == "pass"
        assert _check(c, "batched", -c.grad).status == "fail"


# ------------------------------------------------------- the reported issues

loss_k = corpus.readme_mse_k


@pytest.mark.parametrize("n,seed", [(8, 0), (32, 2), (64, 0)])
def test_issue_readme_kernel_example_passes(n, seed):
    T = np.random.default_rng(seed).normal(size=(n, n)).astype(np.float32)
    X = np.random.default_rng(seed + 1).normal(size=(n, n)).astype(np.float32)
    grad = 2 * (X - T) / n
    r = gpucheck.check_gradient(gpucheck.kernel(loss_k, T), X, grad, backend="cpu")
    assert r.status == "pass", str(r)
    # and it costs about 2N: only the few entries the screen flags are refined
    assert r.nfev <= 2 * X.size + 100 + 40 * r.n_refined
    assert r.n_refined <= max(4, X.size // 50)


@pytest.mark.parametrize("seed", [2, 3])
def test_issue_float16_or_rounded_output_for_float64_x_is_not_failed(seed):
    x = np.random.default_rng(seed).normal(size=8)
    for f, g in ((lambda v: np.float16(np.sum(np.sin(v))), np.cos(x)),
                 (lambda v: np.float16(np.sum(v ** 2)), 2 * x),
                 (lambda v: np.round(np.sum(np.sin(v)), 4), np.cos(x))):
        assert gpucheck.check_gradient(f, x, g).status != "fail"
        assert gpucheck.check_gradient(f, x, -g).status == "fail"


def test_issue_steps_beyond_f_scale_are_not_failures():
    x = np.linspace(1, 2, 8) * 1e30
    assert gpucheck.check_gradient(lambda v: np.sum(np.sin(v)), x, np.cos(x)).status == "inconclusive"
    x = np.linspace(-1, 1, 8)
    r = gpucheck.check_gradient(lambda v: np.sum(np.sin(v)), x, np.cos(x), eps=1e10)
    assert r.status == "pass", str(r)   # a smaller step decides


def test_issue_large_user_eps_is_a_starting_point():
    x = np.linspace(0.3, 1.2, 6)
    f4 = lambda v: np.sum(v ** 4)  # noqa: E731
    assert gpucheck.check_gradient(f4, x, -4 * x ** 3, eps=3.0).status == "fail"
    assert gpucheck.check_gradient(f4, x, 4 * x ** 3, eps=3.0).status == "pass"
    r = gpucheck.check_gradient(f4, x, 4 * x ** 3, eps=3.0)
    assert r.n_kinks == 0
    fs = lambda v: np.sum(np.sin(v))  # noqa: E731
    assert gpucheck.check_gradient(fs, x, 1.2 * np.cos(x), eps=1.0).status == "fail"
    assert gpucheck.check_gradient(fs, x, np.cos(x), eps=1.0).status == "pass"


def test_issue_zero_gradient_of_coarse_or_tiny_f_does_not_pass():
    xs = np.random.default_rng(0).normal(size=8)
    coarse = lambda v: np.round(np.sum(v ** 2), 3)  # noqa: E731
    assert gpucheck.check_gradient(coarse, xs, np.zeros(8)).status == "fail"
    assert gpucheck.check_gradient(coarse, xs, 2 * xs).status == "pass"
    tiny = xs * 1e-30
    scaled = lambda v: np.sum(v ** 2) * 1e30  # noqa: E731
    assert gpucheck.check_gradient(scaled, tiny, np.zeros(8)).status != "pass"
    assert gpucheck.check_gradient(scaled, tiny, 2e30 * tiny).status != "fail"
    assert gpucheck.check_gradient(lambda v: np.sum(np.sin(v)), tiny, np.zeros(8)).status == "fail"
    assert gpucheck.check_gradient(lambda v: np.sum(np.sin(v)), tiny, np.ones(8)).status == "pass"


def test_issue_ties_are_judged_jointly():
    x = np.array([1.0, 1, 0, 0.5])
    r = gpucheck.check_gradient(lambda v: v.max(), x, np.array([1.0, 1, 0, 0]))
    assert r.status == "fail" and r.n_joint_failed == 2, str(r)
    assert "not together" in r.diagnosis
    assert_consistent(r)
    for ok in ([0.5, 0.5, 0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0]):
        assert gpucheck.check_gradient(lambda v: v.max(), x, np.array(ok)).status == "pass", ok


def test_issue_maxpool_gradient_to_every_tie_fails():
    for seed in range(3):
        c = _cases(seed, np.float64, 4, [corpus.maxpool_ties])["maxpool_ties"]
        assert _check(c, "batched", c.grad).status == "pass"
        assert _check(c, "batched", c.extra["every_tie"]).status == "fail"


def test_issue_complex_output_is_refused():
    fc = gpucheck.batched(lambda xs: (xs ** 2).sum(axis=1) + 1j * xs.sum(axis=1))
    with pytest.raises(gpucheck.GpuCheckError, match="imaginary part"):
        gpucheck.check_gradient(fc, np.ones(4), 2 * np.ones(4))
    with pytest.raises(gpucheck.GpuCheckError, match="imaginary part"):
        gpucheck.check_gradient(lambda v: np.sum(v ** 2) + 1j, np.ones(4), 2 * np.ones(4))


@pytest.mark.parametrize("seed", [0, 1])
def test_issue_a_mean_over_many_rows_with_small_gradient_is_decided(seed):
    # float32 least squares near its optimum: entries of g ~ 1e-4, f ~ 0.5
    rng = np.random.default_rng(seed)
    R = rng.normal(size=(4096, 8)).astype(np.float32)
    y = (R.astype(np.float64) @ rng.normal(size=8) + rng.normal(size=4096)).astype(np.float32)
    R64, y64 = R.astype(np.float64), y.astype(np.float64)
    w = (np.linalg.lstsq(R64, y64, rcond=None)[0] + 1e-4 * rng.normal(size=8)).astype(np.float32)
    fb = gpucheck.batched(lambda ws: ((ws @ R.T - y) ** 2).mean(axis=1) / 2)
    g = R64.T @ (R64 @ w.astype(np.float64) - y64) / R.shape[0]
    assert np.abs(g).max() < 1e-3
    assert gpucheck.check_gradient(fb, w, g).status == "pass"
    bad = g.copy()
    bad[3] += 0.01 * np.abs(g).max()
    assert gpucheck.check_gradient(fb, w, bad).status == "fail"


@pytest.mark.parametrize("name", ["offset", "mean_rows", "logsumexp_large"])
def test_issue_a_decisive_step_is_found(name):
    c = _cases(0, np.float32, 6, [getattr(corpus, name)])[name]
    r = _check(c, "batched", c.grad)
    assert r.status == "pass", str(r)
    assert "after refinement" in r.summary() or r.n_refined == 0


def test_issue_worst_entries_are_the_worst():
    layer = L.tanh_sum(np.random.default_rng(1).normal(size=(6, 6)))
    x = np.random.default_rng(2).normal(size=(6, 6))
    g = layer.grad(x)
    bad = g.copy()
    bad[5, 5] *= 1.5      # the worst
    bad[0, 0] *= 1.05     # failing, but less so
    r = gpucheck.check_gradient(layer.batched, x, bad, worst=6)
    assert r.worst[0].index == (5, 5) and r.worst[1].index == (0, 0)
    ratios = [w.abs_error / w.tolerance for w in r.worst]
    ranks = [("fail", "inconclusive", "pass").index(w.status) for w in r.worst]
    assert ranks == sorted(ranks)
    for a, b, ra, rb in zip(ratios, ratios[1:], ranks, ranks[1:]):
        assert ra < rb or a >= b


def test_issue_diagnose_any_shape():
    rng = np.random.default_rng(0)
    x3 = rng.normal(size=(3, 4, 5))
    g3 = np.cos(x3)
    g3[:, 1, :] = 0
    r = gpucheck.check_gradient(lambda v: np.sum(np.sin(v)), x3, g3)
    assert r.status == "fail"
    assert "axis 1" in r.diagnosis and "index 1" in r.diagnosis
    n = rng.normal(size=(2, 3, 4, 5))
    a = n.copy()
    a[:, :, 2, :] = 0
    assert "axis 2" in diagnose(n, a, np.ones(n.shape, bool))


def test_issue_no_permutation_for_an_error_everywhere():
    c = _cases(0, np.float64, 6, [corpus.batchnorm])["batchnorm"]
    bad = c.grad * (1 + 0.036 * np.sign(np.random.default_rng(3).normal(size=c.grad.shape)))
    r = _check(c, "batched", bad)
    assert r.status == "fail"
    assert "permutation" not in r.diagnosis


def test_issue_smooth_functions_have_no_kinks_and_passes_mean_agreement():
    for seed in SEEDS:
        for c in corpus.cases(seed, np.float64, 8, corpus.SMOOTH):
            r = _check(c, "batched", c.grad)
            assert r.n_kinks == 0, f"{c.name}\n{r}"
            assert r.status == "pass" and r.discrepancy < 1e-2, f"{c.name}\n{r}"
    # logits of 1e3 in float32: a pass there once stood beside a discrepancy of 0.1
    layer = L.logsumexp()
    x = (5 * np.random.default_rng(0).normal(size=(6, 6)) + 1e3).astype(np.float32)
    r = gpucheck.check_gradient(layer.batched, x, layer.grad(x))
    assert r.status == "pass" and r.discrepancy < 1e-2, str(r)


def test_issue_nondeterministic_f_is_named():
    c = _cases(0, np.float64, 6, [corpus.nondeterministic])["nondeterministic"]
    r = _check(c, "batched", c.grad)
    assert r.status == "inconclusive" and r.nondeterministic
    assert "not deterministic" in r.summary() and "not deterministic" in str(r)
    assert "not deterministic" in r.to_dict()["advice"]
    mild = _cases(0, np.float32, 6, [corpus.unordered_sum])["unordered_sum"]
    r = _check(mild, "callable", mild.grad)
    assert r.status == "pass", str(r)


def test_inconclusive_says_what_was_tried_and_what_to_do():
    w = np.float32(1e-3)
    f = gpucheck.batched(lambda xs: np.float32(1e9) + w * xs.reshape(xs.shape[0], -1).sum(axis=1))
    x = np.linspace(-1, 1, 10, dtype=np.float32)
    r = gpucheck.check_gradient(f, x, np.full(10, 1e-3))
    assert r.status == "inconclusive", r.summary()
    assert "undecided after steps from" in r.advice and "What helps" in r.advice
    assert "note:" in str(r)


def test_honesty_costs_about_2n():
    for c in corpus.cases(0, np.float64, 8, [corpus.mse, corpus.tanh, corpus.dense]):
        r = _check(c, "batched", c.grad)
        assert r.status == "pass"
        assert r.nfev <= 2 * c.x.size + 100, (c.name, r.nfev)


def test_nonfinite_analytic_entry_fails():
    c = _cases(1, np.float64, 5, [corpus.mse])["mse"]
    g = c.grad.copy()
    g.flat[3] = np.nan
    r = _check(c, "batched", g)
    assert r.status == "fail"
    assert r.element_status.flat[3] == "fail"


def test_complex_step_is_exact_and_refuses_non_analytic_code():
    x = np.linspace(-1, 1, 7)
    f = lambda v: np.sum(np.exp(v) * np.sin(v))  # noqa: E731
    g = np.exp(x) * (np.sin(x) + np.cos(x))
    r = gpucheck.check_gradient(f, x, g, scheme="complex")
    assert r.status == "pass" and r.scheme == "complex"
    assert r.nfev <= x.size + 30
    assert np.max(np.abs(r.numeric - g)) < 1e-14
    bad = g.copy()
    bad[3] *= 1 + 1e-6   # far below what central differences could see
    assert gpucheck.check_gradient(f, x, bad, scheme="complex").status == "fail"
    fb = gpucheck.batched(lambda xs: (np.tanh(xs) ** 2).sum(axis=1))
    assert gpucheck.check_gradient(fb, x, 2 * np.tanh(x) / np.cosh(x) ** 2, scheme="complex").passed
    for non_analytic in (lambda v: np.sum(np.abs(v)), lambda v: np.sum(v * np.conj(v)),
                         lambda v: np.sum(np.maximum(v.real, 0) * v)):
        with pytest.raises(gpucheck.GpuCheckError, match="not complex-analytic"):
            gpucheck.check_gradient(non_analytic, x + 0.1, np.sign(x + 0.1), scheme="complex")
    with pytest.raises(gpucheck.GpuCheckError, match="kernel"):
        gpucheck.check_gradient(gpucheck.kernel(loss_k, np.zeros((2, 2))), np.ones((2, 2)),
                                np.ones((2, 2)), scheme="complex")


# ------------------------------------------------------------- sweeps stay

@pytest.mark.parametrize("dtype", DTYPES)
def test_sweep_regimes(dtype):
    c = _cases(0, dtype, 5, [corpus.mse])["mse"]
    s = gpucheck.sweep(c.forms["batched"], c.x, c.grad)
    assert s.regime == "roundoff"
    assert "no truncation error" in s.explanation and "not a bug" in s.explanation
    assert s.best_eps == s.eps.max()
    bug = gpucheck.sweep(c.forms["batched"], c.x, 1.1 * c.grad)
    assert bug.regime == "bug"
    assert "constant factor" in bug.explanation


def test_sweep_cubic_float64_large_steps_is_truncation():
    x = np.linspace(0.5, 1.5, 9)
    s = gpucheck.sweep(lambda v: np.sum(v ** 3), x, 3 * x ** 2, eps=[1e-3, 1e-2, 1e-1, 1.0])
    assert s.regime == "truncation"
    assert "eps^2" in s.explanation
    ratios = s.discrepancy[1:] / s.discrepancy[:-1]
    assert np.all((ratios > 50) & (ratios < 200))  # grows like eps^2


def test_sweep_smooth_float64_default_steps_is_balanced():
    x = np.linspace(-1, 1, 9)
    s = gpucheck.sweep(lambda v: np.sum(np.sin(3 * v)), x, 3 * np.cos(3 * x))
    assert s.regime == "balanced"
    assert s.eps.min() < s.best_eps < s.eps.max()


def test_demo_table_falls_tenfold_per_decade():
    from gpucheck.cli import demo_problem

    layer, x = demo_problem()
    s = gpucheck.sweep(layer.batched, x, layer.grad(x), eps=[1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    ratios = s.discrepancy[:-1] / s.discrepancy[1:]
    assert np.all((ratios > 3) & (ratios < 30)), s.discrepancy
    assert s.regime == "roundoff"


def test_a_staircase_whose_quantum_shows_late_still_fails_a_sign_flip():
    # f rounded to 3 decimals: at the first step f does not move along the
    # entry's noise line while its stencil nodes do, so that line's noise
    # was left unmeasured, and stayed so once larger steps showed the quantum
    c = _cases(4, np.float64, 3, [corpus.coarse_output])["coarse_output"]
    bad = corpus.bugs(c, 4)["one sign"]
    for form in ("batched", "callable"):
        r = _check(c, form, bad)
        assert r.status == "fail", str(r)
        assert_consistent(r)
    assert _check(c, "batched", c.grad).status == "pass"


def test_a_missing_small_gradient_is_never_passed():
    # b's gradient left at zero: in float32 no step shows b's true gradient
    # (1e-3 of W's) above its bound, which looks exactly like an input f is
    # invariant to; held to W's max|g| it would pass, held to its own it
    # cannot: inconclusive, never pass
    c = _two(np.float32, seed=27, n=8)
    gw, gb = c.grad
    for form in ("batched", "callable"):
        r = _check(c, form, (gw, np.zeros_like(gb)))
        v = {v.name: v.status for v in r.inputs}
        assert v["input 0"] == "pass" and v["input 1"] in ("fail", "inconclusive"), str(r)
    # an input f does not depend on at all passes: f never moves along it
    x = np.linspace(0.1, 1, 6).astype(np.float32)
    r = gpucheck.check_gradient(lambda v, b: np.sum(np.sin(v)), (x, np.ones(3, np.float32)),
                                (np.cos(x.astype(np.float64)), np.zeros(3)))
    assert r.status == "pass", str(r)
