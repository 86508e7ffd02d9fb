"""GPU vs CPU on the benchmark workloads, each row bounded in time, with the floor and achieved/peak.

For every workload the device backend evaluates the central-difference
points of a full check (2N points).  A row has a time budget: the device
first runs a prefix of the points (one launch's worth, compile time apart),
then as large a prefix as the budget allows; when that is not all 2N
points, the full-check time is extrapolated from the measured rate, and the
row says what fraction was measured.  The CPU runs a sample of elements
(both nodes of each) and its full-check time is extrapolated per point too.
The gradients of both backends are compared on that sample against the
rounding bound predicted from the noise of f measured on each backend.

The floor counts what every pass must do (``gpucheck.compare.floor``): no
delta evaluation, each pass reads its own copy of the checked array once.
Peak figures come from the device's attributes or, failing that, its name.

Each row is printed as one JSON line the moment it is measured and, with
``--jsonl FILE``, appended to that file (flushed), so a session that is cut
short keeps every row it finished.

Usage::

    python bench/gpu_table.py --rows mse:8,dense:32:64 [--dtypes float32,float64]
        [--budget 20] [--sample 512] [--jsonl rows.jsonl] [--memory-fraction F]
    NUMBA_ENABLE_CUDASIM=1 python bench/gpu_table.py --backend cudasim --rows mse:8

Rows are ``layer:size[:batch]``; ``--quick`` is the simulator's tiny set.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gpucheck import judge, noise, plan  # noqa: E402
from gpucheck.backends import availability, get  # noqa: E402
from gpucheck.compare import floor  # noqa: E402
from gpucheck.functions import as_function, kernel  # noqa: E402
from gpucheck.kernels.builtin import workload  # noqa: E402
from gpucheck.stencils import get_scheme  # noqa: E402

QUICK = "mse:8,mse:12,dense:6:4"

# FP32 and FP64 lanes per SM by compute capability (CUDA programming guide,
# arithmetic instruction throughput table).
LANES = {(7, 0): (64, 32), (7, 5): (64, 2), (8, 0): (64, 32), (8, 6): (128, 2),
         (8, 9): (128, 2), (9, 0): (128, 64), (10, 0): (128, 64), (12, 0): (128, 2)}
# Published peaks (FP32 TFLOP/s, FP64 TFLOP/s, TB/s) for when the clock
# attributes are not reported (CUDA 13 dropped them from the properties).
BY_NAME = {"H100 SXM": (67.0, 34.0, 3.35), "H100 80GB HBM3": (67.0, 34.0, 3.35),
           "H100 PCIe": (51.0, 26.0, 2.0), "H100 NVL": (60.0, 30.0, 3.9),
           "H200": (67.0, 34.0, 4.8), "A100": (19.5, 9.7, 2.0)}


def device_peaks(backend: str) -> dict:
    """``{'name', 'fp32', 'fp64', 'bw'}`` in FLOP/s and B/s (NaN where unknown)."""
    nan = {"name": backend, "fp32": math.nan, "fp64": math.nan, "bw": math.nan}
    if backend != "cuda":
        return nan
    import cupy

    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    out = dict(nan, name=name)
    attrs = dev.attributes
    cc = (int(props["major"]), int(props["minor"]))
    clock_khz = attrs.get("ClockRate") or props.get("clockRate")
    mem_khz = attrs.get("MemoryClockRate") or props.get("memoryClockRate")
    bus = attrs.get("GlobalMemoryBusWidth") or props.get("memoryBusWidth")
    sms = attrs["MultiProcessorCount"]
    if clock_khz and cc in LANES:
        out["fp32"] = 2.0 * LANES[cc][0] * sms * clock_khz * 1e3
        out["fp64"] = 2.0 * LANES[cc][1] * sms * clock_khz * 1e3
    if mem_khz and bus:
        out["bw"] = 2.0 * mem_khz * 1e3 * bus / 8
    for key, (f32, f64, bw) in BY_NAME.items():
        if key in name:
            if math.isnan(out["fp32"]):
                out["fp32"], out["fp64"] = f32 * 1e12, f64 * 1e12
            if math.isnan(out["bw"]):
                out["bw"] = bw * 1e12
            break
    return out


def copies(backend: str, x: np.ndarray, total: int) -> int:
    """G, the perturbed copies the backend will keep for this check (as it plans them)."""
    from gpucheck.backends import cuda

    ops = cuda._Host() if backend == "cudasim" else cuda._Device()
    budget = int(cuda.memory_fraction() * ops.free_bytes())
    return cuda.copies_for(budget, x.size * x.itemsize, total, ops.max_rows, ops.warp)


def _gradient_and_noise(impl, func, x, st, probe):
    parts = [(np.zeros(1, np.int64), x.reshape(-1)[:1]), (st.idx, st.vals.reshape(-1)),
             (probe.idx, probe.vals.reshape(-1))]
    idx = np.concatenate([p[0] for p in parts])
    vals = np.concatenate([p[1] for p in parts]).astype(x.dtype)
    v = impl.evaluate(func, x, idx, vals).values
    f0, fv, pv = v[0], v[1:1 + st.idx.size], v[1 + st.idx.size:]
    sigma = noise.estimate(probe, f0, pv)
    if not math.isfinite(sigma):
        sigma = plan.unit_roundoff(x.dtype) * abs(f0)
    return st.derivative(fv), sigma


def _say(t_row, what):
    """One timestamped line per phase on stderr, so a row cut off by a timeout shows where."""
    print(f"#   {time.perf_counter() - t_row:7.2f}s {what}", file=sys.stderr, flush=True)


def _device_time(dev, func, x, idx, vals, budget, repeat, t_row):
    """Compile, then time the largest prefix of the points the budget allows.

    The prefix grows at most fourfold per step and only while the next step,
    predicted from the last step's rate, fits in half of what is left of the
    budget (the first launches run few threads, so their rate understates the
    device; the fourfold cap bounds what a flattering rate can cost).

    Returns ``(compile_s, measured_points, seconds)``.
    """
    total = idx.size
    t0 = time.perf_counter()
    first_n = min(total, 256)
    ev = dev.evaluate(func, x, idx[:first_n], vals[:first_n])  # compiles; a small warm-up
    compile_s = ev.compile_seconds
    n = first_n
    seconds = ev.run_seconds
    _say(t_row, f"device: {n} points in {seconds:.3f} s (compile {compile_s:.2f} s)")
    while n < total:
        left = budget - (time.perf_counter() - t0)
        want = min(total, 4 * n, int(0.5 * left * n / max(seconds, 1e-12)))
        if want <= n:
            break
        n = want
        seconds = dev.evaluate(func, x, idx[:n], vals[:n]).run_seconds
        _say(t_row, f"device: {n} points in {seconds:.3f} s")
    if n == total:
        for _ in range(max(0, repeat - 1)):
            if time.perf_counter() - t0 + seconds > budget:
                break
            seconds = min(seconds, dev.evaluate(func, x, idx, vals).run_seconds)
    return compile_s, n, seconds


def run_one(layer, size, batch, dtype, backend, budget, sample, repeat=2):
    t_row = time.perf_counter()
    fn, params, _, x = workload(layer, size, dtype, batch=max(batch, 1))
    func = as_function(kernel(fn, *params))
    scheme = get_scheme("central")
    full = plan.points(x, scheme=scheme)
    idx, vals = full.idx, full.vals.reshape(-1)
    total = int(idx.size)
    dev, cpu = get(backend), get("cpu")
    _say(t_row, f"{layer} {size} {dtype}: {total} points planned")
    compile_s, measured, dev_s = _device_time(dev, func, x, idx, vals, budget, repeat, t_row)
    dev_full = dev_s * total / measured

    rng = np.random.default_rng(0)
    k = min(x.size, sample)
    elements = np.sort(rng.choice(x.size, size=k, replace=False)).astype(np.int64)
    sub = plan.stencil(x, scheme.multipliers, full.h[elements], elements)
    cpu.evaluate(func, x, sub.idx[:2], sub.vals.reshape(-1)[:2])  # compile apart
    cpu_s = cpu.evaluate(func, x, sub.idx, sub.vals.reshape(-1)).run_seconds
    cpu_full = cpu_s * total / sub.idx.size
    _say(t_row, f"cpu: {sub.idx.size} points in {cpu_s:.3f} s")

    probe = noise.probe_points(x, full.h)
    g_dev, s_dev = _gradient_and_noise(dev, func, x, sub, probe)
    g_cpu, s_cpu = _gradient_and_noise(cpu, func, x, sub, probe)
    _say(t_row, "sample gradients and noise on both backends")
    u = plan.unit_roundoff(x.dtype)
    bound = judge.KAPPA * sub.rounding_gain * (s_dev + s_cpu) + judge.analytic_floor(g_cpu, u)
    diff = np.abs(g_dev - g_cpu)
    ratio = float(np.max(diff / np.maximum(bound, np.finfo(float).tiny)))

    fl = floor(layer, size, dtype, batch=max(batch, 1))
    return {
        "workload": f"{layer} {size}x{size}" + (f" b{batch}" if layer == "dense" else ""),
        "dtype": dtype, "backend": backend, "N": int(x.size), "points": total,
        "copies": copies(backend, x, total), "measured_points": int(measured),
        "measured_fraction": measured / total, "compile_s": compile_s,
        "device_s_measured": dev_s, "device_s_full": dev_full,
        "cpu_s_full_est": cpu_full, "cpu_sample_points": int(sub.idx.size),
        "speedup": cpu_full / dev_full if dev_full > 0 else math.inf,
        "floor_flop": fl.flops * total, "floor_fp64_flop": fl.fp64_flops * total,
        "floor_bytes": fl.bytes * total,
        "gflops": fl.flops * measured / dev_s / 1e9,
        "gbytes_s": fl.bytes * measured / dev_s / 1e9,
        "max_grad_diff": float(np.max(diff)), "diff_over_bound": ratio, "agree": ratio <= 1.0,
        "wall_s": time.perf_counter() - t_row,
    }


def parse_rows(text: str):
    """``'mse:8,dense:32:64'`` -> ``[('mse', 8, 0), ('dense', 32, 64)]``."""
    rows = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        parts = item.split(":")
        layer, size = parts[0], int(parts[1])
        batch = int(parts[2]) if len(parts) > 2 else (64 if layer == "dense" else 0)
        rows.append((layer, size, batch))
    return rows


def table(rows) -> str:
    head = ["workload", "dtype", "points", "G", "measured", "floor GFLOP", "floor GB",
            "compile s", "GPU s (full)", "CPU s (est.)", "speed-up", "GFLOP/s", "of peak",
            "GB/s", "of peak", "agree"]
    lines = [head]
    for r in rows:
        lines.append([r["workload"], r["dtype"], str(r["points"]), str(r["copies"]),
                      f"{r['measured_fraction']:.0%}", f"{r['floor_flop'] / 1e9:.3g}",
                      f"{r['floor_bytes'] / 1e9:.3g}", f"{r['compile_s']:.2f}",
                      f"{r['device_s_full']:.3g}", f"{r['cpu_s_full_est']:.3g}",
                      f"{r['speedup']:.3g}x", f"{r['gflops']:.3g}",
                      f"{r.get('flop_of_peak', math.nan):.1%}", f"{r['gbytes_s']:.3g}",
                      f"{r.get('bytes_of_peak', math.nan):.1%}",
                      f"{'yes' if r['agree'] else 'NO'} ({r['diff_over_bound']:.2g})"])
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = []
    for row in lines:
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if row is head:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="cuda", choices=["cuda", "cudasim"])
    p.add_argument("--rows", default="mse:8,mse:1024,dense:512:64",
                   help="workloads, layer:size[:batch], comma-separated")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--budget", type=float, default=20.0, help="device seconds per row (about)")
    p.add_argument("--repeat", type=int, default=2, help="timed runs of a check that fits")
    p.add_argument("--sample", type=int, default=512, help="elements the CPU evaluates")
    p.add_argument("--quick", action="store_true", help=f"tiny sizes ({QUICK}), for the simulator")
    p.add_argument("--memory-fraction", type=float, default=None,
                   help="share of free device memory the copies may use (default: gpucheck's)")
    p.add_argument("--jsonl", help="append each row to this file as one JSON line")
    p.add_argument("--report", metavar="JSONL",
                   help="only print the table of the rows in this file (measures nothing)")
    args = p.parse_args(argv)
    if args.report:
        rows, broken = [], 0
        with open(args.report) as fh:
            for line in fh:
                try:
                    rows.append(json.loads(line))
                except ValueError:  # a row cut off by a step's timeout
                    broken += bool(line.strip())
        if broken:
            print(f"{broken} unreadable line(s) in {args.report} skipped")
        if rows:
            devices = sorted({r.get("device", r.get("backend", "?")) for r in rows})
            print(f"device: {', '.join(devices)}")
            print(table(rows))
        else:
            print("no rows were measured")
        return 0
    ok, why = availability()[args.backend]
    if not ok:
        print(f"backend {args.backend!r} is not available here: {why}", flush=True)
        return 2
    if args.memory_fraction is not None:
        from gpucheck.backends import cuda

        cuda.set_memory_fraction(args.memory_fraction)
    peaks = device_peaks(args.backend)
    print(f"# device: {peaks['name']}; peaks FP32 {peaks['fp32'] / 1e12:.1f} TFLOP/s, "
          f"FP64 {peaks['fp64'] / 1e12:.1f} TFLOP/s, memory {peaks['bw'] / 1e12:.2f} TB/s",
          flush=True)
    rows = []
    for layer, size, batch in parse_rows(QUICK if args.quick else args.rows):
        for dtype in filter(None, args.dtypes.split(",")):
            r = run_one(layer, size, batch, dtype, args.backend, args.budget, args.sample,
                        args.repeat)
            r["device"] = peaks["name"]
            # the kernels sum in float64: charge each FLOP to its own unit
            fp32 = r["floor_flop"] - r["floor_fp64_flop"]
            r["flop_of_peak"] = (fp32 / peaks["fp32"] + r["floor_fp64_flop"] / peaks["fp64"]) \
                / r["device_s_full"]
            r["bytes_of_peak"] = r["gbytes_s"] * 1e9 / peaks["bw"]
            rows.append(r)
            line = json.dumps(r)
            print(line, flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as fh:
                    fh.write(line + "\n")
    print(table(rows), flush=True)
    return 0 if all(r["agree"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
