"""The ``gpucheck`` command line.

Verbs: ``demo``, ``check``, ``sweep``, ``bench``, ``info``.  Exit status of
``check``: 0 pass, 1 fail, 3 inconclusive, 2 bad usage or input (with a
one-line reason on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import time

import numpy as np

from . import api, layers
from .errors import GpuCheckError
from .functions import batched, kernel

__all__ = ["main", "EXIT_PASS", "EXIT_FAIL", "EXIT_USAGE", "EXIT_INCONCLUSIVE"]

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE = 0, 1, 2, 3
_EXIT = {"pass": EXIT_PASS, "fail": EXIT_FAIL, "inconclusive": EXIT_INCONCLUSIVE}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.print_usage(sys.stderr)
        raise SystemExit(_fail(f"{self.prog}: {message}"))


def _fail(msg: str) -> int:
    print(f"gpucheck: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


class _Progress:
    """A one-line progress meter on stderr for long evaluations (tty only)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < 10_000:
            return
        now = time.monotonic()
        if done < total and now - self.last < 0.2:
            return
        self.last = now
        width = 30
        k = int(width * done / total)
        end = "\n" if done >= total else ""
        print(f"\r  evaluating [{'#' * k}{'.' * (width - k)}] {done}/{total}", end=end,
              file=sys.stderr, flush=True)


