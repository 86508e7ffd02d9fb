"""The ``gpucheck`` command line.

Verbs: ``demo``, ``check``, ``sweep``, ``audit``, ``bench``, ``info``.  Exit
status of ``check`` and ``audit``: 0 pass, 1 fail, 3 inconclusive, 2 bad usage
or input (with a one-line reason on stderr; ``--debug`` adds the traceback),
130 interrupted (Ctrl-C): the report of what was checked so far, marked
partial, is still printed (and written as JSON).
``sweep`` exits 1 when the regime is ``bug``.

Several inputs: ``--x NAME=W1.npy`` repeated (f gets a dict), ``--x A.npy``
repeated (f gets them as separate arguments), or one ``.npz`` (a dict);
``--grad`` in the same form.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import traceback

import numpy as np

from . import api, executors, layers
from .backends import BACKENDS
from .errors import GpuCheckError
from .functions import batched, kernel
from .progress import Meter
from .stencils import SCHEMES

__all__ = ["main", "EXIT_PASS", "EXIT_FAIL", "EXIT_USAGE", "EXIT_INCONCLUSIVE",
           "EXIT_INTERRUPTED"]

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE = 0, 1, 2, 3
#: Ctrl-C: the shell's convention, 128 + SIGINT.
EXIT_INTERRUPTED = 130
_EXIT = {"pass": EXIT_PASS, "fail": EXIT_FAIL, "inconclusive": EXIT_INCONCLUSIVE}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2: the usage block is one --help away
        raise SystemExit(_fail(f"{self.prog}: {message} (see {self.prog} --help)"))


def _fail(msg: str) -> int:
    print(f"gpucheck: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C during an evaluation, with where it stood."""


def _evaluate(args, fn, *a, **kw):
    """Call an API function with the progress bar and ``--scheduler``'s client.

    Ctrl-C during a check returns its partial result (``partial=True``: the
    verb prints it and exits with :data:`EXIT_INTERRUPTED`).
    """
    executor = executors.connect(args.scheduler) if args.scheduler else None
    try:
        with Meter(enabled=not args.quiet) as meter:
            try:
                return fn(*a, progress=meter, executor=executor, **kw)
            except KeyboardInterrupt as stop:
                where = (f" after {meter.done:,} of {meter.total:,} evaluations of this stage"
                         if meter.total else "")
                partial = getattr(stop, "partial", None)
                if getattr(partial, "partial", False):
                    print(f"gpucheck: interrupted{where}; reporting what was checked",
                          file=sys.stderr)
                    return partial
                raise _Interrupted(f"interrupted{where}; no verdict") from None
    finally:
        if executor is not None:
            executor.close()


def _load_file(path: str, what: str):
    """A .npy file as an array, a .npz file as a dict of arrays (in file order)."""
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise GpuCheckError(f"`{what}`: no such file {path!r}") from None
    except IsADirectoryError:
        raise GpuCheckError(f"`{what}`: {path!r} is a directory, not a .npy or .npz file") from None
    except ValueError as err:
        # NumPy's advice here is to allow pickles: never right for data we are given
        why = "holds Python objects" if "pickle" in str(err) else f"cannot be read ({err})"
        raise GpuCheckError(f"`{what}`: {path!r} is not a numeric .npy or .npz file ({why}); "
                            "write arrays with numpy.save or numpy.savez") from None
    except Exception as err:
        raise GpuCheckError(f"`{what}`: cannot read {path!r} as .npy or .npz: {err}") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            try:
                arrays = {k: data[k] for k in data.files}
            except ValueError:
                raise GpuCheckError(f"`{what}`: {path!r} holds Python objects; write numeric "
                                    "arrays with numpy.savez") from None
        if not arrays:
            raise GpuCheckError(f"`{what}`: {path!r} holds no arrays")
        return arrays
    return data


def _load_array(path: str, what: str) -> np.ndarray:
    data = _load_file(path, what)
    if isinstance(data, dict):
        raise GpuCheckError(f"`{what}`: {path!r} is an .npz archive of {len(data)} arrays; "
                            "give one array as a .npy file")
    return data


