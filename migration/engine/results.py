"""What the engine's commands return: typed results, built from the ledger, printed by the CLI.

A :class:`RoundSummary` is read back from ``furet.rounds`` / ``furet.round_tables`` /
``furet.chunks`` after a round (:func:`migration.engine.ledger.round_summary`), so what a
command prints is what the ledger recorded, never a count kept on the side. ``to_dict()``
is the ``--json`` shape (stable: scripts and ``make bench`` parse it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from migration.enums import Strategy
from migration.errors import FuretError
from migration.flows.mapping import REVERSE_SUFFIX


@dataclass(frozen=True)
class TableSummary:
    """One source table of a round: its window ``(lo, hi]`` and watermark (ledger values of
    the version column, :mod:`migration.engine.versions`), its version type and counts."""

    source_table: str
    window_lo: int | None
    window_hi: int | None
    watermark: int | None
    status: str
    chunks: int
    rows_read: int
    rows_written: int
    rows_quarantined: int
    version_type: str | None = None   # e.g. "DATETIME(0)", "BIGINT epoch ms"; None: before 3
    rows_deleted: int = 0             # `version: none` tables with `deletes: propagate`


@dataclass(frozen=True)
class RoundSummary:
    """One round of a flow as the ledger holds it (``status`` running or done)."""

    flow: str
    round_no: int
    strategy: Strategy
    kind: str                     # full | window (ts), or the strategy's name
    final: bool
    status: str
    now_ms: int | None
    overlap_ms: int
    safety_lag_ms: int
    chunks: int
    rows_read: int
    rows_written: int
    rows_quarantined: int
    invocations: int
    started_at: str | None
    finished_at: str | None
    seconds: float | None
    furet_version: str | None = None
    tables: tuple[TableSummary, ...] = ()
    resumed: bool = False                                   # this invocation resumed it
    literals: dict[str, str] = field(default_factory=dict)  # per table: server | python: why
    # per MariaDB target table of this invocation: "plain INSERT" (round 1 of a table found
    # empty), "upsert", or why round 1 fell back to the upsert (migration.engine.galera_writer)
    writes: dict[str, str] = field(default_factory=dict)
    # per checked table: rows stamped just below the window that the target lacks or holds
    # older (committed later than overlap_ms allows; migration.engine.round.late_rows)
    late_rows: dict[str, int] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        """One line per table with rows committed later than the overlap allows."""
        flow = self.flow  # a reverse flow's rounds (F.reverse) are verified as F --reverse
        if flow.endswith(REVERSE_SUFFIX):
            flow = f"{flow[:-len(REVERSE_SUFFIX)]} --reverse"
        return [f"warning: flow {self.flow} round {self.round_no} table {table}: {count} "
                "row(s) stamped just below the window are missing or older in the target: "
                f"committed later than overlap_ms {self.overlap_ms} allows (raise "
                f"rounds.overlap_ms; `furet verify --flow {flow} --repair` copies them)"
                for table, count in sorted(self.late_rows.items()) if count]

    @property
    def rows_deleted(self) -> int:
        """Target rows deleted because their source row is gone (``deletes: propagate``)."""
        return sum(t.rows_deleted for t in self.tables)

    @property
    def rate(self) -> float | None:
        """Rows written per second of the round's wall time."""
        return self.rows_written / self.seconds if self.seconds else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["strategy"] = str(self.strategy)
        data["tables"] = [asdict(t) for t in self.tables]
        return data


@dataclass(frozen=True)
class QuarantineCount:
    """Rows of one flow and source table in furet.quarantine for one reason."""

    flow: str
    source_table: str
    reason: str
    rows: int


@dataclass(frozen=True)
class StatusReport:
    """``furet status``: the last rounds of each flow and the quarantine by reason."""

    rounds: tuple[RoundSummary, ...] = ()
    quarantine: tuple[QuarantineCount, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"rounds": [r.to_dict() for r in self.rounds],
                "quarantine": [asdict(q) for q in self.quarantine]}


class QuarantineLimitExceeded(FuretError):
    """The round finished but quarantined more rows than ``--max-quarantined`` allows.

    The round is done and recorded; the exception carries its summary so that the caller
    can still print it (the CLI prints it, then exits 2 with this one line)."""

    def __init__(self, summary: RoundSummary, limit: int) -> None:
        super().__init__(f"flow {summary.flow} round {summary.round_no}: "
                         f"{summary.rows_quarantined} rows quarantined, more than "
                         f"--max-quarantined {limit} (see furet.quarantine on the target)")
        self.summary = summary
        self.limit = limit