def _load_array(path: str, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise GpuCheckError(f"`{what}`: no such file {path!r}") from None
    except Exception as err:
        raise GpuCheckError(f"`{what}`: cannot read {path!r} as .npy: {err}") from None


def load_function(spec: str):
    """Import ``module:function`` or ``path/to/file.py:function``."""
    if ":" not in spec:
        raise GpuCheckError(f"`function` must look like module:function or file.py:function, got {spec!r}")
    target, _, attr = spec.rpartition(":")
    try:
        if target.endswith(".py") or os.sep in target:
            if not os.path.isfile(target):
                raise GpuCheckError(f"`function`: no such file {target!r}")
            name = "_gpucheck_user_" + os.path.splitext(os.path.basename(target))[0]
            mod_spec = importlib.util.spec_from_file_location(name, target)
            module = importlib.util.module_from_spec(mod_spec)
            sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
            try:
                mod_spec.loader.exec_module(module)
            finally:
                sys.path.pop(0)
        else:
            sys.path.insert(0, os.getcwd())
            try:
                module = importlib.import_module(target)
            finally:
                sys.path.pop(0)
    except GpuCheckError:
        raise
    except Exception as err:
        raise GpuCheckError(f"`function`: importing {target!r} failed: {type(err).__name__}: {err}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise GpuCheckError(f"`function`: {target!r} has no attribute {attr!r}") from None


def _build_problem(args):
    """(f, x, grad) from the check/sweep options."""
    if args.x is None:
        raise GpuCheckError("`--x` is required: the point, as a .npy file")
    x = _load_array(args.x, "--x")
    grad = _load_array(args.grad, "--grad") if args.grad else None
    if args.layer:
        if args.function:
            raise GpuCheckError("give either a function or `--layer`, not both")
        if args.layer == "mse":
            if not args.target:
                raise GpuCheckError("`--layer mse` needs `--target T.npy`")
            layer = layers.mse(_load_array(args.target, "--target"))
        else:
            if not (args.target and args.inputs):
                raise GpuCheckError("`--layer dense` needs `--inputs A.npy` and `--target T.npy`")
            layer = layers.dense(_load_array(args.inputs, "--inputs"), _load_array(args.target, "--target"))
        f = layer.batched if args.batched else layer  # a layer: its delta evaluator
        if grad is None:
            grad = layer.grad
        return f, x, grad
    if not args.function:
        raise GpuCheckError("give a function as module:function (or file.py:function), or `--layer`")
    if grad is None:
        raise GpuCheckError("`--grad` is required: the analytic gradient, as a .npy file")
    fn = load_function(args.function)
    if args.kernel:
        params = [_load_array(p, "--param") for p in (args.param or [])]
        return kernel(fn, *params), x, grad
    if args.param:
        raise GpuCheckError("`--param` is only for `--kernel` functions")
    return (batched(fn) if args.batched else fn), x, grad


def _common(p):
    p.add_argument("function", nargs="?", help="module:function or file.py:function")
    p.add_argument("--x", help="the point x, a .npy file")
    p.add_argument("--grad", help="the analytic gradient at x, a .npy file")
    p.add_argument("--layer", choices=layers.LAYERS, help="a built-in layer instead of a function")
    p.add_argument("--target", help="targets for --layer (.npy)")
    p.add_argument("--inputs", help="inputs A for --layer dense (.npy)")
    p.add_argument("--batched", action="store_true", help="f takes a batch xs of shape (B, *x.shape)")
    p.add_argument("--kernel", action="store_true", help="f is a numba-compatible fn(x, *params)")
    p.add_argument("--param", action="append", help="a parameter array for --kernel (.npy), repeatable")
    p.add_argument("--scheme", default="central", help="central (default) or central4")
    p.add_argument("--backend", default="auto", help="auto (default), cpu, cuda or cudasim")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--quiet", action="store_true", help="no progress meter")


def _float_list(text: str):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gpucheck", description="Check hand-written gradients against finite differences.")
    sub = p.add_subparsers(dest="verb", metavar="{demo,check,sweep,bench,info}", parser_class=_Parser)
    d = sub.add_parser("demo", help="check an 8x8 float32 MSE layer and explain its epsilon table")
    d.add_argument("--plot", help="also write the sweep picture to this PNG file")
    c = sub.add_parser("check", help="check a gradient; exit 0 pass, 1 fail, 3 inconclusive, 2 bad input")
    _common(c)
    c.add_argument("--eps", type=float, help="relative step (default: from the dtype)")
    c.add_argument("--rtol", type=float, help="fixed relative tolerance instead of the error model")
    c.add_argument("--atol", type=float, help="fixed absolute tolerance instead of the error model")
    c.add_argument("--worst", type=int, default=5, help="how many worst entries to show")
    s = sub.add_parser("sweep", help="the check across step sizes, with the regime explained")
    _common(s)
    s.add_argument("--eps", type=_float_list, help="comma-separated relative steps")
    s.add_argument("--plot", help="write the picture to this PNG file (needs the plot extra)")
    b = sub.add_parser("bench", help="time the same check on every available backend")
    try:
        from .compare import add_bench_arguments
        add_bench_arguments(b)
    except ImportError:  # pragma: no cover - compare is part of the package
        pass
    sub.add_parser("info", help="versions and which backends can run here (never fails)")
    return p


def main(argv=None) -> int:
    """Entry point of the ``gpucheck`` command; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.verb is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return _VERBS[args.verb](args)
    except GpuCheckError as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        return _fail("interrupted")


def _cmd_check(args) -> int:
    f, x, grad = _build_problem(args)
    r = api.check_gradient(f, x, grad, eps=args.eps, scheme=args.scheme, backend=args.backend,
                           rtol=args.rtol, atol=args.atol, worst=args.worst,
                           progress=_Progress(not args.quiet))
    print(json.dumps(r.to_dict()) if args.json else r)
    return _EXIT[r.status]


def _cmd_sweep(args) -> int:
    f, x, grad = _build_problem(args)
    s = api.sweep(f, x, grad, eps=args.eps, scheme=args.scheme, backend=args.backend,
                  progress=_Progress(not args.quiet))
    if args.plot:
        s.plot(args.plot)
    if args.json:
        print(json.dumps(s.to_dict()))
    else:
        print(s)
        if args.plot:
            print(f"\nwrote {args.plot}")
    return EXIT_PASS


def demo_problem(seed: int = 0):
    """The motivating case: an 8x8 float32 MSE layer averaged over rows."""
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(8, 8)).astype(np.float32)
    x = rng.normal(size=(8, 8)).astype(np.float32)
    layer = layers.mse(target)
    return layer, x


def _cmd_demo(args) -> int:
    layer, x = demo_problem()
    print("gpucheck demo: f(X) = sum((X - T)**2) / 8 for an 8x8 float32 X, evaluated in float32,\n"
          "checked against its correct analytic gradient 2 (X - T) / 8.\n")
    r = api.check_gradient(layer.batched, x, layer.grad(x), backend="cpu")
    print(r)
    print("\nThe same check with one entry of the gradient 5% off:\n")
    bad = layer.grad(x)
    bad[2, 5] *= 1.05
    print(api.check_gradient(layer.batched, x, bad, backend="cpu").summary())
    print("\nWhy a float32 check looks better with larger steps:\n")
    s = api.sweep(layer.batched, x, layer.grad(x), eps=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], backend="cpu")
    print(s)
    if args.plot:
        s.plot(args.plot)
        print(f"\nwrote {args.plot}")
    return EXIT_PASS


def _cmd_info(args) -> int:
    print(info_text())
    return EXIT_PASS


def info_text() -> str:
    """Versions and backend availability as text; never raises."""
    from importlib import metadata
    import platform

    from ._version import __version__

    lines = [f"gpucheck {__version__}", f"python {platform.python_version()} ({sys.executable})"]
    for dist in ("numpy", "numba", "numba-cuda", "cupy-cuda12x", "cupy-cuda13x", "matplotlib"):
        try:
            lines.append(f"{dist} {metadata.version(dist)}")
        except Exception:
            lines.append(f"{dist} not installed")
    try:
        from .backends import availability

        status = availability()
    except Exception as err:  # pragma: no cover - availability never raises
        status = {"cpu": (True, ""), "cuda": (False, str(err)), "cudasim": (False, str(err))}
    lines.append("backends:")
    for name, (ok, why) in status.items():
        lines.append(f"  {name:8} {'available' if ok else 'unavailable'}: {why}")
    return "\n".join(lines)


def _cmd_bench(args) -> int:
    from .compare import run_bench

    return run_bench(args)


_VERBS = {"demo": _cmd_demo, "check": _cmd_check, "sweep": _cmd_sweep, "info": _cmd_info,
          "bench": _cmd_bench}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
