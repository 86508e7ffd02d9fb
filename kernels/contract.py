"""CUDA kernels built from a user function of the kernel contract.

A kernel-contract function ``fn(x, *params) -> float`` evaluates f for one
sample.  It becomes a device function (``inline="always"``, which also lets
it compile to PTX with no device present) called from a generated kernel:

* ``G`` threads each own one perturbed copy of x.  The copies are stored
  *interleaved*, as an array of shape ``(*x.shape, G)`` whose element
  ``(..., g)`` belongs to thread ``g``: when the threads of a warp read the
  same element of their own copies the addresses are adjacent, so global
  loads coalesce (the backend makes G a multiple of 32 so that a warp's
  loads start on a 128-byte line).  Thread ``g`` hands ``fn`` the strided
  view ``scratch[..., g]``, which has x's shape.
* :func:`fill` copies x into every copy once (through a 2-D view).  The
  evaluation kernel then loops over points ``p = start + g, start + g + G,
  ...``: perturb one element, call ``fn``, write f as float64, restore the
  element.  The copies are back to x after every launch, so a check may be
  split into any number of launches without refilling, and any thread may
  take any point.  :func:`verify` checks that at the end.

Accumulation: every value of f is stored as float64, and the differences
``f(x + h) - f(x - h)`` are formed on the host in float64, so the only
cancellation left is the one in f itself.  What reduces it is summing in
float64 inside ``fn`` (start the accumulator as ``0.0``: numba then adds
float32 terms in float64; on a device this costs FP64 throughput, which is
half of FP32 on H100-class parts and far less on consumer ones).  In the
simulator ``fn`` runs as Python, where NumPy's scalar rules keep
``0.0 + float32`` in float32, so float32 results there differ from a
device or the CPU loop by float32 rounding.

Variants: numba does not prune a branch on ``x.ndim`` inside an inlined
CUDA device function, so a function may name loops specialised by number
of dimensions in a ``cuda_variants`` dict (``{ndim: function}``); the one
for x's ndim is compiled instead (see :func:`gpucheck.kernels.builtin.mse`).

Global arrays: numba freezes a global NumPy array that ``fn`` reads into
the kernel as constant data, and a CUDA module holds at most 64 KB of it.
:func:`global_arrays` lists what ``fn`` reads so the backend can say "pass
it as a param" before ptxas refuses the kernel.

Kernels need a fixed number of arguments, so the evaluation kernel's source
is generated for the number of dimensions of x and the number of params.
Compiled kernels are cached per (function, dtype, ndim, param types) in the
process; on a device the library's own kernels are also cached on disk
(numba's cache), and so are evaluation kernels whose inlined code
:mod:`gpucheck.kernels.diskcache` can fingerprint.
"""

from __future__ import annotations

import dis
import re
import threading
import time
import types as _pytypes
from dataclasses import dataclass

import numpy as np

from gpucheck._cuda import SIMULATOR, cuda, from_dtype, types

__all__ = [
    "CONSTANT_BYTES",
    "KernelResources",
    "device_function",
    "evaluate_source",
    "fill",
    "verify",
    "probe",
    "verify_signature",
    "compile_fill",
    "compile_evaluate",
    "compile_probe",
    "evaluate_signature",
    "fill_signature",
    "probe_signature",
    "global_arrays",
    "variant",
    "ptx",
    "sass",
    "link_sass",
    "library_resources",
]

#: Bytes of constant data (frozen global arrays) one CUDA module may hold.
CONSTANT_BYTES = 64 * 1024

_LOCK = threading.RLock()
_DEVICE_FUNCS: dict = {}
_EVAL_CACHE: dict = {}
_FILL_CACHE: dict = {}
_PROBE: list = []


def fill(xflat, sflat):
    """Copy ``xflat`` (N,) into every column of ``sflat`` (N, G).

    One block per row at a time and the threads of a block along the row:
    consecutive threads write consecutive addresses, and no thread divides
    a flat index (a 64-bit division is a long instruction sequence on a GPU).
    """
    n = sflat.shape[0]
    copies = sflat.shape[1]
    j = cuda.blockIdx.x
    while j < n:
        v = xflat[j]
        g = cuda.threadIdx.x
        while g < copies:
            sflat[j, g] = v
            g += cuda.blockDim.x
        j += cuda.gridDim.x


