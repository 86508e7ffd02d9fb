"""Checks that scale to any N: mode='sample', 'project', 'sample+project' and 'auto'.

Every form of f (callable, batched, kernel, row-wise, built-in layer) on the
cpu backend: a correct gradient passes, planted bugs (one entry, a wrong sign
on a row, a constant factor) fail, and what was not checked is said.  The
references are independent: the full check on the same problem, float64
NumPy gradients, a local run for the executor.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import corpus
from delta_cases import block_energy, row_tanh
import gpucheck
from gpucheck import layers, modes
from gpucheck.dense import AlongDirections, Directions
from gpucheck.functions import as_function
from gpucheck.result import MISS_PER_DIRECTION, Coverage


tanh_k = block_energy  # sum(w * tanh(x)) as a kernel of all of x
tanh_row = row_tanh


def problem(dtype=np.float64, shape=(16, 12), seed=0):
    """sum(w * tanh(x)) in every form, at x, with its float64 gradient."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=shape).astype(dtype)
    x = (1.2 * rng.normal(size=shape)).astype(dtype)

    def fb(xs):
        return (np.tanh(xs) * w[None]).reshape(xs.shape[0], -1).sum(axis=1)

    forms = {
        "callable": lambda v: float(np.sum(np.tanh(v) * w)),
        "batched": gpucheck.batched(fb),
        "kernel": gpucheck.kernel(tanh_k, w),
        "rowwise": gpucheck.rowwise(tanh_row, w),
        "layer": layers.tanh_sum(w),
    }
    grad = w.astype(np.float64) / np.cosh(x.astype(np.float64)) ** 2
    return forms, x, grad


FORMS = ["callable", "batched", "kernel", "rowwise", "layer"]


def check(f, x, g, **kw):
    kw.setdefault("backend", "cpu")
    return gpucheck.check_gradient(f, x, g, **kw)


# ------------------------------------------------------------------ sample

@pytest.mark.parametrize("form", FORMS)
def test_a_sample_of_every_entry_is_the_full_check(form):
    # the sub-point evaluator maps the engine's points onto x exactly: with
    # every entry sampled, the check is the full check, number for number
    forms, x, g = problem(shape=(6, 5))
    full = check(forms[form], x, g, mode="full")
    s = check(forms[form], x, g, mode="sample", samples=x.size)
    assert s.coverage.checked == x.size and s.mode == "sample"
    np.testing.assert_array_equal(s.numeric, full.numeric)
    np.testing.assert_array_equal(s.tolerance, full.tolerance)
    np.testing.assert_array_equal(s.element_status, full.element_status)
    assert s.nfev == full.nfev and s.status == full.status == "pass"
    assert [w.index for w in s.worst] == [w.index for w in full.worst]


@pytest.mark.parametrize("form", FORMS)
def test_sample_passes_a_correct_gradient_and_says_what_it_checked(form):
    forms, x, g = problem()
    r = check(forms[form], x, g, mode="sample", samples=8, indices=[(0, 0)])
    assert r.status == "pass", r
    st = np.asarray(r.element_status)
    checked = st != "unchecked"
    assert checked.sum() == r.coverage.checked < x.size
    assert r.coverage.random == 8 and r.coverage.largest == 8 and r.coverage.named == 1
    assert checked[0, 0]
    # the largest |g| entries are always among the checked ones
    top = np.argsort(-np.abs(g).ravel(), kind="stable")[:8]
    assert checked.ravel()[top].all()
    # unchecked entries: NaN numbers, the analytic gradient kept
    assert np.isnan(r.numeric[~checked]).all() and np.isnan(r.tolerance[~checked]).all()
    np.testing.assert_array_equal(r.analytic, g)
    assert np.isfinite(r.numeric[checked]).all()
    # worst entries are named by their place in x
    for w in r.worst:
        assert len(w.index) == 2 and checked[w.index]
    assert "sampled entries agree (of 192)" in r.summary()


