"""Interrupted checks over the verdict corpus: does a partial result ever claim too much?

For every case of tests/corpus.py (the plain callable form), for the
correct gradient and every planted bug, runs the complete check, then the
same check stopped by a KeyboardInterrupt from f after k calls, for several
k across the first pass and just before the end.  Chunks are made tiny so
that the interrupt lands near a chunk's end.  A partial result must never
pass overall, and must never pass (or fail) an entry that the complete
check does not.  Prints each violation and a summary line.

    PYTHONPATH=.:tests python bench/partial_corpus.py --seeds 2 [--sizes 6] [--dtypes float32 float64]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, "tests")

import corpus  # noqa: E402

import gpucheck  # noqa: E402
from gpucheck import schedule  # noqa: E402


class StopAfter:
    """f that raises KeyboardInterrupt at call ``k + 1``."""

    def __init__(self, f, k: int):
        self.f, self.k, self.calls = f, k, 0

    def __call__(self, v):
        self.calls += 1
        if self.calls > self.k:
            raise KeyboardInterrupt
        return self.f(v)


def run(args) -> int:
    warnings.simplefilter("ignore")
    schedule.TARGET_SECONDS["cpu"] = 1e-4
    schedule.GROW = 2
    t0 = time.perf_counter()
    runs = partials = passes = fails = violations = 0
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for dt in args.dtypes:
            for n in args.sizes:
                for c in corpus.cases(seed, np.dtype(dt).type, n):
                    f = c.forms.get("callable")
                    if f is None:
                        continue
                    for name, g in {"correct": c.grad, **corpus.bugs(c, seed)}.items():
                        full = gpucheck.check_gradient(f, c.x, g, backend="cpu", mode="full")
                        ks = sorted({k for k in (*range(110, 320, 20), full.nfev - 20,
                                                 full.nfev - 5) if 0 < k < full.nfev})
                        for k in ks:
                            runs += 1
                            try:
                                gpucheck.check_gradient(StopAfter(f, k), c.x, g, backend="cpu",
                                                        mode="full")
                                continue
                            except gpucheck.GpuCheckInterrupted as stop:
                                r = stop.partial
                            partials += 1
                            st = r.element_status
                            passes += int(np.sum(st == "pass"))
                            fails += int(np.sum(st == "fail"))
                            over_pass = (st == "pass") & (full.element_status != "pass")
                            over_fail = (st == "fail") & (full.element_status != "fail")
                            if r.status == "pass" or over_pass.any() or over_fail.any():
                                violations += 1
                                print(f"VIOLATION {c.name} {dt} n={n} seed={seed} {name} k={k}: "
                                      f"status {r.status}, {int(over_pass.sum())} passes and "
                                      f"{int(over_fail.sum())} fails beyond the complete check")
    print(f"{runs} interrupted runs, {partials} partial results, {passes} entries passed and "
          f"{fails} failed in them, {violations} violations, {time.perf_counter() - t0:.0f} s")
    return 1 if violations else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--sizes", type=int, nargs="+", default=[6])
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