def verify(xflat, sflat, written):
    """Set ``written[0]`` when any column of ``sflat`` differs from ``xflat`` (NaN equals NaN)."""
    n = sflat.shape[0]
    copies = sflat.shape[1]
    j = cuda.blockIdx.x
    while j < n:
        v = xflat[j]
        g = cuda.threadIdx.x
        while g < copies:
            s = sflat[j, g]
            if s != v and not (s != s and v != v):
                written[0] = 1
            g += cuda.blockDim.x
        j += cuda.gridDim.x


def probe(out):
    """Write ``2 i + 1`` into ``out[i]``: the kernel :func:`device_status` launches.

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck.kernels import contract
    >>> out = np.zeros(4)
    >>> contract.compile_probe()[1, 4](out)  # doctest: +SKIP
    """
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = 2.0 * i + 1.0


_TEMPLATE = '''
def evaluate(scratch, xflat, idx, vals, out, start, stop{params}):
    g = cuda.grid(1)
    n_rows = scratch.shape[{ndim}]
    if g >= n_rows:
        return
    row = scratch[{colons}g]
    p = start + g
    while p < stop:
        j = idx[p]
{unravel}
        scratch[{index}g] = vals[p]
        out[p] = user_fn(row{params})
        scratch[{index}g] = xflat[j]
        p += n_rows
'''


def evaluate_source(ndim: int, nparams: int) -> str:
    """Source of the evaluation kernel for an ``ndim``-D x and ``nparams`` params.

    The kernel takes only the n-D scratch array and unravels the flat index
    itself (once per point): two views of one buffer passed as two arguments
    would be two separate copies in the simulator.
    """
    params = "".join(f", p{k}" for k in range(nparams))
    lines = ["        r = j"]
    for k in range(ndim - 1, 0, -1):
        lines.append(f"        i{k} = r % scratch.shape[{k}]")
        lines.append(f"        r = r // scratch.shape[{k}]")
    lines.append("        i0 = r")
    index = "".join(f"i{k}, " for k in range(ndim))
    return _TEMPLATE.format(params=params, ndim=ndim, colons=":, " * ndim,
                            unravel="\n".join(lines), index=index)


def _plain(fn):
    # A function already decorated with numba.njit carries its source here.
    return getattr(fn, "py_func", fn)


def variant(fn, ndim: int):
    """The function compiled for an ``ndim``-D x: ``fn.cuda_variants[ndim]`` or ``fn``.

    Examples
    --------
    >>> from gpucheck.kernels import builtin
    >>> variant(builtin.mse, 2) is builtin.mse_2d, variant(builtin.mse, 3) is builtin.mse
    (True, True)
    """
    table = getattr(fn, "cuda_variants", None) or getattr(_plain(fn), "cuda_variants", None)
    if isinstance(table, dict) and ndim in table:
        return table[ndim]
    return fn


def device_function(fn, ndim: int | None = None):
    """``fn`` (its variant for ``ndim``) as an always-inlined CUDA device function (cached)."""
    target = _plain(fn if ndim is None else variant(fn, ndim))
    with _LOCK:
        dev = _DEVICE_FUNCS.get(target)
        if dev is None:
            dev = _DEVICE_FUNCS[target] = cuda.jit(device=True, inline="always")(target)
        return dev