@pytest.mark.parametrize("form", FORMS)
def test_sample_catches_planted_bugs(form):
    forms, x, g = problem()
    f = forms[form]
    # one entry, made the largest: always sampled (the largest |g| are)
    big = g.copy()
    big[5, 7] = 3 * np.abs(g).max()
    r = check(f, x, big, mode="sample", samples=8)
    assert r.status == "fail" and r.worst[0].index == (5, 7), r
    # one entry 2% of max|g| off, named
    small = g.copy()
    small[9, 2] += 0.02 * np.abs(g).max()
    r = check(f, x, small, mode="sample", samples=8, indices=[(9, 2)])
    assert r.status == "fail" and r.worst[0].index == (9, 2)
    assert "1 isolated wrong entry (at (9, 2))" in r.diagnosis
    # a wrong sign on row 3, with a few of its entries named
    row = g.copy()
    row[3] *= -1
    r = check(f, x, row, mode="sample", samples=8, indices=[(3, 1), (3, 4), (3, 9)])
    assert r.status == "fail"
    assert "row 3" in r.diagnosis and "sign flipped" in r.diagnosis, r.diagnosis
    # a constant factor
    r = check(f, x, 1.05 * g, mode="sample", samples=8)
    assert r.status == "fail" and "constant factor" in r.diagnosis


def test_sample_says_a_bug_it_did_not_sample_was_not_checked():
    forms, x, g = problem()
    bad = g.copy()
    bad[9, 2] += 0.02 * np.abs(g).max()
    r = check(forms["batched"], x, bad, mode="sample", samples=8)
    assert r.element_status[9, 2] == "unchecked"
    assert r.status == "pass"  # of the entries it checked, which it names
    assert r.coverage.detectable() > 0.2 and "sampled" in str(r)


def test_seed_decides_the_sample():
    forms, x, g = problem()
    f = forms["batched"]
    a = check(f, x, g, mode="sample", samples=8, seed=1)
    b = check(f, x, g, mode="sample", samples=8, seed=1)
    c = check(f, x, g, mode="sample", samples=8, seed=2)
    np.testing.assert_array_equal(a.element_status, b.element_status)
    assert not np.array_equal(a.element_status, c.element_status)
    assert a.coverage.seed == 1
    fresh = check(f, x, g, mode="sample", samples=8, seed=None)
    assert isinstance(fresh.coverage.seed, int)


def test_choose_entries():
    a = np.arange(100.0)
    a[17] = np.nan  # a non-finite analytic value counts as large
    entries, cov = modes.choose_entries(a, 5, seed=0, named=np.array([0]))
    assert {17, 99, 98, 97, 96, 0} <= set(entries.tolist())
    assert cov.checked == entries.size and cov.total == 100 and cov.named == 1
    everything, cov = modes.choose_entries(a, 500, seed=0)
    assert everything.tolist() == list(range(100)) and cov.fraction == 1.0


def test_sample_with_several_inputs_names_entries_and_verdicts_per_input():
    rng = np.random.default_rng(0)
    W, b, A = rng.normal(size=(6, 5)), rng.normal(size=5), rng.normal(size=(7, 6))

    def loss(p):
        return float(np.sum(np.tanh(A @ p["W"] + p["b"]) ** 2))

    z = np.tanh(A @ W + b)
    d = 2 * z * (1 - z ** 2)
    g = {"W": A.T @ d, "b": d.sum(0)}
    r = check(loss, {"W": W, "b": b}, g, mode="sample", samples=3,
              indices={"W": [(3, 4)], "b": [0]})
    assert r.status == "pass"
    split = r.split("element_status")
    assert split["W"][3, 4] != "unchecked" and split["b"][0] != "unchecked"
    assert [v.checked for v in r.inputs] == [int((split[k] != "unchecked").sum()) for k in ("W", "b")]
    assert all(w.input in ("W", "b") for w in r.worst)
    # flat indices into both inputs, one after the other
    r = check(loss, {"W": W, "b": b}, g, mode="sample", samples=1, indices=[0, 31])
    assert r.split("element_status")["b"][1] != "unchecked"
    bad = {"W": g["W"], "b": -g["b"]}
    r = check(loss, {"W": W, "b": b}, bad, mode="sample", samples=3, indices={"b": [0, 1, 2]})
    verdicts = {v.name: v for v in r.inputs}
    assert r.status == "fail" and verdicts["b"].status == "fail" and verdicts["W"].status == "pass"
    assert r.diagnosis.startswith("b: sign flipped"), r.diagnosis
    assert "of 30 checked" in str(verdicts["W"])


