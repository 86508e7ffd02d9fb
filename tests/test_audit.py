"""``gpucheck audit``: layers and user functions, modes, the JSON report, arrays, the heat map."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest

from gpucheck import audit, cli, layers
from gpucheck.cli import main

USER = textwrap.dedent("""
    import math
    import numpy as np

    T = np.load("T.npy")


    def tanh_row(row, w):
        s = 0.0
        for j in range(row.shape[0]):
            s += w[j] * math.tanh(row[j])
        return s


    def tanh_k(x, w):
        s = 0.0
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                s += w[i, j] * math.tanh(x[i, j])
        return s


    def tanh_b(xs):
        return (np.tanh(xs) * T[None]).reshape(xs.shape[0], -1).sum(axis=1)


    def tanh_f(x):
        return float(np.sum(np.tanh(x) * T))


    def two(p):
        return float(np.sum(np.tanh(p["W"]) * T) + np.sum(p["b"] ** 2))


    def noisy(x):
        # float32 and a huge constant: its rounding swamps the gradient at every step
        return np.sum((x - T.astype(np.float32)) ** 2) + np.float32(1e9)
""")


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    A = rng.normal(size=(8, 6))
    Y = rng.normal(size=(8, 5))
    W = rng.normal(size=(6, 5)) / 2
    dense = layers.dense(A, Y)
    g = dense.grad(W)
    bad = g.copy()
    bad[2] *= -1
    for name, arr in dict(A=A, Y=Y, W=W, dW=g, dWbad=bad).items():
        np.save(tmp_path / f"{name}.npy", arr)
    T = rng.normal(size=(6, 5))
    X = rng.normal(size=(6, 5))
    np.save(tmp_path / "T.npy", T)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "G.npy", T / np.cosh(X) ** 2)
    np.save(tmp_path / "X32.npy", X.astype(np.float32))
    np.save(tmp_path / "Gnoisy.npy", 2 * (X.astype(np.float32).astype(np.float64) - T))
    np.savez(tmp_path / "P.npz", W=X, b=np.arange(3.0))
    np.savez(tmp_path / "dP.npz", W=T / np.cosh(X) ** 2, b=2 * np.arange(3.0))
    (tmp_path / "userfn.py").write_text(USER)
    return tmp_path


def run(args, capsys):
    code = main(["audit", *args])
    out, err = capsys.readouterr()
    return code, out, err


DENSE = ["--layer", "dense", "--inputs", "A.npy", "--target", "Y.npy", "--x", "W.npy",
         "--backend", "cpu"]


def test_json_report_on_stdout(work, capsys):
    code, out, err = run(DENSE + ["--grad", "dW.npy", "--mode", "sample+project", "--samples",
                                  "4"], capsys)
    assert code == 0, err
    d = json.loads(out)
    assert d["status"] == "pass" and d["exit_status"] == 0 and d["mode"] == "sample+project"
    assert d["entries"] == 30 and "numeric" not in d and "element_status" not in d
    assert d["coverage"]["checked"] <= 8 and d["coverage"]["random"] == 4
    assert d["projection"]["directions"] == 32 and d["projection"]["status"] == "pass"
    assert "does not show that every entry is right" in d["projection"]["guarantee"]
    a = d["audit"]
    assert a["form"] == "layer" and a["layer"] == "dense"
    assert a["arrays"] == {"inputs": "A.npy", "target": "Y.npy"} and a["x"] == ["W.npy"]
    assert a["mode_option"] == "sample+project" and a["samples"] == 4 and a["seed"] == 0
    assert d["arrays"] is None and d["plot"] is None


def test_auto_on_a_small_layer_is_the_full_check(work, capsys):
    code, out, err = run(DENSE + ["--grad", "dW.npy"], capsys)
    d = json.loads(out)
    assert code == 0 and d["mode"] == "full" and "fits max_seconds" in d["mode_reason"]
    assert d["coverage"] is None and d["projection"] is None


def test_fail_exits_1_and_names_the_row(work, capsys):
    code, out, err = run(DENSE + ["--grad", "dWbad.npy", "--mode", "sample", "--index", "2,0",
                                  "--index", "2,3", "--samples", "2"], capsys)
    assert code == 1, err
    d = json.loads(out)
    assert d["status"] == "fail" and d["exit_status"] == 1
    assert "row 2" in d["diagnosis"] and "sign flipped" in d["diagnosis"]
    assert d["audit"]["indices"] == ["2,0", "2,3"]
    code, out, _ = run(DENSE + ["--grad", "dWbad.npy", "--mode", "project"], capsys)
    assert code == 1 and json.loads(out)["projection"]["n_failed"] > 0


def test_inconclusive_exits_3(work, capsys):
    code, out, err = run(["userfn.py:noisy", "--x", "X32.npy", "--grad", "Gnoisy.npy",
                          "--backend", "cpu", "--mode", "sample", "--samples", "3"], capsys)
    assert code == 3, out + err
    assert json.loads(out)["status"] == "inconclusive"


def test_json_to_a_file_and_the_text_report_on_stdout(work, capsys):
    code, out, err = run(DENSE + ["--grad", "dW.npy", "--mode", "sample", "--json", "r.json"],
                         capsys)
    assert code == 0, err
    assert out.startswith("gradient check: PASS") and "JSON report written to r.json" in out
    assert "mode: sample" in out and "sampled:" in out
    d = json.loads((work / "r.json").read_text())
    assert d["status"] == "pass"
    code, out, _ = run(DENSE + ["--grad", "dW.npy", "--json", "-"], capsys)
    assert json.loads(out)["status"] == "pass"


def test_arrays_hold_the_entries_and_the_directions(work, capsys):
    code, out, err = run(DENSE + ["--grad", "dW.npy", "--mode", "sample+project", "--samples", "3",
                                  "--arrays", "a.npz", "--directions", "8"], capsys)
    assert code == 0, err
    assert json.loads(out)["arrays"] == "a.npz"
    with np.load(work / "a.npz") as z:
        st = z["element_status"]
        assert st.shape == (6, 5) and (st == "unchecked").sum() == 30 - (st != "unchecked").sum()
        assert np.isnan(z["numeric"][st == "unchecked"]).all()
        np.testing.assert_array_equal(z["analytic"], np.load(work / "dW.npy"))
        assert z["projection/slope"].shape == (8,)
        assert list(z["projection/kind"]).count("sparse") == 2
        assert set(z["projection/status"]) == {"pass"}


def test_plot_writes_a_heat_map(work, capsys):
    pytest.importorskip("matplotlib")
    code, out, err = run(DENSE + ["--grad", "dWbad.npy", "--mode", "sample", "--plot", "h.png",
                                  "--samples", "3", "--index", "2,1"], capsys)
    assert code == 1, err
    assert json.loads(out)["plot"] == "h.png"
    assert (work / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_still_writes_the_report(work, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # importing it now fails
    code, out, err = run(DENSE + ["--grad", "dW.npy", "--plot", "h.png", "--arrays", "a.npz"],
                         capsys)
    assert code == 0  # the verdict stands without its picture
    d = json.loads(out)
    assert d["plot"] is None and "pip install matplotlib" in d["plot_error"]
    assert "pip install matplotlib" in err and "gpucheck-grad[plot]" in err
    assert not (work / "h.png").exists() and (work / "a.npz").exists()


@pytest.mark.parametrize("args", [
    ["userfn.py:tanh_row", "--rowwise", "--param", "T.npy"],
    ["userfn.py:tanh_k", "--kernel", "--param", "T.npy"],
    ["userfn.py:tanh_b", "--batched"],
    ["userfn.py:tanh_f"],
])
def test_user_functions_in_every_form(work, capsys, args):
    code, out, err = run(args + ["--x", "X.npy", "--grad", "G.npy", "--backend", "cpu",
                                 "--mode", "sample+project", "--samples", "4"], capsys)
    assert code == 0, err
    d = json.loads(out)
    assert d["status"] == "pass" and d["audit"]["function"] == args[0]
    assert d["audit"]["form"] == {"--rowwise": "rowwise", "--kernel": "kernel",
                                  "--batched": "batched"}.get(args[1] if len(args) > 1 else "",
                                                              "callable")


def test_rowwise_scale(work, capsys):
    np.save(work / "G2.npy", 2 * np.load(work / "G.npy"))
    code, out, err = run(["userfn.py:tanh_row", "--rowwise", "--param", "T.npy", "--scale", "2",
                          "--x", "X.npy", "--grad", "G2.npy", "--backend", "cpu"], capsys)
    assert code == 0, err
    assert json.loads(out)["audit"]["scale"] == 2.0


def test_several_inputs_and_named_indices(work, capsys):
    code, out, err = run(["userfn.py:two", "--x", "P.npz", "--grad", "dP.npz", "--backend", "cpu",
                          "--mode", "sample", "--samples", "1", "--index", "b=2",
                          "--index", "W=5,4"], capsys)
    assert code == 0, err
    d = json.loads(out)
    assert [v["name"] for v in d["inputs"]] == ["W", "b"]
    assert all(v["checked"] >= 1 for v in d["inputs"])


def test_any_built_in_layer_with_arrays_and_options(work, capsys):
    rng = np.random.default_rng(1)
    w = rng.normal(size=5)
    x = rng.normal(size=(4, 5))
    np.save(work / "lw.npy", w)
    np.save(work / "lx.npy", x)
    layer = layers.layer_norm(w, eps=1e-3)
    np.save(work / "lg.npy", layer.grad(x))
    code, out, err = run(["--layer", "layer_norm", "--array", "weights=lw.npy", "--option",
                          "eps=0.001", "--x", "lx.npy", "--grad", "lg.npy", "--backend", "cpu",
                          "--mode", "project"], capsys)
    assert code == 0, err
    d = json.loads(out)
    assert d["audit"]["options"] == {"eps": 0.001} and d["audit"]["arrays"] == {"weights": "lw.npy"}
    # without --grad: the layer's own reference gradient
    code, out, err = run(["--layer", "layer_norm", "--array", "weights=lw.npy", "--x", "lx.npy",
                          "--backend", "cpu"], capsys)
    assert code == 0, err


@pytest.mark.parametrize("args, why", [
    (["--layer", "dense", "--inputs", "A.npy", "--x", "W.npy"], "needs one of target, labels"),
    (["--layer", "dense", "--inputs", "A.npy", "--target", "Y.npy", "--x", "W.npy",
      "--option", "stride"], "NAME=VALUE"),
    (["--layer", "dense", "--inputs", "A.npy", "--target", "Y.npy", "--x", "W.npy",
      "--array", "inputs=A.npy"], "given twice"),
    (["--layer", "dense", "--inputs", "A.npy", "--target", "Y.npy", "--x", "W.npy", "--kernel"],
     "`--kernel` is for a function"),
    (["--layer", "mse", "--target", "T.npy", "--x", "X.npy", "--option", "colour=red"],
     "does not take colour"),
    (["userfn.py:tanh_f", "--x", "X.npy", "--grad", "G.npy", "--param", "T.npy"],
     "only for `--kernel` and `--rowwise`"),
    (["userfn.py:tanh_f", "--x", "X.npy", "--grad", "G.npy", "--scale", "2"],
     "only for `--rowwise`"),
    (["userfn.py:tanh_f", "--x", "X.npy", "--grad", "G.npy", "--index", "a,b"],
     "must hold integers"),
    (["userfn.py:tanh_f", "--x", "X.npy", "--grad", "G.npy", "--mode", "sample", "--index",
      "9,9"], "out of range"),
    (["userfn.py:tanh_f", "--x", "X.npy", "--grad", "G.npy", "--samples", "0"],
     "`samples` must be a positive integer"),
    (["userfn.py:tanh_f", "--x", "X.npy", "--grad", "G.npy", "--max-seconds", "-1"],
     "`max_seconds` must be positive"),
    (["userfn.py:tanh_f", "--x", "X.npy", "--inputs", "A.npy", "--grad", "G.npy"],
     "are for `--layer`"),
    (["userfn.py:tanh_f", "--grad", "G.npy"], "`--x` is required"),
    (["--x", "X.npy", "--grad", "G.npy"], "give a function"),
])
def test_bad_input_exits_2_with_one_line(work, capsys, args, why):
    code, out, err = run(args + ["--backend", "cpu"], capsys)
    assert code == 2, out + err
    lines = [ln for ln in err.splitlines() if ln.startswith("gpucheck: error:")]
    assert len(lines) == 1 and why in lines[0], err


def test_unknown_layer_and_mode_are_usage_errors(work, capsys):
    code, _, err = run(["--layer", "bogus", "--x", "X.npy"], capsys)
    assert code == 2 and "invalid choice" in err
    code, _, err = run(DENSE + ["--mode", "fast"], capsys)
    assert code == 2 and "invalid choice" in err


def test_ctrl_c_exits_130(work, capsys, monkeypatch):
    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(audit.api, "check_gradient", interrupted)
    code, out, err = run(DENSE + ["--grad", "dW.npy"], capsys)
    assert code == cli.EXIT_INTERRUPTED == 130 and "interrupted" in err


def test_option_and_index_parsing():
    assert audit.parse_option("padding=1,2") == ("padding", (1, 2))
    assert audit.parse_option("reduction=sum") == ("reduction", "sum")
    assert audit.parse_index("W1=3,4") == ("W1", (3, 4))
    with pytest.raises(Exception, match="NAME=I,J"):
        audit.parse_index("1x=3")


def test_help_lists_audit(capsys):
    with pytest.raises(SystemExit):  # --help exits through argparse
        cli._parser().parse_args(["audit", "--help"])
    out = capsys.readouterr().out
    assert "--max-seconds" in out and "--directions" in out and "--plot" in out


def test_heat_map_of_every_mode(tmp_path):
    pytest.importorskip("matplotlib")
    import gpucheck
    from gpucheck.plot import heatmap_grid, plot_heatmap

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 40, 40))            # 3-D: flattened per leading axis
    f = gpucheck.batched(lambda xs: np.sin(xs).reshape(xs.shape[0], -1).sum(axis=1))
    for mode in ("full", "sample", "project"):
        r = gpucheck.check_gradient(f, x, np.cos(x), backend="cpu", mode=mode, samples=5)
        path = tmp_path / f"{mode}.png"
        assert plot_heatmap(r, path) == str(path) and path.stat().st_size > 1000
    two = gpucheck.check_gradient(lambda w, b: float(np.sum(w ** 2) + np.sum(np.sin(b))),
                                  (np.ones((4, 4)), np.zeros(9000)), (2 * np.ones((4, 4)),
                                                                      np.ones(9000)),
                                  backend="cpu", mode="sample", samples=20)
    assert plot_heatmap(two, tmp_path / "two.png")
    grid, rows, cols = heatmap_grid(np.arange(9000.0))  # a long 1-D input is folded
    assert grid.shape == (95, 95) and np.isnan(grid[-1, -1]) and cols == "index % 95"
