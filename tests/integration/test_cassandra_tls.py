"""Cassandra 5.0.9 with the cassandra role's TLS settings, on a loopback node.

ONE node from the repo's dist (make cassandra-dist) on 127.0.0.23 (the suite's engine node
is .22, test_cassandra_dist.py's .21), free ports, everything under pytest's tmp dir. Its
server_encryption_options and client_encryption_options are the role's own, rendered for a
lab node (tests/cassandra_role.py) with the TLS directory moved here; the CA and the node's
PKCS#8 key + certificate (IP SAN 127.0.0.23) are made like the pki role's. It checks that
Cassandra starts with them (PEM keystore, no password), that furet's session with
cassandra.ssl_ca writes and reads, that a client without TLS is refused, that a wrong CA
is one line, that the storage port serves TLS with client authentication, and that
``nodetool reloadssl`` (the role's handler) serves a new certificate without a restart."""

from __future__ import annotations

import socket
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from migration.backup.scratch_cassandra import CassandraNode, scratch_cassandra
from migration.cassandra_session import cassandra_session
from migration.config import CassandraSettings
from migration.errors import FuretError
from tests.cassandra_role import render
from tests.helpers import REPO
from tests.tls_certs import Ca, make_ca, make_node

pytestmark = pytest.mark.integration

ADDRESS = "127.0.0.23"


@dataclass
class TlsNode:
    node: CassandraNode
    ca: Ca
    tls: Path          # the node's cassandra_tls_dir: ca.crt, node.pem
    other_ca: Path

    @property
    def settings(self) -> CassandraSettings:
        return CassandraSettings(hosts=(ADDRESS,), port=self.node.ports.native,
                                 ssl_ca=str(self.tls / "ca.crt"))


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNode]:
    current = REPO / ".cache" / "cassandra" / "current"
    if not current.exists():
        pytest.fail(f"{current} not found: run make cassandra-dist", pytrace=False)
    base = tmp_path_factory.mktemp("cassandra-tls")
    ca = make_ca(base / "pki")
    other = make_ca(base / "other", "another CA")
    tls = base / "tls"
    make_node(ca, tls, "node", ADDRESS)
    (tls / "ca.crt").write_bytes(ca.cert.read_bytes())
    conf = render("cassandra1", cassandra_tls_dir=str(tls))
    settings = {key: conf[key] for key in ("server_encryption_options",
                                           "client_encryption_options")}
    assert settings["server_encryption_options"]["optional"] is False
    try:
        with scratch_cassandra(current, address=ADDRESS, keep_dir=base / "node",
                               cluster_name="furet-tls-it", dc="dc1", settings=settings) as node:
            yield TlsNode(node, ca, tls, other.cert)
    except FuretError as exc:   # it did not start: the line names its last ERROR
        pytest.fail(str(exc), pytrace=False)


def _s_client(port: int, *args: str) -> str:
    result = subprocess.run(["openssl", "s_client", "-connect", f"{ADDRESS}:{port}", *args],
                            input="", capture_output=True, text=True, timeout=30, check=False)
    return result.stdout + result.stderr


def _serial(text: str) -> str:
    return subprocess.run(["openssl", "x509", "-noout", "-serial"], input=text,
                          capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def test_furet_writes_and_reads_over_tls(tls_node: TlsNode) -> None:
    cluster, session = cassandra_session(tls_node.settings)
    try:
        session.execute("CREATE KEYSPACE IF NOT EXISTS tls_it WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.execute("CREATE TABLE IF NOT EXISTS tls_it.kv (k uuid PRIMARY KEY, v text)")
        key = uuid.uuid4()
        session.execute("INSERT INTO tls_it.kv (k, v) VALUES (%s, %s)", (key, "chiffré"))
        row = session.execute("SELECT v FROM tls_it.kv WHERE k = %s", (key,)).one()
        assert row is not None and row.v == "chiffré"
    finally:
        cluster.shutdown()


def test_a_client_without_tls_is_refused(tls_node: TlsNode) -> None:
    from cassandra.cluster import Cluster, NoHostAvailable

    cluster = Cluster([ADDRESS], port=tls_node.node.ports.native, connect_timeout=5,
                      protocol_version=5)
    try:
        with pytest.raises(NoHostAvailable):
            cluster.connect()
    finally:
        cluster.shutdown()
    plain = CassandraSettings(hosts=(ADDRESS,), port=tls_node.node.ports.native)
    with pytest.raises(FuretError) as info:
        cassandra_session(plain)
    assert str(info.value).startswith(f"cassandra {ADDRESS}:{tls_node.node.ports.native}: ")
    assert str(info.value).endswith("(a node that requires TLS resets plaintext clients: set "
                                    "cassandra.ssl_ca)")
    assert "\n" not in str(info.value)


def test_a_certificate_of_another_ca_is_one_line(tls_node: TlsNode) -> None:
    port = tls_node.node.ports.native
    wrong = CassandraSettings(hosts=(ADDRESS,), port=port, ssl_ca=str(tls_node.other_ca))
    with pytest.raises(FuretError) as info:
        cassandra_session(wrong)
    assert str(info.value) == (f"cassandra {ADDRESS}:{port}: TLS: certificate verify failed: "
                               f"unable to get local issuer certificate (CA {tls_node.other_ca})")


def test_the_storage_port_serves_tls_to_nodes_with_a_certificate(tls_node: TlsNode) -> None:
    port = tls_node.node.ports.storage
    tls = tls_node.tls
    with_cert = _s_client(port, "-CAfile", str(tls / "ca.crt"), "-cert", str(tls / "node.crt"),
                          "-key", str(tls / "node.key"), "-verify_return_error")
    assert "Verify return code: 0 (ok)" in with_cert, with_cert[-2000:]
    # require_client_auth: a peer without a certificate is turned away (TLS 1.3: the
    # server's alert arrives after the client's side of the handshake, on the first read).
    context = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    with (socket.create_connection((ADDRESS, port), timeout=10) as raw,
          context.wrap_socket(raw, server_hostname=ADDRESS) as conn,
          pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED|certificate required")):
        conn.recv(1)


def test_reloadssl_serves_a_new_certificate_without_a_restart(tls_node: TlsNode) -> None:
    port, tls = tls_node.node.ports.native, tls_node.tls
    before = _serial(_s_client(port, "-CAfile", str(tls / "ca.crt")))
    assert before == _serial((tls / "node.crt").read_text())
    renewed = tls / "renewed"
    make_node(tls_node.ca, renewed, "node", ADDRESS)
    (tls / "node.pem").write_bytes((renewed / "node.pem").read_bytes())
    reload = tls_node.node.nodetool("reloadssl", timeout=120)
    assert reload.returncode == 0, reload.stdout + reload.stderr
    after = _serial(_s_client(port, "-CAfile", str(tls / "ca.crt")))
    assert after == _serial((renewed / "node.crt").read_text()) != before
    cluster, session = cassandra_session(tls_node.settings)   # furet still verifies it
    try:
        assert session.execute("SELECT release_version FROM system.local").one()
    finally:
        cluster.shutdown()