def test_every_input_gets_its_largest_entries_and_unchecked_inputs_say_so():
    def loss(w, b):
        return float(np.sum(w ** 2) + np.sum(b ** 3))

    w, b = np.linspace(1, 2, 50), np.array([0.5])
    # b's gradient (0.75) is below every one of w's: the largest entries are
    # taken per input, since each input is held to its own max|g|
    r = check(loss, (w, b), (2 * w, 3 * b ** 2), mode="sample", samples=1, indices=[3])
    v = {v.name: v for v in r.inputs}
    assert v["input 1"].status == "pass" and v["input 1"].checked == 1
    r = check(loss, (w, b), (2 * w, -3 * b ** 2), mode="sample", samples=1, indices=[3])
    assert {v.name: v.status for v in r.inputs} == {"input 0": "pass", "input 1": "fail"}
    r = check(loss, (w, b), (2 * w, 3 * b ** 2), mode="project")
    v = {v.name: v for v in r.inputs}
    assert v["input 1"].status == "unchecked" and v["input 1"].checked == 0


def test_sample_with_the_complex_step_and_a_float64_reference():
    x = np.linspace(0.1, 2.0, 300)
    f = gpucheck.batched(lambda xs: np.sin(xs).sum(axis=1))
    r = check(f, x, np.cos(x), mode="sample", samples=10, scheme="complex")
    assert r.status == "pass" and r.scheme == "complex" and r.coverage.checked <= 20
    x32 = x.astype(np.float32)
    # the gradient at the float32 point, which the float64 reference holds to 1e-16
    r = check(f, x32, np.cos(x32.astype(np.float64)), mode="sample", samples=10,
              reference="float64")
    assert r.reference.status == "pass" and r.reference.coverage == r.coverage
    np.testing.assert_array_equal(r.reference.element_status == "unchecked",
                                  r.element_status == "unchecked")


def test_sample_at_kinks_uses_the_joint_test():
    # max over tied entries: the gradient routed to every tied maximum is
    # valid entry by entry, not together; the moved sub-point embeds into x
    c = {c.name: c for c in corpus.cases(0, np.float64, 6, [corpus.maxpool_ties])}["maxpool_ties"]
    wrong = c.extra["every_tie"]
    tied = np.flatnonzero(wrong != c.grad)
    r = check(c.forms["batched"], c.x, wrong, mode="sample", samples=2, indices=tied.tolist())
    assert r.status == "fail" and r.n_joint_failed > 0, r
    assert check(c.forms["batched"], c.x, c.grad, mode="sample", samples=2,
                 indices=tied.tolist()).status == "pass"


def test_numerical_gradient_at_named_entries():
    forms, x, _ = problem(shape=(5, 4))
    f = forms["batched"]
    full = gpucheck.numerical_gradient(f, x, backend="cpu")
    part = gpucheck.numerical_gradient(f, x, backend="cpu", indices=[(1, 2), (4, 3)])
    mask = np.zeros(x.shape, bool)
    mask[1, 2] = mask[4, 3] = True
    np.testing.assert_array_equal(part[mask], full[mask])
    assert np.isnan(part[~mask]).all()
    xs = np.linspace(0, 1, 7)
    cs = gpucheck.numerical_gradient(lambda v: np.sum(np.sin(v)), xs, indices=[2], scheme="complex")
    assert cs[2] == pytest.approx(np.cos(xs[2]), rel=1e-14) and np.isnan(cs[0])


# ----------------------------------------------------------------- project

@pytest.mark.parametrize("form", FORMS)
def test_project_passes_a_correct_gradient(form):
    forms, x, g = problem()
    r = check(forms[form], x, g, mode="project")
    assert r.status == "pass", r
    p = r.projection
    assert p.directions == 32 and p.rademacher == 24 and p.sparse == 8
    assert (np.asarray(r.element_status) == "unchecked").all() and r.worst == ()
    assert p.check.nfev == r.nfev and "random directions agree" in r.summary()
    # the analytic side is <g, v_k> for the directions drawn with the seed
    d = Directions.draw(x, 32, seed=0)
    np.testing.assert_allclose(p.check.analytic, [g.ravel() @ d.vector(k) for k in range(32)],
                               rtol=1e-12)


@pytest.mark.parametrize("form", FORMS)
def test_project_catches_planted_bugs(form):
    forms, x, g = problem()
    f = forms[form]
    one = g.copy()
    one[5, 7] += 0.3 * np.abs(g).max()
    row = g.copy()
    row[3] *= -1
    for name, bad in (("one entry", one), ("row sign", row), ("factor", 1.05 * g)):
        r = check(f, x, bad, mode="project")
        assert r.status == "fail", (name, r)
        assert r.projection.check.n_failed > 0 and "random directions" in r.diagnosis


