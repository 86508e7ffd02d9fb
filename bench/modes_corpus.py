"""The verdict corpus in the sampled and projected modes: wrong verdicts, counted.

For every case of tests/corpus.py (every form of f, float64 and float32,
kinks, ties, coarse, offset and nondeterministic f) and several seeds:

* a correct gradient must not fail in ``mode='sample'`` or ``mode='project'``
  (and a case whose full check passes must pass there too, else it is
  counted as 'inconclusive where full passes', not as wrong);
* planted bugs must fail in ``mode='sample'`` (a bug in a few entries has
  them named with ``indices=``, so they are sampled); in
  ``mode='project'``, 'factor 2' and 'zero' must fail, 'one sign' (the
  largest entry flipped) must fail or, where f has kinks at x, be
  inconclusive, and the one-entry bug (0.5% of max|g|, below a
  projection's resolution in ``<g, v>`` terms) and the kink bugs are only
  tallied.

Run (a few minutes on two cores)::

    PYTHONPATH=.:tests python bench/modes_corpus.py --seeds 5 --n 6 12

Prints one line per wrong verdict as found, then the tally.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

import numpy as np

import gpucheck

sys.path.insert(0, "tests")
import corpus  # noqa: E402


def run(seeds, sizes, dtypes, samples):
    tally = Counter()
    wrong = []
    for seed in seeds:
        for n in sizes:
            for dt in dtypes:
                for c in corpus.cases(seed, dt, n):
                    for form, f in c.forms.items():
                        for mode in ("sample", "project"):
                            kw = dict(backend="cpu", mode=mode, seed=seed)
                            if mode == "sample":
                                kw["samples"] = samples
                            r = gpucheck.check_gradient(f, c.x, c.grad, **kw)
                            key = (c.name, form, np.dtype(dt).name, n, seed, mode)
                            tally[f"{mode} correct {r.status}"] += 1
                            if r.status == "fail" and c.expect != "fail":
                                wrong.append((key, "false fail", r.summary()))
                                print("WRONG", key, "false fail:", r.summary(), flush=True)
                            if c.expect == "pass" and r.status == "inconclusive":
                                tally[f"{mode} inconclusive where full passes: {c.name}"] += 1
                            if c.expect != "pass" or r.status != "pass":
                                continue
                            for bug, bad in corpus.bugs(c, seed).items():
                                bkw = dict(kw)
                                wrong_at = np.flatnonzero(np.asarray(bad) != c.grad)
                                if mode == "sample" and wrong_at.size <= 16:
                                    # a bug in a few entries: make sure they are sampled
                                    bkw["indices"] = wrong_at.tolist()
                                rb = gpucheck.check_gradient(f, c.x, bad, **bkw)
                                label = "one entry" if bug.startswith("one entry") else bug
                                tally[f"{mode} {label} {rb.status}"] += 1
                                # a projection promises to see errors above its resolution
                                # along smooth directions only; kinks leave it undecided
                                must = mode == "sample" or label in ("factor 2", "zero", "one sign")
                                if mode == "project" and rb.status == "inconclusive" \
                                        and label not in ("factor 2", "zero"):
                                    must = False
                                if must and rb.status == "pass":
                                    wrong.append((key + (bug,), "false pass", rb.summary()))
                                    print("WRONG", key, bug, "false pass:", rb.summary(), flush=True)
    return tally, wrong


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--n", type=int, nargs="+", default=[6, 12])
    p.add_argument("--samples", type=int, default=8,
                   help="entries per choice in mode='sample' (small: a real sample)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    tally, wrong = run(range(args.first_seed, args.first_seed + args.seeds), args.n,
                       (np.float64, np.float32), args.samples)
    print(f"\n{sum(tally.values())} checks in {time.perf_counter() - t0:.0f} s; "
          f"{len(wrong)} wrong verdicts")
    for k in sorted(tally):
        print(f"  {k:<40} {tally[k]}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
