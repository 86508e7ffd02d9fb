"""pytest plugin: the ``gradcheck`` fixture, registered through the ``pytest11`` entry point.

Installed with gpucheck-grad, it is loaded by every pytest run in that
environment, so loading it costs only ``import gpucheck`` (NumPy; numba,
CUDA, torch and JAX load when a check needs them)::

    def test_my_layer(gradcheck):
        gradcheck(loss, x, grad)              # assert_gradient
        gradcheck.vjp(layer, x, backward)     # assert_vjp

Options (on the command line or in ``addopts``):

``--gpucheck-backend``
    the default ``backend`` of the fixture's checks (default ``auto``);
``--gpucheck-inconclusive``
    what an inconclusive check does: ``fail`` (default), ``skip`` or ``pass``.

Without installing gpucheck-grad, load it with ``-p gpucheck.pytest_plugin``.
"""

from __future__ import annotations

import pytest

__all__ = ["GradCheck", "gradcheck", "pytest_addoption"]

_BACKENDS = ("auto", "cpu", "cuda", "cudasim")
_INCONCLUSIVE = ("fail", "skip", "pass")


def pytest_addoption(parser):
    group = parser.getgroup("gpucheck", "gradient checks (gpucheck)")
    group.addoption("--gpucheck-backend", choices=_BACKENDS, default="auto",
                    help="backend of the gradcheck fixture's checks (default: auto)")
    group.addoption("--gpucheck-inconclusive", choices=_INCONCLUSIVE, default="fail",
                    help="what an inconclusive gradcheck does: fail (default), skip or pass")


class GradCheck:
    """The ``gradcheck`` fixture: gradient assertions with this session's defaults.

    Calling it is :func:`gpucheck.testing.assert_gradient`; ``vjp`` and
    ``jvp`` are :func:`~gpucheck.testing.assert_vjp` and
    :func:`~gpucheck.testing.assert_jvp`.  Keyword options given to a call
    override the session's ``backend`` and ``inconclusive``.

    Examples
    --------
    >>> import numpy as np
    >>> check = GradCheck(backend="cpu", inconclusive="fail")
    >>> check(lambda v: np.sum(v ** 2), np.ones(3), 2 * np.ones(3)).passed
    True
    """

    def __init__(self, *, backend: str = "auto", inconclusive: str = "fail"):
        self.defaults = {"backend": backend, "inconclusive": inconclusive}

    def __call__(self, f, x, grad, **options):
        __tracebackhide__ = True  # noqa: F841
        from .testing import assert_gradient

        return assert_gradient(f, x, grad, **{**self.defaults, **options})

    def vjp(self, f, x, vjp, **options):
        """Assert a vector-Jacobian product (:func:`gpucheck.testing.assert_vjp`)."""
        __tracebackhide__ = True  # noqa: F841
        from .testing import assert_vjp

        return assert_vjp(f, x, vjp, **{**self.defaults, **options})

    def jvp(self, f, x, jvp, **options):
        """Assert a Jacobian-vector product (:func:`gpucheck.testing.assert_jvp`)."""
        __tracebackhide__ = True  # noqa: F841
        from .testing import assert_jvp

        return assert_jvp(f, x, jvp, **{**self.defaults, **options})


@pytest.fixture
def gradcheck(request) -> GradCheck:
    """Assert gradients in a test: ``gradcheck(f, x, grad)``, ``gradcheck.vjp(f, x, vjp)``."""
    config = request.config
    return GradCheck(backend=config.getoption("--gpucheck-backend", "auto"),
                     inconclusive=config.getoption("--gpucheck-inconclusive", "fail"))
