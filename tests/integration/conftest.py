"""Two real MariaDB servers on loopback for the migration engine's integration tests.

``legacy`` on 127.0.0.11:3306 (no strict mode, like the MySQL 5.x it stands for) and
``target`` on 127.0.0.12:3306 (strict, like the Galera nodes), each with its own datadir,
socket and pid file under pytest's tmp dir, started once per session with
mariadb-install-db + mariadbd and stopped by PID at the end. Missing binaries fail the
session (they are in lab/apt-packages.txt: run `make deps`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from migration.backup.scratch_cassandra import CassandraNode, Ports, scratch_cassandra
from migration.config import CassandraSettings, DbSettings, FuretConfig, RoundSettings
from migration.errors import FuretError
from migration.legacy.schema import init_legacy
from migration.target.schema import init_target

USER = "furet"
PASSWORD = "furet-it-secret"
APP_USER = "webapp"  # the web app's user for `legacy traffic`: no SUPER, so read_only stops it
START_TIMEOUT_S = 60


@dataclass
class Server:
    role: str
    address: str
    port: int
    base: Path
    proc: subprocess.Popen[bytes]

    @property
    def socket(self) -> str:
        return str(self.base / "mysqld.sock")

    def settings(self, user: str = USER, password: str = PASSWORD) -> DbSettings:
        return DbSettings(self.role, self.address, self.port, user, password)

    def root(self) -> pymysql.connections.Connection:
        return pymysql.connect(unix_socket=self.socket, user="root", autocommit=True,
                               charset="utf8mb4")


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}")
                                  else None)
    if path is None:
        pytest.fail(f"{name} not found: MariaDB server binaries are missing, run `make deps` "
                    "(mariadb-server is in lab/apt-packages.txt)", pytrace=False)
    return path


def _port_free(address: str, port: int) -> bool:
    """Nobody listens there (TIME_WAIT leftovers of a previous run do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def _start(role: str, address: str, port: int, base: Path, sql_mode: str,
           extra: Sequence[str] = ()) -> Server:
    """``extra``: more mariadbd options, after the others (``--log-bin`` overrides
    ``--skip-log-bin``)."""
    if not _port_free(address, port):
        pytest.fail(f"{address}:{port} is in use: another MariaDB test run? stop it first",
                    pytrace=False)
    datadir = base / "data"
    base.mkdir(parents=True)
    install = subprocess.run(
        [_binary("mariadb-install-db"), "--no-defaults", f"--datadir={datadir}", "--user=root",
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        capture_output=True, text=True)
    if install.returncode != 0:
        pytest.fail(f"mariadb-install-db for {role} failed:\n{install.stdout}{install.stderr}")
    log = base / "error.log"
    proc = subprocess.Popen(
        [_binary("mariadbd"), "--no-defaults", f"--datadir={datadir}", "--user=root",
         f"--socket={base / 'mysqld.sock'}", f"--pid-file={base / 'mysqld.pid'}",
         f"--bind-address={address}", f"--port={port}", f"--log-error={log}",
         f"--sql-mode={sql_mode}", "--skip-name-resolve", "--skip-log-bin",
         "--innodb-buffer-pool-size=128M", "--innodb-log-file-size=64M",
         "--innodb-flush-log-at-trx-commit=2", "--innodb-autoinc-lock-mode=2",
         "--max-connections=300", "--character-set-server=utf8mb4",
         "--collation-server=utf8mb4_unicode_ci", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    server = Server(role, address, port, base, proc)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"mariadbd {role} exited ({proc.returncode}):\n"
                        f"{log.read_text(errors='replace')[-3000:]}")
        try:
            conn = server.root()
            break
        except pymysql.MySQLError:
            if time.monotonic() > deadline:
                _stop(server)
                pytest.fail(f"mariadbd {role} not ready after {START_TIMEOUT_S}s")
            time.sleep(0.2)
    with conn.cursor() as cur:
        for user in (USER, APP_USER):
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}'")
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%'")
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON *.* TO '{APP_USER}'@'%'")
    conn.close()
    return server


def _stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(10)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    base = tmp_path_factory.mktemp("mariadb")
    started: dict[str, Server] = {}
    try:
        started["legacy"] = _start("legacy", "127.0.0.11", 3306, base / "legacy",
                                   "NO_ENGINE_SUBSTITUTION")
        started["target"] = _start("target", "127.0.0.12", 3306, base / "target",
                                   "STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,"
                                   "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION")
        yield started
    finally:
        for server in started.values():
            _stop(server)


def make_config(servers: dict[str, Server], **rounds: int) -> FuretConfig:
    return FuretConfig(legacy=servers["legacy"].settings(),
                       target=servers["target"].settings(),
                       rounds=RoundSettings(**{"workers": 3, "chunk_rows": 1000,
                                               "batch_rows": 300, **rounds}))


def furet_env(servers: dict[str, Server]) -> dict[str, str]:
    """Environment for a `furet` subprocess pointed at the test servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FURET_")}
    for role in ("legacy", "target"):
        s = servers[role]
        env.update({f"FURET_{role.upper()}_HOST": s.address,
                    f"FURET_{role.upper()}_PORT": str(s.port),
                    f"FURET_{role.upper()}_USER": USER,
                    f"FURET_{role.upper()}_PASSWORD": PASSWORD})
    return env


def empty_schemas(servers: dict[str, Server]) -> None:
    """Empty legacy and target schemas, no furet ledger, the legacy server writable."""
    init_legacy(servers["legacy"].settings(), drop=True)
    init_target(servers["target"].settings(), drop=True)
    with contextlib.closing(servers["target"].root()) as conn, conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS furet")
    with contextlib.closing(servers["legacy"].root()) as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL read_only = 0")


@pytest.fixture
def fresh(servers: dict[str, Server]) -> dict[str, Server]:
    """Empty legacy and target schemas and an empty furet ledger, for one test."""
    empty_schemas(servers)
    return servers


def fresh_prod_keyspace(cassandra_node: str) -> CassandraSettings:
    """The test node's settings, its keyspace prod dropped and created again empty (RF 1)."""
    from migration.cassandra_session import cassandra_session
    from migration.target.cassandra_schema import init_cassandra

    settings = CassandraSettings(hosts=(cassandra_node,))
    cluster, session = cassandra_session(settings)
    try:
        session.execute("DROP KEYSPACE IF EXISTS prod", timeout=60)
    finally:
        cluster.shutdown()
    init_cassandra(settings, "prod", "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    return settings


CASSANDRA_ADDRESS = "127.0.0.22"  # test_cassandra_dist.py uses .21


@pytest.fixture(scope="session")
def cassandra_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CassandraNode]:
    """One Cassandra node from the repo's dist (make cassandra-dist) on 127.0.0.22, started
    and stopped by :func:`migration.backup.scratch_cassandra.scratch_cassandra`; its files
    (data dir, logs) under pytest's tmp dir."""
    repo = Path(__file__).resolve().parents[2]
    current = repo / ".cache" / "cassandra" / "current"
    if not current.exists():
        pytest.fail(f"{current} not found: run make cassandra-dist", pytrace=False)
    for port in (9042, 7000, 7199):
        with socket.socket() as sock:
            if sock.connect_ex((CASSANDRA_ADDRESS, port)) == 0:
                pytest.fail(f"{CASSANDRA_ADDRESS}:{port} is in use", pytrace=False)
    try:
        with scratch_cassandra(current, address=CASSANDRA_ADDRESS, ports=Ports(9042, 7000, 7199),
                               keep_dir=tmp_path_factory.mktemp("cassandra-engine"),
                               cluster_name="furet-engine-it", dc="dc1") as node:
            yield node
    except FuretError as exc:  # it did not start: the line names its last ERROR
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def cassandra_node(cassandra_instance: CassandraNode) -> str:
    """The address of the suite's Cassandra node (127.0.0.22, CQL port 9042)."""
    return cassandra_instance.address


# The HAProxy fixture (start_haproxy) of the endpoint tests. E402: imported last, because
# tests/integration/haproxy.py imports this module's servers; F401: pytest finds a fixture
# by its name in a conftest, so the import is its use.
from tests.integration.haproxy import start_haproxy  # noqa: E402, F401