def global_arrays(fn, ndim: int | None = None) -> list:
    """The NumPy arrays ``fn`` reads as globals or closure cells, with their sizes.

    Functions ``fn`` calls (plain or numba-decorated) are followed too.
    Returns ``[(name, nbytes), ...]``, largest first.

    Examples
    --------
    >>> import numpy as np
    >>> TABLE = np.zeros(10)
    >>> def f(x):
    ...     return x[0] * TABLE[0]
    >>> global_arrays(f)
    [('TABLE', 80)]
    """
    found: dict = {}
    seen: set = set()

    def visit(func):
        func = _plain(func)
        code = getattr(func, "__code__", None)
        if code is None or id(func) in seen:
            return
        seen.add(id(func))
        scope = dict(getattr(func, "__globals__", {}))
        for name, cell in zip(code.co_freevars, getattr(func, "__closure__", None) or ()):
            try:
                scope[name] = cell.cell_contents
            except ValueError:  # an empty cell
                continue
        for name in _names(code):
            value = scope.get(name)
            if isinstance(value, np.ndarray):
                found[name] = max(found.get(name, 0), int(value.nbytes))
            elif isinstance(value, _pytypes.FunctionType) or hasattr(value, "py_func"):
                visit(value)

    visit(fn if ndim is None else variant(fn, ndim))
    return sorted(found.items(), key=lambda item: -item[1])


_LOADS = {"LOAD_GLOBAL", "LOAD_DEREF", "LOAD_CLASSDEREF", "LOAD_NAME", "LOAD_FROM_DICT_OR_DEREF",
          "LOAD_FROM_DICT_OR_GLOBALS"}


def _names(code) -> set:
    # Names read as globals or closure cells; attribute names (``x.shape``)
    # are in co_names too, but must not match a global of the same name.
    names = {ins.argval for ins in dis.get_instructions(code) if ins.opname in _LOADS}
    for const in code.co_consts:
        if isinstance(const, _pytypes.CodeType):
            names |= _names(const)
    return names


def _array(dtype, ndim: int, layout: str = "C"):
    return types.Array(from_dtype(np.dtype(dtype)), ndim, layout)


def fill_signature(dtype):
    """Argument types of :func:`fill` for x of ``dtype``."""
    return (_array(dtype, 1), _array(dtype, 2))


def verify_signature(dtype):
    """Argument types of :func:`verify` for x of ``dtype``."""
    return (_array(dtype, 1), _array(dtype, 2), _array(np.int64, 1))


def probe_signature():
    """Argument types of :func:`probe`."""
    return (_array(np.float64, 1),)


def evaluate_signature(dtype, ndim: int, param_specs):
    """Argument types of the evaluation kernel.

    ``param_specs`` is a sequence of ``(dtype, ndim)``, one per param.
    """
    head = (
        _array(dtype, ndim + 1),  # scratch, interleaved copies
        _array(dtype, 1),  # x, flat
        _array(np.int64, 1),  # idx
        _array(dtype, 1),  # vals
        _array(np.float64, 1),  # out
        types.int64,
        types.int64,
    )
    return head + tuple(_array(d, n) for d, n in param_specs)


def _python_kernel(fn, ndim: int, nparams: int):
    namespace = {"cuda": cuda, "user_fn": device_function(fn, ndim)}
    exec(compile(evaluate_source(ndim, nparams), "<gpucheck evaluate kernel>", "exec"), namespace)
    return namespace["evaluate"]


def _eager(pyfunc, argtypes, *, cache: bool = False):
    # On a device, compile now (with the signature) so the time can be
    # reported apart from the run; the simulator has nothing to compile.
    if SIMULATOR:
        return cuda.jit(pyfunc)
    sig = types.void(*argtypes)
    if cache:
        try:
            return cuda.jit(sig, cache=True)(pyfunc)
        except RuntimeError as err:
            # numba finds no writable cache folder (a read-only install and
            # home): compile in memory, as without a cache.
            if "cannot cache" not in str(err).lower():
                raise
    return cuda.jit(sig)(pyfunc)


def compile_fill(dtype):
    """The compiled :func:`fill` and :func:`verify` kernels for ``dtype``.

    Returns ``(fill, verify, seconds)``, seconds 0 when cached.
    """
    key = np.dtype(dtype).str
    with _LOCK:
        kerns = _FILL_CACHE.get(key)
        if kerns is not None:
            return kerns + (0.0,)
        t0 = time.perf_counter()
        kerns = _FILL_CACHE[key] = (_eager(fill, fill_signature(dtype), cache=True),
                                    _eager(verify, verify_signature(dtype), cache=True))
        return kerns + (time.perf_counter() - t0,)


