"""The agreement tests on a real CUDA device (CuPy arrays, compiled kernels).

Skipped, with the reason, where no usable device is present.  Sizes are
larger than in the simulator: a device makes them cheap.  Batched functions
receive CuPy arrays here, so every batched function used below is written
against the array API (``builtin.array_namespace`` / ``builtin.bind``), never
with NumPy arrays bound in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agreement import CASES, assert_agree, case, central_points  # noqa: E402
from gpucheck.backends import cpu  # noqa: E402
from gpucheck.errors import GpuCheckError  # noqa: E402
from gpucheck.functions import as_function, batched, kernel  # noqa: E402
from gpucheck.kernels import builtin  # noqa: E402


def _status():
    from gpucheck.backends import cuda

    return cuda.device_status()


_OK, _REASON = _status()

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _OK, reason=f"no CUDA device: {_REASON}")]


@pytest.fixture(scope="module")
def dev():
    from gpucheck.backends import cuda

    return cuda.device_backend()


def test_device_status_ran_the_probe_kernel():
    from gpucheck.backends import cuda
    from gpucheck.kernels import contract

    assert _OK and "CuPy" in _REASON
    assert contract._PROBE, "device_status did not compile the probe kernel"
    assert cuda.device_status() == (_OK, _REASON)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,shape", CASES)
def test_kernel_agrees_with_numpy_path(dev, name, shape, dtype):
    kfunc, bfunc, x = case(name, shape, dtype)
    idx, vals = central_points(x)
    got = dev.evaluate(kfunc, x, idx, vals)
    assert_agree(got.values, cpu.evaluate(bfunc, x, idx, vals).values, x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,shape", [("mse", "n37"), ("mse", "3d"), ("dense", ""),
                                        ("softplus", "3d")])
def test_batched_agrees_with_numpy_path(dev, name, shape, dtype):
    _, bfunc, x = case(name, shape, dtype)
    idx, vals = central_points(x)
    got = dev.evaluate(bfunc, x, idx, vals)
    assert_agree(got.values, cpu.evaluate(bfunc, x, idx, vals).values, x)


@pytest.mark.parametrize("layer", ["mse", "dense"])
def test_builtin_layers_batched_on_the_device(layer):
    import gpucheck
    from gpucheck import layers

    rng = np.random.default_rng(1)
    if layer == "mse":
        t = rng.standard_normal((6, 5)).astype(np.float32)
        lay, x = layers.mse(t), rng.standard_normal((6, 5)).astype(np.float32)
    else:
        a = rng.standard_normal((4, 6)).astype(np.float32)
        t = rng.standard_normal((4, 3)).astype(np.float32)
        lay, x = layers.dense(a, t), (rng.standard_normal((6, 3)) / 3).astype(np.float32)
    for f in (lay.batched, lay.kernel):
        r = gpucheck.check_gradient(f, x, lay.grad, backend="cuda")
        assert r.passed, str(r)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_larger_mse_kernel_matches_cpu_kernel(dev, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((67, 45)).astype(dtype)  # N = 3015, not a multiple of 256
    t = rng.standard_normal((67, 45)).astype(dtype)
    f = as_function(kernel(builtin.mse, t))
    idx, vals = central_points(x)
    got = dev.evaluate(f, x, idx, vals)
    assert_agree(got.values, cpu.evaluate(f, x, idx, vals).values, x)
    # Few copies, several launches: the same numbers.
    again = dev.evaluate(f, x, idx, vals, memory_bytes=100 * x.nbytes, launches=7)
    assert_agree(again.values, got.values, x)
    # Launches sized by a tiny time target: many launches, the same numbers.
    seen = []
    small = dev.evaluate(f, x, idx, vals, memory_bytes=100 * x.nbytes, launch_seconds=1e-5,
                         progress=lambda d, t: seen.append(d))
    assert_agree(small.values, got.values, x)
    assert len(seen) > 2 and seen == sorted(seen) and seen[-1] == idx.size
    assert dev.evaluate(f, x, idx, vals).compile_seconds == 0.0


def test_dense_kernel_full_and_tail_blocks(dev):
    # batch 13 = one block of eight rows and a tail of five.
    fn, params, fb, w = builtin.workload("dense", 24, "float64", batch=13, seed=4)
    f = as_function(kernel(fn, *params))
    idx, vals = central_points(w)
    got = dev.evaluate(f, w, idx, vals)
    assert_agree(got.values, cpu.evaluate(as_function(batched(fb)), w, idx, vals).values, w)


def test_batched_receives_cupy_arrays(dev):
    import cupy

    seen = []

    def f(xs):
        seen.append(type(xs))
        return (xs * xs).sum(axis=1)

    x = np.arange(4.0)
    idx, vals = central_points(x)
    dev.evaluate(as_function(batched(f)), x, idx, vals)
    assert seen and all(t is cupy.ndarray for t in seen)


def test_memory_goes_back_to_the_device_after_a_check(dev):
    import cupy

    pool = cupy.get_default_memory_pool()
    kfunc, bfunc, x = case("mse", "3d", "float64")
    idx, vals = central_points(x)
    for f in (kfunc, bfunc):
        dev.evaluate(f, x, idx, vals)
        assert pool.free_bytes() == 0, "CuPy's pool kept the check's memory"


def test_memory_fraction_caps_the_copies(dev):
    from gpucheck.backends import cuda

    kfunc, bfunc, x = case("mse", "n37", "float32")
    idx, vals = central_points(x)
    previous = cuda.set_memory_fraction(1e-9)  # one copy at a time
    try:
        got = dev.evaluate(kfunc, x, idx, vals)
    finally:
        cuda.set_memory_fraction(None if previous == cuda.DEFAULT_MEMORY_FRACTION else previous)
    assert_agree(got.values, cpu.evaluate(bfunc, x, idx, vals).values, x)


def test_a_global_array_behind_a_module_attribute_is_refused_by_ptxas(dev):
    # global_arrays() does not follow module attributes; ptxas on the device
    # refuses the kernel, and the message still says what to do.
    tables = types.ModuleType("tables")
    tables.BIG = np.arange(9000, dtype=np.float64)  # 72,000 bytes
    glb = {"tables": tables}
    exec("def reads(x):\n    s = 0.0\n    for i in range(x.shape[0]):\n"
         "        s += x[i] * tables.BIG[i]\n    return s\n", glb)
    x = np.ones(5)
    idx, vals = central_points(x)
    with pytest.raises(GpuCheckError, match="64 KB of constant memory.*Pass it as a param"):
        dev.evaluate(as_function(kernel(glb["reads"])), x, idx, vals)


def _run(code: str, env_extra: dict) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=120)


def test_out_of_bounds_read_is_reported_not_a_raw_traceback():
    # In a separate process: the illegal access ruins that process's CUDA context.
    proc = _run('''
        import numpy as np, gpucheck

        def out_of_bounds(x):
            s = 0.0
            for i in range(x.shape[0]):
                s += x[i + 400000000]
            return s

        try:
            gpucheck.check_gradient(gpucheck.kernel(out_of_bounds), np.ones(64), np.ones(64),
                                    backend="cuda")
            print("NO ERROR")
        except gpucheck.GpuCheckError as err:
            print("GPUCHECKERROR", err)
    ''', {})
    assert "GPUCHECKERROR" in proc.stdout, proc.stdout + proc.stderr
    assert "restart Python" in proc.stdout and "outside `x`" in proc.stdout


def test_kernels_are_cached_on_disk_across_processes(tmp_path):
    code = '''
        import json, numpy as np
        from gpucheck.backends import cuda
        from gpucheck.functions import as_function, kernel
        from gpucheck.kernels import builtin, contract

        t = np.linspace(0, 1, 12).reshape(3, 4)
        x = np.cos(t)
        idx = np.arange(12, dtype=np.int64)
        ev = cuda.device_backend().evaluate(as_function(kernel(builtin.mse, t)), x, idx, x.ravel() + 0.5)
        kern, _ = contract.compile_evaluate(builtin.mse, x.dtype, 2, [(t.dtype, 2)])
        print(json.dumps({"values": ev.values.tolist(), "compile": ev.compile_seconds,
                          "hits": sum(kern.stats.cache_hits.values()),
                          "misses": sum(kern.stats.cache_misses.values())}))
    '''
    env = {"GPUCHECK_CACHE_DIR": str(tmp_path)}
    first = _run(code, env)
    second = _run(code, env)
    a = json.loads(first.stdout.strip().splitlines()[-1])
    b = json.loads(second.stdout.strip().splitlines()[-1])
    assert a["values"] == b["values"]
    assert a["hits"] == 0 and b["hits"] == 1, (a, b, second.stderr[-2000:])
    assert list(tmp_path.glob("evaluate_2d_1p_*.py"))
