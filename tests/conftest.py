"""Shared fixtures: the backends that can actually run in this process."""

from __future__ import annotations

import os

import numpy as np
import pytest

from gpucheck.backends import availability

_STATUS = availability()
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def runnable_backends():
    """cpu always; cuda with a device; cudasim in a simulator session."""
    return [name for name in ("cpu", "cuda", "cudasim") if _STATUS[name][0]]


@pytest.fixture(params=runnable_backends())
def backend(request):
    """Every backend that can run here, one test per backend."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
