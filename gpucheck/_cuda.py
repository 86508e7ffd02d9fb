"""The one place gpucheck imports numba's CUDA target.

numba-cuda is in maintenance mode; when its successor arrives, changing the
import below is the whole migration.  Importing this module is what loads
the CUDA target, so only :mod:`gpucheck.backends.cuda` and the modules in
``gpucheck.kernels`` import it, and only when a CUDA backend is used:
``import gpucheck`` never does.

Whether kernels run on a device or in numba's simulator is decided by the
environment variable ``NUMBA_ENABLE_CUDASIM=1`` when numba is first
imported; :data:`SIMULATOR` records which.
"""

from __future__ import annotations

import numpy as _np

# numba-cuda 0.30 registers a typing overload for ``np.row_stack`` while its
# typing context loads (at the first kernel compile), and NumPy 2.5 removed
# that alias of ``np.vstack``: every compile then fails with an
# AttributeError.  numba-cuda will not be fixed (maintenance mode), and GPU
# images ship NumPy 2.5, so give the name back; it is what NumPy < 2.5 had.
if not hasattr(_np, "row_stack"):
    _np.row_stack = _np.vstack

from numba import config as _config  # noqa: E402
from numba import cuda  # noqa: E402,F401  (re-exported: the single import site)
from numba import from_dtype, types  # noqa: E402,F401  (signatures for eager and PTX compiles)

__all__ = ["cuda", "types", "from_dtype", "SIMULATOR"]

#: True when this process runs CUDA kernels in numba's simulator.
SIMULATOR = bool(getattr(_config, "ENABLE_CUDASIM", False))
