"""Several inputs: one flat point inside, the caller's structure at the boundary.

A check may be given one array, or a tuple, list or dict of arrays (the
parameters of a layer, say).  :func:`gpucheck.validate.inputs` flattens
them into ONE flat point, and an :class:`Inputs` keeps what is needed to
undo that: names, shapes, offsets and each input's array type.  The engine,
plan and judge see a single vector as before; only two places know there
were several inputs:

* the function boundary (:meth:`Inputs.wrap`): f is called with the
  structure rebuilt from views of the perturbed point, ``f(*xs)`` for a
  tuple or list and ``f(xs)`` for a dict, each array in its caller's type;
* the report (:meth:`Inputs.label`): flat indices become ``W1[3, 4]`` (or
  ``input 2[3, 4]`` for an unnamed tuple member) and every input gets its
  own verdict beside the overall one.

The engine is told one thing more, which input each entry belongs to
(:meth:`Inputs.groups`): gradients of different inputs may differ in scale
by orders of magnitude (a weight matrix and a small bias), and each input is
held to a resolution of its own max|g|, so that a 1% error in the small one
is not lost below a resolution set by the large one.

All inputs share one dtype: f is evaluated in that dtype, and the steps and
the error model follow from it.  Mixed float32/float64 inputs are rejected
with a message that says how to convert them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .arrays import NUMPY, to_engine
from .errors import GpuCheckError

__all__ = ["Inputs", "single"]

_PLAIN_KINDS = ("callable", "batched")


@dataclass(frozen=True)
class Inputs:
    """The structure of the checked inputs.

    Attributes
    ----------
    kind : {'array', 'tuple', 'list', 'dict'}
        One array, or a container of several.
    keys : tuple
        Dict keys, or positions for a tuple or list (``(None,)`` for one array).
    names : tuple of str
        How reports name each input: the dict key, ``'input 2'`` for a
        tuple or list member, ``''`` for a single array.
    shapes : tuple of tuple
        Shape of each input.
    offsets : tuple of int
        Where each input starts in the flat point.
    dtype : numpy.dtype
        The one dtype of all inputs.
    types : tuple of ArrayType
        The array type each input came in, which f receives.

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck import validate
    >>> inputs, point = validate.inputs({"W": np.zeros((2, 3)), "b": np.zeros(3)})
    >>> point.shape, inputs.names
    ((9,), ('W', 'b'))
    >>> inputs.entry(7)
    ('b', (1,))
    """

    kind: str
    keys: tuple
    names: tuple
    shapes: tuple
    offsets: tuple
    dtype: np.dtype
    types: tuple

    @property
    def single(self) -> bool:
        """One array: the point keeps its shape and f gets it as it is."""
        return self.kind == "array"

    @property
    def size(self) -> int:
        """Number of entries over all inputs."""
        return self.offsets[-1] + _size(self.shapes[-1])

    @property
    def point_shape(self) -> tuple:
        """Shape of the point the engine works on."""
        return self.shapes[0] if self.single else (self.size,)

    @property
    def numpy_only(self) -> bool:
        """Whether every input is a NumPy array (f needs no conversion)."""
        return all(t.is_numpy for t in self.types)

    # ------------------------------------------------------------ boundary

    def views(self, arr, lead: int = 0) -> list:
        """Each input as a view of ``arr`` (``lead`` leading batch axes, then the point).

        Examples
        --------
        >>> import numpy as np
        >>> from gpucheck import validate
        >>> inputs, point = validate.inputs((np.zeros((2, 2)), np.ones(1)))
        >>> [v.shape for v in inputs.views(np.arange(10.0).reshape(2, 5), lead=1)]
        [(2, 2, 2), (2, 1)]
        """
        if self.single:
            return [arr]
        head = tuple(arr.shape[:lead])
        flat = arr.reshape(head + (self.size,))
        return [flat[..., o:o + _size(s)].reshape(head + tuple(s))
                for o, s in zip(self.offsets, self.shapes)]

    def pack(self, members):
        """Members in input order back into the caller's structure."""
        if self.single:
            return members[0]
        if self.kind == "dict":
            return dict(zip(self.keys, members))
        return tuple(members) if self.kind == "tuple" else list(members)

    def rebuild(self, arr, lead: int = 0):
        """The caller's structure at ``arr``: views in the caller's array types."""
        return self.pack([t.to_caller(v) for t, v in zip(self.types, self.views(arr, lead))])

    def arguments(self, arr, lead: int = 0) -> tuple:
        """The positional arguments f takes at ``arr``, in the caller's array types."""
        packed = self.rebuild(arr, lead)
        return (packed,) if self.kind in ("array", "dict") else tuple(packed)

    def call(self, fn, arr, *extra, lead: int = 0):
        """``fn`` called the way f is: ``fn(x)``, ``fn(*xs)`` or ``fn(xs)``, then ``extra``."""
        return fn(*self.arguments(arr, lead), *extra)

    def wrap(self, func, backend: str):
        """The :class:`~gpucheck.functions.Function` the backends run.

        It takes gpucheck's flat buffers and calls the user's function with
        the structure rebuilt, in the caller's array types; its result comes
        back as NumPy (CuPy on a device).  One NumPy array needs nothing.
        """
        if self.single and self.numpy_only:
            return func
        if func.kind in ("kernel", "rowwise", "layer") and self.single:
            # compiled and built-in forms read gpucheck's NumPy copy: the caller's
            # array type does not matter to them
            return func
        if func.kind == "kernel":
            from .kernel_inputs import wrap_kernel

            return wrap_kernel(func, self, backend)
        if func.kind not in _PLAIN_KINDS:
            raise GpuCheckError(
                f"`f` of kind {func.kind!r} takes one array x; several inputs are "
                "supported for plain, batched and kernel functions")
        fn, lead = func.fn, (1 if func.kind == "batched" else 0)

        def at_boundary(buf):
            return to_engine(self.call(fn, buf, lead=lead), buf)

        return dataclasses.replace(func, fn=at_boundary)

    # -------------------------------------------------------------- report

    def entry(self, flat_index: int) -> tuple:
        """``(name, index within that input)`` of an entry of the flat point."""
        k = int(np.searchsorted(self.offsets, flat_index, side="right")) - 1
        local = int(flat_index) - self.offsets[k]
        shape = self.shapes[k]
        index = tuple(int(i) for i in np.unravel_index(local, shape)) if shape else ()
        return self.names[k], index

    def split(self, arr, lead: int = 0) -> dict:
        """``{name: array}``: a per-entry array of the point cut into the inputs.

        Examples
        --------
        >>> import numpy as np
        >>> from gpucheck import validate
        >>> inputs, _ = validate.inputs({"W": np.zeros((2, 2)), "b": np.zeros(2)})
        >>> {k: v.tolist() for k, v in inputs.split(np.arange(6.0)).items()}
        {'W': [[0.0, 1.0], [2.0, 3.0]], 'b': [4.0, 5.0]}
        """
        arr = np.asarray(arr)
        return dict(zip(self.names or ("",), self.views(arr, lead)))

    def unflatten(self, arr):
        """A float64 array of the point back into the caller's structure (NumPy members)."""
        return self.pack([np.array(v) for v in self.views(np.asarray(arr))])

    def label(self, result, cotangents: int = 0):
        """``result`` with its worst entries named and a verdict per input.

        ``cotangents`` > 0 marks a result over ``cotangents`` stacked copies
        of the point (:func:`gpucheck.check_vjp`): the leading index of every
        entry is the cotangent.
        """
        from .result import InputVerdict

        if self.single and not cotangents:
            return result
        lead = 1 if cotangents else 0
        worst = tuple(self._name_entry(w, lead) for w in result.worst)
        changes = {"worst": worst, "cotangents": int(cotangents)}
        status = self.split(result.element_status, lead)
        numeric = self.split(result.numeric, lead)
        analytic = self.split(result.analytic, lead)
        verdicts, hints = [], []
        # the engine judged each input at the resolution of its own max|g|
        # when it was told the inputs apart (one scale per input)
        scales = result.scales if len(result.scales) == len(self.names) and not cotangents \
            else (None,) * len(self.names)
        for name, shape, scale in zip(self.names, self.shapes, scales):
            st, n, a = status[name], numeric[name], analytic[name]
            failed = st == "fail"
            hint = _hint(n, a, failed, lead)
            verdicts.append(InputVerdict(
                name=name, shape=tuple(shape), status=_overall(st),
                discrepancy=_discrepancy(n, a), entries=int(st.size),
                n_failed=int(failed.sum()), n_inconclusive=int((st == "inconclusive").sum()),
                diagnosis=hint, scale=scale,
                resolution=None if scale is None else result.resolution * scale))
            if hint:
                hints.append(f"{name}: {hint}" if name else hint)
        if not self.single:
            changes["inputs"] = tuple(verdicts)
        # the engine's hint was found on the flat (or stacked) point, whose
        # indices and patterns mean nothing to the reader: use the inputs'
        changes["diagnosis"] = "; ".join(hints) if result.status == "fail" else ""
        return dataclasses.replace(result, **changes)

    def groups(self) -> np.ndarray:
        """The input each entry of the flat point belongs to (int64, the point's size).

        Examples
        --------
        >>> import numpy as np
        >>> from gpucheck import validate
        >>> inputs, _ = validate.inputs((np.zeros((2, 2)), np.zeros(3)))
        >>> inputs.groups().tolist()
        [0, 0, 0, 0, 1, 1, 1]
        """
        return np.repeat(np.arange(len(self.shapes), dtype=np.int64),
                         [_size(s) for s in self.shapes])

    def _name_entry(self, w, lead: int):
        index = tuple(w.index)
        cot = None
        if lead:
            cot, index = index[0], index[1:]
        if self.single:
            return dataclasses.replace(w, index=index, cotangent=cot)
        name, local = self.entry(index[0])
        return dataclasses.replace(w, index=local, input=name, cotangent=cot)


def single(x: np.ndarray, array_type=NUMPY) -> Inputs:
    """The :class:`Inputs` of one array."""
    return Inputs("array", (None,), ("",), (tuple(x.shape),), (0,), x.dtype, (array_type,))


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def _overall(status) -> str:
    if np.any(status == "fail"):
        return "fail"
    if np.any(status == "inconclusive"):
        return "inconclusive"
    return "pass"


def _discrepancy(n, a) -> float:
    from .engine import discrepancy

    return discrepancy(n, a)


def _hint(n, a, failed, lead: int) -> str:
    """The likely bug in one input; with stacked cotangents, read off the first that fails."""
    from .diagnose import diagnose

    if not failed.any():
        return ""
    if lead:
        j = int(np.flatnonzero(failed.reshape(failed.shape[0], -1).any(axis=1))[0])
        n, a, failed = n[j], a[j], failed[j]
    return diagnose(n, a, failed)
