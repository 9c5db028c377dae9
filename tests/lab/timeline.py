"""When each host had its turn in a rolling playbook, read from the output (the
profile_tasks callback prints the wall-clock time each task starts), and the longest write
pause a writer saw during that turn: the per-node pause figures of the soak tests."""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable, Iterable

# a task banner, and the line profile_tasks prints under it: when the task started
_TASK = re.compile(r"TASK \[([^\]]*)\][^\n]*\n(\w+ \d\d \w+ \d{4}  \d\d:\d\d:\d\d [+-]\d{4})")


def task_windows(output: str, names: Iterable[str],
                 mine: Callable[[str, str], bool] = lambda task, name: task.endswith(name),
                 ) -> dict[str, tuple[float, float]]:
    """name -> (start, end) wall-clock of its turn: from its first task (``mine``) to the
    start of the task after its last one, plus a second (the times are to the second)."""
    tasks = [(task, datetime.datetime.strptime(when, "%A %d %B %Y  %H:%M:%S %z").timestamp())
             for task, when in _TASK.findall(output)]
    found = {}
    for name in names:
        own = [i for i, (task, _) in enumerate(tasks) if mine(task, name)]
        if own:
            end = tasks[own[-1] + 1][1] if own[-1] + 1 < len(tasks) else time.time()
            found[name] = (tasks[own[0]][1], end + 1)
    return found


def longest_pause(pauses: Iterable[tuple[float, float]], window: tuple[float, float]) -> float:
    """The longest of the writer's pauses (wall-clock start, length) that overlap ``window``."""
    return max((length for at, length in pauses if at < window[1] and at + length > window[0]),
               default=0.0)


def pauses_per_host(pauses: list[tuple[float, float]], windows: dict[str, tuple[float, float]]
                    ) -> dict[str, float]:
    return {name: round(longest_pause(pauses, window), 2)
            for name, window in sorted(windows.items())}