def _named(spec: str):
    """``NAME=PATH`` -> (NAME, PATH); a plain path -> (None, PATH)."""
    name, sep, path = spec.partition("=")
    if sep and name.isidentifier():
        return name, path
    return None, spec


def load_inputs(specs, what: str):
    """One array, or several: ``NAME=PATH`` repeated (a dict), ``PATH`` repeated (a tuple), one .npz (a dict).

    Examples
    --------
    >>> load_inputs(None, "--x") is None
    True
    """
    if not specs:
        return None
    pairs = [_named(s) for s in specs]
    names = [n for n, _ in pairs]
    if all(n is None for n in names):
        if len(pairs) == 1:
            return _load_file(pairs[0][1], what)
        return tuple(_load_array(p, what) for _, p in pairs)
    if any(n is None for n in names):
        raise GpuCheckError(f"`{what}`: name every input (NAME=FILE.npy) or none of them")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise GpuCheckError(f"`{what}`: input {dup[0]!r} given twice")
    return {n: _load_array(p, f"{what} {n}") for n, p in pairs}


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
    except SystemExit as err:
        raise GpuCheckError(f"`function`: importing {target!r} called sys.exit({err.code!r}); "
                            "keep module-level code free of exits (guard it with "
                            "if __name__ == '__main__')") from None
    except Exception as err:
        from .validate import where

        raise GpuCheckError(f"`function`: importing {target!r} failed: {type(err).__name__}"
                            f"{where(err)}: {err}") from err
    try:
        return getattr(module, attr)
    except AttributeError:
        raise GpuCheckError(f"`function`: {target!r} has no attribute {attr!r}") from None


def load_point(args) -> tuple:
    """``(x, grad)`` from ``--x`` (required) and ``--grad`` (None when not given)."""
    if not args.x:
        raise GpuCheckError("`--x` is required: the point, as a .npy file (or several inputs: "
                            "--x NAME=FILE.npy repeated, or one .npz)")
    return load_inputs(args.x, "--x"), load_inputs(args.grad, "--grad")


def build_layer(args) -> tuple:
    """``(layer, files, options)``: the built-in layer ``--layer`` names, with its arrays and options.

    Its arrays come from ``--inputs``, ``--target`` and ``--array NAME=FILE``
    (repeated), its options from ``--option NAME=VALUE``; ``files`` maps each
    array's name to its file, for the report.
    """
    from .audit import parse_option

    files = {}
    for flag in ("inputs", "target"):
        if getattr(args, flag):
            files[flag] = getattr(args, flag)
    for spec in args.array or []:
        name, sep, path = spec.partition("=")
        if not sep or not name.isidentifier():
            raise GpuCheckError(f"`--array` must look like NAME=FILE.npy, got {spec!r}")
        if name in files:
            raise GpuCheckError(f"`--array`: {name!r} given twice")
        files[name] = path
    arrays = {k: _load_array(v, f"--array {k}") for k, v in files.items()}
    options = dict(parse_option(o) for o in args.option or [])
    clash = sorted(set(arrays) & set(options))
    if clash:
        raise GpuCheckError(f"`--option` {clash[0]!r} is an array of the layer: give it with --array")
    return layers.build(args.layer, **arrays, **options), files, options


def layer_problem(args, x, grad) -> tuple:
    """``(layer, grad, files, options)`` for ``--layer``: its gradient unless ``--grad`` gives one."""
    if args.function:
        raise GpuCheckError("give either a function or `--layer`, not both")
    if isinstance(x, (dict, tuple)) or isinstance(grad, (dict, tuple)):
        raise GpuCheckError("`--layer` checks one array: give `--x` and `--grad` as one .npy each")
    layer, files, options = build_layer(args)
    return layer, layer.grad if grad is None else grad, files, options


def function_problem(args, grad):
    """The user's function named by ``function``, once the options say it is one."""
    if args.array or args.option or args.inputs or args.target:
        raise GpuCheckError("`--array`, `--option`, `--inputs` and `--target` are for `--layer`")
    if not args.function:
        raise GpuCheckError("give a function as module:function (or file.py:function), or `--layer`")
    if grad is None:
        raise GpuCheckError("`--grad` is required: the analytic gradient, as a .npy file "
                            "(in the form of `--x`)")
    return load_function(args.function)


