"""Every ```python example in README.md runs, as written.

Examples that import torch, JAX, Dask or dask-cuda skip, with the package to
install, where it is missing.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def _title(i, code):
    first = next((ln for ln in code.splitlines() if ln.strip() and not ln.startswith("import")), "")
    return f"{i}: {first.strip()[:40]}"


@pytest.mark.parametrize("code", BLOCKS, ids=[_title(i, c) for i, c in enumerate(BLOCKS)])
def test_readme_example_runs(code, tmp_path, monkeypatch):
    for lib in ("torch", "jax", "dask", "dask_cuda"):
        if re.search(rf"^import {lib}\b|^from {lib}\b|^import gpucheck\.{lib}\b", code, flags=re.M) \
                and importlib.util.find_spec(lib) is None:
            pytest.skip(f"needs {lib}: pip install {lib}")
    if "plot(" in code and importlib.util.find_spec("matplotlib") is None:
        pytest.skip("needs matplotlib: pip install matplotlib")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md example", "exec"), {"__name__": "readme_example"})


def test_there_are_examples_for_each_new_capability():
    text = "\n".join(BLOCKS)
    for needle in ("check_gradient(loss, params", "check_vjp(", "check_jvp(",
                   "gpucheck.torch.check_function(", "gpucheck.jax.check_vjp(", "assert_gradient("):
        assert needle in text, needle
