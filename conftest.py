"""Root conftest: the docstring examples of the optional adapters need their library.

``--doctest-modules`` runs every public example; the ones in
gpucheck/torch.py and gpucheck/jax.py are skipped, visibly and with the
package to install, where PyTorch or JAX is missing.
"""

from __future__ import annotations

import importlib.util

import pytest

_NEEDS = {"torch.py": "torch", "jax.py": "jax"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not isinstance(item, pytest.DoctestItem) or item.path.parent.name != "gpucheck":
            continue
        module = _NEEDS.get(item.path.name)
        if module and importlib.util.find_spec(module) is None:
            item.add_marker(pytest.mark.skip(
                reason=f"needs {module}: pip install {module} (or the {module} extra)"))
