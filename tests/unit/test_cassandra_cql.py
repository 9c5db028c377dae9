"""The helpers of roles/cassandra/library/cassandra_cql.py (no Cassandra needed)."""

from __future__ import annotations

import importlib.util
import uuid

import pytest

from tests.helpers import REPO

_SPEC = importlib.util.spec_from_file_location(
    "cassandra_cql", REPO / "roles" / "cassandra" / "library" / "cassandra_cql.py")
cql = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cql)


@pytest.mark.parametrize(("name", "quoted"), [
    ("prod", "prod"),
    ("furet_admin", "furet_admin"),
    ("Mixed", '"Mixed"'),
    ("1st", '"1st"'),
    ('we"ird', '"we""ird"'),
])
def test_identifiers_are_quoted_only_when_needed(name: str, quoted: str) -> None:
    assert cql.cql_name(name) == quoted


def test_text_literals_escape_quotes() -> None:
    assert cql.cql_text("it's") == "'it''s'"


def test_values_become_json_friendly() -> None:
    u = uuid.UUID(int=1)
    assert cql.plain({"a": {2, 1}, "b": u, "c": None}) == {"a": [1, 2], "b": str(u), "c": None}


def test_login_errors_are_classified() -> None:
    class Failed(Exception):
        pass

    auth = Failed()
    auth.errors = {"10.0.0.1:9042": Exception("AuthenticationFailed('Bad credentials')")}
    down = Failed()
    down.errors = {"10.0.0.1:9042": ConnectionRefusedError(111, "refused")}
    assert cql.login_error(auth)[0] == "auth"
    assert cql.login_error(down)[0] == "unreachable"
