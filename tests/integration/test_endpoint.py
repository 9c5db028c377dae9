"""`furet endpoint` against a real HAProxy 2.6 (the Debian package's binary, run by the test
in master-worker mode on 127.0.0.31 with a config like the app_endpoint role's) in front of
the loopback MariaDB servers of conftest.py: 127.0.0.11 plays the legacy master, 127.0.0.12
Galera. Which one a client reached is its @@bind_address.

Proves: status reads file and memory; a switch sends new connections to the other side and
cuts a pooled connection to the old one (its next query fails); the switch survives a reload
(SIGUSR2 to the master: the new worker reads the map file); `refused` refuses new
connections and a switch back to the legacy works; a side whose server is DOWN is refused
with one line and nothing changes; --dry-run changes nothing (map bytes, `show map`, pooled
connections). Each test starts its own HAProxy and stops exactly that process.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable

import pymysql
import pytest

from tests.integration.haproxy import (
    ADDRESS,
    Haproxy,
    free_port,
    until,
    where_reached,
)

pytestmark = pytest.mark.integration




def test_switch_moves_new_connections_cuts_pooled_ones_and_survives_a_reload(
        start_haproxy: Callable[..., Haproxy]) -> None:
    haproxy = start_haproxy()
    until(lambda: haproxy.server_status("app_galera", "galera1") == "UP", "galera1 UP")
    os.chmod(haproxy.map, 0o640)
    status = haproxy.furet("status", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert (data["in_file"], data["in_memory"], data["agree"]) == (
        "app_legacy", "app_legacy", True)
    pooled = haproxy.connect()
    assert where_reached(pooled) == "127.0.0.11"
    table = haproxy.furet("status")
    assert table.returncode == 0 and "legacy1" in table.stdout and "galera1" in table.stdout

    switch = haproxy.furet("switch", "--to", "galera", "--json")
    assert switch.returncode == 0, switch.stderr
    result = json.loads(switch.stdout)
    assert (result["from"], result["to"], result["changed"]) == (
        "app_legacy", "app_galera", True)
    assert [s["server"] for s in result["sessions_shut"]] == ["app_legacy/legacy1"]
    assert result["old_sessions"] == 0
    assert haproxy.reached() == "127.0.0.12"
    with pytest.raises(pymysql.err.OperationalError):  # the pool's connection is cut
        where_reached(pooled)
    pooled.close()
    assert haproxy.map.read_text() == "active app_galera\n"
    assert stat.S_IMODE(haproxy.map.stat().st_mode) == 0o640
    assert haproxy.show_map() == "active app_galera"

    again = haproxy.furet("switch", "--to", "galera")
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout

    haproxy.reload()
    assert haproxy.show_map() == "active app_galera"  # read from the file by the new worker
    assert haproxy.reached() == "127.0.0.12"


def test_refused_refuses_new_connections_and_legacy_comes_back(
        start_haproxy: Callable[..., Haproxy]) -> None:
    haproxy = start_haproxy()
    pooled = haproxy.connect()
    switch = haproxy.furet("switch", "--to", "refused")
    assert switch.returncode == 0, switch.stderr
    with pytest.raises(pymysql.err.OperationalError):
        haproxy.connect()
    with pytest.raises(pymysql.err.OperationalError):
        where_reached(pooled)
    pooled.close()
    assert haproxy.map.read_text() == "active app_refused\n"
    back = haproxy.furet("switch", "--to", "legacy")
    assert back.returncode == 0, back.stderr
    assert haproxy.reached() == "127.0.0.11"


def test_a_side_whose_server_is_down_is_refused_in_one_line_and_nothing_changes(
        start_haproxy: Callable[..., Haproxy]) -> None:
    haproxy = start_haproxy(galera=f"{ADDRESS}:{free_port()}")  # nobody listens there
    until(lambda: haproxy.server_status("app_galera", "galera1") == "DOWN", "galera1 DOWN")
    pooled = haproxy.connect()
    before, in_memory = haproxy.map.read_bytes(), haproxy.show_map()
    switch = haproxy.furet("switch", "--to", "galera")
    assert switch.returncode == 2
    lines = [x for x in switch.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, switch.stderr
    assert "app_galera" in lines[0] and "galera1 DOWN" in lines[0], lines[0]
    assert haproxy.map.read_bytes() == before and haproxy.show_map() == in_memory
    assert where_reached(pooled) == "127.0.0.11"  # not cut
    pooled.close()


def test_a_dry_run_changes_nothing(start_haproxy: Callable[..., Haproxy]) -> None:
    haproxy = start_haproxy()
    until(lambda: haproxy.server_status("app_galera", "galera1") == "UP", "galera1 UP")
    pooled = haproxy.connect()
    before, in_memory = haproxy.map.read_bytes(), haproxy.show_map()
    dry = haproxy.furet("switch", "--to", "galera", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would " in dry.stdout and "app_legacy/legacy1" in dry.stdout
    assert haproxy.map.read_bytes() == before and haproxy.show_map() == in_memory
    assert where_reached(pooled) == "127.0.0.11"
    assert haproxy.reached() == "127.0.0.11"
    pooled.close()
