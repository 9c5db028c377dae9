"""A repair records the rows it quarantines batch by batch: a repair killed half-way keeps
what it had found (issue 12, item 5c). The sides are in-memory: what is under test is when
:func:`migration.verify.repair.copy_rows` hands refused rows to the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from migration.engine.keys import Key
from migration.engine.quarantine import QuarantinedRow
from migration.engine.writer import BatchOutcome
from migration.flows.mapping import ColumnMap, TableFlow, TargetMap
from migration.verify.repair import copy_rows
from migration.verify.sides import BATCH, Pair

TF = TableFlow("t", ("id",), "v", (TargetMap("t", (ColumnMap("id", "id"),
                                                    ColumnMap("v", "v"))),))


class Killed(Exception):
    """The repair's process dies while writing."""


class Source:
    def source_rows(self, keys: Sequence[Key]) -> list[tuple[Any, ...]]:
        return [(k[0], 1) for k in keys]


class RefusingTarget:
    """Refuses every row; dies when it is handed the row ``die_at``."""

    def __init__(self, die_at: int) -> None:
        self.die_at = die_at

    def copy(self, rows: Sequence[Sequence[Any]]) -> BatchOutcome:
        outcome = BatchOutcome()
        for row in rows:
            if row[0] == self.die_at:
                raise Killed
            outcome.quarantined.append(QuarantinedRow("t", str(row[0]), 1, "t", "bad", {}))
        return outcome


def test_a_killed_repair_keeps_the_quarantine_of_the_batches_it_wrote() -> None:
    keys = [(k,) for k in range(3 * BATCH)]
    pair = Pair(TF, TF.targets[0], Source(), RefusingTarget(die_at=2 * BATCH + 10),  # type: ignore[arg-type]
                ("id", "v"), numeric_key=True)
    recorded: list[str] = []
    with pytest.raises(Killed):
        copy_rows(pair, keys, lambda rows: recorded.extend(q.row_key for q in rows))
    assert recorded == [str(k) for k in range(2 * BATCH)]


def test_every_batch_is_recorded_once() -> None:
    keys = [(k,) for k in range(BATCH + 3)]
    pair = Pair(TF, TF.targets[0], Source(), RefusingTarget(die_at=-1),  # type: ignore[arg-type]
                ("id", "v"), numeric_key=True)
    calls: list[int] = []
    written, quarantined = copy_rows(pair, keys, lambda rows: calls.append(len(rows)))
    assert (written, quarantined) == (0, BATCH + 3)
    assert calls == [BATCH, 3]
