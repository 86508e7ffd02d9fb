"""Check a PyTorch ``autograd.Function`` (or any differentiable torch code).

:func:`check_function` evaluates the forward at perturbed inputs (batched
with ``torch.func.vmap`` where the function supports it, else one point at a
time), calls the backward through ``torch.autograd.grad`` with random
cotangents, and judges both with :func:`gpucheck.check_vjp`: the same
error model, per-input verdicts and reports as every other check.

Needs PyTorch (``pip install torch``, or the ``torch`` extra of
gpucheck-grad); imported only when this module is used.
"""

from __future__ import annotations

from typing import Any

from .errors import GpuCheckError
from .functions import batched as _batched
from .result import GradCheckResult

__all__ = ["check_function"]

_BATCH = ("auto", "vmap", "none")


def _torch():
    try:
        import torch
    except ImportError:
        raise GpuCheckError("gpucheck.torch needs PyTorch: pip install torch "
                            "(or pip install 'gpucheck-grad[torch]')") from None
    return torch


def check_function(fn, *inputs, cotangents=2, seed=0, batch="auto", eps=None, scheme="central",
                   backend="auto", rtol=None, atol=None, worst=5, progress=None) -> GradCheckResult:
    """Check the backward of a torch function against finite differences of its forward.

    Parameters
    ----------
    fn : torch.autograd.Function subclass, or callable
        A custom ``autograd.Function`` (its ``apply`` is called) or any
        callable on tensors whose gradient autograd computes.  It may return
        a tensor of any shape or a tuple of tensors.
    *inputs
        The arguments of ``fn``.  The floating-point tensors with
        ``requires_grad=True`` are checked (all floating-point tensors when
        none requires grad); everything else is passed through unchanged.
        Checked tensors must share one dtype, float32 or float64, and stay
        on their device: the forward gets tensors where they came from.
    cotangents : int
        How many random cotangents the backward is called with.
    seed : int
        Seed of the cotangents.
    batch : {'auto', 'vmap', 'none'}
        'auto' evaluates perturbed inputs in batches through
        ``torch.func.vmap`` when ``fn`` supports it (an ``autograd.Function``
        needs ``generate_vmap_rule = True`` or a ``vmap`` staticmethod) and
        agrees with one-by-one evaluation, else one by one; 'vmap' insists,
        'none' never batches.
    eps, scheme, backend, rtol, atol, worst, progress
        As in :func:`gpucheck.check_gradient`.

    Returns
    -------
    GradCheckResult
        Inputs are named as in ``torch.autograd.gradcheck``: ``input 1`` is
        the second argument of ``fn``.

    Examples
    --------
    >>> import torch, gpucheck.torch
    >>> class Square(torch.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x * x
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 2 * x * g
    >>> x = torch.linspace(-1, 1, 5, dtype=torch.float64, requires_grad=True)
    >>> gpucheck.torch.check_function(Square, x).status
    'pass'
    """
    torch = _torch()
    if batch not in _BATCH:
        raise GpuCheckError(f"`batch` must be one of {', '.join(map(repr, _BATCH))}, got {batch!r}")
    call = _callable(fn)
    positions = _checked(torch, inputs)
    args = list(inputs)
    names = [f"input {i}" for i in positions]

    def full(xs):
        a = list(args)
        for i, name in zip(positions, names):
            a[i] = xs[name]
        return a

    def forward(xs):
        return _flat_output(torch, call(*full(xs)))

    def f(xs):
        with torch.no_grad():
            return forward(xs)

    def vjp(xs, c):
        with torch.enable_grad():
            leaves = {k: v.detach().requires_grad_(True) for k, v in xs.items()}
            out = forward(leaves)
            if not out.requires_grad:
                raise GpuCheckError("`fn`'s output does not depend on the checked inputs through "
                                    "autograd (no grad_fn): nothing to check")
            grads = torch.autograd.grad(out, list(leaves.values()), grad_outputs=c, allow_unused=True)
        return {k: (torch.zeros_like(v) if g is None else g) for (k, v), g in zip(leaves.items(), grads)}

    point = {name: inputs[i].detach() for name, i in zip(names, positions)}
    form = _batch_form(torch, f, point, batch)
    from .vjp import check_vjp

    return check_vjp(form, point, vjp, cotangents=cotangents, seed=seed, eps=eps, scheme=scheme,
                     backend=backend, rtol=rtol, atol=atol, worst=worst, progress=progress)


def _callable(fn):
    apply = getattr(fn, "apply", None)
    if isinstance(fn, type) and callable(apply):
        return apply
    if not callable(fn):
        raise GpuCheckError(f"`fn` must be a torch.autograd.Function or a callable, got {type(fn).__name__}")
    return fn


def _checked(torch, inputs) -> list:
    tensors = [i for i, v in enumerate(inputs) if isinstance(v, torch.Tensor) and v.is_floating_point()]
    chosen = [i for i in tensors if inputs[i].requires_grad] or tensors
    if not chosen:
        raise GpuCheckError("`inputs` must include at least one floating-point tensor to check")
    return chosen


def _flat_output(torch, out):
    """One tensor: as it is; a tuple or list of tensors: their floating entries in one vector."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        parts = [o.reshape(-1) for o in out if isinstance(o, torch.Tensor) and o.is_floating_point()]
        if parts:
            return torch.cat(parts)
    raise GpuCheckError(f"`fn` must return a tensor or a tuple of tensors, got {type(out).__name__}")


def _batch_form(torch, f, point, batch: str) -> Any:
    """f itself, or a vmap-batched f when that works here and agrees with f."""
    if batch == "none":
        return f
    batched = torch.func.vmap(f)
    try:
        with torch.no_grad():
            stacked = {k: torch.stack([v, v]) for k, v in point.items()}
            got = batched(stacked)
            want = f(point)
        ok = got.shape == (2,) + tuple(want.shape) and bool(
            torch.allclose(got[0], want, rtol=64 * torch.finfo(want.dtype).eps, atol=0.0)
            and torch.equal(got[0], got[1]))
        reason = "its batched result differs from the one-by-one result"
    except Exception as err:  # vmap refuses what it cannot batch
        ok, reason = False, f"{type(err).__name__}: {err}".splitlines()[0]
    if ok:
        return _batched(batched)
    if batch == "vmap":
        raise GpuCheckError(f"`batch='vmap'`: torch.func.vmap cannot batch `fn` ({reason}); "
                            "use batch='auto' or 'none'")
    return f
