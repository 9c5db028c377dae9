"""Small clients for the Cassandra fault tests: a driver session on the lab ring, a writer
that inserts continuously at QUORUM (the driver's retry policy, then our own retry of the
same key), and nodetool / shell on a node over SSH."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import (
    ConstantReconnectionPolicy,
    DCAwareRoundRobinPolicy,
    RetryPolicy,
    TokenAwarePolicy,
)

from migration.cassandra_session import ssl_context
from migration.config import CassandraSettings
from migration.inventory import InventoryHost
from migration.lab.config import lab_ca_file
from migration.remote import connection_for

# LAB ONLY: the superuser and keyspace of inventories/lab/group_vars/cassandra.yml.
SUPERUSER = "furet_admin"
SUPERUSER_PASSWORD = "lab-cassandra-admin-not-secret"
KEYSPACE = "prod"
TABLE = "fault_probe"


def node_shell(host: InventoryHost, command: str, warn: bool = False) -> str:
    with connection_for(host) as conn:
        return conn.run(command, hide=True, warn=warn).stdout.strip()


def connect(addresses: list[str], local_dc: str = "rbx", tls: bool = True
            ) -> tuple[Cluster, Any]:
    """A session at QUORUM on the ring, token- and DC-aware, with the default retry policy
    (retries a read/write timeout once and an Unavailable on the next host); over TLS with
    the lab's CA unless ``tls`` is false (the refusal tests)."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc)),
        retry_policy=RetryPolicy(), consistency_level=ConsistencyLevel.QUORUM,
        request_timeout=10)
    cluster = Cluster(addresses, auth_provider=PlainTextAuthProvider(SUPERUSER, SUPERUSER_PASSWORD),
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connect_timeout=10,
                      ssl_context=ssl_context(CassandraSettings(ssl_ca=str(lab_ca_file()))) if tls
                      else None,
                      idle_heartbeat_interval=2,
                      reconnection_policy=ConstantReconnectionPolicy(delay=1.0, max_attempts=None))
    return cluster, cluster.connect()


def create_table(session: Any) -> None:
    session.execute(f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.{TABLE} "
                    "(k text PRIMARY KEY, phase text, written timestamp)")


def missing_keys(session: Any, keys: list[str]) -> list[str]:
    """The keys not readable at QUORUM."""
    stmt = session.prepare(f"SELECT k FROM {KEYSPACE}.{TABLE} WHERE k = ?")
    stmt.consistency_level = ConsistencyLevel.QUORUM
    missing = []
    for key in keys:
        if not session.execute(stmt, (key,)).one():
            missing.append(key)
    return missing


@dataclass
class ContinuousWriter:
    """Inserts at QUORUM until stopped. A failed attempt (after the driver's own retries)
    is counted and the same key is tried again: only acknowledged keys are in ``acked``."""

    session: Any
    max_seconds: float = 900.0
    acked: list[str] = field(default_factory=list)
    failed_attempts: int = 0
    longest_pause_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    # (wall-clock time of the ack before the pause, its length) for pauses over 0.5 s
    pauses: list[tuple[float, float]] = field(default_factory=list)
    # wall-clock time of the last acknowledged write (see galera_client.ContinuousWriter)
    last_ack_at: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._insert = self.session.prepare(
            f"INSERT INTO {KEYSPACE}.{TABLE} (k, phase, written) "
            "VALUES (?, 'rolling', toTimestamp(now()))")
        self._insert.consistency_level = ConsistencyLevel.QUORUM
        self._insert.is_idempotent = True

    def start(self) -> ContinuousWriter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the Cassandra writer did not stop"

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        last_ack = time.monotonic()
        key = uuid.uuid4().hex
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                self.session.execute(self._insert, (key,))
            except Exception as exc:  # Unavailable, WriteTimeout, NoHostAvailable...
                self.failed_attempts += 1
                name = type(exc).__name__
                self.errors[name] = self.errors.get(name, 0) + 1
                time.sleep(0.1)
                continue
            now = time.monotonic()
            self.longest_pause_s = max(self.longest_pause_s, now - last_ack)
            if now - last_ack > 0.5:
                self.pauses.append((time.time() - (now - last_ack), now - last_ack))
            last_ack = now
            self.last_ack_at = time.time()
            self.acked.append(key)
            key = uuid.uuid4().hex
            time.sleep(0.01)
