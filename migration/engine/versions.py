"""Version columns of any type: how a round, the ledger and verify read, compare and store
a row's version.

A flow table's ``version:`` column may be

- an integer of epoch seconds, milliseconds or microseconds (``version_unit:``; the
  default comes from the type: BIGINT holds milliseconds, INT and MEDIUMINT seconds);
- a TIMESTAMP or DATETIME of any precision (fsp 0..6). furet pins every session's time
  zone to ``+00:00``, so a TIMESTAMP reads as UTC; a DATETIME has no zone: it is taken in
  ``version_timezone:`` (default UTC), and a source server whose own zone is not UTC makes
  furet refuse until the flow says which zone the application writes in (never a silent
  shift: a shifted version makes the final round's window miss the last hour of writes).

Invariants:

- the ledger (windows, watermarks, cursors, quarantine) holds every version as an integer
  *ledger value*: the column's own integer for epoch columns (so a ledger written by an
  older furet, epoch ms, reads the same), epoch microseconds for temporal columns;
- SQL always compares the column with a value of its own type (:meth:`VersionCodec.param`):
  the version index is used and nothing is converted row by row;
- every conversion from a duration or an instant rounds so that a window can only grow:
  overlap and safety lag round up to whole ticks of the column's resolution (one second
  for DATETIME(0)), so a second-precision version with thousands of rows per second is
  still read whole by the ``(version, key)`` cursor and re-read by the next overlap;
- Cassandra's ``USING TIMESTAMP`` is :meth:`VersionCodec.micros` of the row's version,
  whatever the column type.
"""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass
from typing import Any

from migration.enums import VersionUnit
from migration.errors import FuretError

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
US = datetime.timedelta(microseconds=1)
INTEGER_VERSION_TYPES = {"bigint": VersionUnit.MS, "int": VersionUnit.S,
                         "mediumint": VersionUnit.S}
TEMPORAL_TYPES = frozenset({"timestamp", "datetime"})
US_PER = {VersionUnit.S: 1_000_000, VersionUnit.MS: 1_000, VersionUnit.US: 1}
# a version more than this ahead of the source's clock means a wrong unit or zone
FUTURE_TOLERANCE_US = 300 * 1_000_000


def parse_zone(text: str, where: str) -> datetime.tzinfo:
    """``UTC``, ``+01:00``/``-05:30`` or an IANA name (``Europe/Paris``)."""
    value = text.strip()
    if value.upper() in ("UTC", "Z", "+00:00", "-00:00"):
        return datetime.UTC
    if value[:1] in "+-" and len(value) == 6 and value[3] == ":":
        try:
            hours, minutes = int(value[1:3]), int(value[4:6])
        except ValueError:
            hours, minutes = 99, 0
        if hours <= 14 and minutes < 60:
            sign = -1 if value[0] == "-" else 1
            return datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))
    try:
        return zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise FuretError(f"{where}: version_timezone {text!r} is not UTC, +HH:MM or a time "
                         "zone name like Europe/Paris") from None


