"""The host's share of a delta audit, this tree against a reference tree.

A full check of a built-in layer spends little of its time evaluating f
(the delta evaluator) and the rest on the host: the plan, the noise probes,
the verdict and the result.  This script times, for each workload, the
whole ``check_gradient`` (``check s``) and the backend's evaluation of the
same points alone (``eval s``); ``host s`` is their difference, and
``host CPU s`` the same difference in CPU time of the calling thread (what
the host computes, less sensitive to other processes on a busy machine;
the evaluation's worker threads are not in it).  With
``--ref DIR`` (another source tree of gpucheck, e.g. an older commit from
``git archive COMMIT | tar -x -C DIR``) it runs the same measurement on
both trees in alternating child processes, ``--rounds`` times each, keeps
the best of each, and prints the ratios: on a shared host, measurements
taken one right after the other are the fairest comparison there is.

Usage, from the repository root::

    python bench/bench_host.py [--ref DIR] [--rounds 3] [--repeat 5] [--quick] [--json FILE]

Each child prints one JSON line per workload; the parent prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: (name, layer, size, dtype, batch)
WORKLOADS = [("mse 1024x1024 float32", "mse", 1024, "float32", 0),
             ("dense 512x512 b64 float32", "dense", 512, "float32", 64),
             ("mse 128x128 float64", "mse", 128, "float64", 0)]
QUICK = [("mse 256x256 float32", "mse", 256, "float32", 0),
         ("dense 64x64 b16 float32", "dense", 64, "float32", 16),
         ("mse 128x128 float64", "mse", 128, "float64", 0)]


def _best(fn, repeat):
    """Best wall time of ``repeat`` calls, best CPU time of this thread, last result."""
    best, cpu, out = math.inf, math.inf, None
    for _ in range(max(1, repeat)):
        c0, t0 = time.thread_time(), time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        cpu = min(cpu, time.thread_time() - c0)
    return best, cpu, out


def child(workloads, repeat):
    """Measure in this process, on the gpucheck that ``sys.path`` finds first."""
    import numpy as np

    import gpucheck
    import gpucheck.layers
    from gpucheck import plan
    from gpucheck.backends import get
    from gpucheck.functions import as_function
    from gpucheck.stencils import get_scheme

    for name, layer, size, dtype, batch in workloads:
        rng = np.random.default_rng(0)
        if layer == "mse":
            x = rng.standard_normal((size, size)).astype(dtype)
            built = gpucheck.layers.mse(rng.standard_normal((size, size)).astype(dtype))
        else:
            a = rng.standard_normal((batch, size)).astype(dtype)
            x = (rng.standard_normal((size, size)) / math.sqrt(size)).astype(dtype)
            built = gpucheck.layers.dense(a, rng.standard_normal((batch, size)).astype(dtype))
        grad = built.grad(x)
        bad = grad.copy()
        bad.flat[7] += 0.01 * float(np.max(np.abs(grad)))
        gpucheck.check_gradient(built, x, grad, backend="cpu")  # compile, caches
        check_s, check_cpu, r = _best(lambda: gpucheck.check_gradient(built, x, grad, backend="cpu"),
                                      repeat)
        bug_s, _, rb = _best(lambda: gpucheck.check_gradient(built, x, bad, backend="cpu"), repeat)
        st = plan.points(x, scheme=get_scheme("central"))
        func, impl = as_function(built), get("cpu")
        eval_s, eval_cpu, _ = _best(lambda: impl.evaluate(func, x, st.idx, st.vals.reshape(-1)),
                                    repeat)
        print(json.dumps({"workload": name, "N": int(x.size), "check_s": check_s,
                          "eval_s": eval_s, "host_s": check_s - eval_s,
                          "check_thread_s": check_cpu, "host_thread_s": check_cpu - eval_cpu,
                          "status": r.status,
                          "bug_check_s": bug_s, "bug_status": rb.status,
                          "bug_failed": int(rb.n_failed)}), flush=True)


def _run_child(tree, args):
    env = dict(os.environ, PYTHONPATH=tree)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--repeat", str(args.repeat)]
    if args.quick:
        cmd.append("--quick")
    out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", help="a reference source tree to compare with")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="small sizes")
    p.add_argument("--json", help="append every row to this file as one JSON line")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    workloads = QUICK if args.quick else WORKLOADS
    if args.child:
        child(workloads, args.repeat)
        return 0
    trees = {"this": HERE}
    if args.ref:
        trees = {"ref": os.path.abspath(args.ref), "this": HERE}
    best = {}
    for rnd in range(max(1, args.rounds)):
        for label, tree in trees.items():
            for row in _run_child(tree, args):
                key = (label, row["workload"])
                old = best.get(key)
                best[key] = row if old is None else {
                    k: (min(v, old[k]) if k.endswith("_s") else v) for k, v in row.items()}
        print(f"# round {rnd + 1} done", file=sys.stderr, flush=True)
    print("| workload | tree | status (bug) | check s | eval s | host s | host CPU s "
          "| check s, bug |")
    print("|---|---|---|---|---|---|---|---|")
    for name, *_ in workloads:
        for label in trees:
            r = best[(label, name)]
            print(f"| {name} | {label} | {r['status']} ({r['bug_status']}, {r['bug_failed']} "
                  f"failed) | {r['check_s']:.4g} | {r['eval_s']:.3g} | {r['host_s']:.4g} | "
                  f"{r['host_thread_s']:.4g} | {r['bug_check_s']:.4g} |")
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(dict(r, tree=label)) + "\n")
    if args.ref:
        print("\n| workload | check ref/this | host ref/this | host CPU ref/this "
              "| bug check ref/this |")
        print("|---|---|---|---|---|")
        for name, *_ in workloads:
            a, b = best[("ref", name)], best[("this", name)]
            print(f"| {name} | {a['check_s'] / b['check_s']:.2f}x | "
                  f"{a['host_s'] / b['host_s']:.2f}x | "
                  f"{a['host_thread_s'] / b['host_thread_s']:.2f}x | "
                  f"{a['bug_check_s'] / b['bug_check_s']:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
