"""Ctrl-C at the command line: a real SIGINT, a partial report, exit status 130.

``gpucheck check`` and ``gpucheck audit`` run in a child process on a slow f;
the SIGINT comes from this process once f says it has been called enough
times (the first pass is then part way through), or from f itself at the
first point of the joint test of kinks (after a planted bug was decided).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Seconds to wait for the child; an interrupted run ends in well under one.
PATIENCE = 60.0

SLOW = textwrap.dedent("""
    import os, signal, sys, time

    import numpy as np

    CALLS = [0]
    TICK = int(os.environ.get("TICK", "0"))


    def loss(x):
        # a slow f that says when it has been called TICK times
        CALLS[0] += 1
        if CALLS[0] == TICK:
            print("tick", file=sys.stderr, flush=True)
        time.sleep(0.001)
        return float(np.sum(np.sin(x)))


    def kinked(x):
        v = x.reshape(-1)
        if v[0] != 0 and v[1] != 0:
            # the joint test of kinks: the first point that moves both
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        return float(np.sum(np.sin(v)) + abs(v[0]) + abs(v[1]))
""")


@pytest.fixture
def work(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW)
    x = np.linspace(-1.0, 1.0, 1500)
    g = np.cos(x)
    g[3] *= 1.05          # checked before the interrupt
    g[-1] *= 1.05         # never reached
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "g.npy", g)
    xk = np.linspace(-1.0, 1.0, 40)
    xk[:2] = 0.0
    gk = np.cos(xk)
    gk[0] += 0.5
    gk[1] -= 0.25
    gk[10] *= 1.05
    np.save(tmp_path / "xk.npy", xk)
    np.save(tmp_path / "gk.npy", gk)
    return tmp_path


def _start(work, args, **env):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]), **env)
    return subprocess.Popen([sys.executable, "-m", "gpucheck", *args], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stderr_lines(proc):
    q = queue.Queue()

    def pump():
        for line in proc.stderr:
            q.put(line)
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def _finish(proc, lines):
    try:
        out = proc.stdout.read()
        code = proc.wait(timeout=PATIENCE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = []
    while True:
        line = lines.get(timeout=PATIENCE)
        if line is None:
            break
        err.append(line)
    return code, out, "".join(err)


def test_check_sigint_prints_the_partial_json_and_exits_130(work):
    proc = _start(work, ["check", "slow.py:loss", "--x", "x.npy", "--grad", "g.npy",
                         "--backend", "cpu", "--rtol", "1e-5", "--atol", "1e-8", "--json",
                         "--arrays", "arrays.npz", "--quiet"], TICK="900")
    lines = _stderr_lines(proc)
    try:
        line = lines.get(timeout=PATIENCE)
    except queue.Empty:
        proc.kill()
        raise AssertionError("f was never called 900 times") from None
    assert line is not None and line.strip() == "tick", line
    os.kill(proc.pid, signal.SIGINT)
    code, out, err = _finish(proc, lines)
    assert code == 130, (code, out, err)
    assert "gpucheck: interrupted after" in err and "Traceback" not in err
    d = json.loads(out)
    assert d["partial"] is True and d["status"] == "fail" and d["passed"] is False
    k = d["n_checked"]
    assert 3 < k < 1500
    assert d["worst"][0]["index"] == [3] and d["worst"][0]["status"] == "fail"
    with np.load(work / "arrays.npz") as a:
        st = a["element_status"]
    assert st[3] == "fail" and st[-1] == "unchecked"
    assert np.all(st[k:] == "unchecked") and np.all(st[:k] != "unchecked")
    assert np.sum(st == "pass") == k - 1


def test_audit_sigint_in_the_joint_test_reports_the_fail_and_exits_130(work):
    proc = _start(work, ["audit", "slow.py:kinked", "--x", "xk.npy", "--grad", "gk.npy",
                         "--backend", "cpu", "--mode", "full", "--json", "report.json",
                         "--quiet"])
    lines = _stderr_lines(proc)
    code, out, err = _finish(proc, lines)
    assert code == 130, (code, out, err)
    assert "PARTIAL (FAIL): interrupted after 40 of 40 entries" in out
    assert "Traceback" not in err
    d = json.loads((work / "report.json").read_text())
    assert d["partial"] is True and d["exit_status"] == 130 and d["status"] == "fail"
    assert d["n_checked"] == 40 and d["n_failed"] == 1
    assert d["worst"][0]["index"] == [10] and d["worst"][0]["status"] == "fail"
