"""Issue 14 on the lab: what goes over the wire is encrypted, and what is not allowed is
refused.

- A packet capture on the lab's bridge (tcpdump on the host, every container's traffic)
  during a Galera IST, a Galera SST and Cassandra writes at QUORUM holds none of the rows
  written meanwhile (random markers), while a plain-text control on an allowed port is
  seen in the same capture (so the capture does capture).
- A plain-text MySQL client is refused by Galera (directly and through HAProxy), a CQL
  client without TLS by Cassandra; furet's verifying client connects, and refuses a server
  whose certificate is not of its CA or does not carry the name it checks.
- playbooks/certificates.yml renews and rolls every certificate without a restart.
- The firewall (nftables): from a lab host outside the groups that use a port, 4567, 7000
  and 9042 are refused; from the groups that use them they are open.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from cassandra.cluster import NoHostAvailable

from migration.config import DbSettings
from migration.db import connection, query
from migration.errors import FuretError
from migration.inventory import InventoryHost
from migration.lab.config import GALERA_SERVICE_NAME, LabConfig, lab_ca_file
from migration.lab.podman import Podman
from tests.helpers import run_playbook, wait_for
from tests.lab import cassandra_client
from tests.lab.conftest import ProvisionedLab
from tests.lab.galera_client import APP_PASSWORD, APP_USER, connect, node_shell, node_sql

# The service ports whose traffic the capture keeps: MariaDB, SST, Galera replication and
# IST, the health check (plain HTTP: the control), Cassandra internode and CQL.
PORTS = (3306, 4444, 4567, 4568, 9200, 7000, 9042)
ROWS = 200


def _state(host: InventoryHost) -> str:
    return node_sql(host, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                          "WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE_COMMENT'", warn=True)


def _insert(address: str, marker: str) -> None:
    """ROWS rows holding the marker, through HAProxy on etl1 over furet's TLS client."""
    with contextlib.closing(connect(address)) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO tls_probe (k, v) VALUES (%s, %s)",
                        [(f"{marker}-{i}", marker * 4) for i in range(ROWS)])


class Capture:
    """tcpdump on the lab network's bridge, from the host: it sees every container's
    packets (a bridge with a listener in promiscuous mode passes a copy of what it
    forwards)."""

    def __init__(self, lab: LabConfig, path: Path) -> None:
        self.path = path
        interface = Podman(lab.containers_conf).run("network", "inspect", lab.network, "--format",
                                    "{{.NetworkInterface}}").stdout.strip()
        ports = " or ".join(f"tcp port {p}" for p in PORTS)
        self.process = subprocess.Popen(["tcpdump", "-i", interface, "-U", "-s", "0", "-w",
                                         str(path), ports],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True)
        assert self.process.stderr is not None
        line = self.process.stderr.readline()   # "listening on podman1, ..." once it is
        assert "listening on" in line, line

    def stop(self) -> bytes:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)
        return self.path.read_bytes()

    def packets(self, port: int) -> int:
        out = subprocess.run(["tcpdump", "-r", str(self.path), "-nn", f"tcp port {port}"],
                             capture_output=True, text=True, check=True, timeout=60).stdout
        return len(out.splitlines())


@pytest.fixture(scope="module")
def probe_table(galera_healthy: ProvisionedLab) -> Iterator[ProvisionedLab]:
    galera1 = galera_healthy.host("galera1")
    node_sql(galera1, "CREATE TABLE IF NOT EXISTS furet.tls_probe (k VARCHAR(64) PRIMARY KEY, "
                      "v VARCHAR(200) NOT NULL)")
    yield galera_healthy
    node_sql(galera1, "DROP TABLE IF EXISTS furet.tls_probe", warn=True)


def _cassandra_writes(addresses: list[str], marker: str) -> None:
    """ROWS rows holding the marker, at QUORUM over TLS: the coordinator forwards them to
    the other replicas (internode, port 7000), in the other DC too."""
    cluster, session = cassandra_client.connect(addresses)
    try:
        cassandra_client.create_table(session)
        insert = session.prepare(f"INSERT INTO {cassandra_client.KEYSPACE}."
                                 f"{cassandra_client.TABLE} (k, phase) VALUES (?, ?)")
        for i in range(ROWS):
            session.execute(insert, (f"{marker}-{i}", marker * 4))
        assert cassandra_client.missing_keys(session, [f"{marker}-0", f"{marker}-{ROWS - 1}"]) \
            == []
    finally:
        cluster.shutdown()


