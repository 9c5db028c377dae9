"""Progress of long work (seed, rounds, verify): rich bars on a terminal, plain lines
otherwise, nothing with ``--no-progress``. One interface (:class:`Reporter`) for all three.

Over Fabric (no pty) or in a CI log a bar is either invisible or a flood of control
characters, so when stderr is not a terminal furet prints one line per task every
``FURET_PROGRESS_SECONDS`` seconds (default 5) and a last line when the work ends::

    progress round 1 runtime quote: 120,000 / 515,000 rows (23%), 24,510 rows/s

A task that goes through phases (verify: checksums, cassandra scan, drill-down, repair)
counts chunks as well as rows, prints a line at each phase change, and keeps the line
verify has always printed (log readers grep for it)::

    verify runtime quote -> quote: 12 chunks, 60,000 rows (checksums)
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
from rich.markup import escape
from rich.progress import Progress, ProgressColumn, Task, TaskID, TimeElapsedColumn
from rich.text import Text

INTERVAL_ENV = "FURET_PROGRESS_SECONDS"
DEFAULT_INTERVAL_S = 5.0


class Reporter(Protocol):
    """What seed, rounds and verify call, from any thread.

    ``table`` opens a task (``total`` rows may be unknown; optional: ``phase`` and
    ``advance`` open the task they name), ``phase`` names what the task is doing now, and
    ``advance`` adds rows read or written and, for chunked work, chunks done."""

    def table(self, name: str, total: int | None) -> None: ...
    def phase(self, name: str, what: str) -> None: ...
    def advance(self, name: str, rows: int, chunks: int = 0) -> None: ...


class Silent:
    """``--no-progress``: nothing."""

    def table(self, name: str, total: int | None) -> None:
        pass

    def phase(self, name: str, what: str) -> None:
        pass

    def advance(self, name: str, rows: int, chunks: int = 0) -> None:
        pass


class _Amount(ProgressColumn):
    """``1,200 rows``, or ``3 chunks, 1,200 rows`` for a task with phases."""

    def render(self, task: Task) -> Text:
        rows = f"{task.completed:,.0f} rows"
        if task.fields.get("phased"):
            return Text(f"{task.fields.get('chunks', 0)} chunks, {rows}")
        return Text(rows)


class RichBars:
    """One rich bar per task (terminal). Thread-safe. The description column reads markup:
    names are escaped (a table called ``[/x]`` is text)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.chunks: dict[str, int] = {}
        self.lock = threading.Lock()

    def _task(self, name: str, total: int | None = None) -> TaskID:
        task = self.tasks.get(name)
        if task is None:
            task = self.tasks[name] = self.progress.add_task(escape(name), total=total or None,
                                                             chunks=0, phased=False)
            self.chunks[name] = 0
        return task

    def table(self, name: str, total: int | None) -> None:
        with self.lock:
            self.tasks[name] = self.progress.add_task(escape(name), total=total or None,
                                                      chunks=0, phased=False)
            self.chunks[name] = 0

    def phase(self, name: str, what: str) -> None:
        with self.lock:
            self.progress.update(self._task(name), description=escape(f"{name} ({what})"),
                                 phased=True)

    def advance(self, name: str, rows: int, chunks: int = 0) -> None:
        with self.lock:
            task = self._task(name)
            self.chunks[name] += chunks
            self.progress.update(task, advance=rows, chunks=self.chunks[name])


@dataclass
class _Count:
    total: int | None
    done: int = 0
    started: float | None = None  # when its work began (see PlainLines.advance)
    printed_done: int = 0
    chunks: int = 0
    printed_chunks: int = 0
    what: str | None = None       # the phase, for a task that has phases


class PlainLines:
    """Plain progress lines (no terminal): each task at most once per ``interval`` seconds,
    at each phase change, and once more by :meth:`close`. Never a control character.
    Thread-safe (round workers and verify's checksum threads advance concurrently)."""

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

    def phase(self, name: str, what: str) -> None:
        with self.lock:
            count = self.counts.setdefault(name, _Count(None))
            count.what = what
            now = self.clock()
            self._line(name, count, now)
            self.last_print = now

    def advance(self, name: str, rows: int, chunks: int = 0) -> None:
        with self.lock:
            now = self.clock()
            count = self.counts.setdefault(name, _Count(None))
            if count.started is None:
                count.started = self.last_activity
            self.last_activity = now
            count.done += rows
            count.chunks += chunks
            if now - self.last_print >= self.interval:
                self.last_print = now
                self._moved_lines(now)

    def close(self) -> None:
        with self.lock:
            self._moved_lines(self.clock())

    def line_for(self, name: str, count: _Count, now: float) -> str:
        if count.what is not None:
            return (f"{self.label} {name}: {count.chunks} chunks, {count.done:,} rows "
                    f"({count.what})")
        elapsed = max(now - (count.started if count.started is not None else now), 1e-9)
        amount = f"{count.done:,}"
        if count.total:
            amount += f" / {count.total:,} rows ({min(100, 100 * count.done // count.total)}%)"
        else:
            amount += " rows"
        return f"progress {self.label} {name}: {amount}, {count.done / elapsed:,.0f} rows/s"

    def _moved_lines(self, now: float) -> None:
        for task, c in self.counts.items():
            if (c.done, c.chunks) != (c.printed_done, c.printed_chunks):
                self._line(task, c, now)

    def _line(self, name: str, count: _Count, now: float) -> None:
        count.printed_done = count.done
        count.printed_chunks = count.chunks
        self.console.print(self.line_for(name, count, now), highlight=False, soft_wrap=True,
                           markup=False)


def interval_from_env(env: dict[str, str] | None = None) -> float:
    raw = (env if env is not None else os.environ).get(INTERVAL_ENV, "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S


@contextmanager
def reporter(console: Console, label: str, enabled: bool = True) -> Iterator[Reporter]:
    """Bars when ``console`` is a terminal, plain lines when not, nothing when disabled.

    ``label`` names the work in plain lines (``seed``, ``round runtime``,
    ``verify runtime``); while the bars run, print through ``console`` (it goes above
    them)."""
    if not enabled:
        yield Silent()
        return
    if console.is_terminal:
        with Progress(*Progress.get_default_columns(), _Amount(), TimeElapsedColumn(),
                      console=console) as bars:
            yield RichBars(bars)
        return
    lines = PlainLines(console, label, interval_from_env())
    try:
        yield lines
    finally:
        lines.close()
