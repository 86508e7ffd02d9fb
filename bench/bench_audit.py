"""Large-layer audits: delta evaluation against the full-forward kernel path and torch.

Every row is measured in one process, side by side with its baseline, and
printed (and, with ``--json FILE``, appended to FILE as one JSON line) as
soon as it is measured, so a run cut short keeps what it has.

``audit`` rows, on ``--backend`` (cpu, cuda or cudasim):
  the full check ``check_gradient(layer, X, grad)`` of a built-in layer
  through its delta evaluator (1024x1024 float32 MSE; dense layer with
  512x512 float32 weights, batch 64), best of ``--repeat``; the evaluation
  of all its points alone (what the backend spends) and the rest (the
  host's plan and verdict); against the same 2N points on the full-forward
  kernel path (``gpucheck.kernel`` of :mod:`gpucheck.kernels.builtin`), timed
  on ``--sample`` elements and extrapolated per point.  The floor of each
  path comes from :func:`gpucheck.compare.floor`; on cuda, the achieved
  fraction of the device's memory bandwidth.
``torch`` rows (cpu only): a 128x128 float64 MSE, full check, against
  ``torch.autograd.gradcheck`` (CPU, default options: the full numerical
  Jacobian) of the same loss: through the delta evaluator, and as a
  black-box ``gpucheck.kernel`` (with and without reassociation).  Each
  side is timed after a pause (worker threads of the other side spin for a
  while after their work); torch best of ``--repeat``, a gpucheck check of
  a few milliseconds best of as many calls as fit in about a second (at
  most 50, at least ``--repeat``).

Usage::

    python bench/bench_audit.py [--backend cpu] [--repeat 3] [--sample 512] [--quick]
                                [--rows audit,torch] [--json FILE]

``--quick`` runs tiny sizes; ``--backend cudasim`` (with
``NUMBA_ENABLE_CUDASIM=1``) always does, once, with a small sample: the
simulator runs every thread as Python, so this checks the script without a
GPU in seconds.  A row that fails is
emitted with its error and the others still run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import numba
import numpy as np

import gpucheck
from gpucheck import plan
from gpucheck.backends import availability, get
from gpucheck.compare import floor
from gpucheck.functions import as_function, kernel
from gpucheck.kernels.builtin import workload
from gpucheck.stencils import get_scheme

AUDITS = [("mse", 1024, 0), ("dense", 512, 64)]
QUICK_AUDITS = [("mse", 64, 0), ("dense", 24, 8)]
TORCH_SIZE, QUICK_TORCH_SIZE = 128, 16
#: Seconds of rest before each side of the torch comparison is timed.
PAUSE = 0.5


def _best(fn, repeat):
    best, out = math.inf, None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _emit(row, path):
    print(json.dumps(row), flush=True)
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(row) + "\n")


def _peaks(backend):
    if backend != "cuda":
        return None
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gpu_table import device_peaks

    return device_peaks("cuda")


def audit_row(layer, size, batch, backend, repeat, sample, peaks):
    """One audit: the delta check against the full-forward kernel path."""
    dtype = "float32"
    fn, params, _, x = workload(layer, size, dtype, batch=max(batch, 1))
    built = gpucheck.layers.mse(*params) if layer == "mse" else gpucheck.layers.dense(*params)
    grad = built.grad(x)
    impl = get(backend)
    st = plan.points(x, scheme=get_scheme("central"))
    idx, vals = st.idx, st.vals.reshape(-1)

    gpucheck.check_gradient(built, x, grad, backend=backend)  # compile, load caches
    check_s, result = _best(lambda: gpucheck.check_gradient(built, x, grad, backend=backend),
                            repeat)
    func = as_function(built)
    eval_s = min(impl.evaluate(func, x, idx, vals).run_seconds for _ in range(max(1, repeat)))

    rng = np.random.default_rng(0)
    k = min(x.size, sample)
    elements = np.sort(rng.choice(x.size, size=k, replace=False)).astype(np.int64)
    sub = plan.stencil(x, (-1, 1), st.h[elements], elements)
    kfunc = as_function(kernel(fn, *params))
    first = impl.evaluate(kfunc, x, sub.idx, sub.vals.reshape(-1))
    sample_s = min(impl.evaluate(kfunc, x, sub.idx, sub.vals.reshape(-1)).run_seconds
                   for _ in range(max(1, repeat)))
    full_s = sample_s * idx.size / sub.idx.size

    delta_fl = floor(layer, size, dtype, batch=max(batch, 1), path="delta")
    full_fl = floor(layer, size, dtype, batch=max(batch, 1))
    row = {
        "row": "audit", "backend": backend,
        "workload": f"{layer} {size}x{size}" + (f" b{batch}" if layer == "dense" else ""),
        "dtype": dtype, "N": int(x.size), "points": int(idx.size),
        "status": result.status, "nfev": int(result.nfev),
        "check_s": check_s, "delta_eval_s": eval_s, "host_s": check_s - eval_s,
        "full_kernel_s_est": full_s, "full_kernel_sample_points": int(sub.idx.size),
        "full_kernel_compile_s": first.compile_seconds,
        "speedup_check_vs_full": full_s / check_s,
        "delta_floor_bytes": delta_fl.bytes * idx.size,
        "delta_floor_flop": delta_fl.flops * idx.size,
        "full_floor_bytes": full_fl.bytes * idx.size, "full_floor_flop": full_fl.flops * idx.size,
    }
    if peaks is not None:
        row["device"] = peaks["name"]
        row["delta_eval_of_bandwidth"] = row["delta_floor_bytes"] / eval_s / peaks["bw"]
        row["full_floor_s"] = full_fl.seconds(peaks["fp32"], peaks["fp64"], peaks["bw"]) \
            * idx.size
        row["delta_floor_s"] = delta_fl.seconds(peaks["fp32"], peaks["fp64"], peaks["bw"]) \
            * idx.size
    return row


def torch_rows(size, repeat):
    """The 128x128 float64 MSE: gpucheck (delta, kernel) against torch.autograd.gradcheck."""
    try:
        import torch
    except ImportError as err:
        return [{"row": "torch", "skipped": f"torch is not importable ({err})"}]
    torch.set_num_threads(numba.get_num_threads())
    rng = np.random.default_rng(0)
    X, T = rng.standard_normal((size, size)), rng.standard_normal((size, size))
    G = 2 * (X - T) / size
    xt = torch.tensor(X, requires_grad=True)
    tt = torch.tensor(T)

    def loss(v):
        return ((v - tt) ** 2).sum() / size

    forms = {"delta (layers.mse)": gpucheck.layers.mse(T),
             "kernel, reassoc": gpucheck.kernel(workload("mse", 1, "float64")[0], T),
             "kernel, strict": gpucheck.kernel(workload("mse", 1, "float64")[0], T,
                                               reassoc=False)}
    first = {}
    for name, f in forms.items():
        gpucheck.check_gradient(f, X, G, backend="cpu")  # compile
        t0 = time.perf_counter()
        gpucheck.check_gradient(f, X, G, backend="cpu")
        first[name] = time.perf_counter() - t0
    torch.autograd.gradcheck(loss, (xt,))  # torch's first call sets itself up
    # each side is timed after a pause: OpenMP worker threads (torch's, and
    # numba's parallel loops) spin for a while after their work, and on a
    # small host they would take the cores from the side timed next
    time.sleep(PAUSE)
    torch_s, ok = _best(lambda: torch.autograd.gradcheck(loss, (xt,)), repeat)
    rows = []
    for name, f in forms.items():
        time.sleep(PAUSE)
        # a check of milliseconds is timed as often as fits in about a second
        reps = max(repeat, 3, min(50, int(1.0 / max(first[name], 1e-3))))
        s, r = _best(lambda: gpucheck.check_gradient(f, X, G, backend="cpu"), reps)
        rows.append({"row": "torch", "workload": f"mse {size}x{size}", "dtype": "float64",
                     "form": name, "gpucheck_s": s, "gpucheck_repeats": reps, "status": r.status,
                     "torch_gradcheck_s": torch_s, "torch_ok": bool(ok),
                     "speedup_vs_torch": torch_s / s, "torch": torch.__version__})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="cpu", choices=["cpu", "cuda", "cudasim"])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--sample", type=int, default=512, help="elements the full kernel path runs")
    p.add_argument("--quick", action="store_true", help="tiny sizes")
    p.add_argument("--json", help="append every row to this file as one JSON line")
    p.add_argument("--rows", default="audit,torch",
                   help="which rows: audit, torch or both (default audit,torch)")
    args = p.parse_args(argv)
    wanted = {r.strip() for r in args.rows.split(",") if r.strip()}
    if not wanted or wanted - {"audit", "torch"}:
        p.error(f"--rows must list audit and/or torch, got {args.rows!r}")
    ok, why = availability()[args.backend]
    if not ok:
        print(f"backend {args.backend!r} is not available here: {why}")
        return 2
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"# {platform.machine()}, {cores} cores, python {platform.python_version()}, numba "
          f"{numba.__version__} ({numba.get_num_threads()} threads), numpy {np.__version__}, "
          f"backend {args.backend}", flush=True)
    peaks = _peaks(args.backend)
    quick = args.quick or args.backend == "cudasim"
    if args.backend == "cudasim":  # a check of the script, not a measurement
        args.repeat, args.sample = 1, min(args.sample, 16)
    rows = []
    for layer, size, batch in (QUICK_AUDITS if quick else AUDITS) if "audit" in wanted else ():
        try:
            rows.append(audit_row(layer, size, batch, args.backend, args.repeat, args.sample,
                                  peaks))
        except Exception as err:  # keep the other rows of a bounded session
            rows.append({"row": "audit", "backend": args.backend, "workload": f"{layer} {size}",
                         "error": f"{type(err).__name__}: {err}"})
        _emit(rows[-1], args.json)
    if args.backend == "cpu" and "torch" in wanted:
        for row in torch_rows(QUICK_TORCH_SIZE if quick else TORCH_SIZE, args.repeat):
            rows.append(row)
            _emit(row, args.json)
    print(summary(rows, args.backend))
    return 0


def summary(rows, backend) -> str:
    """The rows as two small tables, with the issue's targets."""
    target = "< 50 ms (H100, 1M MSE)" if backend == "cuda" else "< 2 s (2 cores)"
    lines = [f"\naudits on {backend}: full check by delta evaluation vs the full-forward kernel "
             f"path (extrapolated); target {target}",
             "| workload | points | status | check s | delta eval s | host s | full kernel s (est.) "
             "| speed-up | delta floor MB | of bandwidth |", "|" + "---|" * 10]
    for r in rows:
        if r.get("row") != "audit":
            continue
        if "error" in r:
            lines.append(f"| {r['workload']} | failed: {r['error']} |")
            continue
        bw = f"{r['delta_eval_of_bandwidth']:.1%}" if "delta_eval_of_bandwidth" in r else "-"
        lines.append(f"| {r['workload']} {r['dtype']} | {r['points']} | {r['status']} | "
                     f"{r['check_s']:.3g} | {r['delta_eval_s']:.3g} | {r['host_s']:.3g} | "
                     f"{r['full_kernel_s_est']:.3g} | {r['speedup_check_vs_full']:.3g}x | "
                     f"{r['delta_floor_bytes'] / 1e6:.3g} | {bw} |")
    torch_rows_ = [r for r in rows if r.get("row") == "torch"]
    if torch_rows_:
        lines += ["\nagainst torch.autograd.gradcheck (targets: delta >= 1000x, kernel >= 10x)",
                  "| check | gpucheck s | torch s | speed-up |", "|---|---|---|---|"]
        for r in torch_rows_:
            if "skipped" in r:
                lines.append(f"| skipped: {r['skipped']} | | | |")
                continue
            lines.append(f"| {r['workload']} {r['dtype']}, {r['form']} ({r['status']}) | "
                         f"{r['gpucheck_s']:.4g} | {r['torch_gradcheck_s']:.4g} | "
                         f"{r['speedup_vs_torch']:.4g}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
