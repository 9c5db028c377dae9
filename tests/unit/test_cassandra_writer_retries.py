"""The Cassandra writer sends again what timed out (the store's state), never what was
rejected (the rows' fault), and gives up in one line. The driver's concurrent executor is
replaced by a scripted one: what is under test is the writer's decision, not Cassandra
(tests/integration/test_cassandra_flow.py writes to a real node)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from migration.engine import cassandra_writer
from migration.engine.cassandra_writer import CassandraWriter
from migration.errors import FuretError


class WriteTimeout(Exception):
    """Named as the driver's: the writer goes by the error's type name."""


class InvalidRequest(Exception):
    pass


def _writer() -> CassandraWriter:
    writer = CassandraWriter.__new__(CassandraWriter)  # no session: _execute only
    writer.session = object()
    writer.keyspace = "prod"
    return writer


def _script(monkeypatch: pytest.MonkeyPatch, answers: list[dict[str, Any]]) -> list[list[str]]:
    """Each call answers its statements from the next dict (statement -> result)."""
    calls: list[list[str]] = []
    turns: Iterator[dict[str, Any]] = iter(answers)

    def execute_concurrent(session: Any, pairs: list[tuple[str, None]], **_: Any) -> list:
        turn = next(turns)
        calls.append([s for s, _ in pairs])
        return [(turn.get(s) is None, turn.get(s)) for s, _ in pairs]

    import cassandra.concurrent
    monkeypatch.setattr(cassandra.concurrent, "execute_concurrent", execute_concurrent)
    monkeypatch.setattr(cassandra_writer.time, "sleep", lambda s: None)
    return calls


def test_timeouts_are_sent_again_rejections_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    rejected = InvalidRequest("bad")
    calls = _script(monkeypatch, [{"a": WriteTimeout("t"), "b": rejected}, {}])
    results = _writer()._execute(["a", "b", "c"])
    assert calls == [["a", "b", "c"], ["a"]]
    assert results == [(True, None), (False, rejected), (True, None)]


def test_a_store_that_keeps_timing_out_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    _script(monkeypatch, [{"a": WriteTimeout("Operation timed out")}] * 6)
    with pytest.raises(FuretError, match="cassandra keyspace prod: 1 write\\(s\\) still failing "
                                         "after 6 attempts: WriteTimeout: Operation timed out"):
        _writer()._execute(["a"])


def test_an_unknown_driver_error_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    class AuthenticationFailed(Exception):
        pass

    _script(monkeypatch, [{"a": AuthenticationFailed("no")}])
    with pytest.raises(FuretError, match="cassandra keyspace prod: AuthenticationFailed: no"):
        _writer()._execute(["a"])