def test_project_resolution_and_guarantee_are_stated():
    forms, x, g = problem()
    r = check(forms["batched"], x, g, mode="project", directions=16)
    p = r.projection
    assert p.rademacher == 12 and p.sparse == 4
    assert p.miss_probability == pytest.approx(MISS_PER_DIRECTION ** 12)
    assert p.orthogonal_probability == 0.5 ** 12
    assert 0 < p.bound <= np.max(p.check.tolerance)
    assert p.scaled_norm == pytest.approx(np.linalg.norm(g * np.maximum(1, np.abs(x))))
    text = p.guarantee()
    assert "does not show that every entry is right" in text and "(13/16)^12" in text
    # one wrong entry well above the bound fails every Rademacher direction
    bad = g.copy()
    i = (2, 2)
    bad[i] += 4 * p.bound / max(1.0, abs(x[i]))
    rb = check(forms["batched"], x, bad, mode="project", directions=16)
    st = np.asarray(rb.projection.check.element_status)
    assert (st[:12] == "fail").all()


def test_project_float32_far_from_one_is_not_failed_by_the_rounding_of_the_point():
    # float32 entries near 100: the rounding of x + t v is a sawtooth along t
    # that turned into a wrong slope at small steps (a false fail) until F
    # subtracted <g, rounding>
    for seed in (0, 1):
        c = {c.name: c for c in corpus.cases(seed, np.float32, 6,
                                              [corpus.logsumexp_large])}["logsumexp_large"]
        r = check(c.forms["kernel"], c.x, c.grad, mode="project", seed=seed)
        assert r.status == "pass", r
        assert check(c.forms["kernel"], c.x, 1.01 * c.grad, mode="project",
                     seed=seed).status == "fail"


def test_project_at_kinks_is_undecided_not_failed():
    # relu at exact zeros, weights of both signs: along a direction through
    # kinks that bend both ways <g, v> of a valid subgradient can lie outside
    # the one-sided slopes; a mismatch there proves nothing
    for seed in range(3):
        c = {c.name: c for c in corpus.cases(seed, np.float64, 6, [corpus.relu_kinks])}["relu_kinks"]
        r = check(c.forms["batched"], c.x, c.grad, mode="project", seed=seed)
        assert r.status == "inconclusive", r
        notes = {w.note for w in r.projection.check.worst}
        assert modes.KINK_NOTE in notes and "kink" in r.advice
        # a gross error still fails, along the sparse directions clear of the kinks
        assert check(c.forms["batched"], c.x, 3.0 * c.grad, mode="project",
                     seed=seed).status == "fail"


def test_project_with_the_complex_step_and_a_float64_reference():
    x = np.linspace(0.1, 2.0, 300)
    f = gpucheck.batched(lambda xs: np.sin(xs).sum(axis=1))
    r = check(f, x, np.cos(x), mode="project", scheme="complex")
    assert r.status == "pass" and r.projection.check.scheme == "complex"
    assert check(f, x, 1.01 * np.cos(x), mode="project", scheme="complex").status == "fail"
    x32 = x.astype(np.float32)
    r = check(f, x32, np.cos(x32.astype(np.float64)), mode="project", reference="float64")
    assert r.status == "pass" and r.projection.check.reference.status == "pass"


def test_directions():
    x = np.array([[0.5, -3.0], [2.0, 0.0], [7.0, 1.0]])
    d = Directions.draw(x, 8, seed=3)
    assert (d.count, d.rademacher, d.sparse, d.sparse_entries) == (8, 6, 2, 3)
    s = np.maximum(1, np.abs(x.ravel()))
    for k in range(8):
        v = d.vector(k)
        nz = v != 0
        np.testing.assert_array_equal(np.abs(v[nz]), s[nz])
        assert nz.sum() == (6 if k < 6 else 3)
    t = np.array([0.0, 0.5, 0.0, 0.0, 0.0, 0.0, -2.0, 0.0])
    np.testing.assert_allclose(d.displacement(t), 0.5 * d.vector(1) - 2.0 * d.vector(6))
    g = np.arange(6.0)
    np.testing.assert_allclose(d.project(g), [g @ d.vector(k) for k in range(8)])
    again = Directions.draw(x, 8, seed=3)
    np.testing.assert_array_equal(again.signs, d.signs)
    assert Directions.draw(np.ones(3), 4, seed=0).sparse == 0  # too few entries to be sparse


