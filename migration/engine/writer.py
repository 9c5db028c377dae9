"""What a round (and a repair) needs from a target store: the :class:`Writer` protocol.

A writer takes a batch of source rows (the flow's source columns, key first, version
second) and writes them version-aware and idempotently: replaying a batch changes nothing
and an older version never replaces a newer one. Rows it cannot write come back in the
:class:`BatchOutcome` as quarantined rows with their reason, never as an exception.

``cur`` is the ledger's cursor on the target MariaDB, inside the batch transaction: the
Galera writer writes its rows through it (rows and checkpoint commit together); the
Cassandra writer ignores it (its writes are made safe to replay by ``USING TIMESTAMP``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pymysql

from migration.engine.quarantine import QuarantinedRow


@dataclass
class BatchOutcome:
    """Rows written, and the rows that went to quarantine with their reason."""

    written: int = 0
    quarantined: list[QuarantinedRow] = field(default_factory=list)

    def add(self, other: BatchOutcome) -> None:
        self.written += other.written
        self.quarantined.extend(other.quarantined)


class Writer(Protocol):
    """A version-aware, idempotent writer of one source table's rows into its targets."""

    def write(self, cur: pymysql.cursors.Cursor,
              rows: Sequence[Sequence[Any]]) -> BatchOutcome: ...


__all__ = ["BatchOutcome", "Writer"]