def test_a_capture_during_ist_sst_and_cassandra_writes_holds_no_row_in_clear(
        probe_table: ProvisionedLab, cassandra_healthy: ProvisionedLab, lab: LabConfig,
        tmp_path: Path, figures: Any) -> None:
    lab_ = probe_table
    etl1, galera1, galera3 = (lab_.host(n) for n in ("etl1", "galera1", "galera3"))
    cassandra = [lab_.host(n).address for n in ("cassandra1", "cassandra2", "cassandra3")]
    markers = {phase: secrets.token_hex(16) for phase in ("control", "ist", "sst", "cql")}
    capture = Capture(lab, tmp_path / "lab.pcap")
    started = time.monotonic()
    try:
        # the control: plain HTTP on an allowed port (the health check), from etl1
        request = f"GET /{markers['control']} HTTP/1.0\\r\\n\\r\\n"
        node_shell(etl1, f"exec 3<>/dev/tcp/{galera1.address}/9200; printf '{request}' >&3; "
                         "timeout 5 cat <&3 >/dev/null", warn=True)

        # IST: galera3 stopped, rows written meanwhile, galera3 back by an incremental transfer
        node_shell(galera3, "systemctl stop mariadb")
        _insert(etl1.address, markers["ist"])
        node_shell(galera3, "systemctl start mariadb")
        wait_for(lambda: _state(galera3) == "Synced", "galera3 Synced after IST", 180)
        ist_log = node_shell(galera3, "journalctl -u mariadb --since '-3min' -o cat --no-pager")
        ist_s = time.monotonic() - started

        # SST: galera3 without its state (grastate.dat gone): a full transfer by mariabackup
        node_shell(galera3, "systemctl stop mariadb && rm -f /var/lib/mysql/grastate.dat")
        _insert(etl1.address, markers["sst"])
        node_shell(galera3, "systemctl start mariadb")
        wait_for(lambda: _state(galera3) == "Synced", "galera3 Synced after SST", 300)
        sst_log = node_shell(galera3, "journalctl -u mariadb --since '-5min' -o cat --no-pager")

        _cassandra_writes(cassandra, markers["cql"])
    finally:
        raw = capture.stop()
    seconds = time.monotonic() - started

    # the transfers happened, over TLS
    assert "IST receiver addr using ssl://" in ist_log, ist_log[-3000:]
    assert "encrypt='4'" in sst_log and "VERIFY_IDENTITY" in sst_log, sst_log[-3000:]
    counts = {port: capture.packets(port) for port in PORTS}
    assert all(counts.values()), counts
    # the capture sees plain text where there is some, and none of the rows
    assert markers["control"].encode() in raw
    for phase in ("ist", "sst", "cql"):
        assert markers[phase].encode() not in raw, f"{phase} rows in clear on the wire"
    # and the rows are on galera3
    for phase in ("ist", "sst"):
        assert node_sql(galera3, f"SELECT COUNT(*) FROM furet.tls_probe WHERE k LIKE "
                                 f"'{markers[phase]}-%'") == str(ROWS)
    figures(capture_bytes=len(raw), packets_by_port=counts, ist_s=round(ist_s, 1),
            ist_and_sst_s=round(seconds, 1))


def _plain(address: str) -> int:
    """A plain-text client with furet's account: the error code it gets (0: it got in)."""
    try:
        conn = pymysql.connect(host=address, user=APP_USER, password=APP_PASSWORD,
                               database="furet", connect_timeout=5, ssl_disabled=True)
    except pymysql.MySQLError as exc:
        return int(exc.args[0])
    conn.close()
    return 0


