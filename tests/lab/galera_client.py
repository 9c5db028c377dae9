"""Small clients for the Galera fault tests: SQL on a node over SSH, and a writer that
inserts continuously through HAProxy, retrying on connection loss."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field

import pymysql

from migration.config import DbSettings
from migration.db import tls_context
from migration.inventory import InventoryHost
from migration.lab.config import GALERA_SERVICE_NAME, lab_ca_file
from migration.remote import connection_for

# LAB ONLY: the application user of inventories/lab/group_vars/galera.yml.
APP_USER = "furet"
APP_PASSWORD = "lab-furet-not-secret"


def node_sql(host: InventoryHost, sql: str, warn: bool = False) -> str:
    """Run SQL as root on a node (unix socket) over SSH; return the tab-separated output."""
    with connection_for(host) as conn:
        result = conn.run(f"mariadb -N -s -e {_quote(sql)}", hide=True, warn=warn)
    return result.stdout.strip()


def present_keys(host: InventoryHost, keys: list[str]) -> set[str]:
    """Which of ``keys`` (the writers' acknowledged inserts) are in furet.fault_probe on
    that node."""
    return set(node_sql(host, "SELECT k FROM furet.fault_probe").split()) & set(keys)


def wsrep_status(host: InventoryHost, warn: bool = False) -> dict[str, str]:
    """The node's WSREP_* status variables (empty when the server does not answer and
    ``warn`` is set)."""
    out = node_sql(host, "SELECT VARIABLE_NAME, VARIABLE_VALUE"
                         " FROM information_schema.GLOBAL_STATUS"
                         " WHERE VARIABLE_NAME LIKE 'WSREP_%'", warn=warn)
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def node_shell(host: InventoryHost, command: str, warn: bool = False) -> str:
    with connection_for(host) as conn:
        return conn.run(command, hide=True, warn=warn).stdout.strip()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def connect(address: str, port: int = 3306, database: str = "furet", user: str = APP_USER,
            password: str = APP_PASSWORD) -> pymysql.Connection:
    """furet's account (or ``user``) over TLS, the node (or HAProxy's) verified as furet's
    clients do."""
    return pymysql.connect(host=address, port=port, user=user, password=password,
                           database=database, autocommit=True, connect_timeout=3,
                           read_timeout=10, write_timeout=10, ssl=galera_tls(address))


def galera_tls(address: str) -> ssl.SSLContext | None:
    """The verifying context of a lab Galera client (the service name, the lab's CA)."""
    return tls_context(DbSettings("target", address, ssl_ca=str(lab_ca_file()),
                                  ssl_server_name=GALERA_SERVICE_NAME))


def insert_rows(address: str, phase: str, count: int) -> list[str]:
    """Insert ``count`` rows on one node; return the keys the server acknowledged."""
    acked = []
    with connect(address) as conn, conn.cursor() as cur:
        for _ in range(count):
            key = uuid.uuid4().hex
            cur.execute("INSERT INTO fault_probe (k, phase) VALUES (%s, %s)", (key, phase))
            acked.append(key)
    return acked


@dataclass
class ContinuousWriter:
    """Inserts through ``address`` until stopped, reconnecting after any error: furet's
    account into furet.fault_probe, or ``account`` (user, password, database) running
    ``insert`` with the key as its one parameter."""

    address: str
    max_seconds: float = 900.0
    account: tuple[str, str, str] = (APP_USER, APP_PASSWORD, "furet")
    insert: str = "INSERT INTO fault_probe (k, phase) VALUES (%s, 'rolling')"
    acked: list[str] = field(default_factory=list)
    failed_attempts: int = 0
    longest_pause_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    # (wall-clock time of the ack before the pause, its length) for pauses over 0.5 s
    pauses: list[tuple[float, float]] = field(default_factory=list)
    # wall-clock time of the last acknowledged write: a writer that stopped acknowledging
    # before the end would otherwise hide its last pause
    last_ack_at: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ContinuousWriter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), f"the writer to {self.address} did not stop"

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        last_ack = time.monotonic()
        conn = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            key = uuid.uuid4().hex
            try:
                if conn is None:
                    user, password, database = self.account
                    conn = connect(self.address, database=database, user=user,
                                   password=password)
                with conn.cursor() as cur:
                    cur.execute(self.insert, (key,))
                now = time.monotonic()
                self.longest_pause_s = max(self.longest_pause_s, now - last_ack)
                if now - last_ack > 0.5:
                    self.pauses.append((time.time() - (now - last_ack), now - last_ack))
                last_ack = now
                self.last_ack_at = time.time()
                self.acked.append(key)
            # any error, not only the driver's: a writer thread that died would look like
            # a writer that saw no pause
            except Exception as exc:  # noqa: BLE001
                self.failed_attempts += 1
                name = f"{type(exc).__name__}({exc.args[0] if exc.args else ''})"
                self.errors[name] = self.errors.get(name, 0) + 1
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
                time.sleep(0.1)
        if conn is not None:
            conn.close()
