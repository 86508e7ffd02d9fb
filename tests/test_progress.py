"""Progress on a terminal (rich), never elsewhere; the CLI's --quiet, Ctrl-C and --scheduler."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest

import gpucheck
from gpucheck import executors, progress
from gpucheck.cli import EXIT_INTERRUPTED, EXIT_USAGE, main
from gpucheck.progress import Meter


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progress, "time", c)
    return c


def _tty():
    pytest.importorskip("rich", reason="rich is not installed (a dependency: pip install rich)")
    from rich.console import Console

    out = io.StringIO()
    return out, Console(file=out, force_terminal=True, width=120, color_system=None)


def _long_stage(meter, clock, total=10_000):
    meter(0, total)
    for k in range(1, 11):
        clock.now += 0.4
        if k == 1:
            meter.estimate(60.0, total // 10, total)
        meter(k * total // 10, total)


def test_a_long_stage_on_a_terminal_gets_an_estimate_and_a_bar(clock):
    out, console = _tty()
    meter = Meter(console=console)
    with meter:
        _long_stage(meter, clock)
    text = out.getvalue()
    assert "gpucheck: 10,000 evaluations, about 1 min to go" in text
    assert "Ctrl-C stops it" in text
    assert "evaluating" in text and "10,000/10,000" in text and "left" in text
    assert (meter.done, meter.total) == (10_000, 10_000)


def test_a_stage_of_less_than_a_second_draws_nothing(clock):
    out, console = _tty()
    meter = Meter(console=console)
    meter(0, 500)
    clock.now += 0.05
    meter(250, 500)  # on pace for 0.1 s
    clock.now += 0.05
    meter(500, 500)
    meter.close()
    assert out.getvalue() == ""


@pytest.mark.parametrize("how", ["quiet", "pipe"])
def test_quiet_or_not_a_terminal_draws_nothing(clock, how):
    if how == "quiet":
        out, console = _tty()
        meter = Meter(enabled=False, console=console)
    else:
        out = io.StringIO()  # isatty() is False, as for a pipe or a test's capture
        meter = Meter(stream=out)
    with meter:
        _long_stage(meter, clock)
    assert out.getvalue() == ""
    assert (meter.done, meter.total) == (10_000, 10_000)  # still knows where it stands


def test_each_stage_starts_its_own_bar(clock):
    out, console = _tty()
    meter = Meter(console=console, label="stage")
    _long_stage(meter, clock, total=1000)
    _long_stage(meter, clock, total=1000)  # the same size again: a new stage
    meter.close()
    assert out.getvalue().count("1,000/1,000") >= 2


def test_the_meter_is_a_progress_callable_for_the_api():
    meter = Meter(stream=io.StringIO())
    gpucheck.check_gradient(lambda v: float(v @ v), np.ones(4), 2 * np.ones(4), progress=meter)
    assert meter.done == meter.total > 0


def test_duration_text():
    assert progress.duration_text(59.9) == "1 min"
    assert progress.duration_text(3 * 86400) == "3.0 days"
    assert progress.duration_text(float("nan")) == "unknown"


USER = """
import numpy as np

def loss(v):
    return float(np.sum(v ** 2))

def interrupted_loss(v):
    if float(v.reshape(-1)[0]) != 1.0:
        raise KeyboardInterrupt
    return float(np.sum(v ** 2))
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "user.py").write_text(USER)
    x = np.arange(1.0, 7.0).reshape(2, 3)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "g.npy", 2 * x)
    return tmp_path


def _args(d, fn="loss"):
    return [f"{d}/user.py:{fn}", "--x", f"{d}/x.npy", "--grad", f"{d}/g.npy"]


def test_cli_prints_no_progress_when_stderr_is_not_a_terminal(files, capsys):
    assert main(["check", *_args(files)]) == 0
    assert capsys.readouterr().err == ""


def test_cli_ctrl_c_exits_130_and_says_where_it_stopped(files, capsys):
    assert main(["check", *_args(files, "interrupted_loss"), "--backend", "cpu"]) == EXIT_INTERRUPTED
    out, err = capsys.readouterr()
    assert err.startswith("gpucheck: interrupted after ") and "evaluations" in err
    # stopped before f's noise was measured: a partial report that judges nothing
    assert "PARTIAL (INCONCLUSIVE): interrupted after 0 of 6 entries were checked" in out


def test_cli_scheduler_that_cannot_be_reached_exits_2(files, capsys, monkeypatch):
    monkeypatch.setattr(executors.connect, "__kwdefaults__", {"timeout": 0.5})
    assert main(["check", *_args(files), "--scheduler", "tcp://127.0.0.1:9"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "`--scheduler`" in err
    assert ("cannot connect to 'tcp://127.0.0.1:9'" in err) or ("pip install 'dask[distributed]'" in err)


def test_import_gpucheck_loads_neither_rich_nor_dask():
    code = ("import sys, gpucheck, gpucheck.cli, gpucheck.schedule, gpucheck.executors\n"
            "print([m for m in ('rich', 'dask', 'distributed') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
