"""Ctrl-C stops a long check promptly on every backend (a real SIGINT to a child process)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD = os.path.join(ROOT, "tests", "interrupt_child.py")
SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
#: Seconds to wait for a line from the child before calling it hung.  The
#: full runs take minutes; an interrupted one answers in well under a second.
PATIENCE = 60.0


def _lines(proc):
    q = queue.Queue()

    def pump():
        for line in proc.stdout:
            q.put(line.strip())
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def _next(lines, what: str) -> str:
    try:
        return lines.get(timeout=PATIENCE)
    except queue.Empty:
        raise AssertionError(f"no word from the child for {PATIENCE:.0f} s {what}") from None


def _interrupt_each(backend: str, jobs: list, env_extra=None) -> dict:
    """Run the child; SIGINT each job a moment after it started; latency per form."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.update(env_extra or {})
    proc = subprocess.Popen([sys.executable, CHILD, backend, *jobs], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    lines = _lines(proc)
    latency = {}
    try:
        for job in jobs:
            form = job.split(":")[0]
            line = _next(lines, f"waiting for {form} to start")
            assert line and line.startswith(f"started {form}"), (line, proc.stderr.read())
            time.sleep(0.5)  # let the chunks grow to their full size
            t0 = time.monotonic()
            os.kill(proc.pid, signal.SIGINT)
            line = _next(lines, f"after SIGINT: {form} did not stop")
            latency[form] = time.monotonic() - t0
            assert line == f"interrupted {form}", line
        assert proc.wait(timeout=PATIENCE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"{backend}: seconds from SIGINT to stop: "
          + ", ".join(f"{k} {v:.2f}" for k, v in latency.items()))
    return latency


@pytest.mark.skipif(SIMULATING, reason="the cpu backend's run; the simulator session has its own")
def test_ctrl_c_stops_every_cpu_form():
    # every run is minutes long in full (2N = 524,288 points over a 262,144-entry x)
    _interrupt_each("cpu", ["callable:512", "batched:512", "kernel:512"])


@pytest.mark.cudasim
@pytest.mark.skipif(not SIMULATING, reason="needs NUMBA_ENABLE_CUDASIM=1 (run: "
                    "NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim)")
def test_ctrl_c_stops_the_simulator():
    _interrupt_each("cudasim", ["kernel:48", "batched:256"])
