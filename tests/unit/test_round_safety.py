"""Round safety without servers: the consistency every Cassandra write statement carries,
and the write consistency setting (issue 12, item 3).

tests/integration/test_round_safety.py proves the same against a real node; here the
statements are the driver's own (PreparedStatement, BatchStatement), only the session that
would send them is scripted."""

from __future__ import annotations

from typing import Any

import pytest
from cassandra import ConsistencyLevel, cqltypes
from cassandra.protocol import ColumnMetadata
from cassandra.query import BatchStatement, PreparedStatement

from migration.config import CassandraSettings, load_config
from migration.engine.cassandra_writer import CassandraWriter
from migration.engine.versions import codec_for
from migration.errors import FuretError
from migration.flows.mapping import load_flow

TYPES = {"uid": cqltypes.UTF8Type, "product": cqltypes.UTF8Type, "status": cqltypes.UTF8Type,
         "premium_cents": cqltypes.Int32Type, "day": cqltypes.SimpleDateType}


class _Session:
    """Prepares real driver statements; never connects."""

    def prepare(self, cql: str) -> PreparedStatement:
        names = cql.split("(", 1)[1].split(")", 1)[0].split(", ") + ["[timestamp]"]
        cols = [ColumnMetadata("prod", "t", n, TYPES.get(n, cqltypes.LongType)) for n in names]
        return PreparedStatement(cols, b"id", [], cql, "prod", 5, [], None)


def _written(monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> list[Any]:
    """The statements one batch of three quotes sends."""
    sent: list[Any] = []

    def execute_concurrent(session: Any, pairs: list[tuple[Any, None]], **_: Any) -> list:
        sent.extend(s for s, _ in pairs)
        return [(True, None)] * len(pairs)

    import cassandra.concurrent
    monkeypatch.setattr(cassandra.concurrent, "execute_concurrent", execute_concurrent)
    tf = load_flow("cassandra_prod").table("quote")
    codec = codec_for("prod quote", "updated_ts", "bigint", None)
    writer = CassandraWriter(_Session(), "prod", tf, codec, **kwargs)
    values = {"id": 1, "customer_id": 7, "created_ts": 1_700_000_000_000, "uid": "u1",
              "product": "car", "status": "priced", "premium_cents": 100,
              "updated_ts": 1_700_000_000_000}
    rows = [tuple(dict(values, id=i, customer_id=7 + (i % 2))[c] for c in tf.source_columns)
            for i in range(1, 4)]
    assert writer.write(None, rows).written == 3
    return sent


def test_every_write_carries_local_quorum_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _written(monkeypatch)
    assert sent and any(isinstance(s, BatchStatement) for s in sent)
    for statement in sent:
        assert statement.consistency_level == ConsistencyLevel.LOCAL_QUORUM, statement


def test_the_configured_consistency_is_on_every_statement(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _written(monkeypatch, consistency="EACH_QUORUM")
    assert {s.consistency_level for s in sent} == {ConsistencyLevel.EACH_QUORUM}


def test_write_consistency_setting_defaults_and_refuses_one_replica() -> None:
    assert CassandraSettings().write_consistency == "LOCAL_QUORUM"
    assert load_config(env={"FURET_CASSANDRA_WRITE_CONSISTENCY": "quorum"}).cassandra \
        .write_consistency == "QUORUM"
    for level in ("ONE", "LOCAL_ONE", "ANY", "SOME"):
        with pytest.raises(FuretError, match=r"^environment FURET_\*: cassandra\."
                                             rf"write_consistency = '{level}' is not one of "
                                             r"LOCAL_QUORUM, .*single replica"):
            load_config(env={"FURET_CASSANDRA_WRITE_CONSISTENCY": level})
