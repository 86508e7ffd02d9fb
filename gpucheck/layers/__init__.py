"""Built-in layers: a forward, its reference gradient, and a delta evaluator.

A user checks the gradient of their own implementation (saved from C++,
CUDA or NumPy) against these forwards.  Each constructor returns a
:class:`Layer`, accepted wherever f is::

    check_gradient(gpucheck.layers.mse(T), X, G)

Such a check evaluates every perturbed point through the layer's delta
evaluator: only what the perturbation changes is computed (one term of an
MSE, one output column of a dense layer, one row's statistics of a layer
norm), in float64 against intermediates computed once at x, on the
``cpu``, ``cuda`` and ``cudasim`` backends.  A full check then costs O(N)
or O(N * batch) instead of O(N**2).  ``delta=False`` (or
:meth:`Layer.full`) evaluates the full forward at every point instead.

The values of f are those of the forward at points of x's dtype; the delta
path computes them more precisely (float64) than a float32 forward would,
and the verdict measures f's noise on the same path, so it adapts.

:data:`REGISTRY` and :func:`build` make a layer from a name and named
arrays, for the command line.

Examples
--------
>>> import numpy as np, gpucheck
>>> import gpucheck.layers
>>> T = np.zeros((3, 4), np.float32); X = np.ones((3, 4), np.float32)
>>> layer = gpucheck.layers.mse(T)
>>> gpucheck.check_gradient(layer, X, layer.grad(X), backend="cpu").status
'pass'
"""

from ._attention import attention
from ._base import REDUCTIONS, Delta, Layer
from ._conv import conv2d
from ._dense import dense
from ._elementwise import layer_norm, logsumexp, tanh_sum
from ._losses import mse, softmax_cross_entropy
from ._registry import REGISTRY, LayerInfo, build

__all__ = ["Layer", "Delta", "LayerInfo", "REGISTRY", "REDUCTIONS", "LAYERS", "build", "mse",
           "softmax_cross_entropy", "dense", "layer_norm", "conv2d", "attention", "tanh_sum",
           "logsumexp"]

#: The layers with a full-forward kernel in :mod:`gpucheck.kernels.builtin`
#: (``gpucheck bench --layer``); ``check --layer`` and ``audit --layer`` build
#: every name in :data:`REGISTRY` with :func:`build`.
LAYERS = ("mse", "dense")
