"""``gpucheck audit``: a layer's gradient checked at any size, with a JSON report.

The command behind ``gpucheck audit`` (its options are declared in
:mod:`gpucheck.cli`).  It builds f from a built-in layer
(:func:`gpucheck.layers.build` with the layer's named arrays) or from a
user's function in one of its forms, loads x and the gradient from .npy or
.npz files, runs :func:`gpucheck.check_gradient` in the chosen mode with a
progress bar, and writes:

* a JSON report (to ``--json FILE``, else to stdout): the verdict, counts,
  per-input verdicts, worst entries, the mode and why, the coverage of a
  sampled check and the guarantees of a projected one, and what was
  audited; no per-entry arrays;
* with ``--arrays FILE.npz``, the per-entry arrays (and the per-direction
  ones of a projected check);
* with ``--plot FILE.png``, a heat map of |error| / tolerance per entry.
  Without matplotlib the rest of the report is still written, and the
  report says why the picture is missing.

Exit status as for ``check``: 0 pass, 1 fail, 3 inconclusive, 2 bad input,
130 interrupted.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from . import api
from .errors import GpuCheckError
from .functions import batched, kernel, rowwise

__all__ = ["run", "build_problem", "parse_index", "parse_option", "report", "save_arrays"]


def parse_option(text: str) -> tuple:
    """``NAME=VALUE`` of ``--option``: an int, a float, a bool, ints joined by commas, or text.

    Examples
    --------
    >>> parse_option("stride=2"), parse_option("scale=0.5"), parse_option("padding=1,2")
    (('stride', 2), ('scale', 0.5), ('padding', (1, 2)))
    >>> parse_option("reduction=mean"), parse_option("delta=false")
    (('reduction', 'mean'), ('delta', False))
    """
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise GpuCheckError(f"`--option` must look like NAME=VALUE, got {text!r}")
    low = value.strip().lower()
    if low in ("true", "false"):
        return name, low == "true"
    for convert in (int, float):
        try:
            return name, convert(value)
        except ValueError:
            pass
    if "," in value:
        try:
            return name, tuple(int(v) for v in value.split(","))
        except ValueError:
            pass
    return name, value


def parse_index(text: str) -> tuple:
    """``[NAME=]I,J,...`` of ``--index``: ``(name or None, index)``.

    One integer is a flat index; several are a multi-index.

    Examples
    --------
    >>> parse_index("3,4"), parse_index("17"), parse_index("W1=0,2")
    ((None, (3, 4)), (None, 17), ('W1', (0, 2)))
    """
    name, sep, rest = text.partition("=")
    if not sep:
        name, rest = None, text
    elif not name.isidentifier():
        raise GpuCheckError(f"`--index` must look like I,J or NAME=I,J, got {text!r}")
    try:
        parts = tuple(int(v) for v in rest.split(","))
    except ValueError:
        raise GpuCheckError(f"`--index` must hold integers, like 3,4 or W1=3,4, got {text!r}") from None
    return name, parts[0] if len(parts) == 1 else parts


def _indices(specs):
    if not specs:
        return None
    pairs = [parse_index(s) for s in specs]
    if all(n is None for n, _ in pairs):
        return [i for _, i in pairs]
    if any(n is None for n, _ in pairs):
        raise GpuCheckError("`--index`: name the input of every index (NAME=I,J) or of none")
    out = {}
    for n, i in pairs:
        out.setdefault(n, []).append(i)
    return out


def build_problem(args) -> tuple:
    """``(f, x, grad, about)`` from the audit options; ``about`` describes them for the report."""
    from .cli import _load_array, function_problem, layer_problem, load_point

    x, grad = load_point(args)
    about = {"x": list(args.x), "grad": list(args.grad or [])}
    if args.layer:
        for flag in ("batched", "kernel", "rowwise"):
            if getattr(args, flag):
                raise GpuCheckError(f"`--{flag}` is for a function; a layer is evaluated by what "
                                    f"each perturbation changes (--option delta=false: its full "
                                    f"forward)")
        if args.param or args.scale is not None:
            raise GpuCheckError("`--param` and `--scale` are for a function; give a layer's "
                                "arrays with --array NAME=FILE.npy and its options with "
                                "--option NAME=VALUE")
        layer, grad, files, options = layer_problem(args, x, grad)
        about.update(form="layer", layer=args.layer, arrays=files, options=dict(options))
        return layer, x, grad, about
    fn = function_problem(args, grad)
    params = [_load_array(p, "--param") for p in (args.param or [])]
    form = "kernel" if args.kernel else "rowwise" if args.rowwise else \
        "batched" if args.batched else "callable"
    if params and form not in ("kernel", "rowwise"):
        raise GpuCheckError("`--param` is only for `--kernel` and `--rowwise` functions")
    if args.scale is not None and form != "rowwise":
        raise GpuCheckError("`--scale` is only for `--rowwise` functions")
    if form == "kernel":
        f = kernel(fn, *params)
    elif form == "rowwise":
        f = rowwise(fn, *params, scale=1.0 if args.scale is None else args.scale)
    elif form == "batched":
        f = batched(fn)
    else:
        f = fn
    about.update(form=form, function=args.function, params=list(args.param or []))
    if args.scale is not None:
        about["scale"] = args.scale
    return f, x, grad, about


def report(r, about: dict, args, *, arrays=None, plot=None, plot_error=None) -> dict:
    """The JSON report: the result's summary and what was audited."""
    d = r.summary_dict()
    d["audit"] = dict(about, backend_option=args.backend, mode_option=args.mode,
                      max_seconds=args.max_seconds, samples=args.samples,
                      directions=args.directions, seed=args.seed, scheme_option=args.scheme,
                      reference_option=args.reference,
                      indices=list(args.index or []))
    d["arrays"] = arrays
    d["plot"] = plot
    if plot_error:
        d["plot_error"] = plot_error
    return d