def _build_problem(args):
    """(f, x, grad) from the check/sweep options."""
    x, grad = load_point(args)
    if args.layer:
        layer, grad = layer_problem(args, x, grad)[:2]
        return (layer.batched if args.batched else layer), x, grad  # a layer: its delta evaluator
    fn = function_problem(args, grad)
    if args.kernel:
        params = [_load_array(p, "--param") for p in (args.param or [])]
        return kernel(fn, *params), x, grad
    if args.param:
        raise GpuCheckError("`--param` is only for `--kernel` functions")
    return (batched(fn) if args.batched else fn), x, grad


#: Schemes of ``check`` and ``audit``: the finite differences and the complex step.
CHECK_SCHEMES = (*SCHEMES, "complex")
_SCHEME_HELP = ("finite-difference scheme (default central); complex: the complex step "
                "Im f(x + ih) / h, for a callable or batched f that accepts complex x")
_REFERENCE_HELP = ("also check with f evaluated on a float64 copy of x: tells a wrong gradient "
                   "formula from a noisy low-precision f")


def add_layer_options(p) -> None:
    """``--layer`` and its arrays and options, on a parser or an argument group."""
    p.add_argument("--layer", choices=sorted(layers.REGISTRY),
                   help="a built-in layer instead of a function; its arrays with --inputs, "
                        "--target, --array")
    p.add_argument("--inputs", metavar="FILE", help="the layer's inputs (--array inputs=FILE)")
    p.add_argument("--target", metavar="FILE", help="the layer's target (--array target=FILE)")
    p.add_argument("--array", action="append", metavar="NAME=FILE",
                   help="any other array of the layer (labels, bias, weight, q, k, v, ...)")
    p.add_argument("--option", action="append", metavar="NAME=VALUE",
                   help="an option of the layer (reduction=mean, scale=0.5, stride=2, ...)")