def _other_ca(directory: Path) -> Path:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=not furet", "-days",
                    "1", "-keyout", str(directory / "other.key"), "-out",
                    str(directory / "other.crt")], check=True, capture_output=True, timeout=30)
    return directory / "other.crt"


def test_a_cql_client_without_tls_is_refused(cassandra_healthy: ProvisionedLab) -> None:
    addresses = [cassandra_healthy.host("cassandra1").address]
    with pytest.raises(NoHostAvailable):
        cassandra_client.connect(addresses, tls=False)
    cluster, session = cassandra_client.connect(addresses)
    try:
        assert session.execute("SELECT release_version FROM system.local").one()
    finally:
        cluster.shutdown()


def test_plain_text_clients_are_refused_and_furet_verifies_the_server(
        galera_healthy: ProvisionedLab, tmp_path: Path) -> None:
    galera1, etl1, legacy1 = (galera_healthy.host(n) for n in ("galera1", "etl1", "legacy1"))
    # Galera refuses plain text, directly and through HAProxy (1045 on MariaDB 10.11, the
    # documented 3159 on later versions)
    assert _plain(galera1.address) in (1045, 3159)
    assert _plain(etl1.address) in (1045, 3159)
    # `|| true`: the client is refused (exit 1); its error message is what is asserted
    node = node_shell(etl1, f"mariadb --skip-ssl -h {galera1.address} -u {APP_USER} "
                            f"-p{APP_PASSWORD} -e 'SELECT 1' 2>&1 || true")
    assert "ERROR 1045" in node or "ERROR 3159" in node, node

    ca = str(lab_ca_file())
    target = DbSettings("target", etl1.address, user=APP_USER, password=APP_PASSWORD,
                        ssl_ca=ca, ssl_server_name=GALERA_SERVICE_NAME)
    with connection(target) as conn:
        cipher = query(conn, "SHOW SESSION STATUS LIKE 'Ssl_version'")[0][1]
    assert cipher in ("TLSv1.2", "TLSv1.3")
    # the certificate of a node must carry the name furet checks
    with pytest.raises(FuretError) as wrong_name, connection(DbSettings(
            "target", etl1.address, user=APP_USER, password=APP_PASSWORD, ssl_ca=ca,
            ssl_server_name="not-galera.example")):
        pass
    assert f"target {etl1.address}:3306: TLS: Hostname mismatch" in str(wrong_name.value)
    # and be signed by the CA furet trusts
    with pytest.raises(FuretError) as wrong_ca, connection(DbSettings(
            "target", etl1.address, user=APP_USER, password=APP_PASSWORD,
            ssl_ca=str(_other_ca(tmp_path)), ssl_server_name=GALERA_SERVICE_NAME)):
        pass
    # (the node sends its chain with furet's CA in it: OpenSSL says so)
    assert any(f"TLS: {why}" in str(wrong_ca.value) for why in (
        "self-signed certificate in certificate chain",
        "unable to get local issuer certificate")), wrong_ca.value
    assert APP_PASSWORD not in str(wrong_ca.value) + str(wrong_name.value)
    # the lab's legacy master serves TLS too, verified by its address
    legacy = DbSettings("legacy", legacy1.address, user=APP_USER,
                        password="lab-legacy-furet-not-secret", ssl_ca=ca)
    with connection(legacy) as conn:
        assert query(conn, "SHOW SESSION STATUS LIKE 'Ssl_version'")[0][1].startswith("TLS")


def _serial(path: Path) -> str:
    return subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", str(path)],
                          capture_output=True, text=True, check=True, timeout=30).stdout


