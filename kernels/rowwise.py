"""CUDA kernels for row-wise functions ``f(x) = scale * sum_r fn(x[r], ...)``.

The host plans the work (:mod:`gpucheck.backends.rows`): the points, every
row's unperturbed evaluation first, sorted by row and cut into segments.
``G`` threads each own one copy of a row in an interleaved scratch array of
shape ``(*row_shape, G)``, so that when the threads of a warp read the same
entry of their own copies the addresses are adjacent.  Thread g takes
segments ``g, g + G, ...``: it copies the segment's row into its column,
then for each point perturbs one entry, calls ``fn`` on its strided view
``scratch[..., g]`` and restores the entry, and finally checks that its copy
equals the row again (``fn`` must not write into it).

Short rows get one segment, so one thread per perturbed row; rows of 32
entries or more are cut into 32 consecutive segments, which the
consecutive threads of a warp take: a warp per row, its reads of the row
coalesced.  The host combines the row values into f.

With ``delta=False`` a second kernel evaluates every row at every point
(one thread per point, the full forward).

Sources are generated per dimensions of a row, number of params and which
params are row-aligned (``p[r]`` instead of ``p``); compiled kernels are
cached per function and argument types.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from gpucheck._cuda import SIMULATOR, cuda, from_dtype, types

__all__ = ["rowwise_source", "signature", "compile_rowwise", "ptx", "LANES"]

#: Threads that share one long row (a warp).
LANES = 32

_LOCK = threading.RLock()
_DEVICE: dict = {}
_KERNELS: dict = {}

_DELTA = '''
def run(x, idx, vals, order, seg_start, seg_stop, seg_row, out, written, scratch{params}):
    g = cuda.grid(1)
    lanes = scratch.shape[{k}]
    if g >= lanes:
        return
    row = scratch[{colons}g]
    width = {width}
    s = g
    while s < seg_row.shape[0]:
        r = seg_row[s]
        i = 0
        while i < width:
{unravel_i12}
            scratch[{ii}g] = x[r, {ii}]
            i += 1
        q = seg_start[s]
        while q < seg_stop[s]:
            p = order[q]
            j = idx[p] - r * width
{unravel_j12}
            scratch[{jj}g] = vals[p]
            out[p] = user_fn(row{args})
            scratch[{jj}g] = x[r, {jj}]
            q += 1
        i = 0
        while i < width:
{unravel_i12}
            if scratch[{ii}g] != x[r, {ii}]:
                written[0] = 1
            i += 1
        s += lanes
'''

_FULL = '''
def run(x, idx, vals, out, scratch{params}):
    g = cuda.grid(1)
    lanes = scratch.shape[{k}]
    if g >= lanes:
        return
    row = scratch[{colons}g]
    width = {width}
    n_rows = x.shape[0]
    p = g
    while p < idx.shape[0]:
        rp = idx[p] // width
        j = idx[p] - rp * width
{unravel_j8}
        s = 0.0
        r = 0
        while r < n_rows:
            i = 0
            while i < width:
{unravel_i16}
                scratch[{ii}g] = x[r, {ii}]
                i += 1
            if r == rp:
                scratch[{jj}g] = vals[p]
            s += user_fn(row{args})
            r += 1
        out[p] = s
        p += lanes
'''


def _unravel(var: str, name: str, k: int, indent: int) -> str:
    """Lines setting ``name0..name{k-1}``, the row index of flat offset ``var``."""
    pad = " " * indent
    if k == 1:
        return f"{pad}{name}0 = {var}"
    lines = [f"{pad}t = {var}"]
    for d in range(k - 1, 0, -1):
        lines.append(f"{pad}{name}{d} = t % scratch.shape[{d}]")
        lines.append(f"{pad}t = t // scratch.shape[{d}]")
    lines.append(f"{pad}{name}0 = t")
    return "\n".join(lines)


def rowwise_source(row_ndim: int, aligned: tuple, full: bool = False) -> str:
    """Source of the delta (or full) kernel for rows of ``row_ndim`` dimensions.

    ``aligned[k]`` says param k is passed as ``p[r]``.
    """
    k = int(row_ndim)
    params = "".join(f", p{n}" for n in range(len(aligned)))
    args = "".join(f", p{n}[r]" if a else f", p{n}" for n, a in enumerate(aligned))
    fields = dict(
        params=params, args=args, k=k, colons=":, " * k,
        width=" * ".join(f"scratch.shape[{d}]" for d in range(k)),
        ii="".join(f"i{d}, " for d in range(k)), jj="".join(f"j{d}, " for d in range(k)),
        unravel_i12=_unravel("i", "i", k, 12), unravel_j12=_unravel("j", "j", k, 12),
        unravel_j8=_unravel("j", "j", k, 8), unravel_i16=_unravel("i", "i", k, 16))
    return (_FULL if full else _DELTA).format(**fields)


def _array(dtype, ndim: int, layout: str = "C"):
    return types.Array(from_dtype(np.dtype(dtype)), ndim, layout)


def signature(dtype, row_ndim: int, specs, full: bool = False) -> tuple:
    """Argument types of the delta (or full) kernel; ``specs`` the params' (dtype, ndim)."""
    i64 = _array(np.int64, 1)
    rows = _array(dtype, row_ndim + 1)
    head = (rows, i64, _array(dtype, 1))
    if full:
        body = (_array(np.float64, 1), _array(dtype, row_ndim + 1))
    else:
        body = (i64, i64, i64, i64, _array(np.float64, 1), i64, _array(dtype, row_ndim + 1))
    return head + body + tuple(_array(d, n) for d, n in specs)