def _common(p, schemes=tuple(SCHEMES)):
    p.add_argument("function", nargs="?", help="module:function or file.py:function")
    p.add_argument("--x", action="append", metavar="[NAME=]FILE",
                   help="the point x, a .npy file; several inputs: NAME=FILE.npy repeated "
                        "(f gets a dict), FILE.npy repeated (f(*xs)), or one .npz (a dict)")
    p.add_argument("--grad", action="append", metavar="[NAME=]FILE",
                   help="the analytic gradient at x, in the form of --x")
    add_layer_options(p)
    p.add_argument("--batched", action="store_true", help="f takes a batch xs of shape (B, *x.shape)")
    p.add_argument("--kernel", action="store_true", help="f is a numba-compatible fn(x, *params)")
    p.add_argument("--param", action="append", help="a parameter array for --kernel (.npy), repeatable")
    p.add_argument("--scheme", default="central", choices=list(schemes),
                   help=_SCHEME_HELP if "complex" in schemes else "finite-difference scheme "
                   "(default central)")
    p.add_argument("--backend", default="auto", choices=list(BACKENDS),
                   help="where f is evaluated (default auto: cuda when a device is usable)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="evaluate on the workers of the Dask scheduler at ADDRESS (tcp://host:8786)")


def _float_list(text: str):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _version() -> str:
    from ._version import __version__

    return f"gpucheck {__version__} (distribution gpucheck-grad)"


def _debug_flag(p, default):
    p.add_argument("--debug", action="store_true", default=default,
                   help="show the Python traceback of an error")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gpucheck", description="Check hand-written gradients against finite differences.")
    p.add_argument("--version", action="version", version=_version())
    _debug_flag(p, False)
    sub = p.add_subparsers(dest="verb", metavar="{demo,check,sweep,audit,bench,info}",
                           parser_class=_Parser)

    def verb(name, **kw):
        v = sub.add_parser(name, **kw)
        _debug_flag(v, argparse.SUPPRESS)  # also accepted after the verb
        return v

    d = verb("demo", help="the forum question's float32 MSE layer, checked and explained")
    d.add_argument("--plot", help="also write the sweep picture to this PNG file")
    c = verb("check", help="check a gradient; exit 0 pass, 1 fail, 3 inconclusive, 2 bad input")
    _common(c, CHECK_SCHEMES)
    c.add_argument("--reference", choices=["float64"], help=_REFERENCE_HELP)
    c.add_argument("--eps", type=float, help="relative step (default: from the dtype)")
    c.add_argument("--rtol", type=float, help="fixed relative tolerance instead of the error model")
    c.add_argument("--atol", type=float, help="fixed absolute tolerance instead of the error model")
    c.add_argument("--worst", type=int, default=5, help="how many worst entries to show")
    c.add_argument("--arrays", metavar="FILE.npz",
                   help="write the per-entry arrays (numeric, analytic, errors, tolerance, ...) here")
    s = verb("sweep", help="the check across step sizes, with the regime explained; exit 1 on 'bug'")
    _common(s)
    s.add_argument("--eps", type=_float_list, help="comma-separated relative steps")
    s.add_argument("--plot", help="write the picture to this PNG file (needs matplotlib)")
    _audit_parser(verb("audit", help="audit a large layer's gradient (full, sampled or projected); "
                                     "a JSON report; exit codes as for check"))
    b = verb("bench", help="time the same check on every available backend")
    try:
        from .compare import add_bench_arguments
        add_bench_arguments(b)
    except ImportError:  # pragma: no cover - compare is part of the package
        pass
    verb("info", help="versions and which backends can run here (never fails)")
    return p


def _audit_parser(a) -> None:
    """The options of ``gpucheck audit`` (its logic is in :mod:`gpucheck.audit`)."""
    from . import modes
    from .validate import MODES

    a.add_argument("function", nargs="?", help="module:function or file.py:function (or --layer)")
    what = a.add_argument_group("what is audited")
    what.add_argument("--x", action="append", metavar="[NAME=]FILE",
                      help="the point x (.npy; several inputs: NAME=FILE.npy repeated, or one .npz)")
    what.add_argument("--grad", action="append", metavar="[NAME=]FILE",
                      help="the gradient to audit, in the form of --x")
    add_layer_options(what)
    form = what.add_mutually_exclusive_group()
    form.add_argument("--batched", action="store_true", help="f takes a batch xs (B, *x.shape)")
    form.add_argument("--kernel", action="store_true", help="f is a numba-compatible fn(x, *params)")
    form.add_argument("--rowwise", action="store_true",
                      help="f(x) = scale * sum_r fn(x[r], *param_rows), fn numba-compatible")
    what.add_argument("--param", action="append", metavar="FILE",
                      help="a param of --kernel or --rowwise (.npy), repeatable")
    what.add_argument("--scale", type=float, help="the constant factor of a --rowwise sum")
    how = a.add_argument_group("how")
    how.add_argument("--mode", default="auto", choices=MODES,
                     help="auto (default): full if it fits --max-seconds, else sample+project")
    how.add_argument("--max-seconds", type=float, default=modes.DEFAULT_MAX_SECONDS,
                     help=f"the time a full check may take (default {modes.DEFAULT_MAX_SECONDS:g})")
    how.add_argument("--samples", type=int, default=modes.DEFAULT_SAMPLES,
                     help="entries drawn at random, and as many largest |grad|, when sampling")
    how.add_argument("--directions", type=int, default=modes.DEFAULT_DIRECTIONS,
                     help="random directions when projecting")
    how.add_argument("--seed", type=int, default=0, help="seed of the samples and directions")
    how.add_argument("--index", action="append", metavar="[NAME=]I,J",
                     help="an entry a sampled check must include, repeatable")
    how.add_argument("--backend", default="auto", choices=list(BACKENDS),
                     help="where f is evaluated (default auto: cuda when a device is usable)")
    how.add_argument("--scheme", default="central", choices=list(CHECK_SCHEMES), help=_SCHEME_HELP)
    how.add_argument("--reference", choices=["float64"], help=_REFERENCE_HELP)
    how.add_argument("--eps", type=float, help="relative step (default: from the dtype)")
    how.add_argument("--scheduler", metavar="ADDRESS",
                     help="evaluate on the workers of the Dask scheduler at ADDRESS")
    out = a.add_argument_group("report")
    out.add_argument("--json", nargs="?", const="-", metavar="FILE",
                     help="write the JSON report to FILE and the text report to stdout "
                          "(default: the JSON report to stdout)")
    out.add_argument("--arrays", metavar="FILE.npz", help="also write the per-entry arrays here")
    out.add_argument("--plot", metavar="FILE.png",
                     help="a heat map of |error|/tolerance per entry (needs matplotlib)")
    out.add_argument("--worst", type=int, default=5, help="how many worst entries to report")
    out.add_argument("--quiet", action="store_true", help="no progress bar")


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
        if getattr(args, "debug", False):
            traceback.print_exc()
        return _fail(str(err))
    except KeyboardInterrupt as err:
        print(f"gpucheck: {err or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _emit(text: str) -> None:
    """Print to stdout; a reader that went away (``| head``) ends the output quietly."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # stdout is gone: point it at devnull so the interpreter's final
        # flush does not raise again, and let the verb return its status
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _save_arrays(path: str, r) -> None:
    fields = ("numeric", "analytic", "abs_error", "rel_error", "tolerance", "element_status", "eps")
    arrays = {}
    for name in fields:
        for key, part in r.split(name).items():
            arrays[name if not r.inputs else f"{key}/{name}"] = np.asarray(part)
    try:
        np.savez_compressed(path, **arrays)
    except OSError as err:
        raise GpuCheckError(f"`--arrays`: cannot write {path!r}: {err}") from None


def _cmd_check(args) -> int:
    f, x, grad = _build_problem(args)
    r = _evaluate(args, api.check_gradient, f, x, grad, eps=args.eps, scheme=args.scheme,
                  backend=args.backend, rtol=args.rtol, atol=args.atol, worst=args.worst,
                  reference=args.reference)
    if args.arrays:
        _save_arrays(args.arrays, r)
    if args.json:
        d = r.summary_dict()
        if args.arrays:
            d["arrays"] = args.arrays
        _emit(json.dumps(d))
    else:
        _emit(str(r) + (f"\n  per-entry arrays written to {args.arrays}" if args.arrays else ""))
    return exit_status(r)


def exit_status(r) -> int:
    """The exit status of a check's result: 130 for a partial one, else by its status."""
    return EXIT_INTERRUPTED if r.partial else _EXIT[r.status]


def _cmd_sweep(args) -> int:
    f, x, grad = _build_problem(args)
    s = _evaluate(args, api.sweep, f, x, grad, eps=args.eps, scheme=args.scheme,
                  backend=args.backend)
    # the table first: a picture that cannot be drawn must not cost the answer
    _emit(json.dumps(s.to_dict()) if args.json else str(s))
    code = EXIT_FAIL if s.regime == "bug" else EXIT_PASS
    if args.plot:
        try:
            s.plot(args.plot)
        except GpuCheckError as err:
            return _fail(f"`--plot`: {err}")
        if not args.json:
            _emit(f"\nwrote {args.plot}")
    return code


def _cmd_demo(args) -> int:
    from .demo import run

    return run(plot=args.plot, out=_emit)


def demo_problem(seed: int = 0):
    """An 8x8 float32 MSE layer summed over rows and divided by 8 (the verdict tests use it).

    The demo itself checks the forum's layer, :func:`gpucheck.demo.forum_layer`.
    """
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(8, 8)).astype(np.float32)
    x = rng.normal(size=(8, 8)).astype(np.float32)
    return layers.mse(target), x


def _cmd_info(args) -> int:
    _emit(info_text())
    return EXIT_PASS


def info_text() -> str:
    """Versions and backend availability as text; never raises."""
    from importlib import metadata
    import platform

    from ._version import __version__

    lines = [f"gpucheck {__version__}", f"python {platform.python_version()} ({sys.executable})"]
    for dist in ("numpy", "numba", "numba-cuda", "cupy-cuda12x", "cupy-cuda13x", "matplotlib",
                 "torch", "jax", "rich", "distributed", "dask-cuda"):
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


def _cmd_audit(args) -> int:
    from .audit import run

    return run(args, _emit)


def _cmd_bench(args) -> int:
    from .compare import run_bench

    return run_bench(args)


_VERBS = {"demo": _cmd_demo, "check": _cmd_check, "sweep": _cmd_sweep, "info": _cmd_info,
          "bench": _cmd_bench, "audit": _cmd_audit}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