def compile_probe():
    """The compiled :func:`probe` kernel (cached)."""
    with _LOCK:
        if not _PROBE:
            _PROBE.append(_eager(probe, probe_signature(), cache=True))
        return _PROBE[0]


def compile_evaluate(fn, dtype, ndim: int, param_specs):
    """The compiled evaluation kernel for ``fn`` and the seconds it took (0 if cached).

    Parameters
    ----------
    fn : callable
        The kernel-contract function ``fn(x, *params) -> float``.
    dtype : numpy.dtype
        dtype of x.
    ndim : int
        Number of dimensions of x (at least 1).
    param_specs : sequence of (dtype, int)
        dtype and ndim of each param.

    Examples
    --------
    >>> import numpy as np
    >>> def total(x):
    ...     s = 0.0
    ...     for i in range(x.shape[0]):
    ...         s += x[i]
    ...     return s
    >>> kern, seconds = compile_evaluate(total, np.float32, 1, ())  # doctest: +SKIP
    """
    specs = tuple((np.dtype(d).str, int(n)) for d, n in param_specs)
    key = (fn, np.dtype(dtype).str, int(ndim), specs)
    with _LOCK:
        kern = _EVAL_CACHE.get(key)
        if kern is not None:
            return kern, 0.0
        t0 = time.perf_counter()
        sig = evaluate_signature(dtype, ndim, specs)
        pyfunc = None
        if not SIMULATOR:
            from . import diskcache

            pyfunc = diskcache.kernel_from_file(fn, ndim, len(specs))
        kern = None
        if pyfunc is not None:
            try:
                kern = _eager(pyfunc, sig, cache=True)
            except Exception:  # noqa: BLE001 - a cache entry numba cannot load:
                pass  # compile in memory; a real compile error is raised below
        if kern is None:
            kern = _eager(_python_kernel(fn, ndim, len(specs)), sig)
        _EVAL_CACHE[key] = kern
        return kern, time.perf_counter() - t0


def ptx(fn, dtype, ndim: int, param_specs, *, cc=(9, 0)) -> dict:
    """Compile the kernels a check of ``fn`` launches to PTX; no device needed.

    Returns ``{"fill": ptx_text, "verify": ptx_text, "evaluate": ptx_text}``.  A function numba
    cannot type raises numba's typing error here, as it would on a device.

    Examples
    --------
    >>> def total(x):
    ...     s = 0.0
    ...     for i in range(x.shape[0]):
    ...         s += x[i]
    ...     return s
    >>> "evaluate" in ptx(total, "float64", 1, ())  # doctest: +SKIP
    True
    """
    specs = tuple((np.dtype(d), int(n)) for d, n in param_specs)
    pyfunc = _python_kernel(fn, ndim, len(specs))
    out = {}
    out["fill"], _ = cuda.compile_ptx(fill, fill_signature(dtype), cc=cc)
    out["verify"], _ = cuda.compile_ptx(verify, verify_signature(dtype), cc=cc)
    out["evaluate"], _ = cuda.compile_ptx(pyfunc, evaluate_signature(dtype, ndim, specs), cc=cc)
    return out


@dataclass(frozen=True)
class KernelResources:
    """What ptxas reports for one kernel linked to machine code (SASS).

    Attributes
    ----------
    registers : int
        Registers per thread.
    spill_stores, spill_loads : int
        Bytes spilled to local memory per thread (0 for a kernel that fits).
    stack : int
        Stack frame bytes per thread.
    cubin_bytes : int
        Size of the linked cubin.
    """

    registers: int
    spill_stores: int
    spill_loads: int
    stack: int
    cubin_bytes: int

    def to_dict(self) -> dict:
        return {"registers": self.registers, "spill_stores": self.spill_stores,
                "spill_loads": self.spill_loads, "stack": self.stack,
                "cubin_bytes": self.cubin_bytes}

    def __str__(self) -> str:
        return (f"{self.registers} registers, {self.spill_stores} B spill stores, "
                f"{self.spill_loads} B spill loads, {self.stack} B stack")