@dataclass(frozen=True)
class VersionCodec:
    """One table's version column: its type, and its ledger values' unit."""

    column: str
    data_type: str
    unit: VersionUnit                 # of the ledger values (temporal: always us)
    fsp: int = 0                      # temporal precision
    zone: datetime.tzinfo = datetime.UTC

    @property
    def temporal(self) -> bool:
        return self.data_type in TEMPORAL_TYPES

    @property
    def tick(self) -> int:
        """The column's resolution, in ledger units (DATETIME(0): 1_000_000)."""
        return 10 ** (6 - self.fsp) if self.temporal else 1

    def describe(self) -> str:
        if self.temporal:
            kind = f"{self.data_type.upper()}({self.fsp})"
            return kind if self.zone is datetime.UTC else f"{kind} in {self.zone}"
        return f"{self.data_type.upper()} epoch {self.unit}"

    # --- conversions ------------------------------------------------------------------

    def micros(self, value: int) -> int:
        """A ledger value as epoch microseconds (Cassandra's write time)."""
        return value * US_PER[self.unit]

    def from_micros(self, us: int) -> int:
        """An instant in epoch microseconds as a ledger value, rounded down to a tick."""
        value = us // US_PER[self.unit]
        return value - value % self.tick

    def from_ms(self, ms: int) -> int:
        """An instant in epoch ms (``--since``, the server clock) as a ledger value."""
        return self.from_micros(ms * 1000)

    def duration(self, ms: int) -> int:
        """A duration in ms (overlap, safety lag) in ledger units, rounded UP to a tick."""
        if ms <= 0:
            return 0
        per_tick = US_PER[self.unit] * self.tick
        ticks = -(-(ms * 1000) // per_tick)
        return ticks * self.tick

    def to_ms(self, value: int) -> int:
        return self.micros(value) // 1000

    def ledger(self, value: Any) -> int | None:
        """A value read from the column as a ledger value; None for NULL or a value that
        is not an instant (a zero date comes back from the driver as text)."""
        if value is None:
            return None
        if not self.temporal:
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
        if not isinstance(value, datetime.datetime):
            return None
        moment = value.replace(tzinfo=self.zone) if value.tzinfo is None else value
        return (moment - EPOCH) // US

    def param(self, value: int) -> Any:
        """A ledger value as a SQL argument of the column's own type."""
        if not self.temporal:
            return int(value)
        moment = (EPOCH + value * US).astimezone(self.zone).replace(tzinfo=None)
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")

    def text(self, value: int | None) -> str:
        """A ledger value for people: ISO UTC for temporal columns, the integer otherwise."""
        if value is None:
            return ""
        if not self.temporal:
            return str(value)
        return (EPOCH + value * US).isoformat(timespec="microseconds").replace("+00:00", "Z")


def codec_for(where: str, column: str, data_type: str, fsp: int | None, unit: str = "",
              timezone: str = "") -> VersionCodec:
    """The codec of a version column from its live type and the flow's overrides; a
    FuretError naming ``where`` (flow, database, table) for a type that cannot be one."""
    dtype = data_type.lower()
    if dtype in TEMPORAL_TYPES:
        if unit:
            raise FuretError(f"{where}: version_unit applies to integer version columns; "
                             f"{column} is {dtype.upper()} (its unit comes from its type)")
        if timezone and dtype != "datetime":
            raise FuretError(f"{where}: version_timezone applies to DATETIME version columns;"
                             f" {column} is TIMESTAMP (stored in UTC)")
        zone = parse_zone(timezone, where) if timezone else datetime.UTC
        return VersionCodec(column, dtype, VersionUnit.US, int(fsp or 0), zone)
    if dtype in INTEGER_VERSION_TYPES:
        if timezone:
            raise FuretError(f"{where}: version_timezone applies to DATETIME version columns;"
                             f" {column} is {dtype.upper()} (epoch time has no zone)")
        try:
            chosen = VersionUnit(unit) if unit else INTEGER_VERSION_TYPES[dtype]
        except ValueError:
            raise FuretError(f"{where}: version_unit {unit!r} is not one of "
                             f"{', '.join(VersionUnit.choices())}") from None
        return VersionCodec(column, dtype, chosen)
    raise FuretError(f"{where}: version column {column!r} is {dtype.upper()}: expected "
                     "BIGINT/INT epoch time, TIMESTAMP or DATETIME (or `version: none`)")


def check_values(codec: VersionCodec, where: str, highest: int | None, now: int) -> None:
    """Refuse versions that a wrong unit or time zone would make unreadable: ahead of the
    source's clock (DATETIME written in another zone, epoch us read as ms) or, for epoch
    integers, epoch seconds read as milliseconds or microseconds (1970 again)."""
    if highest is None:
        return
    ahead_us = codec.micros(highest) - codec.micros(now)
    if ahead_us > FUTURE_TOLERANCE_US:
        hint = ("set version_timezone: to the zone the application writes it in"
                if codec.data_type == "datetime" else
                "check version_unit:" if not codec.temporal else "check the server clock")
        raise FuretError(f"{where}: version column {codec.column} ({codec.describe()}) holds "
                         f"{codec.text(highest)}, {ahead_us // 1_000_000} s ahead of the "
                         f"source's clock: {hint}")
    if codec.unit != VersionUnit.S and not codec.temporal and 10 ** 8 < highest <= 10 ** 10:
        # epoch seconds of 1973..2286 read as milliseconds (or microseconds) land in 1970
        raise FuretError(f"{where}: version column {codec.column} ({codec.describe()}) holds "
                         f"at most {highest}: that is epoch seconds, not {codec.unit}; set "
                         "version_unit: s")