def save_arrays(path: str, r) -> None:
    """The per-entry arrays (per input: ``NAME/field``), and a projected check's per-direction ones."""
    fields = ("numeric", "analytic", "abs_error", "rel_error", "tolerance", "element_status", "eps")
    out = {}
    for name in fields:
        for key, part in r.split(name).items():
            out[name if not r.inputs else f"{key}/{name}"] = np.asarray(part)
    if r.projection is not None:
        c = r.projection.check
        out.update({"projection/slope": np.asarray(c.numeric), "projection/analytic":
                    np.asarray(c.analytic), "projection/tolerance": np.asarray(c.tolerance),
                    "projection/status": np.asarray(c.element_status),
                    "projection/kind": np.asarray(r.projection.kinds)})
    try:
        np.savez_compressed(path, **out)
    except OSError as err:
        raise GpuCheckError(f"`--arrays`: cannot write {path!r}: {err}") from None


def run(args, emit) -> int:
    """Run ``gpucheck audit``; ``emit`` prints to stdout.  Returns the exit status."""
    from .cli import _evaluate, exit_status

    f, x, grad, about = build_problem(args)
    r = _evaluate(args, api.check_gradient, f, x, grad, eps=args.eps, scheme=args.scheme,
                  backend=args.backend, worst=args.worst, mode=args.mode,
                  indices=_indices(args.index), samples=args.samples,
                  directions=args.directions, max_seconds=args.max_seconds, seed=args.seed,
                  reference=args.reference)
    if args.arrays:
        save_arrays(args.arrays, r)
    plot = plot_error = None
    if args.plot:
        from .plot import plot_heatmap

        try:
            plot = plot_heatmap(r, args.plot)
        except GpuCheckError as err:
            # the verdict stands without its picture
            plot_error = str(err)
            print(f"gpucheck: `--plot`: {err}; the rest of the report is written", file=sys.stderr)
        except OSError as err:
            plot_error = f"cannot write {args.plot!r}: {err}"
            print(f"gpucheck: `--plot`: {plot_error}", file=sys.stderr)
    code = exit_status(r)
    d = report(r, about, args, arrays=args.arrays, plot=plot, plot_error=plot_error)
    d["exit_status"] = code
    text = json.dumps(d)
    if args.json in (None, "-"):
        emit(text)
    else:
        try:
            with open(args.json, "w") as fh:
                fh.write(text + "\n")
        except OSError as err:
            raise GpuCheckError(f"`--json`: cannot write {args.json!r}: {err}") from None
        emit(str(r) + f"\n  JSON report written to {args.json}"
             + (f"\n  per-entry arrays written to {args.arrays}" if args.arrays else "")
             + (f"\n  heat map written to {plot}" if plot else ""))
    return code
