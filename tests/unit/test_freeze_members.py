"""Which servers a freeze covers: the legacy alone, or every member of a Galera source (read
from wsrep_incoming_addresses), each reached with the same account and TLS settings."""

from __future__ import annotations

import pytest

from migration.config import DbSettings
from migration.errors import FuretError
from migration.legacy.freeze import member_settings

SOURCE = DbSettings("legacy", host="127.0.0.1", port=3306, user="furet", password="pw",
                    ssl_ca="/etc/furet/tls/ca.crt", ssl_server_name="galera.furet.internal")


def test_a_server_without_wsrep_is_frozen_alone() -> None:
    assert member_settings("", SOURCE) == [SOURCE]


def test_each_galera_member_is_reached_with_the_same_account_and_tls() -> None:
    nodes = member_settings("10.213.0.21:3306,10.213.0.22:3306, [fd00::23]:3307", SOURCE)
    assert [(n.host, n.port) for n in nodes] == [
        ("10.213.0.21", 3306), ("10.213.0.22", 3306), ("fd00::23", 3307)]
    assert {(n.user, n.password, n.ssl_ca, n.ssl_server_name, n.role) for n in nodes} == {
        ("furet", "pw", "/etc/furet/tls/ca.crt", "galera.furet.internal", "legacy")}


@pytest.mark.parametrize("incoming", ["AUTO:3306,10.213.0.22:3306", "10.213.0.21",
                                      "fd00::23", "[fd00::23]"])
def test_a_member_without_a_reachable_address_is_one_line_naming_it(incoming: str) -> None:
    with pytest.raises(FuretError) as error:
        member_settings(incoming, SOURCE)
    message = str(error.value)
    assert "legacy 127.0.0.1:3306" in message and "wsrep_node_incoming_address" in message
    assert "pw" not in message and "\n" not in message
