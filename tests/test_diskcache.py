"""The fingerprint that names a cached evaluation kernel changes with everything compiled into it.

A stale kernel from numba's disk cache would evaluate an old f: a wrong
verdict.  numba invalidates an entry only when the kernel's own file changes,
so the file's name must change whenever the inlined code or data does.
"""

from __future__ import annotations

import numpy as np

from gpucheck.kernels import builtin, diskcache

T = np.arange(4.0)
SCALE = 2.0


def uses_globals(x):
    return x[0] * T[1] * SCALE


def helper(x):
    return x[0] + T[0]


def calls_helper(x):
    return helper(x) * 2.0


def test_same_function_same_fingerprint():
    assert diskcache.fingerprint(uses_globals, 1, 0) == diskcache.fingerprint(uses_globals, 1, 0)


def test_kernel_shape_is_part_of_it():
    a = diskcache.fingerprint(uses_globals, 1, 0)
    assert a != diskcache.fingerprint(uses_globals, 2, 0)
    assert a != diskcache.fingerprint(uses_globals, 1, 1)


def test_global_array_contents_and_scalars_change_it(monkeypatch):
    a = diskcache.fingerprint(uses_globals, 1, 0)
    monkeypatch.setitem(globals(), "T", np.arange(4.0) + 1)
    b = diskcache.fingerprint(uses_globals, 1, 0)
    monkeypatch.setitem(globals(), "SCALE", 3.0)
    c = diskcache.fingerprint(uses_globals, 1, 0)
    assert len({a, b, c}) == 3


def test_called_functions_are_followed(monkeypatch):
    a = diskcache.fingerprint(calls_helper, 1, 0)

    def other_helper(x):
        return x[0] - T[0]

    monkeypatch.setitem(globals(), "helper", other_helper)
    assert diskcache.fingerprint(calls_helper, 1, 0) != a


def test_closures_and_defaults_change_it():
    def make(k, default):
        def f(x, scale=default):
            return x[0] * k * scale
        return f

    prints = {diskcache.fingerprint(make(k, d), 1, 0) for k in (1.0, 2.0) for d in (1.0, 5.0)}
    assert len(prints) == 4


def test_edited_code_changes_it():
    def f(x):
        return x[0] + 1.0

    def g(x):
        return x[0] + 2.0

    assert diskcache.fingerprint(f, 1, 0) != diskcache.fingerprint(g, 1, 0)


def test_builtin_variants_are_covered():
    # mse compiles mse_2d for 2-D x: the fingerprint is the variant's.
    assert diskcache.fingerprint(builtin.mse, 2, 1) == diskcache.fingerprint(builtin.mse_2d, 2, 1)
    assert diskcache.fingerprint(builtin.mse, 3, 1) != diskcache.fingerprint(builtin.mse_2d, 3, 1)


def test_unknown_objects_and_user_modules_are_not_cached():
    import types

    class Box:
        v = 1.0

    box = Box()
    mod = types.ModuleType("user_tables")
    mod.T = np.ones(3)

    def reads_object(x):
        return x[0] * box.v

    def reads_module(x):
        return x[0] * mod.T[0]

    assert diskcache.fingerprint(reads_object, 1, 0) is None
    assert diskcache.fingerprint(reads_module, 1, 0) is None


def test_numpy_and_math_are_fine():
    import math

    def f(x):
        return math.exp(x[0]) + np.float32(1.5) * x[1]

    assert diskcache.fingerprint(f, 1, 0) is not None


def test_cache_dir_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("GPUCHECK_CACHE_DIR", "off")
    assert diskcache.cache_dir() is None
    monkeypatch.setenv("GPUCHECK_CACHE_DIR", str(tmp_path))
    assert diskcache.cache_dir() == str(tmp_path)
    monkeypatch.delenv("GPUCHECK_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert diskcache.cache_dir() == str(tmp_path / "gpucheck")


def test_kernel_file_is_written_once_and_loaded(monkeypatch, tmp_path):
    monkeypatch.setenv("GPUCHECK_CACHE_DIR", str(tmp_path))
    k1 = diskcache.kernel_from_file(builtin.mse, 2, 1)
    files = list(tmp_path.glob("evaluate_2d_1p_*.py"))
    assert len(files) == 1 and k1.__name__ == "evaluate"
    assert k1.__code__.co_filename == str(files[0])
    stamp = files[0].stat().st_mtime_ns
    k2 = diskcache.kernel_from_file(builtin.mse, 2, 1)
    assert files[0].stat().st_mtime_ns == stamp and k2.__code__.co_code == k1.__code__.co_code


def test_unwritable_cache_folder_falls_back(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GPUCHECK_CACHE_DIR", str(blocker / "sub"))
    assert diskcache.kernel_from_file(builtin.mse, 2, 1) is None


_SSE = '''
def row_sse(row, t):
    s = 0.0
    for j in range(row.shape[0]):
        d = row[j] - t[j]
        s += d * d
    return s
'''


def test_functions_without_an_importable_module_are_not_cached():
    # exec() without a __name__ (how the README's examples run) gives a
    # function numba would record as module '<dynamic>': an entry it could
    # never load again, and one that must not be shared with the same code
    # defined in a module
    from gpucheck import diskcache as shared

    loose = {}
    exec(_SSE, loose)
    assert shared.fingerprint(loose["row_sse"]) is None
    named = {"__name__": __name__}
    exec(_SSE, named)
    assert shared.fingerprint(named["row_sse"]) is not None


_CHILD = '''
import numpy as np, gpucheck
from tests.test_diskcache import _SSE
scope = {"__name__": "tests.test_diskcache"}
exec(_SSE, scope)
T = np.zeros((4, 3)); X = np.arange(12.0).reshape(4, 3)
f = gpucheck.rowwise(scope["row_sse"], T, scale=0.25)
print(gpucheck.check_gradient(f, X, 2 * (X - T) / 4, backend="cpu").status)
'''


def test_an_entry_numba_cannot_load_is_compiled_again(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, GPUCHECK_CACHE_DIR=str(tmp_path),
               PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def child():
        out = subprocess.run([sys.executable, "-c", _CHILD], env=env, cwd=root,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert child() == "pass"
    damaged = list(tmp_path.glob("__pycache__/*.nbc"))
    assert damaged, "the first run wrote no cache entry"
    for path in damaged:
        path.write_bytes(b"not a numba cache entry")
    assert child() == "pass"
