"""What chunking costs: the scheduler's timed chunks vs one backend call for all points.

Before the scheduler, every stage went to the backend in one call: fastest,
but a long stage could not be interrupted, showed no progress and no
estimate.  This runs the same points (a full central-difference stencil plus
the base point) both ways, interleaved, in one process, on the cpu backend,
for the three forms of f, and prints the ratio (scheduled / one call; 1.00 is
free).  Values are compared bit for bit.

``--big SECONDS`` instead starts the full check of a 2,000,000-entry x with
a cheap batched f (4,000,065 points: hours), stops it after SECONDS as
Ctrl-C would, and prints the estimate it made, how far it got and the peak
resident memory of the process.

Usage::

    python bench/bench_schedule.py [--repeat 5] [--sizes 64,128,256] [--audit]
    python bench/bench_schedule.py --big 10 [--form batched|callable]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import numpy as np

from gpucheck import plan
from gpucheck.backends import cpu
from gpucheck.functions import as_function
from gpucheck.layers import mse
from gpucheck.schedule import Runner
from gpucheck.stencils import get_scheme


def _forms(n: int):
    rng = np.random.default_rng(0)
    t = rng.normal(size=(n, n))
    x = t + rng.normal(size=(n, n))
    layer = mse(t)
    return x, {
        "callable": as_function(lambda v: float(((v - t) ** 2).sum() / n)),
        "batched": as_function(layer.batched),
        "kernel": as_function(layer.kernel),
    }


class _Stop(BaseException):
    pass


class _Watch:
    """A progress object that stops the run after a while and keeps the estimate."""

    def __init__(self, seconds):
        self.deadline = time.monotonic() + seconds
        self.estimate_seen = None
        self.done = self.total = 0

    def __call__(self, done, total):
        self.done, self.total = done, total
        if time.monotonic() > self.deadline:
            raise _Stop

    def estimate(self, seconds, done, total):
        self.estimate_seen = (seconds, done)


def big(seconds: float, form: str) -> None:
    import gpucheck

    n = 2_000_000
    x = np.full(n, 0.5)
    f = gpucheck.batched(lambda xs: (xs * xs).sum(axis=1)) if form == "batched" else (
        lambda v: float(v @ v))
    watch = _Watch(seconds)
    t0 = time.perf_counter()
    try:
        gpucheck.check_gradient(f, x, 2 * x, backend="cpu", progress=watch)
    except _Stop:
        pass
    elapsed = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    est, at = watch.estimate_seen or (float("nan"), 0)
    print(f"# {platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}, "
          f"NumPy {np.__version__}")
    print(f"2,000,000-entry float64 x, {form} f = sum(x*x): {watch.total:,} points")
    print(f"stopped after {elapsed:.1f} s at {watch.done:,} points "
          f"({watch.done / elapsed:.0f}/s); estimate made at {at:,} points: "
          f"{est / 3600:.1f} h to go")
    print(f"peak resident memory of the process: {rss:.2f} GiB")


def _row_sse(row, t):
    s = 0.0
    for j in range(row.shape[0]):
        d = row[j] - t[j]
        s += d * d
    return s


def audit_rows(repeat: int) -> None:
    """The delta forms: a 1024x1024 float32 MSE layer and a 64x1024 row-wise MSE."""
    import gpucheck
    import gpucheck.layers as L

    rng = np.random.default_rng(0)
    t = rng.normal(size=(1024, 1024)).astype(np.float32)
    x = rng.normal(size=(1024, 1024)).astype(np.float32)
    rows = {"layer mse 1024x1024 f32": (as_function(L.mse(t)), x),
            "rowwise mse 64x1024 f64": (as_function(gpucheck.rowwise(
                _row_sse, t[:64].astype(np.float64), scale=1 / 64)), x[:64].astype(np.float64))}
    for label, (func, xx) in rows.items():
        st = plan.points(xx, scheme=get_scheme("central"), eps=None)
        idx = np.concatenate([[0], st.idx.ravel()]).astype(np.int64)
        vals = np.concatenate([xx.reshape(-1)[:1], st.vals.ravel()])
        cpu.evaluate(func, xx, idx, vals)  # compile both loop variants outside the timing
        cpu.evaluate(func, xx, idx[:64], vals[:64])
        one = chunked = np.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            v_one = cpu.evaluate(func, xx, idx, vals).values
            one = min(one, time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = Runner(func, xx, "cpu").run(idx, vals)
            chunked = min(chunked, time.perf_counter() - t0)
        same = np.array_equal(v_one, out.values)
        print(f"{label:24} {'delta':9} {idx.size:8d} {one:10.3f} {chunked:10.3f} "
              f"{out.chunks:6d} {chunked / one:6.2f}  {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sizes", default="64,128,256")
    ap.add_argument("--big", type=float, help="run the 2e6-entry check for this many seconds")
    ap.add_argument("--form", default="batched", choices=["batched", "callable"])
    ap.add_argument("--audit", action="store_true",
                    help="also the delta forms (a built-in layer, a row-wise function)")
    args = ap.parse_args()
    if args.big:
        big(args.big, args.form)
        return
    print(f"# {platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}, "
          f"NumPy {np.__version__}; best of {args.repeat}, interleaved")
    print(f"{'workload':24} {'form':9} {'points':>8} {'one call s':>10} {'chunked s':>10} "
          f"{'chunks':>6} {'ratio':>6}  identical")
    for n in (int(s) for s in args.sizes.split(",")):
        x, forms = _forms(n)
        st = plan.points(x, scheme=get_scheme("central"), eps=None)
        idx = np.concatenate([[0], st.idx.ravel()]).astype(np.int64)
        vals = np.concatenate([x.reshape(-1)[:1], st.vals.ravel()])
        for name, func in forms.items():
            if name == "callable" and n > 128:
                continue  # minutes per repeat; the overhead is per chunk, not per point
            cpu.evaluate(func, x, idx[:8], vals[:8])  # compile outside the timing
            one = chunked = np.inf
            v_one = v_chunked = None
            chunks = 0
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                v_one = cpu.evaluate(func, x, idx, vals).values
                one = min(one, time.perf_counter() - t0)
                runner = Runner(func, x, "cpu")
                t0 = time.perf_counter()
                out = runner.run(idx, vals)
                chunked = min(chunked, time.perf_counter() - t0)
                v_chunked, chunks = out.values, out.chunks
            same = np.array_equal(v_one, v_chunked)
            print(f"{f'mse {n}x{n} float64':24} {name:9} {idx.size:8d} {one:10.3f} "
                  f"{chunked:10.3f} {chunks:6d} {chunked / one:6.2f}  {same}")
    if args.audit:
        audit_rows(args.repeat)


if __name__ == "__main__":
    main()
