"""gpucheck.compare and the `gpucheck bench` entry point, on what runs here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gpucheck.compare import compare, floor, run_bench
from gpucheck.errors import GpuCheckError
from gpucheck.functions import batched, kernel
from gpucheck.kernels import builtin


def test_compare_lists_every_backend_with_cpu_first():
    t = np.linspace(0, 1, 6)
    r = compare(kernel(builtin.mse, t), np.ones(6), repeat=1)
    assert [run.backend for run in r.runs] == ["cpu", "cuda", "cudasim"]
    cpu = r.runs[0]
    assert cpu.available and cpu.agrees and cpu.speedup == 1.0 and cpu.max_difference == 0.0
    assert r.points >= 13 and cpu.passes_per_second > 0
    for run in r.runs[1:]:
        if not run.available:
            assert run.reason and run.agrees is None
            assert f"{run.backend}: not available" in str(r)
    assert "s/check" in str(r) and r.agree


def test_to_dict_is_json():
    r = compare(batched(builtin.mse_batched(np.zeros(4))), np.arange(4.0), backends=["cpu"],
                repeat=1, flops=12, bytes=32)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["runs"][0]["backend"] == "cpu" and d["agree"] is True
    assert d["runs"][0]["gflops"] > 0 and d["shape"] == [4]


def test_unknown_backend_is_an_error():
    with pytest.raises(GpuCheckError, match="`backends` entries must be one of"):
        compare(lambda v: float(v.sum()), np.ones(2), backends=["tpu"])


def test_floor_counts():
    assert floor("mse", 2, "float64") == (12.0, 12.0, 32.0, 0.0)
    assert floor("mse", 2, "float32") == (12.0, 4.0, 16.0, 4.0)
    # the dense kernel reads its copy of the weights once per eight batch
    # rows, and sums in float64 whatever x's dtype
    fl = floor("dense", 3, "float32", batch=2)
    assert fl.bytes == 9 * 4 and fl.flops == 2 * 2 * 9 + 3 * 2 * 3
    assert floor("dense", 3, "float32", batch=17).bytes == 3 * 9 * 4
    assert fl.fp64_flops == 2 * 9 + 3 * 2 * 3 and fl.conversions == 2 * 9
    assert floor("mse", 1024, "float32", path="delta").bytes == 36.0
    with pytest.raises(GpuCheckError, match="`path` must be one of"):
        floor("mse", 2, "float32", path="sample")


def test_floor_seconds_takes_the_binding_resource():
    fl = floor("mse", 1024, "float32")
    # an H100: bandwidth-bound, 2N passes of 4 MiB
    t = 2 * 1024 ** 2 * fl.seconds(67e12, 34e12, 3.35e12)
    assert 2.5 < t < 2.8
    # the dense float32 check: its float32-to-float64 conversions, not its
    # arithmetic or its eight reads of the weights per pass
    fl = floor("dense", 512, "float32", batch=64)
    t = 2 * 512 ** 2 * fl.seconds(67e12, 34e12, 3.35e12, conversion_rate=4.2e12)
    assert 2.0 < t < 2.2


def test_run_bench_json(capsys):
    code = run_bench(["--size", "3", "--backend", "cpu", "--repeat", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["workload"]["layer"] == "mse" and out["runs"][0]["available"]


def test_run_bench_table_shows_unavailable(capsys):
    assert run_bench(["--layer", "dense", "--size", "3", "--batch", "2", "--repeat", "1",
                      "--form", "batched"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("dense_mse_batched (batched)")
