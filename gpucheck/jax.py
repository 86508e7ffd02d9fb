"""Check a JAX function's VJP, such as a ``jax.custom_vjp``, against finite differences.

:func:`check_vjp` evaluates the function at perturbed arguments (through
``jax.vmap`` and ``jax.jit`` in batches where that works, else one point at
a time), pulls random cotangents back through ``jax.vjp`` (which runs a
``custom_vjp``'s own backward), and judges both with
:func:`gpucheck.check_vjp`.

Needs JAX (``pip install jax``, or the ``jax`` extra of gpucheck-grad);
imported only when this module is used.  JAX computes in float32 unless
``jax_enable_x64`` is set: the check runs in the dtype JAX gives the
arguments.
"""

from __future__ import annotations

from .errors import GpuCheckError
from .functions import batched as _batched
from .result import GradCheckResult

__all__ = ["check_vjp"]

_BATCH = ("auto", "vmap", "none")


def _jax():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise GpuCheckError("gpucheck.jax needs JAX: pip install jax "
                            "(or pip install 'gpucheck-grad[jax]')") from None
    return jax, jnp


def check_vjp(f, *args, argnums=None, cotangents=2, seed=0, batch="auto", eps=None,
              scheme="central", backend="auto", rtol=None, atol=None, worst=5,
              progress=None) -> GradCheckResult:
    """Check ``jax.vjp(f, *args)`` (a ``custom_vjp``'s backward, say) against finite differences.

    Parameters
    ----------
    f : callable
        A JAX-traceable function of ``args`` returning an array or a pytree
        of arrays.
    *args
        Its arguments.  Arrays (JAX or NumPy) are converted with
        ``jnp.asarray``; the ones checked must share one floating dtype.
    argnums : int or sequence of int, optional
        Which arguments to check; default every floating-point array.
        The others are held fixed.
    cotangents : int
        How many random cotangents are pulled back.
    seed : int
        Seed of the cotangents.
    batch : {'auto', 'vmap', 'none'}
        'auto' evaluates perturbed arguments in batches with ``jax.vmap``
        (jitted) when that agrees with one-by-one evaluation; 'vmap'
        insists; 'none' evaluates one point at a time (jitted).
    eps, scheme, backend, rtol, atol, worst, progress
        As in :func:`gpucheck.check_gradient`.

    Returns
    -------
    GradCheckResult
        Inputs are named ``arg 0``, ``arg 1``, ... by position.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, gpucheck.jax
    >>> @jax.custom_vjp
    ... def cube(x):
    ...     return x ** 3
    >>> cube.defvjp(lambda x: (x ** 3, x), lambda x, g: (3 * x ** 2 * g,))
    >>> gpucheck.jax.check_vjp(cube, jnp.linspace(0.5, 1.5, 4)).status
    'pass'
    """
    jax, jnp = _jax()
    if batch not in _BATCH:
        raise GpuCheckError(f"`batch` must be one of {', '.join(map(repr, _BATCH))}, got {batch!r}")
    if not callable(f):
        raise GpuCheckError(f"`f` must be callable, got {type(f).__name__}")
    values = [_as_jax(jnp, a) for a in args]
    positions = _argnums(jnp, values, argnums)
    names = [f"arg {i}" for i in positions]

    def full(xs):
        a = list(values)
        for i, name in zip(positions, names):
            a[i] = xs[name]
        return a

    def forward(xs):
        leaves = jax.tree_util.tree_leaves(f(*full(xs)))
        if not leaves:
            raise GpuCheckError("`f` returned no arrays")
        if len(leaves) == 1:
            return jnp.asarray(leaves[0])
        return jnp.concatenate([jnp.ravel(v) for v in leaves])

    one = jax.jit(forward)

    @jax.jit
    def pullback(xs, c):
        _, back = jax.vjp(forward, xs)
        return back(c)[0]

    def vjp(xs, c):
        return pullback(xs, c)

    point = {name: values[i] for name, i in zip(names, positions)}
    form = _batch_form(jax, jnp, one, forward, point, batch)
    from .vjp import check_vjp as _check_vjp

    return _check_vjp(form, point, vjp, cotangents=cotangents, seed=seed, eps=eps, scheme=scheme,
                      backend=backend, rtol=rtol, atol=atol, worst=worst, progress=progress)


def _as_jax(jnp, a):
    if hasattr(a, "shape") and hasattr(a, "dtype"):
        return jnp.asarray(a)
    return a


def _argnums(jnp, values, argnums) -> list:
    floating = [i for i, v in enumerate(values)
                if hasattr(v, "dtype") and jnp.issubdtype(v.dtype, jnp.floating)]
    if argnums is None:
        if not floating:
            raise GpuCheckError("`args` must include at least one floating-point array to check")
        return floating
    nums = [argnums] if isinstance(argnums, int) else list(argnums)
    bad = [i for i in nums if not isinstance(i, int) or isinstance(i, bool) or i not in floating]
    if bad or not nums:
        raise GpuCheckError(f"`argnums` must name floating-point array arguments among positions "
                            f"{floating}, got {argnums!r}")
    return sorted(set(nums))


def _batch_form(jax, jnp, one, forward, point, batch: str):
    if batch == "none":
        return one
    many = jax.jit(jax.vmap(forward))
    try:
        stacked = {k: jnp.stack([v, v]) for k, v in point.items()}
        got, want = many(stacked), one(point)
        eps = jnp.finfo(want.dtype).eps
        ok = got.shape == (2,) + tuple(want.shape) and bool(
            jnp.allclose(got[0], want, rtol=64 * eps, atol=0.0) and jnp.array_equal(got[0], got[1]))
        reason = "its batched result differs from the one-by-one result"
    except Exception as err:  # vmap refuses what it cannot batch
        ok, reason = False, f"{type(err).__name__}: {err}".splitlines()[0]
    if ok:
        return _batched(_padded(jnp, many))
    if batch == "vmap":
        raise GpuCheckError(f"`batch='vmap'`: jax.vmap cannot batch `f` ({reason}); use batch='auto' "
                            "or 'none'")
    return one


def _padded(jnp, many):
    """``many`` on batches padded to a power of two: a jitted function compiles per shape."""
    def run(xs):
        b = next(iter(xs.values())).shape[0]
        size = 1 << max(0, b - 1).bit_length()
        if size != b:
            xs = {k: jnp.concatenate([v, jnp.broadcast_to(v[-1:], (size - b,) + v.shape[1:])])
                  for k, v in xs.items()}
        return many(xs)[:b]

    return run
