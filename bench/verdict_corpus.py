"""The verdict corpus over many seeds: wrong verdicts, inconclusives and evaluations.

Runs every case of tests/corpus.py in every form of f that applies, in
float64, float32 (and float16 / bfloat16 for the low-precision subset), at
several sizes, for correct gradients and planted bugs, and prints a line
per wrong verdict and a summary table.

    PYTHONPATH=.:tests python bench/verdict_corpus.py --seeds 20 [--sizes 8 32 64] [--kernel-sizes 8 32 64]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import Counter, defaultdict

import numpy as np

sys.path.insert(0, "tests")

import corpus  # noqa: E402

import gpucheck  # noqa: E402


def run(args) -> int:
    warnings.simplefilter("ignore")
    wrong = []
    counts = Counter()
    nfev = defaultdict(list)
    t0 = time.perf_counter()
    dtypes = [np.float64, np.float32]
    low = [np.float16] + ([corpus.BFLOAT16] if corpus.BFLOAT16 is not None else [])
    plan = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for n in args.sizes:
            for dt in dtypes:
                plan += [(seed, n, dt, c) for c in corpus.cases(seed, dt, n)]
            for dt in low:
                plan += [(seed, n, dt, c) for c in corpus.cases(seed, dt, min(n, 8), corpus.LOW_PRECISION)]
        for n in args.kernel_sizes:
            for dt in dtypes:
                plan += [(seed, n, dt, c) for c in corpus.cases(seed, dt, n, [corpus.mse, corpus.dense, corpus.tanh,
                                                                             corpus.softmax_ce,
                                                                             corpus.logsumexp_large])
                         if "kernel" in c.forms]
    for seed, n, dt, c in plan:
        kernel_run = n in args.kernel_sizes and n not in args.sizes
        for form, f in c.forms.items():
            if kernel_run and form != "kernel":
                continue
            if form == "kernel" and (np.dtype(dt).name not in ("float32", "float64")
                                     or (n not in args.kernel_sizes)):
                continue
            if form == "callable" and c.x.size > 256:
                continue
            key = f"{c.name}/{form}/{np.dtype(dt).name}/n{n}"
            # low precision: the verdict in x's dtype may be inconclusive
            # (never wrong); the float64 reference must decide
            lowp = np.dtype(dt).name in ("float16", "bfloat16")
            ref = "float64" if lowp else None
            r = gpucheck.check_gradient(f, c.x, c.grad, backend="cpu", reference=ref)
            counts[(c.expect, r.status)] += 1
            nfev[key].append((r.nfev, c.x.size))
            ok = r.status == c.expect or (lowp and r.status == "inconclusive")
            if lowp:
                counts[("ref " + c.expect, r.reference.status)] += 1
                ok &= r.reference.status == c.expect
            if not ok:
                wrong.append((key, seed, "correct", c.expect, r.status, r.summary()))
                print("WRONG", *wrong[-1], flush=True)
            if c.expect != "pass" or (r.status != "pass" and not lowp):
                continue
            for bug, bad in corpus.bugs(c, seed).items():
                rb = gpucheck.check_gradient(f, c.x, bad, backend="cpu", reference=ref)
                counts[("fail", rb.status)] += 1
                ok = rb.status == "fail" or (lowp and rb.status == "inconclusive")
                if lowp:
                    counts[("ref fail", rb.reference.status)] += 1
                    ok &= rb.reference.status == "fail"
                if not ok:
                    wrong.append((key, seed, bug, "fail", rb.status, rb.summary()))
                    print("WRONG", *wrong[-1], flush=True)
    print(f"\n{len(plan)} case builds, {sum(counts.values())} checks in {time.perf_counter() - t0:.0f} s")
    for (want, got), k in sorted(counts.items()):
        print(f"  expected {want:<12} got {got:<12} {k}")
    print("\nnfev / N for correct gradients (median, max) per case:")
    for key in sorted(nfev):
        r = np.array([e / s for e, s in nfev[key]])
        print(f"  {key:<40} {np.median(r):6.2f} {r.max():6.2f}   N={nfev[key][0][1]}")
    return 1 if wrong else 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--sizes", type=int, nargs="+", default=[3, 6])
    p.add_argument("--kernel-sizes", type=int, nargs="+", default=[8])
    sys.exit(run(p.parse_args()))
