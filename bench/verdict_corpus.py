"""The verdict corpus over many seeds: wrong verdicts, needless inconclusives, evaluations.

Runs every case of tests/corpus.py in every form of f that applies (plain
callable, batched, kernel with float64 accumulators, row-wise, built-in
layer by delta; several inputs whose gradients differ 1000-fold), in
float64 and float32 (and float16 / bfloat16 for the low-precision subset),
at several sizes, for correct gradients and planted bugs, and tallies per
form:

* false fail: a correct gradient fails;
* false pass: a planted bug passes;
* needless inconclusive: inconclusive where the same check with f evaluated
  on a float64 copy of x (``reference='float64'``) gives the right verdict,
  for float64 x the reference is the check itself, so there it is any
  inconclusive where the case expects a decision;
* honest inconclusive: inconclusive where the float64 reference cannot
  decide either (low precision, or a case that expects it).

Prints a line per wrong verdict, then the tallies and nfev / N for correct
gradients.  Exit status 1 when any false fail or false pass was seen.

    PYTHONPATH=.:tests python bench/verdict_corpus.py --seeds 20 [--sizes 3 6] [--kernel-sizes 8]
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

#: Per form: correct checks, bug checks, false fails, false passes,
#: needless inconclusives, honest inconclusives.
COLUMNS = ("correct", "bugs", "false fail", "false pass", "needless inc.", "honest inc.")


def _size(x) -> int:
    return sum(v.size for v in x) if isinstance(x, tuple) else x.size


def _dtype(x):
    return (x[0] if isinstance(x, tuple) else x).dtype


def _applies(form, dt, n, x, args) -> bool:
    name = np.dtype(dt).name
    if args.forms and form not in args.forms:
        return False
    if form in corpus.COMPILED and name not in ("float32", "float64"):
        return False
    if form == "callable" and _size(x) > 256:
        return False
    return True


def _plan(args):
    dtypes = [np.float64, np.float32]
    low = [np.float16] + ([corpus.BFLOAT16] if corpus.BFLOAT16 is not None else [])
    everything = corpus.SMOOTH + corpus.SPECIAL + corpus.LAYERS + corpus.SEVERAL
    kernel_cases = [corpus.mse, corpus.dense, corpus.tanh, corpus.softmax_ce, corpus.logsumexp_large,
                    corpus.layer_norm, corpus.two_inputs]
    if args.cases:
        keep = set(args.cases)
        everything = [b for b in everything if b.__name__ in keep]
        kernel_cases = [b for b in kernel_cases if b.__name__ in keep]
    plan = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for n in args.sizes:
            for dt in dtypes:
                plan += [(seed, n, dt, c, None) for c in corpus.cases(seed, dt, n, everything)]
            for dt in low:
                plan += [(seed, n, dt, c, None)
                         for c in corpus.cases(seed, dt, min(n, 8), corpus.LOW_PRECISION)
                         if not args.cases or c.name in args.cases]
        # larger sizes: the compiled forms only (a callable or batched f is O(N^2) there)
        for n in args.kernel_sizes:
            for dt in dtypes:
                plan += [(seed, n, dt, c, corpus.COMPILED) for c in corpus.cases(seed, dt, n, kernel_cases)]
    return plan


def run(args) -> int:
    warnings.simplefilter("ignore")
    tally = defaultdict(Counter)
    nfev = defaultdict(list)
    wrong = 0
    t0 = time.perf_counter()
    plan = _plan(args)

    def reference_decides(f, c, grad, want):
        # the same check with f on a float64 copy of x: does it decide, and rightly?
        r64 = gpucheck.check_gradient(f, c.x, grad, backend="cpu", reference="float64").reference
        return r64.status == want

    def judge(key, form, seed, what, f, c, grad, want, r, lowp):
        nonlocal wrong
        t = tally[form]
        if r.status == want:
            return
        if r.status == "inconclusive":
            f64 = np.dtype(_dtype(c.x)) == np.float64
            if c.expect == "inconclusive" or lowp:
                t["honest inc."] += 1
            elif f64 or reference_decides(f, c, grad, want):
                t["needless inc."] += 1
                print("INCONCLUSIVE", key, seed, what, r.summary(), flush=True)
            else:
                t["honest inc."] += 1
            return
        t["false fail" if want == "pass" else "false pass"] += 1
        wrong += 1
        print("WRONG", key, seed, what, f"expected {want}", r.summary(), flush=True)

    for seed, n, dt, c, only in plan:
        for form, f in c.forms.items():
            if only is not None and form not in only:
                continue
            if not _applies(form, dt, n, c.x, args):
                continue
            key = f"{c.name}/{form}/{np.dtype(dt).name}/n{n}"
            lowp = np.dtype(dt).name in ("float16", "bfloat16")
            r = gpucheck.check_gradient(f, c.x, c.grad, backend="cpu")
            tally[form]["correct"] += 1
            if r.status == "pass":
                nfev[key].append((r.nfev, _size(c.x)))
            judge(key, form, seed, "correct", f, c, c.grad, c.expect, r, lowp)
            if c.expect != "pass" or r.status == "fail":
                continue
            for bug, bad in corpus.bugs(c, seed).items():
                rb = gpucheck.check_gradient(f, c.x, bad, backend="cpu")
                tally[form]["bugs"] += 1
                judge(key, form, seed, bug, f, c, bad, "fail", rb, lowp)
    seconds = time.perf_counter() - t0
    print(f"\n{len(plan)} case builds, {sum(t['correct'] + t['bugs'] for t in tally.values())} "
          f"checks in {seconds:.0f} s")
    print(f"  {'form':<10}" + "".join(f"{c:>15}" for c in COLUMNS))
    total = Counter()
    for form in sorted(tally):
        total.update(tally[form])
        print(f"  {form:<10}" + "".join(f"{tally[form][c]:>15}" for c in COLUMNS))
    print(f"  {'all':<10}" + "".join(f"{total[c]:>15}" for c in COLUMNS))
    print("\nnfev - 2N for passing correct gradients (median, max) per case:")
    for key in sorted(nfev):
        d = np.array([e - 2 * s for e, s in nfev[key]])
        print(f"  {key:<44} {np.median(d):7.0f} {d.max():7d}   N={nfev[key][0][1]}")
    return 1 if wrong else 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--sizes", type=int, nargs="+", default=[3, 6])
    p.add_argument("--kernel-sizes", type=int, nargs="*", default=[8])
    p.add_argument("--cases", nargs="+", default=None, help="only these cases of tests/corpus.py")
    p.add_argument("--forms", nargs="+", default=None,
                   help="only these forms (callable, batched, kernel, rowwise, layer)")
    sys.exit(run(p.parse_args()))
