"""GPU vs CPU on the issue-3 workloads, with the floor and achieved/peak.

For every workload the full central-difference check (2N points) runs on
the device backend: compile time apart, then the best of ``--repeat`` runs.
A full check of the large workloads would take hours on the CPU, so the CPU
runs a sample of elements (both nodes of each) and its time for the full
check is extrapolated per point, and says so.  The gradients of both
backends are compared on that sample against the rounding bound predicted
from the noise of f measured on each backend.

The floor counts what every pass must do (``gpucheck.compare.floor``): no
delta evaluation, each pass reads its own copy of the checked array once.
Peak figures come from the device's attributes or, failing that, its name.

Usage::

    python bench/gpu_table.py [--backend cuda] [--repeat 2] [--sample 512] [--quick]

``--backend cudasim --quick`` (with NUMBA_ENABLE_CUDASIM=1) runs the same
script on tiny sizes without a GPU, to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from gpucheck import judge, noise, plan
from gpucheck.backends import availability, get
from gpucheck.compare import floor
from gpucheck.functions import as_function, kernel
from gpucheck.kernels.builtin import workload
from gpucheck.stencils import get_scheme

WORKLOADS = [("mse", 8, 0), ("mse", 1024, 0), ("dense", 512, 64)]
QUICK = [("mse", 8, 0), ("mse", 12, 0), ("dense", 6, 4)]

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


def _timed(impl, func, x, idx, vals, repeat):
    first = impl.evaluate(func, x, idx, vals)
    best = first.run_seconds
    for _ in range(repeat - 1):
        best = min(best, impl.evaluate(func, x, idx, vals).run_seconds)
    return first, best


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


def run_one(layer, size, batch, dtype, backend, repeat, sample):
    fn, params, _, x = workload(layer, size, dtype, batch=max(batch, 1))
    func = as_function(kernel(fn, *params))
    scheme = get_scheme("central")
    full = plan.points(x, scheme=scheme)
    idx, vals = full.idx, full.vals.reshape(-1)
    dev, cpu = get(backend), get("cpu")
    first, best = _timed(dev, func, x, idx, vals, repeat)

    rng = np.random.default_rng(0)
    k = min(x.size, sample)
    elements = np.sort(rng.choice(x.size, size=k, replace=False)).astype(np.int64)
    sub = plan.stencil(x, scheme.multipliers, full.h[elements], elements)
    cpu_first, cpu_best = _timed(cpu, func, x, sub.idx, sub.vals.reshape(-1), repeat)
    cpu_full = cpu_best * idx.size / sub.idx.size

    probe = noise.probe_points(x, full.h)
    g_dev, s_dev = _gradient_and_noise(dev, func, x, sub, probe)
    g_cpu, s_cpu = _gradient_and_noise(cpu, func, x, sub, probe)
    u = plan.unit_roundoff(x.dtype)
    bound = judge.KAPPA * sub.rounding_gain * (s_dev + s_cpu) + judge.analytic_floor(g_cpu, u)
    diff = np.abs(g_dev - g_cpu)
    ratio = float(np.max(diff / np.maximum(bound, np.finfo(float).tiny)))

    fl = floor(layer, size, dtype, batch=max(batch, 1))
    return {
        "workload": f"{layer} {size}x{size}" + (f" b{batch}" if layer == "dense" else ""),
        "dtype": dtype, "N": int(x.size), "points": int(idx.size),
        "compile_s": first.compile_seconds, "device_s": best,
        "cpu_s_full_est": cpu_full, "cpu_sample_points": int(sub.idx.size),
        "speedup": cpu_full / best if best > 0 else math.inf,
        "floor_flop": fl.flops * idx.size, "floor_fp64_flop": fl.fp64_flops * idx.size,
        "floor_bytes": fl.bytes * idx.size,
        "gflops": fl.flops * idx.size / best / 1e9, "gbytes_s": fl.bytes * idx.size / best / 1e9,
        "max_grad_diff": float(np.max(diff)), "diff_over_bound": ratio, "agree": ratio <= 1.0,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="cuda", choices=["cuda", "cudasim"])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--sample", type=int, default=512, help="elements the CPU evaluates")
    p.add_argument("--quick", action="store_true", help="tiny sizes (for the simulator)")
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    ok, why = availability()[args.backend]
    if not ok:
        print(f"backend {args.backend!r} is not available here: {why}")
        return 2
    peaks = device_peaks(args.backend)
    print(f"# device: {peaks['name']}; peaks FP32 {peaks['fp32'] / 1e12:.1f} TFLOP/s, "
          f"FP64 {peaks['fp64'] / 1e12:.1f} TFLOP/s, memory {peaks['bw'] / 1e12:.2f} TB/s")
    rows = []
    for layer, size, batch in (QUICK if args.quick else WORKLOADS):
        for dtype in ("float32", "float64"):
            t0 = time.perf_counter()
            r = run_one(layer, size, batch, dtype, args.backend, args.repeat, args.sample)
            # the kernels sum in float64: charge each FLOP to its own unit
            fp32 = r["floor_flop"] - r["floor_fp64_flop"]
            r["flop_of_peak"] = (fp32 / peaks["fp32"] + r["floor_fp64_flop"] / peaks["fp64"]) \
                / r["device_s"]
            r["bytes_of_peak"] = r["gbytes_s"] * 1e9 / peaks["bw"]
            r["wall_s"] = time.perf_counter() - t0
            rows.append(r)
            print(json.dumps(r), flush=True)
    head = ["workload", "dtype", "points", "floor GFLOP", "floor GB", "compile s", "GPU s",
            "CPU s (est.)", "speed-up", "GFLOP/s", "of peak", "GB/s", "of peak", "agree"]
    table = [head]
    for r in rows:
        table.append([r["workload"], r["dtype"], str(r["points"]), f"{r['floor_flop'] / 1e9:.3g}",
                      f"{r['floor_bytes'] / 1e9:.3g}", f"{r['compile_s']:.2f}",
                      f"{r['device_s']:.3g}", f"{r['cpu_s_full_est']:.3g}", f"{r['speedup']:.3g}x",
                      f"{r['gflops']:.3g}", f"{r['flop_of_peak']:.1%}", f"{r['gbytes_s']:.3g}",
                      f"{r['bytes_of_peak']:.1%}",
                      f"{'yes' if r['agree'] else 'NO'} ({r['diff_over_bound']:.2g})"])
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if row is head:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0 if all(r["agree"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
