"""The public functions.  Thin: validate, then hand over to the engine."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import backends, engine, modes, partial, validate
from .functions import as_function
from .errors import GpuCheckError, GpuCheckInterrupted
from .result import GradCheckResult, SweepResult
from .stencils import get_scheme

__all__ = ["check_gradient", "numerical_gradient", "sweep"]


def _setup(f, x, backend, progress, executor=None):
    """The evaluator of f at x, and the structure of x (one array or several)."""
    func = as_function(f)
    structure, xv = validate.inputs(x)
    validate.form_supports(func.kind, xv.dtype)
    progress = validate.progress_option(progress)
    executor = validate.executor_option(executor)
    if executor is None:
        name = backends.resolve(backend)
    else:  # each worker resolves the backend for itself
        name = validate.worker_backend(backend, func, structure)
    return engine.Evaluator(structure.wrap(func, name), xv, name, progress, executor), structure


def check_gradient(f, x, grad, *, eps=None, scheme="central", backend="auto", rtol=None,
                   atol=None, worst=5, progress=None, executor=None,
                   reference=None, mode="auto", indices=None,
                   samples=modes.DEFAULT_SAMPLES, directions=modes.DEFAULT_DIRECTIONS,
                   max_seconds=modes.DEFAULT_MAX_SECONDS, seed=0) -> GradCheckResult:
    """Check an analytic gradient against finite differences.

    f is evaluated at every perturbed copy ``x ± h e_i`` in batched
    backend calls, together with a few points that measure f's rounding
    noise and repeats of x that show whether f is deterministic.  Entries
    the first pass cannot settle are judged again against the noise along
    their own coordinate, at steps chosen by the error model (larger where
    rounding dominates, smaller where truncation does), and at kinks
    (relu, abs, max) also jointly along combined directions.  A pass means
    no entry is off by more than about ``1.5 * result.resolution`` of
    max|g|; when no step can show that, the verdict is 'inconclusive' and
    ``result.advice`` says what was tried and what to do.

    Parameters
    ----------
    f : callable, Batched or Kernel
        ``f(x) -> scalar``; or a function marked with :func:`gpucheck.batched`
        (``f(xs) -> (B,)``); or a :func:`gpucheck.kernel`.  f is always called
        with arrays of x's dtype and x's array type (NumPy, CuPy, torch, JAX).
    x : array_like, or tuple, list or dict of array_like
        The point, float64, float32, float16 or bfloat16 (``ml_dtypes``), any
        shape; compiled forms of f (kernel, row-wise, built-in layers) take
        float32 and float64.  NumPy, CuPy, torch and JAX
        arrays are accepted.  Several inputs (a layer's parameters, say) go
        in a tuple or list, and f is called as ``f(*xs)``, or in a dict, and
        f is called as ``f(xs)``; all must share one dtype.  Reports then name
        entries like ``W1[3, 4]`` and give a verdict per input.
    grad : array_like or callable
        The analytic gradient at x (x's shape, or x's structure of arrays),
        or a callable taking the inputs the way f does and returning it.
    eps : float or array_like, optional
        Relative step: element i is perturbed by ``eps * max(1, |x_i|)``
        (rounded to a representable step).  An array of x's shape gives
        absolute steps.  Default ``u ** (1/3)`` for ``central``, ``u ** (1/5)``
        for ``central4``, u the dtype's unit roundoff; ``1e-20`` for
        ``complex``.  A starting point: entries the first step cannot settle
        are judged at others.
    scheme : {'central', 'central4', 'complex'}
        Two-point (error ~h²) or four-point (error ~h⁴) central differences,
        or the complex step ``Im f(x + ih) / h`` (f must accept complex x and
        be complex-analytic; one evaluation per entry, machine precision).
    backend : {'auto', 'cpu', 'cuda', 'cudasim'}
        Where f is evaluated; 'auto' picks 'cuda' when a device is usable.
    rtol, atol : float, optional
        When given, replace the error model by the fixed rule
        ``|n - a| <= atol + rtol * |a|`` (no refinement, no kink test).
    worst : int
        How many worst entries to report.
    progress : callable, optional
        ``progress(done, total)`` called as points are evaluated, with 0
        when a stage starts and ``total`` when it ends.
    executor : dask.distributed.Client or concurrent.futures.Executor, optional
        Evaluate chunks of points on the executor's workers, each with its
        own backend (``backend`` is resolved on the worker: ``'auto'`` uses a
        worker's GPU when it has one).  Results are identical to a local run.
    reference : {None, 'float64'}
        'float64' also runs the check with f evaluated on a float64 copy of
        x (``result.reference``), which separates a wrong gradient formula
        from a noisy low-precision implementation
        (``result.interpretation()``).
    mode : {'auto', 'full', 'sample', 'project', 'sample+project'}
        'full' checks every entry.  'sample' checks ``samples`` entries drawn
        at random, the ``samples`` entries with the largest |grad|, and the
        entries named by ``indices``, with the full verdict (the others are
        'unchecked' in the result; ``result.coverage`` says which).
        'project' checks ``<grad, v>`` against f's slope along ``directions``
        random directions v (``result.projection`` says what a pass proves).
        'auto' (default) runs the full check unless its first pass, timed on
        its first chunks, would take longer than ``max_seconds``, and then
        'sample+project' instead; ``result.mode`` and ``result.mode_reason``
        say which ran and why.  A check that fits is the full check, with
        the same evaluations and the same result.
    indices : sequence or dict, optional
        Entries a sampled check always includes: multi-indices (``[(3, 4)]``)
        or flat indices (``[17]``); for several inputs a dict by input name
        (``{"W1": [(3, 4)]}``) or flat indices into all of them.
    samples : int
        Entries drawn at random (and as many with the largest |grad|) by a
        sampled check; 'auto' may take fewer to stay near ``max_seconds``.
    directions : int
        Random directions of a projected check (a quarter of them sparse).
    max_seconds : float
        The time 'auto' allows the full check.
    seed : int or None
        Seed of the sampled entries and the directions (None: a fresh one,
        reported in ``result.coverage`` and ``result.projection``).

    Returns
    -------
    GradCheckResult
        Always NumPy arrays, whatever array type x came in.  For several
        inputs the per-entry arrays are flat over all of them;
        :meth:`GradCheckResult.split` cuts them per input.

    Raises
    ------
    GpuCheckError
        For bad input, or when f fails or returns something other than a
        finite real scalar at x; with ``scheme='complex'``, when f is not
        complex-analytic.
    GpuCheckInterrupted
        On Ctrl-C (a :class:`KeyboardInterrupt`): ``.partial`` is the result
        so far (``partial=True``; entries not reached are 'unchecked'; never
        a pass).

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> x = np.linspace(-1, 1, 6)
    >>> r = gpucheck.check_gradient(lambda v: np.sum(np.sin(v)), x, np.cos(x))
    >>> r.status
    'pass'
    >>> gpucheck.check_gradient(lambda v: np.sum(np.sin(v)), x, -np.cos(x)).status
    'fail'

    Several inputs, named by a dict:

    >>> W, b = np.ones((2, 3)), np.arange(3.0)
    >>> loss = lambda p: np.sum(np.tanh(p["W"] @ p["b"]))
    >>> g = {"W": np.outer(1 - np.tanh(W @ b) ** 2, b), "b": W.T @ (1 - np.tanh(W @ b) ** 2)}
    >>> r = gpucheck.check_gradient(loss, {"W": W, "b": b}, g)
    >>> r.status, [v.name for v in r.inputs]
    ('pass', ['W', 'b'])
    >>> gpucheck.check_gradient(lambda v: np.sum(np.sin(v)), x, np.cos(x), scheme="complex").status
    'pass'

    A sample of the entries, and random directions, of a large x:

    >>> x = np.linspace(-1, 1, 10_000)
    >>> r = gpucheck.check_gradient(lambda v: np.sum(np.sin(v)), x, np.cos(x), mode="sample",
    ...                             samples=50, indices=[17])
    >>> r.status, r.coverage.checked, str(r.element_status[0])
    ('pass', 100, 'unchecked')
    >>> r = gpucheck.check_gradient(lambda v: np.sum(np.sin(v)), x, 1.01 * np.cos(x), mode="project")
    >>> r.status, r.projection.directions
    ('fail', 32)
    """
    ev, structure = _setup(f, x, backend, progress, executor)
    a = validate.analytic(grad, ev.x, structure)
    g_u = _grad_roundoff(grad, structure)
    eps = validate.eps_option(eps, ev.x, structure)
    rtol = validate.tolerance_option(rtol, "rtol")
    atol = validate.tolerance_option(atol, "atol")
    k = validate.positive_int(worst, "worst")
    ref = validate.reference_option(reference)
    name = validate.scheme_option(scheme, ev.x, ev.func.kind, rtol, atol)
    plan = _plan(mode, indices, samples, directions, max_seconds, seed, structure, ev.x, ref)

    def judge(ev_, a_, eps_, worst=None):
        k_ = k if worst is None else worst
        groups = _groups(ev_, ev, structure)
        r = _check(ev_, a_, name, eps_, rtol, atol, k_, g_u, groups)
        if ref is not None:
            ev64 = ev_.at(ev_.x.astype(np.float64), progress=True)
            try:
                r = replace(r, reference=_check(ev64, a_, name, eps_, rtol, atol, k_, g_u, groups))
            except partial.CheckInterrupted:
                raise partial.CheckInterrupted(
                    partial.flat(r), np.arange(r.numeric.size), r.numeric.size,
                    "Interrupted (Ctrl-C) during the float64 reference check: every entry was "
                    "checked in x's dtype, the reference is missing.", r.nfev) from None
        return r

    return modes.run(ev, structure, a, eps, judge, plan)


def _plan(mode, indices, samples, directions, max_seconds, seed, structure, x, ref):
    mode = validate.mode_option(mode)
    named = validate.indices_option(indices, structure, x.shape)
    if named is not None and mode in ("full", "project"):
        raise GpuCheckError(f"`indices` names entries for a sampled check; mode {mode!r} "
                            f"{'checks every entry' if mode == 'full' else 'checks no entry alone'}"
                            f" (use mode='sample', 'sample+project' or 'auto')")
    return modes.Plan(mode=mode, indices=named, samples=validate.positive_int(samples, "samples"),
                      directions=validate.positive_int(directions, "directions"),
                      max_seconds=validate.positive_real(max_seconds, "max_seconds"),
                      seed=validate.seed_option(seed), reference=ref is not None)


def _grad_roundoff(grad, structure) -> float:
    # the dtype the analytic gradient came in bounds its own rounding
    if callable(grad) and not hasattr(grad, "shape"):
        return 0.0
    members = grad.values() if isinstance(grad, dict) else \
        grad if isinstance(grad, (tuple, list)) and not structure.single else [grad]
    return max((validate.grad_roundoff(g) for g in members), default=0.0)


def _groups(ev_, ev, structure):
    """The input of each entry the engine judges, for several inputs (else None).

    A full check judges every entry of the point, a sampled one the entries
    of its subset; a projected check (f along directions, a function of
    its own) has no entries of x to tell apart.
    """
    if structure.single or ev_.func is not ev.func:
        return None
    groups = structure.groups()
    if isinstance(ev_, modes.SubsetEvaluator):
        return groups[ev_.entries]
    return groups if ev_.x.size == groups.size else None


def _check(ev, a, scheme, eps, rtol, atol, k, g_u, groups=None):
    if scheme == "complex":
        from .complexstep import check_complex

        return check_complex(ev, a, eps=eps, k_worst=k, grad_roundoff=g_u)
    return engine.check(ev, a, scheme=get_scheme(scheme), eps=eps, rtol=rtol, atol=atol, k_worst=k,
                        grad_roundoff=g_u, groups=groups)


def numerical_gradient(f, x, *, eps=None, scheme="central", backend="auto", progress=None,
                       executor=None, indices=None):
    """The finite-difference gradient of f at x, float64 of x's shape.

    Parameters are those of :func:`check_gradient`.  ``indices`` (as there)
    computes only the entries named, at a cost that does not grow with x's
    size, and leaves NaN elsewhere.  The other modes of
    :func:`check_gradient` do not apply here: a projection gives
    directional derivatives, not a gradient, and an 'auto' that returned a
    partial gradient for a large x would be a surprise.

    Returns
    -------
    numpy.ndarray, or x's structure of them
        For several inputs, a tuple, list or dict like x.

    Raises
    ------
    GpuCheckInterrupted
        On Ctrl-C (a :class:`KeyboardInterrupt`): ``.partial`` is the
        gradient with NaN for the entries not computed yet.

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> g = gpucheck.numerical_gradient(lambda v: float(v @ v), np.array([1.0, -2.0]))
    >>> np.allclose(g, [2.0, -4.0])
    True
    >>> gw, gb = gpucheck.numerical_gradient(lambda w, b: float(w @ b), (np.ones(2), np.arange(2.0)))
    >>> np.allclose(gw, [0.0, 1.0]), np.allclose(gb, [1.0, 1.0])
    (True, True)
    >>> gpucheck.numerical_gradient(lambda v: np.sum(np.sin(v)), np.zeros(2), scheme="complex")
    array([1., 1.])
    >>> gpucheck.numerical_gradient(lambda v: float(v @ v), np.arange(4.0), indices=[1, 3])
    array([nan,  2., nan,  6.])
    """
    ev, structure = _setup(f, x, backend, progress, executor)
    eps = validate.eps_option(eps, ev.x, structure)
    named = validate.indices_option(indices, structure, ev.x.shape)
    name = validate.scheme_option(scheme, ev.x, ev.func.kind, None, None)
    try:
        if named is not None:
            g = modes.numerical_at(ev, named, get_scheme("central" if name == "complex" else name),
                                   eps, complex_step=name == "complex")
            return structure.unflatten(g.reshape(ev.x.shape))
        if name == "complex":
            from .complexstep import complex_step

            return structure.unflatten(complex_step(ev, eps).reshape(ev.x.shape))
        g, _, f0 = engine.numerical(ev, get_scheme(scheme), eps)
    except partial.GradientInterrupted as stop:
        raise GpuCheckInterrupted(f"{stop}; the gradient has NaN for the entries not computed",
                                  structure.unflatten(stop.gradient.reshape(ev.x.shape))) from None
    validate.base_value(f0)
    return structure.unflatten(g.reshape(ev.x.shape))


def sweep(f, x, grad, *, eps=None, scheme="central", backend="auto", progress=None,
          executor=None) -> SweepResult:
    """Run the check over a range of steps and explain how the error behaves.

    All steps are evaluated together, in batched backend calls.  The result names
    the regime ('roundoff', 'truncation', 'balanced' or 'bug'), the best
    step, and says in plain sentences why.

    Parameters
    ----------
    f, x, grad, scheme, backend, progress, executor
        As in :func:`check_gradient`.
    eps : sequence of float, optional
        Relative steps.  Default: decades from about ``sqrt(u)`` up to 1.

    Returns
    -------
    SweepResult

    Examples
    --------
    >>> import numpy as np, gpucheck
    >>> x = np.linspace(0.5, 1.5, 8)
    >>> s = gpucheck.sweep(lambda v: np.sum(v ** 3), x, 3 * x ** 2, eps=[1e-3, 1e-2, 1e-1, 1.0])
    >>> s.regime
    'truncation'
    """
    from .stepsweep import run_sweep

    ev, structure = _setup(f, x, backend, progress, executor)
    a = validate.analytic(grad, ev.x, structure)
    steps = None if eps is None else validate.eps_list(eps)
    return run_sweep(ev, a, scheme=get_scheme(scheme), steps=steps)
