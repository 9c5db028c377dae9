"""furet's Cassandra client over TLS (cassandra.ssl_ca), against a bare TLS listener in this
process: the real driver and handshake, no Cassandra. A certificate that does not verify,
or whose IP SANs miss the node's address, stops the session with one line naming the node
and the CA file; the same handshake with the right CA gets past TLS. The role's own CQL
module (roles/cassandra/library/cassandra_cql.py) builds the same verifying context."""

from __future__ import annotations

import importlib.util
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from migration.cassandra_session import cassandra_session, ssl_context
from migration.config import CassandraSettings, load_config
from migration.errors import FuretError
from tests.helpers import REPO
from tests.tls_certs import make_ca, make_node

_SPEC = importlib.util.spec_from_file_location(
    "cassandra_cql_tls", REPO / "roles" / "cassandra" / "library" / "cassandra_cql.py")
assert _SPEC and _SPEC.loader
cql = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cql)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("pki")
    ca = make_ca(base / "ca")
    other = make_ca(base / "other", "another CA")
    crt, key, _ = make_node(ca, base / "nodes", "node1", "127.0.0.1")
    wrong_ip, wrong_ip_key, _ = make_node(ca, base / "nodes", "node9", "127.0.0.9")
    return {"ca": ca.cert, "other_ca": other.cert, "crt": crt, "key": key,
            "wrong_ip_crt": wrong_ip, "wrong_ip_key": wrong_ip_key}


def _serving(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A listener on 127.0.0.1 that hands each connection to ``handle``; yields its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        server.close()


def _listener(crt: Path, key: Path) -> Iterator[int]:
    """A TLS listener on 127.0.0.1 that completes handshakes, then hangs up (no CQL)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)

    def handshake(conn: socket.socket) -> None:
        conn.settimeout(2)
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(16)
                tls.sendall(b"\xff" * 9)   # no CQL frame: the driver gives up at once
        except OSError:
            pass
        finally:
            conn.close()

    yield from _serving(handshake)


@pytest.fixture(scope="module")
def tls_port(pki: dict[str, Path]) -> Iterator[int]:
    yield from _listener(pki["crt"], pki["key"])


@pytest.fixture(scope="module")
def wrong_ip_port(pki: dict[str, Path]) -> Iterator[int]:
    yield from _listener(pki["wrong_ip_crt"], pki["wrong_ip_key"])


def _fails(settings: CassandraSettings) -> str:
    with pytest.raises(FuretError) as info:
        cluster, _ = cassandra_session(settings)
        cluster.shutdown()
    return str(info.value)


def test_settings_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "furet.yml"
    path.write_text("cassandra: {hosts: [10.0.0.31], ssl_ca: /etc/furet/tls/ca.crt}\n")
    config = load_config(str(path), env={})
    assert (config.cassandra.ssl_ca, config.cassandra.ssl_verify_identity) == \
        ("/etc/furet/tls/ca.crt", True)
    config = load_config(str(path), env={"FURET_CASSANDRA_SSL_CA": "/x/ca.crt",
                                         "FURET_CASSANDRA_SSL_VERIFY_IDENTITY": "false"})
    assert (config.cassandra.ssl_ca, config.cassandra.ssl_verify_identity) == ("/x/ca.crt", False)
    assert CassandraSettings().ssl_ca == ""


def test_the_context_verifies_the_chain_and_each_node_address(pki: dict[str, Path]) -> None:
    assert ssl_context(CassandraSettings()) is None
    context = ssl_context(CassandraSettings(ssl_ca=str(pki["ca"])))
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert [dict(c["subject"][0])["commonName"] for c in context.get_ca_certs()] == \
        ["furet test CA"]
    relaxed = ssl_context(CassandraSettings(ssl_ca=str(pki["ca"]), ssl_verify_identity=False))
    assert relaxed is not None and not relaxed.check_hostname
    assert relaxed.verify_mode == ssl.CERT_REQUIRED


def test_an_unreadable_ca_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.crt"
    message = _fails(CassandraSettings(hosts=("10.0.0.31",), ssl_ca=str(missing)))
    assert message.startswith("cassandra 10.0.0.31:9042: TLS: cannot read the CA file ")
    assert str(missing) in message and "\n" not in message


def test_a_certificate_of_another_ca_is_one_line(pki: dict[str, Path], tls_port: int) -> None:
    message = _fails(CassandraSettings(hosts=("127.0.0.1",), port=tls_port,
                                       ssl_ca=str(pki["other_ca"])))
    assert message == (f"cassandra 127.0.0.1:{tls_port}: TLS: certificate verify failed: "
                       f"unable to get local issuer certificate (CA {pki['other_ca']})")


def test_a_node_address_missing_from_the_sans_is_refused(pki: dict[str, Path],
                                                         wrong_ip_port: int) -> None:
    settings = CassandraSettings(hosts=("127.0.0.1",), port=wrong_ip_port, ssl_ca=str(pki["ca"]))
    message = _fails(settings)
    assert message.startswith(f"cassandra 127.0.0.1:{wrong_ip_port}: TLS: certificate verify "
                              "failed: IP address mismatch")
    assert message.endswith(f"(CA {pki['ca']})") and "\n" not in message
    # ssl_verify_identity false: the chain verifies, so the failure is past TLS (no CQL here).
    relaxed = _fails(CassandraSettings(hosts=("127.0.0.1",), port=wrong_ip_port,
                                       ssl_ca=str(pki["ca"]), ssl_verify_identity=False))
    assert "TLS" not in relaxed and "certificate" not in relaxed


def test_the_right_ca_gets_past_tls(pki: dict[str, Path], tls_port: int) -> None:
    message = _fails(CassandraSettings(hosts=("127.0.0.1",), port=tls_port,
                                       ssl_ca=str(pki["ca"])))
    assert "TLS" not in message and "certificate" not in message


def test_the_role_module_builds_the_same_context(pki: dict[str, Path]) -> None:
    assert cql.ssl_context({"ssl_ca": None}) is None
    context = cql.ssl_context({"ssl_ca": str(pki["ca"])})
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_the_role_module_names_a_tls_failure(pki: dict[str, Path], tls_port: int) -> None:
    params = {"login_host": "127.0.0.1", "login_port": tls_port, "connect_timeout": 5.0,
              "ssl_ca": str(pki["other_ca"])}
    with pytest.raises(cql.NoHostAvailable) as info:
        cql.connect(params)
    kind, message = cql.login_error(info.value)
    assert kind == "tls"
    assert message.startswith("certificate verify failed: unable to get local issuer")


@pytest.fixture(scope="module")
def resetting_port() -> Iterator[int]:
    """A listener that resets every connection, as a TLS-only node does to a plaintext client."""
    def reset(conn: socket.socket) -> None:
        conn.recv(16)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()   # RST

    yield from _serving(reset)


def test_a_plaintext_client_reset_by_the_node_is_told_to_set_the_ca(resetting_port: int) -> None:
    message = _fails(CassandraSettings(hosts=("127.0.0.1",), port=resetting_port))
    assert message.startswith(f"cassandra 127.0.0.1:{resetting_port}: NoHostAvailable")
    assert message.endswith("(a node that requires TLS resets plaintext clients: set "
                            "cassandra.ssl_ca)")
