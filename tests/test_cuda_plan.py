"""How the CUDA backend sizes copies, launches and blocks, and its memory option.

Pure functions of sizes and times, so they are tested here without a device;
the simulator session runs them inside real checks.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpucheck.backends import cuda
from gpucheck.errors import GpuCheckError


@settings(max_examples=300, deadline=None)
@given(budget=st.integers(0, 10**12), row=st.integers(1, 10**8), total=st.integers(1, 10**7),
       cap=st.integers(1, 10**6))
def test_copies_are_whole_warps_within_budget(budget, row, total, cap):
    g = cuda.copies_for(budget, row, total, cap)
    fit = max(1, budget // row)
    want = max(1, min(total, cap, fit))
    assert 1 <= g <= fit
    if want < 32:
        assert g == want
    else:
        assert g % 32 == 0 and want - 32 < g < want + 32


@settings(max_examples=300, deadline=None)
@given(points=st.integers(1, 10**7), seconds=st.floats(1e-7, 1e3), rows=st.integers(1, 10**6),
       target=st.floats(1e-4, 10))
def test_next_launch_moves_at_most_fourfold_in_whole_rounds(points, seconds, rows, target):
    n = cuda.next_launch(points, seconds, rows=rows, target=target)
    assert n >= 1
    assert n <= 4 * points
    if n >= rows:
        assert n % rows == 0
    assert n >= max(1, min(int(points * 0.25), rows))


def test_next_launch_converges_on_the_target():
    # A device doing 1e6 points/s: from one round of 1000 to 0.1 s launches.
    n, sizes = 1000, []
    for _ in range(8):
        n = cuda.next_launch(n, n / 1e6, rows=1000, target=0.1)
        sizes.append(n)
    assert sizes[:3] == [4000, 16000, 64000] and sizes[-1] == 100000


@settings(max_examples=300, deadline=None)
@given(active=st.integers(1, 10**7), sms=st.integers(1, 200), tpb=st.sampled_from([32, 128, 256]))
def test_launch_shape_covers_the_threads_and_spreads_them(active, sms, tpb):
    blocks, threads = cuda.launch_shape(active, sms=sms, threads_per_block=tpb)
    assert threads % 32 == 0 and 32 <= threads <= tpb
    assert blocks * threads >= active and (blocks - 1) * threads < active
    if active >= sms * 32:
        assert blocks >= sms  # every SM gets a block


def test_memory_fraction_default_environment_and_setter(monkeypatch):
    monkeypatch.setattr(cuda, "_FRACTION", [])
    monkeypatch.delenv(cuda.MEMORY_FRACTION_ENV, raising=False)
    assert cuda.memory_fraction() == cuda.DEFAULT_MEMORY_FRACTION == 0.5
    monkeypatch.setenv(cuda.MEMORY_FRACTION_ENV, "0.8")
    assert cuda.memory_fraction() == 0.8
    assert cuda.set_memory_fraction(0.3) == 0.8
    assert cuda.memory_fraction() == 0.3
    assert cuda.set_memory_fraction(None) == 0.3
    assert cuda.memory_fraction() == 0.8


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, math.nan, "half", True])
def test_memory_fraction_rejects_bad_values(bad, monkeypatch):
    monkeypatch.setattr(cuda, "_FRACTION", [])
    with pytest.raises(GpuCheckError, match=r"`fraction` must be"):
        cuda.set_memory_fraction(bad)


@pytest.mark.parametrize("bad", ["0", "2", "lots"])
def test_memory_fraction_environment_is_validated(bad, monkeypatch):
    monkeypatch.setattr(cuda, "_FRACTION", [])
    monkeypatch.setenv(cuda.MEMORY_FRACTION_ENV, bad)
    with pytest.raises(GpuCheckError, match=cuda.MEMORY_FRACTION_ENV):
        cuda.memory_fraction()


def test_next_launch_never_shrinks_below_the_resident_threads():
    # A pass over 10^6 entries: one point takes 0.2 s however many of the
    # 17,824 threads run it (all resident on the device).  Shrinking to meet
    # a 0.1 s target would gain nothing and, launch after launch, end at a
    # point per launch.
    rows, n = 17824, 17824
    for _ in range(6):
        n = cuda.next_launch(n, 0.2, rows=rows, target=0.1, resident=132 * 2048)
        assert n == rows
    # more threads than the device holds at once: a round is throughput-bound
    # and a shorter launch is a shorter time, so it shrinks (the watchdog)
    assert cuda.next_launch(10**6, 1.0, rows=10**6, target=0.1, resident=270336) == 270336
    # the simulator runs threads one after another: shrinking helps there
    assert cuda.next_launch(64, 0.4, rows=64, target=0.1, resident=1) == 16
