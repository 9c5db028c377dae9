"""Progress of long work (seed, rounds, verify): rich bars on a terminal, plain lines
otherwise.

Over Fabric (no pty) or in a CI log a bar is either invisible or a flood of control
characters, so when stderr is not a terminal furet prints one line per task every
``FURET_PROGRESS_SECONDS`` seconds (default 5) and a last line when the work ends::

    progress round 1 runtime quote: 120,000 / 515,000 rows (23%), 24,510 rows/s
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console
from rich.progress import Progress, TaskID, TextColumn

INTERVAL_ENV = "FURET_PROGRESS_SECONDS"
DEFAULT_INTERVAL_S = 5.0


class Reporter(Protocol):
    """What the engine calls: one task per table (``total`` may be unknown), then rows."""

    def table(self, name: str, total: int | None) -> None: ...
    def advance(self, name: str, rows: int) -> None: ...


class Silent:
    def table(self, name: str, total: int | None) -> None:
        pass

    def advance(self, name: str, rows: int) -> None:
        pass


class RichBars:
    """One rich bar per task (terminal)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def table(self, name: str, total: int | None) -> None:
        self.tasks[name] = self.progress.add_task(name, total=total or None)

    def advance(self, name: str, rows: int) -> None:
        self.progress.advance(self.tasks[name], rows)


@dataclass
class _Count:
    total: int | None
    done: int = 0
    started: float | None = None  # when its work began (see PlainLines.advance)
    printed_done: int = 0


class PlainLines:
    """Plain progress lines (no terminal): each task at most once per ``interval`` seconds,
    and once more by :meth:`close`. Thread-safe (round workers advance concurrently)."""

    def __init__(self, console: Console, label: str, interval: float = DEFAULT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.label = label
        self.interval = interval
        self.clock = clock
        self.counts: dict[str, _Count] = {}
        self.lock = threading.Lock()
        self.last_print = clock()
        # Tables wait in the queue while workers copy others: a table's clock starts at the
        # last advance of any table before its first one (when a worker turned to it).
        self.last_activity = self.last_print

    def table(self, name: str, total: int | None) -> None:
        with self.lock:
            self.counts[name] = _Count(total)

    def advance(self, name: str, rows: int) -> None:
        with self.lock:
            now = self.clock()
            count = self.counts.setdefault(name, _Count(None))
            if count.started is None:
                count.started = self.last_activity
            self.last_activity = now
            count.done += rows
            if now - self.last_print >= self.interval:
                self.last_print = now
                for task, c in self.counts.items():
                    if c.done != c.printed_done:
                        self._line(task, c, now)

    def close(self) -> None:
        with self.lock:
            now = self.clock()
            for task, c in self.counts.items():
                if c.done != c.printed_done:
                    self._line(task, c, now)

    def line_for(self, name: str, count: _Count, now: float) -> str:
        elapsed = max(now - (count.started if count.started is not None else now), 1e-9)
        amount = f"{count.done:,}"
        if count.total:
            amount += f" / {count.total:,} rows ({min(100, 100 * count.done // count.total)}%)"
        else:
            amount += " rows"
        return f"progress {self.label} {name}: {amount}, {count.done / elapsed:,.0f} rows/s"

    def _line(self, name: str, count: _Count, now: float) -> None:
        count.printed_done = count.done
        self.console.print(self.line_for(name, count, now), highlight=False, soft_wrap=True)


def interval_from_env(env: dict[str, str] | None = None) -> float:
    raw = (env if env is not None else os.environ).get(INTERVAL_ENV, "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S


@contextmanager
def reporter(console: Console, label: str, enabled: bool = True) -> Iterator[Reporter]:
    """Bars when ``console`` is a terminal, plain lines when not, nothing when disabled.

    ``console.print`` of the yielded object's ``console`` attribute (bars only) goes above
    the bars; use :func:`say` to print either way."""
    if not enabled:
        yield Silent()
        return
    if console.is_terminal:
        with Progress(*Progress.get_default_columns(), TextColumn("{task.completed:,.0f} rows"),
                      console=console) as bars:
            yield RichBars(bars)
        return
    lines = PlainLines(console, label, interval_from_env())
    try:
        yield lines
    finally:
        lines.close()
