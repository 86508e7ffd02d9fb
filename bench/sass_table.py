"""Registers and spills of every kernel gpucheck launches, linked to SASS without a device.

Prints a Markdown table (for bench/RESULTS.md): the library's kernels
(``gpucheck.kernels.contract.library_resources``) and the kernels built from
one user function of the kernel contract (``softplus_dot`` of the tests).

Usage::

    PYTHONPATH=. python bench/sass_table.py [--cc 9.0]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cc", default="9.0", help="compute capability, e.g. 9.0")
    args = p.parse_args(argv)
    cc = tuple(int(v) for v in args.cc.split("."))

    from agreement import softplus_dot

    from gpucheck.kernels import contract

    rows = [(name, res) for name, res in contract.library_resources(cc=cc).items()]
    for dtype in ("float32", "float64"):
        user = contract.sass(softplus_dot, dtype, 2, [(dtype, 2), ("int32", 1)], cc=cc)
        rows.append((f"evaluate user softplus_dot {dtype}", user["evaluate"]))
    print(f"| kernel (sm_{cc[0]}{cc[1]}) | registers | spill stores B | spill loads B | stack B | cubin B |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r.registers} | {r.spill_stores} | {r.spill_loads} | {r.stack} "
              f"| {r.cubin_bytes} |")
    return 0 if all(r.spill_stores == 0 and r.spill_loads == 0 for _, r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
