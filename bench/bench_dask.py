"""A slow black-box f checked on Dask: one worker process vs two, and the local run.

The function is a black box (no batching, no kernel), so in one process its
points run one after the other.  Two kinds: ``cpu``, plain Python that holds
the GIL for a few milliseconds per call (the speed-up is bounded by the free
cores of the host), and ``wait``, a call that waits a few milliseconds, as
one to an external solver or a remote service does (bounded by nothing
here).  The same full check_gradient runs three ways, in one
process, interleaved: locally (no executor), on a LocalCluster of one worker
process, and on one of two (one thread each).  Clusters start before the
timing and run one warm-up check.  The numerical gradients must agree bit
for bit.

Usage::

    python bench/bench_dask.py [--kind cpu|wait] [--n 200] [--work 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import time

import numpy as np

import gpucheck


def make_f(kind: str, work: int):
    if kind == "wait":
        def f(v):
            time.sleep(work * 1e-7)  # --work 20000: 2 ms
            return float(np.sum(v * v))

        return f

    def f(v):
        # a slow forward pass: pure Python, GIL held throughout
        s = 0.0
        flat = v.ravel().tolist()
        for k in range(work):
            s += math.sin(flat[k % len(flat)] * (1 + k % 7))
        return s / work + float(np.sum(v * v))

    return f


def _spin(_):
    s = 0.0
    for k in range(2_000_000):
        s += math.sin(k)
    return s


def host_ceiling() -> float:
    """What two processes of pure Python get over one on this host right now."""
    from concurrent.futures import ProcessPoolExecutor

    times = {}
    for n in (1, 2):
        with ProcessPoolExecutor(n) as pool:
            list(pool.map(_spin, range(n)))  # start the processes
            t0 = time.perf_counter()
            list(pool.map(_spin, range(4)))
            times[n] = time.perf_counter() - t0
    return times[1] / times[2]


def main() -> None:
    from distributed import Client, LocalCluster

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", default="cpu", choices=["cpu", "wait"])
    ap.add_argument("--n", type=int, default=200, help="entries of x")
    ap.add_argument("--work", type=int, default=20000, help="loop steps per call of f")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    f = make_f(args.kind, args.work)
    x = np.random.default_rng(0).normal(size=args.n)
    # the gradient of the sum of squares part is 2x; the sin part is small but
    # nonzero, so give the numerical gradient itself: the verdict is not the point
    g = gpucheck.numerical_gradient(f, x, backend="cpu")

    clusters = {}
    for w in (1, 2):
        cluster = LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        clusters[w] = (cluster, Client(cluster, set_as_default=False))
        gpucheck.check_gradient(f, x[:8], g[:8], executor=clusters[w][1])  # warm-up

    def run(executor):
        t0 = time.perf_counter()
        r = gpucheck.check_gradient(f, x, g, backend="cpu", executor=executor)
        return time.perf_counter() - t0, r

    best = {"local": math.inf, 1: math.inf, 2: math.inf}
    results = {}
    for _ in range(args.repeat):
        for key in ("local", 1, 2):
            seconds, r = run(None if key == "local" else clusters[key][1])
            best[key] = min(best[key], seconds)
            results[key] = r
    for cluster, client in clusters.values():
        client.close()
        cluster.close()

    ceiling = host_ceiling()
    same = all(np.array_equal(results[k].numeric, results["local"].numeric)
               and results[k].nfev == results["local"].nfev for k in (1, 2))
    print(f"# {platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}; "
          f"x of {args.n} entries, {results['local'].nfev} evaluations of a {args.kind!r} f; "
          f"best of {args.repeat}")
    print(f"{'run':28} {'seconds':>8} {'evals/s':>8} {'vs 1 worker':>12}")
    for key, label in (("local", "local (no executor)"), (1, "Dask, 1 worker process"),
                       (2, "Dask, 2 worker processes")):
        rate = results[key].nfev / best[key]
        print(f"{label:28} {best[key]:8.2f} {rate:8.0f} {best[1] / best[key]:11.2f}x")
    print(f"identical numerical gradient and nfev: {same}")
    print(f"host ceiling now: two pure-Python processes run {ceiling:.2f}x one "
          f"(below 2 when other work holds a core)")


if __name__ == "__main__":
    main()
