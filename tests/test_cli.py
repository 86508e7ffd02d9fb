"""The command line: exit codes, input forms, JSON, plots, demo, info, lazy imports."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from gpucheck import cli
from gpucheck.cli import main

USER_MODULE = textwrap.dedent("""
    import numpy as np

    T = np.linspace(-1.0, 1.0, 12).reshape(3, 4)


    def loss(x):
        return np.sum(np.sin(x) * T)


    def loss_batched(xs):
        return (np.sin(xs) * T[None]).reshape(xs.shape[0], -1).sum(axis=1)


    def noisy(x):
        # float32 MSE plus a huge constant: its rounding swamps the gradient at every step
        return np.sum((x - T.astype(np.float32)) ** 2) + np.float32(1e9)


    def not_scalar(x):
        return x * 2


    def raises(x):
        return np.sum(x) / undefined_name


    def mlp(p):
        return np.sum(np.tanh(p["W"] @ p["b"]))


    def mlp_args(W, b):
        return np.sum(np.tanh(W @ b))
""")


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A directory with a user module and the arrays of a check."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "userfn.py").write_text(USER_MODULE)
    T = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    x = np.random.default_rng(0).normal(size=(3, 4))
    np.save(tmp_path / "X.npy", x)
    np.save(tmp_path / "G.npy", np.cos(x) * T)
    bad = np.cos(x) * T
    bad[1, 2] *= -1
    np.save(tmp_path / "Gbad.npy", bad)
    x32 = x.astype(np.float32)
    np.save(tmp_path / "X32.npy", x32)
    np.save(tmp_path / "Gnoisy.npy", 2 * (x32.astype(np.float64) - T.astype(np.float32)))
    np.save(tmp_path / "T.npy", T)
    np.save(tmp_path / "Gmse.npy", 2 * (x - T) / 3)
    return tmp_path


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err):
    return [line for line in err.splitlines() if line.startswith("gpucheck: error:")]


# ---------------------------------------------------------------- exit codes

def test_check_pass_exits_0(work, capsys):
    code, out, err = run(["check", "userfn.py:loss", "--x", "X.npy", "--grad", "G.npy",
                          "--backend", "cpu"], capsys)
    assert code == 0, err
    assert "PASS" in out


def test_check_fail_exits_1(work, capsys):
    code, out, err = run(["check", "userfn.py:loss", "--x", "X.npy", "--grad", "Gbad.npy",
                          "--backend", "cpu"], capsys)
    assert code == 1, err
    assert "FAIL" in out and "(1, 2)" in out


def test_check_inconclusive_exits_3(work, capsys):
    code, out, err = run(["check", "userfn.py:noisy", "--x", "X32.npy", "--grad", "Gnoisy.npy",
                          "--backend", "cpu"], capsys)
    assert code == 3, out + err
    assert "INCONCLUSIVE" in out


def test_importable_module_function(work, capsys):
    code, out, err = run(["check", "userfn:loss", "--x", "X.npy", "--grad", "G.npy",
                          "--backend", "cpu"], capsys)
    assert code == 0, err


def test_batched(work, capsys):
    code, out, err = run(["check", "userfn.py:loss_batched", "--batched", "--x", "X.npy",
                          "--grad", "G.npy", "--backend", "cpu"], capsys)
    assert code == 0, err
    code, out, err = run(["check", "userfn.py:loss_batched", "--batched", "--x", "X.npy",
                          "--grad", "Gbad.npy", "--backend", "cpu"], capsys)
    assert code == 1, err


def test_json_output_parses(work, capsys):
    code, out, err = run(["check", "userfn.py:loss", "--x", "X.npy", "--grad", "Gbad.npy",
                          "--backend", "cpu", "--json"], capsys)
    assert code == 1
    d = json.loads(out)
    assert d["status"] == "fail" and d["passed"] is False
    assert d["worst"][0]["index"] == [1, 2]
    assert d["entries"] == 12


def test_json_is_a_summary_and_arrays_go_to_an_npz(work, capsys):
    code, out, err = run(["check", "userfn.py:loss", "--x", "X.npy", "--grad", "Gbad.npy",
                          "--backend", "cpu", "--json"], capsys)
    d = json.loads(out)
    for key in ("numeric", "analytic", "abs_error", "rel_error", "tolerance", "element_status", "eps"):
        assert key not in d
    assert len(out) < 4000
    code, out, err = run(["check", "userfn.py:loss", "--x", "X.npy", "--grad", "Gbad.npy",
                          "--backend", "cpu", "--json", "--arrays", "arr.npz"], capsys)
    assert code == 1
    assert json.loads(out)["arrays"] == "arr.npz"
    with np.load(work / "arr.npz") as z:
        assert z["numeric"].shape == (3, 4)
        assert z["element_status"][1, 2] == "fail"
        np.testing.assert_allclose(z["analytic"], np.load(work / "Gbad.npy"))
        x = np.load(work / "X.npy")
        T = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
        np.testing.assert_allclose(z["numeric"], np.cos(x) * T, rtol=1e-6, atol=1e-9)


def test_layer_mse(work, capsys):
    code, out, err = run(["check", "--layer", "mse", "--target", "T.npy", "--x", "X.npy",
                          "--grad", "Gmse.npy", "--backend", "cpu", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["status"] == "pass"
    np.save(work / "Gmse_bad.npy", 2 * (np.load(work / "X.npy") - np.load(work / "T.npy")))
    code, out, err = run(["check", "--layer", "mse", "--target", "T.npy", "--x", "X.npy",
                          "--grad", "Gmse_bad.npy", "--backend", "cpu"], capsys)
    assert code == 1  # missing the 1/B factor


def test_layer_mse_without_grad_uses_its_own(work, capsys):
    code, out, err = run(["check", "--layer", "mse", "--target", "T.npy", "--x", "X.npy",
                          "--batched", "--backend", "cpu"], capsys)
    assert code == 0, err


def test_every_built_in_layer_on_check(work, capsys):
    # check --layer takes every layer of gpucheck.layers, its arrays by name
    from gpucheck import layers

    rng = np.random.default_rng(3)
    z = rng.normal(size=(6, 5))
    labels = rng.integers(0, 5, 6)
    np.save(work / "Z.npy", z)
    np.save(work / "labels.npy", labels)
    g = layers.build("softmax_cross_entropy", labels=labels).grad(z)
    np.save(work / "dZ.npy", g)
    base = ["check", "--layer", "softmax_cross_entropy", "--array", "labels=labels.npy",
            "--x", "Z.npy", "--backend", "cpu"]
    code, out, err = run(base + ["--grad", "dZ.npy"], capsys)
    assert code == 0, err
    g[2, 3] += 0.01 * np.abs(g).max()
    np.save(work / "dZbad.npy", g)
    code, out, err = run(base + ["--grad", "dZbad.npy"], capsys)
    assert code == 1 and "(2, 3)" in out
    # an option of the layer changes f, so the same gradient no longer fits
    code, out, err = run(base + ["--grad", "dZ.npy", "--option", "reduction=sum"], capsys)
    assert code == 1
    # a layer's arrays are not a function's
    code, out, err = run(["check", "userfn.py:loss", "--x", "X.npy", "--grad", "G.npy",
                          "--array", "labels=labels.npy"], capsys)
    assert code == 2 and "for `--layer`" in error_lines(err)[0]


@pytest.mark.parametrize("args,why", [
    (["check", "userfn.py:loss", "--x", "missing.npy", "--grad", "G.npy"], "missing.npy"),
    (["check", "userfn.py:loss", "--x", "X.npy", "--grad", "nope.npy"], "nope.npy"),
    (["check", "nosuchfile.py:loss", "--x", "X.npy", "--grad", "G.npy"], "nosuchfile.py"),
    (["check", "nosuchmodule_xyz:loss", "--x", "X.npy", "--grad", "G.npy"], "nosuchmodule_xyz"),
    (["check", "userfn.py:nosuchfn", "--x", "X.npy", "--grad", "G.npy"], "nosuchfn"),
    (["check", "userfn.py", "--x", "X.npy", "--grad", "G.npy"], "module:function"),
    (["check", "userfn.py:loss", "--grad", "G.npy"], "--x"),
    (["check", "userfn.py:loss", "--x", "X.npy"], "--grad"),
    (["check", "userfn.py:not_scalar", "--x", "X.npy", "--grad", "G.npy"], "scalar"),
    (["check", "userfn.py:loss", "--x", "X.npy", "--grad", "Gmse.npy", "--backend", "tpu"], "backend"),
    (["check", "userfn.py:loss", "--x", "X.npy", "--grad", "G.npy", "--scheme", "forward"], "scheme"),
    (["check", "userfn.py:loss", "--x", "X.npy", "--grad", "G.npy", "--eps", "-1"], "eps"),
    (["check", "--layer", "mse", "--x", "X.npy", "--grad", "G.npy"], "target"),
    (["check", "--layer", "softmax_cross_entropy", "--x", "X.npy", "--grad", "G.npy"], "labels"),
    (["check", "userfn.py:loss", "--x", "X.npy", "--grad", "G.npy", "--bogus"], "--bogus"),
    (["frobnicate"], "frobnicate"),
])
def test_bad_usage_exits_2_with_a_one_line_reason(work, capsys, args, why):
    code, out, err = run(args, capsys)
    assert code == 2, (out, err)
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert why in lines[0]
    assert "Traceback" not in err


def test_grad_of_wrong_shape_exits_2(work, capsys):
    np.save(work / "Gshape.npy", np.zeros((4, 3)))
    code, out, err = run(["check", "userfn.py:loss", "--x", "X.npy", "--grad", "Gshape.npy",
                          "--backend", "cpu"], capsys)
    assert code == 2
    assert "`grad`" in error_lines(err)[0]


def test_no_verb_exits_2(capsys):
    code, out, err = run([], capsys)
    assert code == 2


def test_exit_code_constants():
    assert (cli.EXIT_PASS, cli.EXIT_FAIL, cli.EXIT_USAGE, cli.EXIT_INCONCLUSIVE) == (0, 1, 2, 3)


# --------------------------------------------------------------- sweep, demo

def test_sweep_prints_table_and_writes_png(work, capsys):
    pytest.importorskip("matplotlib")
    code, out, err = run(["sweep", "--layer", "mse", "--target", "T.npy", "--x", "X.npy",
                          "--backend", "cpu", "--eps", "1e-4,1e-3,1e-2,1e-1", "--plot", "out.png"],
                         capsys)
    assert code == 0, err
    data = (work / "out.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000
    assert "discrepancy" in out and "out.png" in out


def test_sweep_json_exits_1_on_a_bug(work, capsys):
    code, out, err = run(["sweep", "userfn.py:loss", "--x", "X.npy", "--grad", "Gbad.npy",
                          "--backend", "cpu", "--json"], capsys)
    assert code == 1, err
    d = json.loads(out)
    assert d["regime"] == "bug"
    code, out, err = run(["sweep", "userfn.py:loss", "--x", "X.npy", "--grad", "G.npy",
                          "--backend", "cpu", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["regime"] != "bug"


def test_demo(capsys):
    code, out, err = run(["demo"], capsys)
    assert code == 0, err
    assert "ROUNDOFF" in out
    assert "PASS" in out and "FAIL" in out
    # the forum's layer, the user's eps and what to do, the full failure report, the columns
    assert "1/2 * mean over features" in out
    assert "eps = 1e-4" in out and "What to do: use a larger step" in out
    assert "gradient check: FAIL" in out and "likely cause: 1 isolated wrong entry (at (2, 5))" in out
    assert "(2, 5)" in out and "PREDICTIONS" in out
    rows = re.findall(r"^\s+(\d(?:\.\d+)?e[+-]\d+)\s+(\d\.\d+e[+-]\d+)", out, flags=re.M)
    eps = np.array([float(e) for e, _ in rows])
    disc = np.array([float(d) for _, d in rows])
    assert eps.size >= 4
    assert np.all(np.diff(np.log10(eps)) == pytest.approx(1.0))
    # discrepancy falls about tenfold per decade of h: pure rounding
    ratios = disc[:-1] / disc[1:]
    assert np.all((ratios > 4) & (ratios < 25)), ratios
    slope = np.polyfit(np.log10(eps), np.log10(disc), 1)[0]
    assert -1.2 < slope < -0.8


# ------------------------------------------------------- several inputs

@pytest.fixture
def mlp(work):
    rng = np.random.default_rng(4)
    W, b = rng.normal(size=(3, 2)), rng.normal(size=2)
    d = 1 - np.tanh(W @ b) ** 2
    gW, gb = np.outer(d, b), W.T @ d
    for name, a in {"W": W, "b": b, "gW": gW, "gb": gb, "gb_bad": gb * [1.0, -1.0]}.items():
        np.save(work / f"{name}.npy", a)
    np.savez(work / "params.npz", W=W, b=b)
    np.savez(work / "grads.npz", W=gW, b=gb)
    return work


def test_named_inputs_become_a_dict(mlp, capsys):
    code, out, err = run(["check", "userfn.py:mlp", "--x", "W=W.npy", "--x", "b=b.npy",
                          "--grad", "W=gW.npy", "--grad", "b=gb.npy", "--backend", "cpu"], capsys)
    assert code == 0, err
    assert "2 inputs (W, b)" in out
    code, out, err = run(["check", "userfn.py:mlp", "--x", "W=W.npy", "--x", "b=b.npy",
                          "--grad", "W=gW.npy", "--grad", "b=gb_bad.npy", "--backend", "cpu",
                          "--json", "--arrays", "a.npz"], capsys)
    assert code == 1, err
    d = json.loads(out)
    assert d["worst"][0]["label"] == "b[1]"
    assert {i["name"]: i["status"] for i in d["inputs"]} == {"W": "pass", "b": "fail"}
    with np.load(mlp / "a.npz") as z:
        assert z["W/numeric"].shape == (3, 2) and z["b/element_status"].tolist() == ["pass", "fail"]


def test_npz_inputs_and_positional_inputs(mlp, capsys):
    code, out, err = run(["check", "userfn.py:mlp", "--x", "params.npz", "--grad", "grads.npz",
                          "--backend", "cpu"], capsys)
    assert code == 0, err
    code, out, err = run(["check", "userfn.py:mlp_args", "--x", "W.npy", "--x", "b.npy",
                          "--grad", "gW.npy", "--grad", "gb_bad.npy", "--backend", "cpu"], capsys)
    assert code == 1, err
    assert "input 1[1]" in out


@pytest.mark.parametrize("args,why", [
    (["--x", "W=W.npy", "--x", "b.npy", "--grad", "gW.npy"], "name every input"),
    (["--x", "W=W.npy", "--x", "W=b.npy", "--grad", "gW.npy"], "given twice"),
    (["--x", "params.npz", "--grad", "gW.npy"], "`grad` must have x's structure"),
])
def test_bad_input_forms(mlp, capsys, args, why):
    code, out, err = run(["check", "userfn.py:mlp", "--backend", "cpu"] + args, capsys)
    assert code == 2
    assert why in error_lines(err)[0]


def test_npz_where_one_array_is_needed(mlp, capsys):
    code, out, err = run(["check", "--layer", "mse", "--target", "params.npz", "--x", "X.npy"], capsys)
    assert code == 2 and "give one array as a .npy file" in error_lines(err)[0]
    code, out, err = run(["check", "--layer", "mse", "--target", "T.npy", "--x", "params.npz"], capsys)
    assert code == 2 and "`--layer` checks one array" in error_lines(err)[0]


# ------------------------------------------------------------ CLI rough edges

def test_version(capsys):
    code, out, err = run(["--version"], capsys)
    import gpucheck

    assert code == 0 and out.strip() == f"gpucheck {gpucheck.__version__} (distribution gpucheck-grad)"


def test_bad_choice_is_one_line_without_the_usage_block(work, capsys):
    code, out, err = run(["check", "--layer", "bogus", "--x", "X.npy"], capsys)
    assert code == 2
    assert err.strip().count("\n") == 0, err
    assert "invalid choice: 'bogus'" in err and "--help" in err


def test_not_an_npy_file(work, capsys):
    (work / "X.txt").write_text("1 2 3\n")
    code, out, err = run(["check", "userfn.py:loss", "--x", "X.txt", "--grad", "G.npy"], capsys)
    assert code == 2
    line = error_lines(err)[0]
    assert "not a numeric .npy or .npz file" in line and "allow_pickle" not in line
    np.save(work / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, out, err = run(["check", "userfn.py:loss", "--x", "obj.npy", "--grad", "G.npy"], capsys)
    assert code == 2 and "holds Python objects" in err and "allow_pickle" not in err


def test_sys_exit_at_import_is_reported(work, capsys):
    (work / "exits.py").write_text("import sys\nsys.exit(5)\ndef f(x):\n    return 0.0\n")
    code, out, err = run(["check", "exits.py:f", "--x", "X.npy", "--grad", "G.npy"], capsys)
    assert code == 2
    assert "called sys.exit(5)" in error_lines(err)[0]


def test_error_in_f_names_file_and_line(work, capsys):
    code, out, err = run(["check", "userfn.py:raises", "--x", "X.npy", "--grad", "G.npy",
                          "--backend", "cpu"], capsys)
    assert code == 2
    line = error_lines(err)[0]
    assert "NameError at userfn.py:" in line and "(in raises)" in line
    assert "Traceback" not in err


def test_debug_shows_the_traceback(work, capsys):
    code, out, err = run(["--debug", "check", "userfn.py:raises", "--x", "X.npy", "--grad", "G.npy",
                          "--backend", "cpu"], capsys)
    assert code == 2 and "Traceback" in err and "undefined_name" in err
    code, out, err = run(["check", "userfn.py:raises", "--x", "X.npy", "--grad", "G.npy",
                          "--backend", "cpu", "--debug"], capsys)
    assert code == 2 and "Traceback" in err


def test_sweep_without_matplotlib_prints_the_table_first(work, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # importing it now fails
    code, out, err = run(["sweep", "--layer", "mse", "--target", "T.npy", "--x", "X.npy",
                          "--backend", "cpu", "--eps", "1e-3,1e-2", "--plot", "p.png"], capsys)
    assert code == 2
    assert "discrepancy" in out and "regime" in out
    line = error_lines(err)[0]
    assert "pip install matplotlib" in line and "gpucheck-grad[plot]" in line


def test_json_piped_into_head_ends_quietly(work):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.pathsep \
        + env.get("PYTHONPATH", "")
    proc = subprocess.run(f"{sys.executable} -m gpucheck demo | head -c 20", shell=True,
                          capture_output=True, text=True, timeout=120, env=env, cwd=work)
    assert proc.stdout.startswith("gpucheck demo")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


# ---------------------------------------------------------------------- info

def test_info(capsys):
    code, out, err = run(["info"], capsys)
    assert code == 0
    import gpucheck

    assert f"gpucheck {gpucheck.__version__}" in out
    assert "numpy" in out and "cpu" in out


def test_info_never_fails(capsys, monkeypatch):
    import gpucheck.backends
    from importlib import metadata

    def broken(*a, **k):
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(gpucheck.backends, "availability", broken)
    monkeypatch.setattr(metadata, "version", broken)
    code, out, err = run(["info"], capsys)
    assert code == 0
    assert "driver exploded" in out


def test_python_m_gpucheck_info():
    proc = subprocess.run([sys.executable, "-m", "gpucheck", "info"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("gpucheck ")


# ------------------------------------------------------------ lazy imports

def test_import_gpucheck_does_not_load_gpu_or_plot_modules():
    code = ("import sys, numpy as np, gpucheck\n"
            "r = gpucheck.check_gradient(lambda v: float(v @ v), np.ones(3), 2 * np.ones(3), backend='cpu')\n"
            "assert r.passed\n"
            "print([m for m in ('cupy', 'numba.cuda', 'matplotlib', 'torch', 'jax') if m in sys.modules])\n")
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