_REGS = re.compile(r"Used (\d+) registers")
_SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def link_sass(ptx_text: str, *, cc=(9, 0), name: str = "kernel") -> KernelResources:
    """Link one kernel's PTX to a cubin with nvJitLink (ptxas inside); no device needed.

    This is the step a device runs when it loads a kernel, through the same
    library (``cuda.core``'s linker over nvJitLink), so an error ptxas would
    raise there (for instance too much constant data) is raised here, with
    the linker's log in the message.

    Examples
    --------
    >>> from gpucheck.kernels import builtin
    >>> text = ptx(builtin.mse, "float32", 2, [("float32", 2)])["evaluate"]  # doctest: +SKIP
    >>> link_sass(text).spill_stores  # doctest: +SKIP
    0
    """
    from cuda.core import Linker, LinkerOptions, ObjectCode

    obj = ObjectCode.from_ptx(ptx_text.encode(), name=name)
    linker = Linker(obj, options=LinkerOptions(arch=f"sm_{cc[0]}{cc[1]}", verbose=True))
    try:
        cubin = linker.link("cubin")
        log = linker.get_info_log() or ""
    finally:
        linker.close()
    regs = _REGS.search(log)
    spills = _SPILLS.search(log)
    if regs is None or spills is None:
        raise RuntimeError(f"no ptxas resource report for {name} in the linker log:\n{log}")
    return KernelResources(int(regs.group(1)), int(spills.group(2)), int(spills.group(3)),
                           int(spills.group(1)), len(cubin.code))


def sass(fn, dtype, ndim: int, param_specs, *, cc=(9, 0)) -> dict:
    """Link the kernels a check of ``fn`` launches to SASS; ``{kernel: KernelResources}``.

    Examples
    --------
    >>> def total(x):
    ...     s = 0.0
    ...     for i in range(x.shape[0]):
    ...         s += x[i]
    ...     return s
    >>> sass(total, "float64", 1, ())["evaluate"].spill_stores  # doctest: +SKIP
    0
    """
    return {kind: link_sass(text, cc=cc, name=kind)
            for kind, text in ptx(fn, dtype, ndim, param_specs, cc=cc).items()}


def library_resources(*, cc=(9, 0)) -> dict:
    """Registers and spills of every kernel the library itself launches, linked to SASS.

    The fill, verify and probe kernels, and the evaluation kernels of the
    built-in losses (:mod:`gpucheck.kernels.builtin`) for the shapes the
    benchmarks and layers use, in float32 and float64.  Returns
    ``{name: KernelResources}``; no device needed.

    Examples
    --------
    >>> table = library_resources()  # doctest: +SKIP
    >>> all(r.spill_stores == 0 for r in table.values())  # doctest: +SKIP
    True
    """
    from . import builtin

    out = {}
    probe_ptx, _ = cuda.compile_ptx(probe, probe_signature(), cc=cc)
    out["probe"] = link_sass(probe_ptx, cc=cc, name="probe")
    for dtype in ("float32", "float64"):
        text, _ = cuda.compile_ptx(fill, fill_signature(dtype), cc=cc)
        out[f"fill {dtype}"] = link_sass(text, cc=cc, name="fill")
        text, _ = cuda.compile_ptx(verify, verify_signature(dtype), cc=cc)
        out[f"verify {dtype}"] = link_sass(text, cc=cc, name="verify")
        for label, fn, ndim, params in (("mse 1-D", builtin.mse, 1, [(dtype, 1)]),
                                        ("mse 2-D", builtin.mse, 2, [(dtype, 2)]),
                                        ("mse 3-D", builtin.mse, 3, [(dtype, 3)]),
                                        ("dense_mse", builtin.dense_mse, 2, [(dtype, 2)] * 2)):
            specs = tuple((np.dtype(d), n) for d, n in params)
            text, _ = cuda.compile_ptx(_python_kernel(fn, ndim, len(specs)),
                                       evaluate_signature(dtype, ndim, specs), cc=cc)
            out[f"evaluate {label} {dtype}"] = link_sass(text, cc=cc, name=label)
    return out
