"""Which server errors make a round redo its transaction (migration.engine.round)."""

from __future__ import annotations

import pymysql
import pytest
from tenacity import wait_none

from migration.engine.round import _retrying


def _flaky(code: int, failures: int):
    calls = []

    def write() -> str:
        calls.append(code)
        if len(calls) <= failures:
            raise pymysql.err.OperationalError(code, "from the server")
        return "written"
    return write, calls


@pytest.mark.parametrize("code", [1213, 1205, 1047, 2013,
                                  1020])  # 11.8's snapshot isolation: "Record has changed"
def test_a_transaction_the_server_rolled_back_is_redone(code: int) -> None:
    retrying = _retrying().copy(wait=wait_none())
    write, calls = _flaky(code, 2)
    assert retrying(write) == "written"
    assert len(calls) == 3


def test_a_data_error_is_not_redone() -> None:
    retrying = _retrying().copy(wait=wait_none())
    write, calls = _flaky(1062, 1)
    with pytest.raises(pymysql.err.OperationalError):
        retrying(write)
    assert len(calls) == 1
