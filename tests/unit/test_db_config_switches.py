"""The MariaDB configuration files of the Galera and legacy roles read their switches as
booleans: ``-e galera_tls=false`` on the command line is the string "false", which Jinja
alone takes for true (the tasks skipped the certificates while the configuration still named
them, and mariadbd would not start). Rendered by Ansible's templating (tests/role_template.py)."""

from __future__ import annotations

import pytest

from tests.role_template import render

GALERA = {f"galera{n}": {"galera_node_state": {"address": f"10.213.0.2{n}"}} for n in (1, 2, 3)}
CNF = "etc/mysql/mariadb.conf.d"


def _galera(template: str, **extra: object) -> str:
    return render("mariadb_galera", f"{CNF}/{template}", "galera1", facts=GALERA, **extra)


def _legacy(**extra: object) -> str:
    return render("legacy_mysql", f"{CNF}/60-legacy.cnf.j2", "legacy1",
                  facts={"legacy1": {"memtotal_mb": 4096}}, **extra)


def test_the_lab_renders_tls_everywhere() -> None:
    server = _galera("60-galera.cnf.j2")
    assert "ssl_ca = /etc/mysql/furet-tls/ca.crt" in server
    assert "require_secure_transport = ON" in server
    assert "socket.ssl=yes" in server and "socket.dynamic" not in server
    assert "encrypt = 4" in _galera("61-galera-sst.cnf.j2")
    legacy = _legacy()
    assert "/etc/mysql/furet-tls/ca.crt" in legacy and "log_bin " in legacy


@pytest.mark.parametrize("false", ["false", "False", "no", False],
                         ids=["false", "False", "no", "boolean"])
def test_tls_off_as_given_on_the_command_line_renders_no_tls(false: object) -> None:
    server = _galera("60-galera.cnf.j2", galera_tls=false)
    assert "ssl_" not in server and "require_secure_transport" not in server
    assert "socket.ssl" not in server
    assert "[sst]" not in _galera("61-galera-sst.cnf.j2", galera_tls=false)
    assert "ssl_" not in _legacy(legacy_mysql_tls=false)
    assert "log_bin" not in _legacy(legacy_mysql_log_bin=false)


def test_the_other_switches_read_strings_as_booleans() -> None:
    server = _galera("60-galera.cnf.j2", galera_require_secure_transport="false",
                     galera_tls_transition="false")
    assert "require_secure_transport = OFF" in server and "socket.dynamic" not in server
    assert "socket.dynamic=yes" in _galera("60-galera.cnf.j2", galera_tls_transition="true")


def test_a_donor_is_taken_out_of_haproxy_when_told_so() -> None:
    script = "usr/local/bin/furet-clustercheck.j2"
    # the answers themselves: tests/unit/test_galera_clustercheck.py
    assert "\nDONOR_SERVES = True\n" in render("mariadb_galera", script, "galera1", facts=GALERA)
    assert "\nDONOR_SERVES = False\n" in render(
        "mariadb_galera", script, "galera1", facts=GALERA,
        galera_clustercheck_available_when_donor="false")