def _device(fn):
    with _LOCK:
        dev = _DEVICE.get(fn)
        if dev is None:
            dev = _DEVICE[fn] = cuda.jit(device=True, inline="always")(getattr(fn, "py_func", fn))
        return dev


def _python_kernel(fn, row_ndim: int, aligned: tuple, full: bool):
    namespace = {"cuda": cuda, "user_fn": _device(fn)}
    exec(compile(rowwise_source(row_ndim, aligned, full), "<gpucheck rowwise kernel>", "exec"),
         namespace)
    return namespace["run"]


def compile_rowwise(fn, dtype, row_ndim: int, specs, aligned: tuple, *, full: bool = False):
    """The compiled kernel for ``fn`` and the seconds compiling took (0 if cached)."""
    specs = tuple((np.dtype(d).str, int(n)) for d, n in specs)
    key = (fn, np.dtype(dtype).str, int(row_ndim), specs, tuple(aligned), bool(full))
    with _LOCK:
        kern = _KERNELS.get(key)
        if kern is not None:
            return kern, 0.0
        t0 = time.perf_counter()
        pyfunc = _python_kernel(fn, row_ndim, tuple(aligned), full)
        if SIMULATOR:
            kern = cuda.jit(pyfunc)
        else:
            kern = cuda.jit(types.void(*signature(dtype, row_ndim, specs, full)))(pyfunc)
        _KERNELS[key] = kern
        return kern, time.perf_counter() - t0


def ptx(fn, dtype, row_ndim: int, specs, aligned: tuple, *, full: bool = False,
        cc=(9, 0)) -> str:
    """PTX of the row-wise kernel for ``fn``; no device needed.

    Examples
    --------
    >>> def total(row):
    ...     s = 0.0
    ...     for j in range(row.shape[0]):
    ...         s += row[j]
    ...     return s
    >>> ".entry" in ptx(total, "float32", 1, [], ())  # doctest: +SKIP
    True
    """
    specs = tuple((np.dtype(d), int(n)) for d, n in specs)
    pyfunc = _python_kernel(fn, row_ndim, tuple(aligned), full)
    text, _ = cuda.compile_ptx(pyfunc, signature(dtype, row_ndim, specs, full), cc=cc)
    return text
