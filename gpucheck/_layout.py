"""Find ``gpucheck.kernels`` in a source checkout.

The CUDA kernels live in the top-level ``kernels/`` folder of the
repository and are installed as ``gpucheck.kernels`` (a package-dir mapping
in pyproject.toml).  A source tree used directly has no ``gpucheck/kernels``:
with ``PYTHONPATH=.``, or when the checkout shadows an installed copy
(``pip install .`` then ``python -m pytest`` in the checkout).  Then the
kernels of *this* tree are registered under that name, so the library and
its kernels always come from the same place.
"""

from __future__ import annotations

import importlib.util
import os
import sys

__all__ = ["register_source_kernels"]


def register_source_kernels(package: str, package_dir: str):
    """Register ``<root>/kernels`` as ``<package>.kernels`` when the layout calls for it.

    Returns the module registered, or None when nothing had to be done (an
    installed copy, or a package that already has its kernels).
    """
    name = f"{package}.kernels"
    if name in sys.modules or os.path.isdir(os.path.join(package_dir, "kernels")):
        return None
    root = os.path.dirname(os.path.abspath(package_dir))
    src = os.path.join(root, "kernels")
    init = os.path.join(src, "__init__.py")
    if not (os.path.isfile(init) and os.path.isfile(os.path.join(root, "pyproject.toml"))):
        return None
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[src])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
