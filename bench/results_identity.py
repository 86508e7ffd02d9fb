"""Whether two revisions give the same results: every field of many checks, bit for bit.

``dump FILE`` runs a corpus of checks (tests/corpus.py in every form of f,
float64, float32 and the low-precision subset, correct gradients and
planted bugs, several seeds and sizes; large built-in layers in every mode,
with rtol, another scheme, a step, NaN and zero gradients; ties in the
report's ranking) with the gpucheck that ``sys.path`` finds first, and
writes every result field to FILE.  ``compare A B`` says which fields of
which checks differ: per-entry arrays, statuses, worst entries, counts,
diagnosis and advice must be identical (timings aside); the discrepancy
may move by rounding (``--disc-rtol``, default 1e-12).

Usage, comparing this tree with a reference tree REF::

    PYTHONPATH=REF python bench/results_identity.py dump /tmp/ref.pkl
    PYTHONPATH=. python bench/results_identity.py dump /tmp/this.pkl
    python bench/results_identity.py compare /tmp/ref.pkl /tmp/this.pkl
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import sys
import warnings

import numpy as np

FIELDS = ("numeric", "analytic", "abs_error", "rel_error", "tolerance", "element_status", "eps")
SCALARS = ("status", "discrepancy", "nfev", "noise", "n_failed", "n_inconclusive", "n_kinks",
           "n_refined", "diagnosis", "resolution", "advice", "n_joint_failed", "n_kink_decided",
           "n_refined_decided", "mode", "scheme")


def _fields(r) -> dict:
    d = {k: np.asarray(getattr(r, k)).copy() for k in FIELDS}
    d["worst"] = [w.to_dict() for w in r.worst]
    d.update({k: getattr(r, k, None) for k in SCALARS})
    d["str"] = str(r)
    if getattr(r, "reference", None) is not None:
        d["reference"] = _fields(r.reference)
    return d


def dump(path: str, seeds: int) -> int:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "tests"))
    import corpus

    import gpucheck
    import gpucheck.layers
    from gpucheck.kernels.builtin import workload

    warnings.simplefilter("ignore")
    out = {}

    def run(key, f, x, g, **kw):
        try:
            out[key] = _fields(gpucheck.check_gradient(f, x, g, backend="cpu", **kw))
        except Exception as err:  # the same error is a result too
            out[key] = ("error", type(err).__name__, str(err))

    for seed in range(seeds):
        for n in (3, 6, 16):
            for dt in (np.float64, np.float32):
                for c in corpus.cases(seed, dt, n):
                    for form, f in c.forms.items():
                        if form == "callable" and c.x.size > 64:
                            continue
                        key = f"{c.name}/{form}/{np.dtype(dt).name}/{n}/{seed}"
                        run(key, f, c.x, c.grad)
                        if form != next(iter(c.forms)):
                            continue
                        for bug, bad in corpus.bugs(c, seed).items():
                            run(f"{key}/{bug}", f, c.x, bad)
                            run(f"{key}/{bug}/worst 40", f, c.x, bad, worst=40)
        low = (np.float16,) + ((corpus.BFLOAT16,) if corpus.BFLOAT16 is not None else ())
        for dt in low:
            for c in corpus.cases(seed, dt, 6, corpus.LOW_PRECISION):
                for form, f in c.forms.items():
                    if form != "kernel":
                        run(f"low/{c.name}/{form}/{np.dtype(dt).name}/{seed}", f, c.x, c.grad,
                            reference="float64")
    for layer, size, dt in (("mse", 256, "float32"), ("mse", 128, "float64"),
                            ("dense", 48, "float32")):
        _, params, _, x = workload(layer, size, dt, batch=16)
        built = gpucheck.layers.mse(*params) if layer == "mse" else gpucheck.layers.dense(*params)
        g = built.grad(x)
        key = f"layer/{layer}/{size}/{dt}"
        many = g.copy()
        many.flat[::97] *= 1.02
        one = g.copy()
        one.flat[5] += 0.01 * np.abs(g).max()
        nan = g.copy()
        nan.flat[3] = np.nan
        run(key, built, x, g)
        run(key + "/many", built, x, many, worst=12)
        run(key + "/one", built, x, one)
        run(key + "/rtol", built, x, one, rtol=1e-3, atol=1e-9)
        run(key + "/sample", built, x, one, mode="sample", samples=20, indices=[5])
        run(key + "/project", built, x, many, mode="project")
        run(key + "/central4", built, x, one, scheme="central4")
        run(key + "/eps", built, x, one, eps=1e-2)
        run(key + "/zero", built, x, np.zeros_like(g))
        run(key + "/nan", built, x, nan)
    x = np.arange(300.0) % 7
    run("ties/zero", lambda v: float(v @ v), np.zeros(500), np.zeros(500), worst=7)
    run("ties/linear", lambda v: float(np.sum(3 * v)), x, np.full(300, 3.0), worst=9)
    run("ties/linear, bugs", lambda v: float(np.sum(3 * v)), x,
        np.where(np.arange(300) % 5 == 0, 3.5, 3.0), worst=9)
    W, b = np.ones((2, 3)), np.arange(3.0)
    t = 1 - np.tanh(W @ b) ** 2
    run("inputs", lambda p: np.sum(np.tanh(p["W"] @ p["b"])), {"W": W, "b": b},
        {"W": np.outer(t, b), "b": W.T @ t})
    with open(path, "wb") as fh:
        pickle.dump(out, fh)
    print(f"{len(out)} checks written to {path}")
    return 0


def _untimed(text: str) -> list:
    return [re.sub(r"[0-9.]+ s\b", "T s", line) for line in text.splitlines()]


def compare(path_a: str, path_b: str, disc_rtol: float) -> int:
    with open(path_a, "rb") as fh:
        a = pickle.load(fh)
    with open(path_b, "rb") as fh:
        b = pickle.load(fh)
    if a.keys() != b.keys():
        print("different sets of checks:", sorted(set(a) ^ set(b))[:10])
        return 1
    diffs, worst_disc = [], 0.0

    def cmp(key, x, y, where=""):
        nonlocal worst_disc
        if isinstance(x, tuple) or isinstance(y, tuple):
            if x != y:
                diffs.append((key, where + "error"))
            return
        for f in x:
            u, v = x[f], y[f]
            if f == "reference":
                if (u is None) != (v is None):
                    diffs.append((key, "reference"))
                elif u is not None:
                    cmp(key, u, v, where + "reference.")
            elif isinstance(u, np.ndarray):
                if u.dtype != v.dtype or u.shape != v.shape or not np.array_equal(
                        u, v, equal_nan=u.dtype.kind == "f"):
                    diffs.append((key, where + f))
            elif f == "discrepancy":
                if not (u == v or (np.isnan(u) and np.isnan(v))):
                    rel = abs(u - v) / max(abs(u), 1e-300)
                    worst_disc = max(worst_disc, rel)
                    if rel > disc_rtol:
                        diffs.append((key, where + f))
            elif f == "str":
                lines = [(p, q) for p, q in zip(_untimed(u), _untimed(v)) if p != q]
                if len(u.splitlines()) != len(v.splitlines()) or any(
                        "discrepancy" not in p for p, _ in lines):
                    diffs.append((key, where + "text"))
            elif u != v and not (isinstance(u, float) and np.isnan(u) and np.isnan(v)):
                diffs.append((key, where + f))

    for key in a:
        cmp(key, a[key], b[key])
    for key, field in diffs[:40]:
        print(f"differs: {key}: {field}")
    print(f"{len(a)} checks, {len(diffs)} differing fields; largest relative change of the "
          f"discrepancy {worst_disc:.1e}")
    return 1 if diffs else 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("file")
    d.add_argument("--seeds", type=int, default=2)
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--disc-rtol", type=float, default=1e-12)
    args = p.parse_args(argv)
    if args.cmd == "dump":
        return dump(args.file, args.seeds)
    return compare(args.a, args.b, args.disc_rtol)


if __name__ == "__main__":
    raise SystemExit(main())
