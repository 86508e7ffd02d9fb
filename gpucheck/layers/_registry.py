"""Build a layer by name from named arrays: what a command line needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import GpuCheckError
from ._attention import attention
from ._conv import conv2d
from ._dense import dense
from ._elementwise import layer_norm, logsumexp, tanh_sum
from ._losses import mse, softmax_cross_entropy

__all__ = ["LayerInfo", "REGISTRY", "build"]


@dataclass(frozen=True)
class LayerInfo:
    """What :func:`build` needs to make one layer.

    Attributes
    ----------
    name : str
    constructor : callable
    groups : tuple of (tuple of str, int)
        Array arguments: from each group of names exactly that many must be
        given (``(("target",), 1)``: a target is required;
        ``(("q", "k", "v"), 2)``: two of them, x is the third).
    optional : tuple of str
        Array arguments that may be given.
    options : tuple of str
        Non-array keyword options (numbers, strings).
    x : str
        What x is, in words.
    summary : str
    """

    name: str
    constructor: Callable
    groups: tuple
    optional: tuple
    options: tuple
    x: str
    summary: str

    @property
    def arrays(self) -> tuple:
        """Every array argument name."""
        return tuple(n for names, _ in self.groups for n in names) + self.optional

    def usage(self) -> str:
        """One line: which arrays and options this layer takes."""
        parts = []
        for names, count in self.groups:
            if len(names) == 1:
                parts.append(names[0])
            elif count == 1:
                parts.append("one of " + "|".join(names))
            else:
                parts.append(f"{count} of " + "|".join(names))
        opt = [f"[{n}]" for n in self.optional + self.options]
        return f"{self.name}: x = {self.x}; arrays {', '.join(parts)} {' '.join(opt)}".rstrip()


def _info(name, constructor, groups, optional, options, x, summary):
    return LayerInfo(name, constructor, groups, optional, options, x, summary)


#: Every built-in layer by name.
REGISTRY = {info.name: info for info in (
    _info("mse", mse, ((("target",), 1),), (), ("reduction", "scale"),
          "predictions, the target's shape", "squared error against a target"),
    _info("softmax_cross_entropy", softmax_cross_entropy, ((("labels",), 1),), (),
          ("reduction", "scale"), "logits (B, C)", "softmax cross-entropy against labels"),
    _info("dense", dense, ((("inputs",), 1), (("target", "labels"), 1)), ("bias",),
          ("reduction", "scale"), "weights (n_in, n_out)",
          "dense layer inputs @ W + bias under a squared error or softmax cross-entropy"),
    _info("layer_norm", layer_norm, ((("weights",), 1),), (), ("eps",), "any array",
          "layer norm over the last axis, contracted with weights"),
    _info("conv2d", conv2d, ((("weight", "inputs"), 1), (("cotangent", "target"), 1)), ("bias",),
          ("stride", "padding", "reduction", "scale"),
          "the input (N, C, H, W) given `weight`, or the weight (O, C, KH, KW) given `inputs`",
          "2-D convolution (NCHW) under a cotangent or a squared error"),
    _info("attention", attention, ((("q", "k", "v"), 2), (("cotangent", "target"), 1)), (),
          ("softmax_scale", "reduction", "scale"), "whichever of q, k, v is not given",
          "scaled dot-product attention under a cotangent or a squared error"),
    _info("tanh_sum", tanh_sum, ((("weights",), 1),), (), (), "any array", "sum(w * tanh(x))"),
    _info("logsumexp", logsumexp, (), (), ("scale",), "any array", "log(sum(exp(x)))"),
)}


def build(name: str, **kwargs):
    """Build the layer ``name`` from named arrays and options.

    Parameters
    ----------
    name : str
        A key of :data:`REGISTRY`.
    **kwargs
        The layer's arrays (as :class:`LayerInfo` lists them) and options.
        ``delta=False`` is accepted by every layer.

    Returns
    -------
    Layer

    Raises
    ------
    GpuCheckError
        For an unknown name, a missing or extra array, or an unknown option.

    Examples
    --------
    >>> import numpy as np
    >>> from gpucheck.layers import build, REGISTRY
    >>> layer = build("dense", inputs=np.ones((4, 3)), target=np.zeros((4, 2)))
    >>> layer.name, layer.shape
    ('dense', (3, 2))
    >>> REGISTRY["attention"].usage()
    'attention: x = whichever of q, k, v is not given; arrays 2 of q|k|v, one of cotangent|target [softmax_scale] [reduction] [scale]'
    """
    info = REGISTRY.get(name) if isinstance(name, str) else None
    if info is None:
        raise GpuCheckError(f"`layer` must be one of {', '.join(repr(n) for n in REGISTRY)}, "
                            f"got {name!r}")
    given = {k for k, v in kwargs.items() if v is not None}
    for names, count in info.groups:
        have = [n for n in names if n in given]
        if len(have) != count:
            if len(names) == 1:
                want = names[0]
            else:
                want = f"{'one' if count == 1 else count} of {', '.join(names)}"
            got = ", ".join(have) if have else "none"
            raise GpuCheckError(f"layer {name!r} needs {want} (got {got}): {info.usage()}")
    allowed = set(info.arrays) | set(info.options) | {"delta"}
    extra = sorted(given - allowed)
    if extra:
        raise GpuCheckError(f"layer {name!r} does not take {', '.join(extra)}: {info.usage()}")
    return info.constructor(**{k: v for k, v in kwargs.items() if v is not None})
