"""A real HAProxy 2.6 in front of the loopback MariaDB servers of conftest.py, configured
like the app_endpoint role's: frontend app_db, map-selected backends app_legacy (legacy1 =
the legacy server), app_galera (galera1 = the target server), app_galera_next (no servers:
an inventory without a new cluster) and app_refused. Started by
the test in master-worker mode on 127.0.0.31; each fixture stops exactly its processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from tests.helpers import BIN
from tests.integration.conftest import PASSWORD, USER, Server

ADDRESS = "127.0.0.31"  # the frontend; mariadbd: .11/.12, Cassandra: .21/.22

CONFIG = """\
global
    stats socket {base}/admin.sock mode 660 level admin
defaults
    mode tcp
    timeout connect 2s
    timeout client 1h
    timeout server 1h
frontend app_db
    bind {address}:{port}
    use_backend %[str(active),map({map},app_refused)]
backend app_legacy
    server legacy1 {legacy} check inter 300 fall 1 rise 1
backend app_galera
    server galera1 {galera} check inter 300 fall 1 rise 1
backend app_galera_next
backend app_refused
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((ADDRESS, 0))
        return int(sock.getsockname()[1])


def ask(path: Path, line: str) -> str:
    """The runtime API, independently of the code under test."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


@dataclass
class Haproxy:
    base: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def socket(self) -> Path:
        return self.base / "admin.sock"

    @property
    def map(self) -> Path:
        return self.base / "app_endpoint.map"

    def ask(self, line: str) -> str:
        return ask(self.socket, line)

    def show_map(self) -> str:
        """`show map` without the entries' addresses (they are the same across calls)."""
        return " ".join(self.ask(f"show map {self.map}").split()[1:])

    def server_status(self, backend: str, server: str) -> str:
        for row in self.ask("show stat").splitlines():
            fields = row.split(",")
            if fields[:2] == [backend, server]:
                return fields[17]
        return "absent"

    def worker_pid(self) -> str:
        info = dict(line.split(": ", 1) for line in self.ask("show info").splitlines()
                    if ": " in line)
        return info["Pid"]

    def connect(self) -> pymysql.connections.Connection:
        return pymysql.connect(host=ADDRESS, port=self.port, user=USER, password=PASSWORD,
                               connect_timeout=5, read_timeout=10, autocommit=True)

    def reached(self) -> str:
        """The MariaDB server a new connection through the frontend reaches."""
        with contextlib.closing(self.connect()) as conn:
            return where_reached(conn)

    def furet(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FURET_")}
        env["FURET_LOG_DIR"] = str(self.base / "logs")
        return subprocess.run([str(BIN / "furet"), "endpoint", *args, "--socket",
                               str(self.socket), "--map", str(self.map)],
                              capture_output=True, text=True, env=env, timeout=60)

    def reload(self) -> None:
        """SIGUSR2 to the master: a new worker reads the configuration and the map file."""
        before = self.worker_pid()
        os.kill(self.proc.pid, signal.SIGUSR2)
        until(lambda: answers(self) not in (None, before), "a new worker after reload")


def answers(haproxy: Haproxy) -> str | None:
    try:
        return haproxy.worker_pid()
    except OSError:
        return None


def where_reached(conn: pymysql.connections.Connection) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT @@bind_address")
        (address,) = cur.fetchone()
    return str(address)


def until(ok: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout}s")
        time.sleep(0.1)


def stop_haproxy(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # the master stops its workers
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only this haproxy
            proc.wait(10)


@pytest.fixture
def start_haproxy(servers: dict[str, Server], tmp_path: Path) -> Iterator[Callable[..., Haproxy]]:
    """start_haproxy(galera="host:port") -> a running HAProxy, map `active app_legacy`;
    legacy1 is the legacy server, galera1 the target server unless ``galera`` is given."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.path.exists(binary):
        pytest.fail("haproxy not found: run `make deps` (haproxy is in lab/apt-packages.txt)",
                    pytrace=False)
    started: list[subprocess.Popen[bytes]] = []

    def start(galera: str | None = None) -> Haproxy:
        base = tmp_path / f"haproxy{len(started)}"
        base.mkdir()
        port = free_port()
        legacy, target = servers["legacy"], servers["target"]
        (base / "app_endpoint.map").write_text("active app_legacy\n")
        (base / "haproxy.cfg").write_text(CONFIG.format(
            base=base, address=ADDRESS, port=port, map=base / "app_endpoint.map",
            legacy=f"{legacy.address}:{legacy.port}",
            galera=galera or f"{target.address}:{target.port}"))
        with (base / "haproxy.log").open("wb") as log:
            proc = subprocess.Popen([binary, "-W", "-db", "-f", str(base / "haproxy.cfg")],
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        started.append(proc)
        haproxy = Haproxy(base, port, proc)
        until(lambda: answers(haproxy) is not None or proc.poll() is not None,
               "admin socket")
        if proc.poll() is not None:
            pytest.fail(f"haproxy exited: {(base / 'haproxy.log').read_text()[-2000:]}")
        until(lambda: haproxy.server_status("app_legacy", "legacy1") == "UP",
               "legacy1 UP")
        return haproxy

    try:
        yield start
    finally:
        for proc in started:
            stop_haproxy(proc)