def test_certificates_roll_without_a_restart(galera_healthy: ProvisionedLab,
                                             cassandra_healthy: ProvisionedLab,
                                             figures: Any) -> None:
    """Every node certificate renewed (as if all were due) and rolled by
    playbooks/certificates.yml: each node then serves its new certificate (the playbook
    checks it), no server restarted, a TLS session opened before still works, and a second
    run changes nothing."""
    lab_ = galera_healthy
    nodes = [lab_.host(n) for n in ("galera1", "galera2", "galera3", "legacy1",
                                    "cassandra1", "cassandra2", "cassandra3")]
    units = {h.name: "cassandra" if h.name.startswith("cassandra") else "mariadb" for h in nodes}
    pids = {h.name: node_shell(h, f"systemctl show -P MainPID {units[h.name]}") for h in nodes}
    files = lab_ca_file().parent / "nodes"
    serials = {h.name: _serial(files / f"{h.name}.crt") for h in nodes}
    before = connect(lab_.host("etl1").address)
    started = time.monotonic()
    run = run_playbook("certificates.yml", "-e", "pki_renew_days=800")
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.output[-4000:]
    assert all(_serial(files / f"{h.name}.crt") != serials[h.name] for h in nodes)
    assert {h.name: node_shell(h, f"systemctl show -P MainPID {units[h.name]}")
            for h in nodes} == pids
    with before.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    before.close()
    again = run_playbook("certificates.yml")
    assert again.returncode == 0 and again.changed_hosts() == {}, again.output[-4000:]
    figures(certificates_playbook_s=round(seconds, 1))


# (source, destination, port, open?): each service port from a group that uses it and from
# one that does not; "controller" is this machine (10.213.0.1), allowed the client ports
# only (firewall_client_networks of the lab). Galera's IST and SST ports listen during a
# transfer only: the capture test above shows those transfers through the firewall.
REACH = [
    ("legacy1", "galera1", 4567, False), ("legacy1", "cassandra1", 7000, False),
    ("legacy1", "cassandra1", 9042, False), ("legacy1", "galera1", 9200, False),
    ("legacy1", "galera1", 3306, False),
    ("app1", "cassandra1", 9042, False), ("app1", "cassandra1", 7000, False),
    ("galera2", "galera1", 4567, True), ("galera3", "galera1", 4567, True),
    ("cassandra2", "cassandra1", 7000, True), ("cassandra3", "cassandra1", 7000, True),
    ("etl1", "cassandra1", 9042, True), ("etl1", "cassandra1", 7000, True),
    ("etl1", "galera1", 3306, True),
    ("etl1", "galera1", 9200, True), ("app1", "galera1", 9200, True),
    ("backup1", "galera1", 3306, True), ("backup1", "cassandra1", 9042, True),
    ("controller", "galera1", 4567, False), ("controller", "cassandra1", 7000, False),
    ("controller", "cassandra1", 7199, False),
    ("controller", "galera1", 3306, True), ("controller", "cassandra1", 9042, True),
]


def _reach(lab_: ProvisionedLab, source: str, address: str, port: int) -> str:
    """open, refused (a reset) or timeout: a TCP connection from ``source``."""
    if source == "controller":
        try:
            with socket.create_connection((address, port), timeout=5):
                return "open"
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
    code = node_shell(lab_.host(source), f"timeout 5 bash -c '</dev/tcp/{address}/{port}' "
                                         "2>/dev/null; echo $?", warn=True)
    return {"0": "open", "1": "refused", "124": "timeout"}.get(code, code)


def test_the_firewall_opens_each_port_to_the_groups_that_use_it(
        galera_healthy: ProvisionedLab, cassandra_healthy: ProvisionedLab) -> None:
    lab_ = galera_healthy
    seen = {(src, dst, port): _reach(lab_, src, lab_.host(dst).address, port)
            for src, dst, port, _ in REACH}
    wrong = {(src, dst, port): seen[(src, dst, port)] for src, dst, port, allowed in REACH
             if (seen[(src, dst, port)] == "open") != allowed}
    assert wrong == {}, wrong
    # a furet service port refuses at once (a reset); 7199 (JMX) is not one: dropped
    assert seen[("legacy1", "galera1", 4567)] == "refused"
    assert seen[("controller", "cassandra1", 7199)] == "timeout"
    # loaded on every host, the rollback timer disarmed, loaded again at boot
    for host in lab_.config.hosts:
        state = node_shell(host, "nft list table inet furet >/dev/null && echo loaded; "
                                 "systemctl is-active furet-firewall-rollback.timer; "
                                 "systemctl is-enabled nftables", warn=True).split()
        assert state == ["loaded", "inactive", "enabled"], (host.name, state)
