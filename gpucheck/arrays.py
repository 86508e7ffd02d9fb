"""The caller's array type: f receives arrays of the kind x came in.

gpucheck perturbs NumPy arrays on the host (CuPy arrays on a device); a
function written for torch or JAX cannot take those.  :func:`array_type`
records what an input was (library and device), and :class:`ArrayType`
converts gpucheck's buffers to that type right before f is called and f's
result back right after, so the engine never sees anything but NumPy or
CuPy:

* NumPy: no conversion.  (On the ``cuda`` backend a batched f receives
  CuPy arrays, as it always has: write it against the array API.)
* CuPy: host buffers are copied to the device; device buffers pass as they are.
* torch: zero-copy in both directions where the two sides share a device
  (``torch.from_numpy``, DLPack), else one copy to the tensor's device.
* JAX: a copy, because JAX arrays are immutable and gpucheck reuses its
  buffers; on a GPU the copy stays on the device (DLPack).

The libraries are imported only when an array of theirs is seen.  Results
(gradients, tolerances, reports) are always NumPy, whatever came in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ArrayType", "NUMPY", "array_type", "library_of", "to_engine"]


def library_of(value) -> str:
    """'numpy', 'cupy', 'torch', 'jax' or 'other', without importing any of them.

    Examples
    --------
    >>> import numpy as np
    >>> library_of(np.zeros(2)), library_of([1.0])
    ('numpy', 'other')
    """
    if isinstance(value, np.ndarray):
        return "numpy"
    root = type(value).__module__.split(".", 1)[0]
    if root == "cupy":
        return "cupy"
    if root == "torch" and hasattr(value, "detach"):
        return "torch"
    if root in ("jax", "jaxlib") and hasattr(value, "devices"):
        return "jax"
    return "other"


@dataclass(frozen=True)
class ArrayType:
    """An array library and device to hand f its arrays in.

    Attributes
    ----------
    library : str
        'numpy', 'cupy', 'torch' or 'jax'.
    device : object
        The torch device or JAX device of the caller's array (None for
        NumPy and CuPy).
    """

    library: str = "numpy"
    device: object = None

    @property
    def is_numpy(self) -> bool:
        """True when f takes gpucheck's buffers as they are."""
        return self.library == "numpy"

    def to_caller(self, a):
        """Convert a NumPy (host) or CuPy (device) buffer to this type.

        Examples
        --------
        >>> import numpy as np
        >>> ArrayType().to_caller(np.ones(2)).tolist()
        [1.0, 1.0]
        """
        if self.library == "numpy":
            return a
        if isinstance(a, np.generic):
            a = np.asarray(a)
        on_host = isinstance(a, np.ndarray)
        if self.library == "torch":
            import torch

            if on_host:
                t = torch.from_numpy(a)
                return t if self.device is None or self.device.type == "cpu" else t.to(self.device)
            t = torch.from_dlpack(a)
            return t if t.device == self.device else t.to(self.device)
        if self.library == "jax":
            import jax

            if not on_host and getattr(self.device, "platform", "cpu") != "cpu":
                return jax.dlpack.from_dlpack(a, device=self.device, copy=True)
            return jax.device_put(np.array(a.get() if not on_host else a, copy=True), self.device)
        if self.library == "cupy":
            import cupy

            return cupy.asarray(a)
        return a


NUMPY = ArrayType()


def array_type(value) -> ArrayType:
    """The :class:`ArrayType` an input came in.

    Examples
    --------
    >>> import numpy as np
    >>> array_type(np.zeros(3)).library
    'numpy'
    """
    lib = library_of(value)
    if lib == "torch":
        return ArrayType("torch", value.device)
    if lib == "jax":
        devices = value.devices()
        return ArrayType("jax", next(iter(devices)) if len(devices) == 1 else None)
    if lib == "cupy":
        return ArrayType("cupy")
    return NUMPY


def to_engine(value, like):
    """Bring f's result back to the array library of the buffer f was built from.

    ``like`` is that buffer: a NumPy array on the host, a CuPy array on a
    device.  NumPy and CuPy results, and plain numbers, pass unchanged (the
    backends check their shape and type).

    Examples
    --------
    >>> import numpy as np
    >>> to_engine(2.5, np.zeros(1))
    2.5
    """
    lib = library_of(value)
    host = isinstance(like, np.ndarray)
    if lib == "torch":
        t = _widen(value.detach())
        if host or t.device.type == "cpu":
            return t.cpu().numpy() if host else _cupy().asarray(t.cpu().numpy())
        return _cupy().from_dlpack(t)
    if lib == "jax":
        if host or next(iter(value.devices())).platform == "cpu":
            out = np.asarray(value)
            return out if host else _cupy().asarray(out)
        return _cupy().from_dlpack(value)
    return value


def _widen(t):
    import torch

    # NumPy has no bfloat16; both half types widen to float32 exactly
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def _cupy():
    import cupy

    return cupy
