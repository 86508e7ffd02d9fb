"""``--scheme complex`` and ``--reference float64`` on ``gpucheck check`` and ``gpucheck audit``."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from gpucheck.cli import main

USER = textwrap.dedent("""
    import numpy as np

    T = np.linspace(-1.0, 1.0, 12).reshape(3, 4)


    def smooth(x):
        return np.sum(np.sin(x) * T.astype(x.dtype))


    def smooth_b(xs):
        return (np.sin(xs) * T.astype(xs.dtype)).reshape(xs.shape[0], -1).sum(axis=1)


    def with_abs(x):
        # abs() of a complex value is its modulus: the complex step reads 0 here
        return np.sum(np.abs(x) * T)


    def kern(x, t):
        s = 0.0
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                s += np.sin(x[i, j]) * t[i, j]
        return s
""")

T = np.linspace(-1.0, 1.0, 12).reshape(3, 4)


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "opts.py").write_text(USER)
    x = np.random.default_rng(3).normal(size=(3, 4))
    g = np.cos(x) * T
    bad = g.copy()
    bad[1, 2] *= 1.01                      # 1% off in one entry
    x16 = x.astype(np.float16)
    g16 = np.cos(x16.astype(np.float64)) * T
    bad16 = g16.copy()
    bad16[2, 1] *= -1
    for name, a in dict(X=x, G=g, Gbad=bad, Gabs=np.sign(x) * T, T=T, X16=x16, G16=g16,
                        G16bad=bad16).items():
        np.save(tmp_path / f"{name}.npy", a)
    return tmp_path


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err):
    lines = [ln for ln in err.splitlines() if ln.startswith("gpucheck: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


CHECK = ["check", "opts.py:smooth", "--x", "X.npy", "--backend", "cpu"]


# ------------------------------------------------------------------ --scheme complex

def test_complex_step_passes_to_machine_precision(work, capsys):
    code, out, err = run(CHECK + ["--grad", "G.npy", "--scheme", "complex", "--json"], capsys)
    assert code == 0, err
    d = json.loads(out)
    assert d["status"] == "pass" and d["scheme"] == "complex"
    # one evaluation per entry (plus the analyticity probes), no refinement
    assert d["n_refined"] == 0
    x = np.load("X.npy")
    for w in d["worst"]:
        exact = np.cos(x[tuple(w["index"])]) * T[tuple(w["index"])]
        assert abs(w["numeric"] - exact) <= 1e-15 * max(1.0, abs(exact))
    # far below what central differences reach on the same problem
    code, out, _ = run(CHECK + ["--grad", "G.npy", "--json"], capsys)
    assert d["discrepancy"] < 1e-3 * json.loads(out)["discrepancy"]


def test_complex_step_text_report_names_the_scheme(work, capsys):
    code, out, err = run(CHECK + ["--grad", "G.npy", "--scheme", "complex"], capsys)
    assert code == 0, err
    assert "PASS" in out and "scheme complex" in out


@pytest.mark.parametrize("fn, extra", [("opts.py:smooth", []),
                                       ("opts.py:smooth_b", ["--batched"])])
def test_complex_step_fails_a_one_percent_bug(work, capsys, fn, extra):
    code, out, err = run(["check", fn, *extra, "--x", "X.npy", "--grad", "Gbad.npy",
                          "--backend", "cpu", "--scheme", "complex", "--json"], capsys)
    assert code == 1, err
    d = json.loads(out)
    assert d["status"] == "fail" and d["n_failed"] == 1
    assert d["worst"][0]["index"] == [1, 2]


@pytest.mark.parametrize("args, why", [
    (["opts.py:with_abs", "--grad", "Gabs.npy"], "not complex-analytic"),
    (["opts.py:kern", "--kernel", "--param", "T.npy", "--grad", "G.npy"],
     "compiled for real x only"),
    (["--layer", "mse", "--target", "T.npy"], "compiled for real x only"),
])
def test_complex_step_refusals_are_one_line_exit_2(work, capsys, args, why):
    x = "X.npy"
    code, out, err = run(["check", *args, "--x", x, "--backend", "cpu", "--scheme", "complex"],
                         capsys)
    assert code == 2, (out, err)
    assert out == ""
    assert why in one_error_line(err)


def test_complex_step_refuses_float16(work, capsys):
    code, out, err = run(["check", "opts.py:smooth", "--x", "X16.npy", "--grad", "G16.npy",
                          "--backend", "cpu", "--scheme", "complex"], capsys)
    assert code == 2
    assert "float32 or float64" in one_error_line(err)


def test_sweep_does_not_offer_the_complex_step(work, capsys):
    # a sweep across steps explains the finite-difference dilemma; the complex step has none
    code, out, err = run(["sweep", "opts.py:smooth", "--x", "X.npy", "--grad", "G.npy",
                          "--scheme", "complex"], capsys)
    assert code == 2
    assert "--scheme" in one_error_line(err)


def test_help_lists_the_new_choices(work, capsys):
    assert main(["check", "--help"]) == 0
    out = capsys.readouterr().out
    assert "complex" in out and "float64" in out and "--reference" in out


# ------------------------------------------------------------------ --reference float64

def test_reference_separates_a_noisy_implementation_from_the_formula(work, capsys):
    # f in float16 cannot confirm the right gradient; f in float64 does
    code, out, err = run(["check", "opts.py:smooth", "--x", "X16.npy", "--grad", "G16.npy",
                          "--backend", "cpu", "--reference", "float64"], capsys)
    assert code == 3, out + err
    assert "float64 reference: PASS" in out
    assert "the gradient formula is right" in out
    code, out, err = run(["check", "opts.py:smooth", "--x", "X16.npy", "--grad", "G16.npy",
                          "--backend", "cpu", "--reference", "float64", "--json"], capsys)
    d = json.loads(out)
    assert d["status"] == "inconclusive" and d["dtype"] == "float16"
    assert d["reference"]["status"] == "pass" and d["reference"]["dtype"] == "float64"
    assert d["interpretation"].startswith("the gradient formula is right")


def test_reference_names_a_wrong_formula(work, capsys):
    code, out, err = run(["check", "opts.py:smooth", "--x", "X16.npy", "--grad", "G16bad.npy",
                          "--backend", "cpu", "--reference", "float64", "--json"], capsys)
    assert code == 1, err
    d = json.loads(out)
    assert d["reference"]["status"] == "fail"
    assert d["reference"]["worst"][0]["index"] == [2, 1]
    assert d["interpretation"].startswith("the gradient formula is wrong")


def test_without_reference_the_json_says_none(work, capsys):
    code, out, err = run(CHECK + ["--grad", "G.npy", "--json"], capsys)
    d = json.loads(out)
    assert d["reference"] is None and d["interpretation"] == ""


def test_reference_works_with_a_kernel(work, capsys):
    x32 = np.load("X.npy").astype(np.float32)
    np.save("X32.npy", x32)
    np.save("T32.npy", T.astype(np.float32))
    code, out, err = run(["check", "opts.py:kern", "--kernel", "--param", "T32.npy", "--x",
                          "X32.npy", "--grad", "Gbad.npy", "--backend", "cpu", "--reference",
                          "float64", "--json"], capsys)
    d = json.loads(out)
    assert d["reference"] is not None and d["reference"]["dtype"] == "float64"
    assert d["reference"]["status"] == "fail", d["reference"]


@pytest.mark.parametrize("value", ["float32", "float16", "yes"])
def test_reference_rejects_other_values_in_one_line(work, capsys, value):
    code, out, err = run(CHECK + ["--grad", "G.npy", "--reference", value], capsys)
    assert code == 2
    line = one_error_line(err)
    assert "--reference" in line and "float64" in line


# ------------------------------------------------------------------ gpucheck audit

def test_audit_complex_step_in_a_sampled_check(work, capsys):
    code, out, err = run(["audit", "opts.py:smooth", "--x", "X.npy", "--grad", "Gbad.npy",
                          "--backend", "cpu", "--scheme", "complex", "--mode", "sample",
                          "--samples", "2", "--index", "1,2"], capsys)
    assert code == 1, err
    d = json.loads(out)
    assert d["scheme"] == "complex" and d["audit"]["scheme_option"] == "complex"
    assert d["worst"][0]["index"] == [1, 2] and d["worst"][0]["status"] == "fail"


def test_audit_reference_in_the_json_report(work, capsys):
    code, out, err = run(["audit", "opts.py:smooth", "--x", "X16.npy", "--grad", "G16.npy",
                          "--backend", "cpu", "--mode", "full", "--reference", "float64"], capsys)
    assert code == 3, err
    d = json.loads(out)
    assert d["audit"]["reference_option"] == "float64"
    assert d["reference"]["status"] == "pass"
    assert d["interpretation"].startswith("the gradient formula is right")


def test_audit_refuses_the_complex_step_for_a_layer(work, capsys):
    code, out, err = run(["audit", "--layer", "mse", "--target", "T.npy", "--x", "X.npy",
                          "--backend", "cpu", "--scheme", "complex"], capsys)
    assert code == 2
    assert "compiled for real x only" in one_error_line(err)
