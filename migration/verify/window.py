"""``--since``/``--until`` (epoch ms or ISO datetimes, UTC when naive) and ``--sample``.

The window is taken in epoch milliseconds; each table compares it in its version column's
ledger units (:func:`ledger_window`), so a TIMESTAMP, DATETIME or epoch-seconds version
selects the same instants as an epoch-ms one."""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass

from migration.engine.versions import VersionCodec
from migration.errors import FuretError


@dataclass(frozen=True)
class TimeWindow:
    """Rows whose version is in ``(since, until]`` (None: unbounded on that side)."""

    since: int | None = None
    until: int | None = None

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None

    def contains(self, version: int | None) -> bool:
        if version is None:
            return not self.bounded
        if self.since is not None and version <= self.since:
            return False
        return not (self.until is not None and version > self.until)


def ledger_window(window: TimeWindow, codec: VersionCodec) -> TimeWindow:
    """``window`` (epoch ms) in ``codec``'s ledger units. Both bounds round down to a tick of
    the column, which is exact for a column that holds whole ticks: with ``F`` the bound
    rounded down, ``v > since`` iff ``v > F`` and ``v <= until`` iff ``v <= F``."""
    return TimeWindow(None if window.since is None else codec.from_ms(window.since),
                      None if window.until is None else codec.from_ms(window.until))


def parse_instant(value: str, flag: str) -> int:
    """``1700000000000`` (ms), ``2026-11-25``, ``2026-11-25T10:00:00``, ``...+01:00``, ``...Z``."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00")
                                                 if text.endswith("Z") else text)
    except ValueError:
        raise FuretError(f"{flag} {value!r}: expected epoch milliseconds or an ISO date/time "
                         "(2026-11-25, 2026-11-25T10:00:00, 2026-11-25T10:00:00+01:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def parse_window(since: str | None, until: str | None) -> TimeWindow:
    lo = parse_instant(since, "--since") if since else None
    hi = parse_instant(until, "--until") if until else None
    if lo is not None and hi is not None and hi <= lo:
        raise FuretError(f"--until ({hi}) must be after --since ({lo})")
    return TimeWindow(lo, hi)


def ms_to_iso(ms: int | None) -> str:
    if ms is None:
        return ""
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Sampler:
    """Decides which chunks are checked under ``--sample P`` (reproducible with a seed)."""

    def __init__(self, share: float, seed: int | None = None) -> None:
        if not 0 < share <= 1:
            raise FuretError(f"--sample {share}: expected a share in (0, 1]")
        self.share = share
        self.rng = random.Random(seed)

    def take(self) -> bool:
        return self.share >= 1 or self.rng.random() < self.share
