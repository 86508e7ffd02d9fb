"""The built-in kernel functions on the cpu backend: this tree against a reference revision.

The loops in ``kernels/builtin.py`` are written for the device (see its
docstring); the cpu backend compiles the same functions with numba.  This
runs both versions in one process, side by side, on the full central-
difference point set, and prints the ratio, so a change made for the device
is seen not to cost the CPU path.  The reference is a copy of builtin.py
from another revision::

    git show 539de06:kernels/builtin.py > /tmp/builtin_ref.py
    PYTHONPATH=. python bench/bench_builtin_cpu.py --ref /tmp/builtin_ref.py [--repeat 5] [--only dense]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time

import numba
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gpucheck import plan  # noqa: E402
from gpucheck.backends import cpu  # noqa: E402
from gpucheck.functions import as_function, kernel  # noqa: E402
from gpucheck.kernels import builtin  # noqa: E402
from gpucheck.stencils import get_scheme  # noqa: E402

CASES = [("mse", 64, 0), ("mse", 256, 0), ("dense", 32, 64), ("dense", 64, 64)]


def load(path):
    spec = importlib.util.spec_from_file_location("builtin_ref", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best(func, x, idx, vals, repeat):
    cpu.evaluate(func, x, idx[:2], vals[:2])  # compile apart
    times, values = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        values = cpu.evaluate(func, x, idx, vals).values
        times.append(time.perf_counter() - t0)
    return min(times), values


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", required=True, help="builtin.py of the reference revision")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--only", choices=["mse", "dense"], help="one layer only")
    args = p.parse_args(argv)
    ref = load(args.ref)
    print(f"# {platform.node()}, {os.cpu_count()} cores, numba {numba.__version__}, "
          f"{numba.config.NUMBA_NUM_THREADS} threads")
    print(f"{'workload':18} {'dtype':8} {'points':>7} {'ref s':>9} {'this s':>9} {'ref/this':>9} "
          f"{'max |diff| / max |f|':>21}")
    for layer, size, batch in (c for c in CASES if args.only in (None, c[0])):
        for dtype in ("float32", "float64"):
            _, params, _, x = builtin.workload(layer, size, dtype, batch=max(batch, 1))
            pts = plan.points(x, scheme=get_scheme("central"))
            idx, vals = pts.idx, pts.vals.reshape(-1)
            new_fn = builtin.mse if layer == "mse" else builtin.dense_mse
            old_fn = ref.mse if layer == "mse" else ref.dense_mse
            t_old, v_old = best(as_function(kernel(old_fn, *params)), x, idx, vals, args.repeat)
            t_new, v_new = best(as_function(kernel(new_fn, *params)), x, idx, vals, args.repeat)
            rel = float(np.max(np.abs(v_new - v_old)) / np.max(np.abs(v_old)))
            name = f"{layer} {size}x{size}" + (f" b{batch}" if batch else "")
            print(f"{name:18} {dtype:8} {idx.size:7d} {t_old:9.4f} {t_new:9.4f} "
                  f"{t_old / t_new:8.2f}x {rel:21.2e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
