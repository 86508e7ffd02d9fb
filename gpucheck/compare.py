"""Run the same numerical-gradient evaluation on every backend, side by side.

:func:`compare` evaluates f at the full stencil (plus the base point and
the noise probes a check uses) on each backend, times it (compile time
apart, best of several runs), and compares each backend's numerical
gradient with the cpu one.  Two paths that compute the same function can
differ only by rounding, so the comparison also says whether the largest
difference is within the rounding error predicted from the measured noise
of f on both backends.  :func:`run_bench` is the ``gpucheck bench`` verb.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from . import backends as _backends
from . import judge, noise, plan, validate
from .engine import Evaluator
from .errors import GpuCheckError
from .functions import as_function
from .stencils import get_scheme

__all__ = ["BackendRun", "CompareResult", "compare", "run_bench", "add_bench_arguments", "floor",
           "Floor"]

_ORDER = ("cpu", "cuda", "cudasim")


@dataclass(frozen=True)
class BackendRun:
    """One backend's line in a :class:`CompareResult`.

    Attributes
    ----------
    backend : str
        ``'cpu'``, ``'cuda'`` or ``'cudasim'``.
    available : bool
        False when the backend cannot run here; the numbers are then NaN.
    reason : str
        What the backend is, or why it is not available.
    compile_seconds : float
        Compile time of the first run (0 when already compiled).
    seconds : float
        Best time of one evaluation of every point, compile excluded.
    passes_per_second : float
        Perturbed forward passes per second in that best run.
    speedup : float
        cpu seconds over this backend's seconds.
    max_difference : float
        Largest ``|g - g_cpu|`` over the elements of the numerical gradient.
    difference_ratio : float
        Largest ratio of that difference to its predicted rounding bound.
    agrees : bool or None
        ``difference_ratio <= 1``; None for an unavailable backend.
    noise : float
        Rounding noise of f measured on this backend.
    gflops, gbytes_per_second : float
        Achieved rates against the workload's floor, when one was given.
    """

    backend: str
    available: bool
    reason: str
    compile_seconds: float = math.nan
    seconds: float = math.nan
    passes_per_second: float = math.nan
    speedup: float = math.nan
    max_difference: float = math.nan
    difference_ratio: float = math.nan
    agrees: bool | None = None
    noise: float = math.nan
    gflops: float = math.nan
    gbytes_per_second: float = math.nan


@dataclass(frozen=True)
class CompareResult:
    """The side-by-side comparison returned by :func:`compare`.

    Attributes
    ----------
    function : str
        Name of f.
    kind : str
        ``'callable'``, ``'batched'`` or ``'kernel'``.
    shape : tuple of int
        Shape of x.
    dtype : str
        dtype of x.
    scheme : str
        Finite-difference scheme.
    points : int
        Points evaluated per run (stencil, base point and noise probes).
    flops, bytes : float
        The workload's floor per perturbed pass when given (NaN otherwise).
    runs : tuple of BackendRun
        cpu first, then the other backends.
    """

    function: str
    kind: str
    shape: tuple
    dtype: str
    scheme: str
    points: int
    flops: float
    bytes: float
    runs: tuple

    @property
    def agree(self) -> bool:
        """Whether every available backend agrees with cpu within rounding."""
        return all(r.agrees for r in self.runs if r.available)

    def to_dict(self) -> dict:
        """A JSON-ready dict (NaN becomes None)."""
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            return v

        d = asdict(self)
        d["shape"] = list(self.shape)
        d["runs"] = [{k: clean(v) for k, v in asdict(r).items()} for r in self.runs]
        d["flops"], d["bytes"] = clean(self.flops), clean(self.bytes)
        d["agree"] = self.agree
        return d

    def __str__(self) -> str:
        head = (f"{self.function} ({self.kind}) at x of shape {self.shape} {self.dtype}, "
                f"{self.scheme} differences: {self.points} points per run")
        cols = ["backend", "compile s", "s/check", "passes/s", "vs cpu", "max |g-g_cpu|",
                "/ rounding", "agrees"]
        rated = math.isfinite(self.flops)
        if rated:
            cols += ["GFLOP/s", "GB/s"]
        rows = [cols]
        notes = []
        for r in self.runs:
            if not r.available:
                notes.append(f"  {r.backend}: not available: {r.reason}")
                continue
            row = [r.backend, f"{r.compile_seconds:.3g}", f"{r.seconds:.3g}",
                   f"{r.passes_per_second:.3g}", f"{r.speedup:.3g}x", f"{r.max_difference:.2e}",
                   f"{r.difference_ratio:.2g}", "yes" if r.agrees else "NO"]
            if rated:
                row += [f"{r.gflops:.3g}", f"{r.gbytes_per_second:.3g}"]
            rows.append(row)
        widths = [max(len(row[i]) for row in rows) for i in range(len(cols))]
        lines = [head] + ["  " + "  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
        return "\n".join(lines + notes)


def _names(backends) -> list:
    if backends is None:
        return list(_ORDER)
    if isinstance(backends, str):
        backends = [backends]
    names = []
    for b in backends:
        if not isinstance(b, str) or b not in _backends.BACKENDS:
            raise GpuCheckError(f"`backends` entries must be one of "
                                f"{', '.join(repr(n) for n in _backends.BACKENDS)}, got {b!r}")
        b = _backends.resolve(b) if b == "auto" else b
        if b not in names:
            names.append(b)
    # cpu is the reference every other backend is compared with.
    return ["cpu"] + [n for n in names if n != "cpu"]


def compare(f, x, *, eps=None, scheme="central", backends=None, repeat=3,
            flops=None, bytes=None) -> CompareResult:
    """Evaluate the numerical gradient of f on several backends and compare them.

    Parameters
    ----------
    f : callable, Batched or Kernel
        As in :func:`gpucheck.check_gradient`.  A :func:`gpucheck.kernel`
        compares the compiled CUDA kernel with the compiled CPU loop built
        from the same source.
    x : array_like
        The point.
    eps, scheme
        As in :func:`gpucheck.check_gradient`.
    backends : sequence of str, optional
        Backends to run; default every one, those that cannot run here being
        listed with the reason.  ``'cpu'`` always runs: it is the reference.
    repeat : int
        Timed runs per backend after the first; the best is reported.
    flops, bytes : float, optional
        The floor of one perturbed forward pass (FLOPs, and bytes that must
        move), to report achieved rates.

    Returns
    -------
    CompareResult

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> from gpucheck.compare import compare
    >>> f = gpucheck.batched(lambda xs: (xs ** 2).sum(axis=1))
    >>> r = compare(f, np.linspace(-1, 1, 5), backends=["cpu"], repeat=1)
    >>> r.runs[0].backend, r.agree
    ('cpu', True)
    """
    func = as_function(f)
    xv = validate.point(x)
    eps = validate.eps_option(eps, xv)
    sch = get_scheme(scheme)
    repeat = validate.positive_int(repeat, "repeat")
    names = _names(backends)
    status = _backends.availability()

    st = plan.points(xv, scheme=sch, eps=eps)
    probe = noise.probe_points(xv, st.h)
    u = plan.unit_roundoff(xv.dtype)
    parts_points = 1 + st.idx.size + probe.idx.size
    flops = math.nan if flops is None else float(flops)
    nbytes = math.nan if bytes is None else float(bytes)

    measured = {}
    for name in names:
        ok, reason = status[name]
        if not ok:
            continue
        ev = Evaluator(func, xv, name)
        best = math.inf
        for k in range(1 + repeat):
            before = ev.run_seconds
            f0, fv, pv = ev(ev.base_part(), (st.idx, st.vals), (probe.idx, probe.vals))
            if k > 0:
                best = min(best, ev.run_seconds - before)
        f0 = validate.base_value(float(f0[0]))
        sigma = noise.level(probe, f0, pv, fv)
        measured[name] = (st.derivative(fv), sigma, ev.compile_seconds, best, reason)

    g_cpu, sigma_cpu = measured["cpu"][0], measured["cpu"][1]
    cpu_best = measured["cpu"][3]
    runs = []
    for name in names:
        if name not in measured:
            runs.append(BackendRun(name, False, status[name][1]))
            continue
        g, sigma, compile_s, best, reason = measured[name]
        diff = np.abs(g - g_cpu)
        bound = judge.KAPPA * st.rounding_gain * (sigma + sigma_cpu) + judge.analytic_floor(g_cpu, u)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(bound > 0, diff / np.where(bound > 0, bound, 1.0),
                             np.where(diff > 0, np.inf, 0.0))
        worst = float(np.max(np.nan_to_num(ratio, nan=np.inf))) if ratio.size else 0.0
        runs.append(BackendRun(
            name, True, reason, compile_seconds=compile_s, seconds=best,
            passes_per_second=parts_points / best if best > 0 else math.inf,
            speedup=cpu_best / best if best > 0 else math.inf,
            max_difference=float(np.max(diff)) if diff.size else 0.0,
            difference_ratio=worst, agrees=bool(worst <= 1.0), noise=float(sigma),
            gflops=flops * parts_points / best / 1e9 if best > 0 else math.nan,
            gbytes_per_second=nbytes * parts_points / best / 1e9 if best > 0 else math.nan))
    return CompareResult(func.name, func.kind, tuple(xv.shape), str(xv.dtype), sch.name,
                         parts_points, flops, nbytes, tuple(runs))


class Floor(NamedTuple):
    """The least work one perturbed point costs (see :func:`floor`).

    Attributes
    ----------
    flops : float
        Floating-point operations.
    fp64_flops : float
        How many of them are float64 (the kernels accumulate in float64,
        whatever x's dtype): compare those with the device's FP64 peak.
    bytes : float
        Bytes that must come from memory.
    conversions : float
        float32-to-float64 conversions (a float32 term entering a float64
        sum); on a GPU their throughput is a limit of its own.
    """

    flops: float
    fp64_flops: float
    bytes: float
    conversions: float = 0.0

    def seconds(self, fp32_peak: float, fp64_peak: float, bandwidth: float,
                conversion_rate: float = math.inf) -> float:
        """The least time per point given peak rates (FLOP/s, FLOP/s, B/s, conversions/s).

        Examples
        --------
        >>> Floor(3.0, 1.0, 8.0).seconds(2.0, 1.0, 4.0)   # memory: 8 B at 4 B/s
        2.0
        >>> Floor(3.0, 1.0, 1.0, 6.0).seconds(2.0, 1.0, 4.0, conversion_rate=1.0)
        6.0
        """
        return max((self.flops - self.fp64_flops) / fp32_peak + self.fp64_flops / fp64_peak,
                   self.bytes / bandwidth, self.conversions / conversion_rate)


def floor(layer: str, size: int, dtype, *, batch: int = 64, path: str = "full") -> Floor:
    """FLOPs, bytes and conversions one perturbed point of a bench workload cannot avoid.

    ``path='full'``: the kernel path, every pass recomputing f in full, as
    :mod:`gpucheck.kernels.builtin` writes it.  MSE over ``N = size**2``
    entries: a subtraction and a multiplication in x's dtype and a float64
    addition per entry (``3N``, ``N`` of them float64 and ``N`` conversions
    for float32 x); the pass reads its own copy of x once, ``N * itemsize``
    (the target, shared by every pass, stays in cache).  Dense layer: a
    multiplication in x's dtype and a float64 addition per weight and batch
    row, plus three float64 operations per output; it walks the weights
    column by column for eight batch rows at a time, so a pass reads its own
    copy of the weights ``ceil(batch / 8)`` times, ``ceil(batch / 8) * N *
    itemsize`` bytes.

    ``path='delta'``: the built-in layer's delta evaluator
    (:mod:`gpucheck.kernels.layers`), all in float64.  MSE: 6 operations;
    dense: 5 per batch row of the moved weight's column.  Bytes: the
    point's index, value and result and the moved entry (float64), plus for
    the dense layer its share of the input and loss-derivative columns,
    which every point of that column reads (``8 * batch * 2 * size`` bytes
    over the ``2N`` points of a check).  One conversion: the value.

    A central-difference check is ``2N`` points.

    Returns
    -------
    Floor

    Examples
    --------
    >>> floor("mse", 2, "float64")
    Floor(flops=12.0, fp64_flops=12.0, bytes=32.0, conversions=0.0)
    >>> floor("dense", 2, "float32", batch=4)
    Floor(flops=56.0, fp64_flops=40.0, bytes=16.0, conversions=16.0)
    >>> floor("mse", 2, "float32", path="delta")
    Floor(flops=6.0, fp64_flops=6.0, bytes=36.0, conversions=1.0)
    """
    n = size * size
    item = np.dtype(dtype).itemsize
    wide = item == 8
    validate.choice(path, "path", ("full", "delta"))
    if layer not in ("mse", "dense"):
        raise GpuCheckError(f"`layer` must be 'mse' or 'dense', got {layer!r}")
    if path == "delta":
        point = 8 + item + 8 + 8  # index, value, result, the moved entry
        widen = 0.0 if wide else 1.0
        if layer == "mse":
            return Floor(6.0, 6.0, float(point + 8), widen)  # and its target
        columns = 8.0 * batch * 2 * size / (2 * n)
        return Floor(5.0 * batch, 5.0 * batch, point + columns, widen)
    if layer == "mse":
        return Floor(3.0 * n, float(3 * n if wide else n), float(n * item),
                     0.0 if wide else float(n))
    outputs = batch * size
    flops = 2.0 * batch * n + 3.0 * outputs
    fp64 = flops if wide else batch * n + 3.0 * outputs
    reads = -(-batch // 8)
    return Floor(flops, float(fp64), float(reads * n * item), 0.0 if wide else float(batch * n))


def add_bench_arguments(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the options of ``gpucheck bench`` to ``parser`` (or a new one)."""
    p = parser or argparse.ArgumentParser(
        prog="gpucheck bench",
        description="Run the same gradient check on every available backend and compare.")
    p.add_argument("--layer", choices=["mse", "dense"], default="mse",
                   help="workload: MSE of a size x size array, or a dense layer's size x size "
                        "weights through a batch of inputs (default mse)")
    p.add_argument("--size", type=int, default=8, help="side of the checked array (default 8)")
    p.add_argument("--batch", type=int, default=64, help="batch of the dense layer (default 64)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--form", choices=["kernel", "batched"], default="kernel",
                   help="hand f in as a kernel-contract function or a batched array function")
    p.add_argument("--backend", action="append", choices=list(_ORDER), dest="backends",
                   help="backend to run (repeatable; default all, unavailable ones listed)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per backend (default 3)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def run_bench(args) -> int:
    """The ``gpucheck bench`` verb.

    Parameters
    ----------
    args : argparse.Namespace or list of str or None
        Parsed options (from :func:`add_bench_arguments`) or a command line.

    Returns
    -------
    int
        Exit status: 0 when every backend agrees with cpu, 1 otherwise.

    Examples
    --------
    >>> run_bench(["--size", "3", "--backend", "cpu", "--repeat", "1", "--json"])  # doctest: +SKIP
    0
    """
    from .functions import batched, kernel
    from .kernels.builtin import workload

    if args is None or isinstance(args, (list, tuple)):
        args = add_bench_arguments().parse_args(args)
    if args.size < 1 or args.batch < 1:
        raise GpuCheckError("`--size` and `--batch` must be positive")
    fn, params, fb, x = workload(args.layer, args.size, args.dtype, batch=args.batch)
    f = kernel(fn, *params) if args.form == "kernel" else batched(fb)
    fl = floor(args.layer, args.size, args.dtype, batch=args.batch)
    result = compare(f, x, backends=args.backends, repeat=args.repeat, flops=fl.flops,
                     bytes=fl.bytes)
    if args.json:
        d = result.to_dict()
        d["workload"] = {"layer": args.layer, "size": args.size, "batch": args.batch,
                         "form": args.form}
        print(json.dumps(d, indent=2))
    else:
        print(result)
    return 0 if result.agree else 1
