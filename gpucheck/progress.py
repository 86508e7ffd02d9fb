"""Progress on a terminal: a bar with rate and time left, drawn by ``rich``.

:class:`Meter` is a ``progress(done, total)`` callable, the same protocol a
user's own callable follows.  It draws nothing unless its stream is a
terminal, and nothing for a stage that ends within about a second; for a
longer one it first says how long the stage should take (measured on the
first chunk) and then shows the bar.  ``rich`` is imported only when a bar is
actually drawn.
"""

from __future__ import annotations

import math
import sys
import time

__all__ = ["Meter", "duration_text", "SHOW_AFTER", "ANNOUNCE_AFTER"]

#: A stage expected to take longer than this (seconds) gets a bar.
SHOW_AFTER = 1.0
#: A stage expected to take longer than this (seconds) is announced with its
#: estimated time before the bar starts.
ANNOUNCE_AFTER = 5.0


def duration_text(seconds: float) -> str:
    """A duration for people: ``'40 ms'``, ``'12 s'``, ``'3 min 20 s'``, ``'5 h 30 min'``.

    Examples
    --------
    >>> duration_text(0.04), duration_text(12.3), duration_text(200), duration_text(19800)
    ('40 ms', '12 s', '3 min 20 s', '5 h 30 min')
    """
    if not math.isfinite(seconds) or seconds < 0:
        return "unknown"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        m, s = divmod(int(round(seconds)), 60)
        return f"{m} min {s} s" if s else f"{m} min"
    if seconds >= 48 * 3600:
        return f"{seconds / 86400:.1f} days"
    h, rest = divmod(int(round(seconds)), 3600)
    m = rest // 60
    return f"{h} h {m} min" if m else f"{h} h"


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:  # a closed or exotic stream draws nothing
        return False


class Meter:
    """``progress(done, total)`` drawn as a bar with rate and time left on a terminal.

    Parameters
    ----------
    enabled : bool
        False draws nothing (``--quiet``).
    stream : file, optional
        Where to draw; default ``sys.stderr``.  Nothing is drawn unless it is
        a terminal.
    label : str
        Text before the bar.
    console : rich.console.Console, optional
        Draw on this console instead (tests); it must be a terminal.

    Attributes
    ----------
    done, total : int
        Where the current stage stands (kept even when nothing is drawn).

    Examples
    --------
    >>> import io, numpy as np, gpucheck
    >>> meter = Meter(stream=io.StringIO())      # not a terminal: draws nothing
    >>> with meter:
    ...     r = gpucheck.check_gradient(lambda v: float(v @ v), np.ones(3), 2 * np.ones(3),
    ...                                 progress=meter)
    >>> meter.done == meter.total
    True
    """

    def __init__(self, *, enabled: bool = True, stream=None, label: str = "evaluating",
                 console=None):
        self.stream = sys.stderr if stream is None else stream
        self.console = console
        terminal = console.is_terminal if console is not None else _is_terminal(self.stream)
        self.enabled = bool(enabled) and terminal
        self.label = label
        self.done = 0
        self.total = 0
        self._t0 = time.monotonic()
        self._live = None
        self._task = None
        self._announced = False

    # the progress protocol -------------------------------------------------
    def __call__(self, done: int, total: int) -> None:
        done, total = int(done), int(total)
        if total != self.total or done < self.done:
            self._new_stage()
        self.done, self.total = done, total
        if not self.enabled:
            return
        if self._live is None:
            elapsed = time.monotonic() - self._t0
            if done >= total:
                return
            expected = elapsed / done * total if done else elapsed
            if elapsed < SHOW_AFTER and expected < SHOW_AFTER:
                return
            self._start()
        self._live.update(self._task, completed=done, total=total)
        if done >= total:
            self._stop()

    def estimate(self, seconds: float, done: int, total: int) -> None:
        """Hear the scheduler's estimate of the time left; announce a long stage."""
        if not self.enabled or self._announced or seconds < ANNOUNCE_AFTER:
            return
        self._announced = True
        rate = (total - done) / seconds
        self._print(f"gpucheck: {total:,} evaluations, about {duration_text(seconds)} to go at "
                    f"{rate:,.0f}/s (measured on the first {done:,}); Ctrl-C stops it")

    # lifetime --------------------------------------------------------------
    def close(self) -> None:
        """Stop drawing (the bar's last state stays on the terminal)."""
        self._stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # drawing ---------------------------------------------------------------
    def _new_stage(self) -> None:
        self._stop()
        self._t0 = time.monotonic()
        self._announced = False

    def _console(self):
        if self.console is None:
            from rich.console import Console

            self.console = Console(file=self.stream)
        return self.console

    def _print(self, text: str) -> None:
        try:
            console = self._console()
        except ImportError:  # rich is a dependency; a broken install only loses the meter
            self.enabled = False
            return
        console.print(text, highlight=False, markup=False)

    def _start(self) -> None:
        try:
            from rich.progress import (BarColumn, Progress, TaskProgressColumn, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
            console = self._console()
        except ImportError:
            self.enabled = False
            return
        live = Progress(TextColumn(f"  {self.label}"), BarColumn(), TaskProgressColumn(),
                        TextColumn("{task.completed:,}/{task.total:,}"), _rate_column(),
                        TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                        console=console, refresh_per_second=4, speed_estimate_period=10.0)
        self._task = live.add_task(self.label, total=self.total, completed=self.done)
        live.start()
        self._live = live

    def _stop(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()


def _rate_column():
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        """Evaluations per second."""

        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:,.0f}/s")

    return Rate()