def test_along_directions_is_f_on_the_line():
    x = np.linspace(-1, 1, 10)
    d = Directions.draw(x, 3, seed=0)
    F = AlongDirections(as_function(lambda v: float(np.sum(v ** 3))), x, d, "cpu", origin=1.0)
    t = np.array([1.0, 1.25, 1.0])
    assert F(t) == pytest.approx(np.sum((x + 0.25 * d.vector(1)) ** 3), rel=1e-14)
    assert F(np.ones(3)) == pytest.approx(np.sum(x ** 3), rel=1e-14)


# ----------------------------------------------------------- sample+project

def test_sample_and_project_together():
    forms, x, g = problem()
    r = check(forms["kernel"], x, g, mode="sample+project", samples=8)
    assert r.status == "pass" and r.coverage is not None and r.projection is not None
    alone = [check(forms["kernel"], x, g, mode=m, samples=8).nfev for m in ("sample", "project")]
    assert r.nfev == sum(alone)
    row = g.copy()
    row[3] *= -1
    r = check(forms["kernel"], x, row, mode="sample+project", samples=4)
    # the sample may miss row 3; the projection does not
    assert r.status == "fail" and r.projection.status == "fail"
    assert "random directions" in r.diagnosis


def test_results_are_json_safe():
    forms, x, g = problem(shape=(5, 4))
    for mode in ("sample", "project", "sample+project"):
        r = check(forms["batched"], x, g, mode=mode, samples=3)
        d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
        assert d["mode"] == mode
        s = r.summary_dict()
        assert "numeric" not in s and s["entries"] == 20
        json.dumps(s, allow_nan=False)
        if "sample" in mode:
            assert d["coverage"]["checked"] == r.coverage.checked
            assert d["element_status"][0].count("unchecked") + sum(
                row.count("unchecked") for row in d["element_status"][1:]) == 20 - r.coverage.checked
        if "project" in mode:
            assert s["projection"]["directions"] == 32
            assert len(s["projection"]["slope"]) == 32
        assert "mode: " + mode in str(r)


def test_coverage_detectable():
    c = Coverage(checked=600, total=10 ** 6, random=512, largest=512, named=0, seed=0)
    p = c.detectable(0.95)
    assert (1 - p) ** 512 == pytest.approx(0.05)
    assert Coverage(10, 10, 5, 5, 0, 0).detectable() == 0.0
    assert "all 10 entries" in str(Coverage(10, 10, 5, 5, 0, 0))


# -------------------------------------------------------------------- auto

@pytest.mark.parametrize("form", FORMS)
def test_auto_runs_a_small_check_in_full_unchanged(form):
    forms, x, g = problem(shape=(6, 5))
    full = check(forms[form], x, g, mode="full")
    auto = check(forms[form], x, g)
    assert auto.mode == "full" and "fits max_seconds" in auto.mode_reason
    assert auto.nfev == full.nfev and auto.status == full.status
    np.testing.assert_array_equal(auto.numeric, full.numeric)
    np.testing.assert_array_equal(auto.tolerance, full.tolerance)
    assert full.mode_reason == "mode 'full' requested"


def test_auto_samples_and_projects_above_max_seconds():
    forms, x, g = problem(shape=(24, 24))
    calls = []
    r = check(forms["callable"], x, g, max_seconds=1e-6, samples=32,
              progress=lambda d, t: calls.append((d, t)))
    assert r.mode == "sample+project" and r.status == "pass", r
    assert "over max_seconds = 1e-06 s" in r.mode_reason and "sampled and projected" in r.mode_reason
    # the fallback's sample is shrunk toward the time allowed
    assert r.coverage.random == modes.MIN_SAMPLES
    # the abandoned first chunk counts among the evaluations
    assert r.nfev > r.projection.check.nfev + 2 * r.coverage.checked
    assert calls and calls[-1][0] == calls[-1][1]
    bad = 2 * g
    assert check(forms["callable"], x, bad, max_seconds=1e-6).status == "fail"


def test_auto_cannot_stop_a_first_pass_done_in_one_chunk():
    # a built-in layer's whole first pass is one chunk: it is done before its
    # pace is known, and the result says so instead of claiming it fit
    forms, x, g = problem(shape=(6, 5))
    r = check(forms["layer"], x, g, max_seconds=1e-9)
    assert r.mode == "full" and r.status == "pass"
    assert "over max_seconds = 1e-09 s, but it was done before its pace was measured" \
        in r.mode_reason


def test_the_budget_forwards_progress_and_estimates():
    seen, estimates = [], []

    class Progress:
        def __call__(self, done, total):
            seen.append((done, total))

        def estimate(self, seconds, done, total):
            estimates.append((seconds, done, total))

    b = modes._Budget(10.0, 1.0, Progress())
    b(0, 100)
    b(100, 100)
    b.estimate(3.0, 10, 100)
    assert seen == [(0, 100), (100, 100)] and estimates == [(3.0, 10, 100)] and b.committed


# ---------------------------------------------------------------- executor

def test_modes_on_an_executor_give_the_local_result():
    forms, x, g = problem(shape=(8, 6))
    f = forms["callable"]
    with ThreadPoolExecutor(2) as ex:
        for mode in ("sample", "project"):
            local = check(f, x, g, mode=mode, samples=5)
            remote = check(f, x, g, mode=mode, samples=5, executor=ex)
            assert remote.status == local.status == "pass"
            np.testing.assert_array_equal(remote.numeric, local.numeric)
            if mode == "project":
                np.testing.assert_array_equal(remote.projection.check.numeric,
                                              local.projection.check.numeric)


# -------------------------------------------------------------- validation

@pytest.mark.parametrize("kw, message", [
    (dict(mode="quick"), "`mode` must be one of"),
    (dict(samples=0), "`samples` must be a positive integer"),
    (dict(directions=-2), "`directions` must be a positive integer"),
    (dict(max_seconds=0), "`max_seconds` must be positive"),
    (dict(seed=-1), "`seed` must be a non-negative integer"),
    (dict(seed=1.5), "`seed` must be a non-negative integer"),
    (dict(mode="sample", indices=[(9, 0)]), "out of range for shape (4, 3)"),
    (dict(mode="sample", indices=[12]), "flat index 12 is out of range"),
    (dict(mode="sample", indices=[(1, 2, 3)]), "must have 2 components"),
    (dict(mode="sample", indices=["a"]), "must hold integers"),
    (dict(mode="sample", indices={"W": [0]}), "is a dict, which names inputs"),
    (dict(mode="full", indices=[0]), "mode 'full' checks every entry"),
    (dict(mode="project", indices=[0]), "mode 'project' checks no entry alone"),
])
def test_mode_options_are_validated(kw, message):
    x = np.ones((4, 3))
    with pytest.raises(gpucheck.GpuCheckError, match=message.replace("(", r"\(").replace(")", r"\)")):
        gpucheck.check_gradient(lambda v: float(np.sum(v ** 2)), x, 2 * x, **kw)


def test_indices_name_inputs_that_exist():
    with pytest.raises(gpucheck.GpuCheckError, match="names input 'c'"):
        gpucheck.check_gradient(lambda p: float(p["a"] @ p["b"]), {"a": np.ones(2), "b": np.ones(2)},
                                {"a": np.ones(2), "b": np.ones(2)}, mode="sample",
                                indices={"c": [0]})


def test_negative_indices_count_from_the_end():
    forms, x, g = problem(shape=(4, 3))
    r = check(forms["callable"], x, g, mode="sample", samples=1, indices=[(-1, -1)])
    assert r.element_status[3, 2] != "unchecked"


def test_modes_in_worker_processes_give_the_local_result():
    # f, x, the directions and the gradient travel to spawned workers by pickle
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from remote_problems import GRAD, X, loss

    local = {m: check(loss, X, GRAD, mode=m, samples=3) for m in ("sample", "project")}
    bad = check(loss, X, 1.1 * GRAD, mode="project")
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        for mode, want in local.items():
            got = check(loss, X, GRAD, mode=mode, samples=3, executor=pool)
            assert got.status == want.status == "pass"
            np.testing.assert_array_equal(got.numeric, want.numeric)
            if mode == "project":
                np.testing.assert_array_equal(got.projection.check.numeric,
                                              want.projection.check.numeric)
        assert check(loss, X, 1.1 * GRAD, mode="project", executor=pool).status == bad.status == "fail"
