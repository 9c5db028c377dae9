"""The Galera health check HAProxy polls (roles/mariadb_galera, furet-clustercheck): one
long-lived process started by its systemd socket, one query per check on a kept
connection. Rendered from the role's template; the answers to each wsrep state are checked
with the server's connection replaced (a unit test: the real nodes answer HAProxy in the
lab, tests/lab), and the process itself is run as systemd runs it, with its listening
socket as fd 3, against a server that is not there."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pymysql
import pytest

from tests.role_template import render

TEMPLATE = "usr/local/bin/furet-clustercheck.j2"
GALERA = {f"galera{n}": {"galera_node_state": {"address": f"10.213.0.2{n}"}} for n in (1, 2, 3)}


def _render(tmp_path: Path, donor: bool = True, config: str = "/nonexistent.cnf") -> Path:
    text = render("mariadb_galera", TEMPLATE, "galera1", facts=GALERA,
                  _galera_clustercheck_config=config,
                  galera_clustercheck_available_when_donor=donor)
    script = tmp_path / f"furet-clustercheck-{donor}"
    script.write_text(text)
    script.chmod(0o755)
    return script


def _load(script: Path) -> ModuleType:
    loader = importlib.machinery.SourceFileLoader(script.name.replace("-", "_"), str(script))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class FakeServer:
    """pymysql.connect's stand-in: each check takes the next queued state; a state None
    (or none left) is a connection the server closed, and with none left the server
    refuses new connections."""

    def __init__(self, states: list[str | None]) -> None:
        self.states = states
        self.connects = 0

    def connect(self, **kwargs: Any) -> Any:
        self.connects += 1
        if not self.states:
            raise pymysql.err.OperationalError(2002, "Can't connect")
        server = self

        class Cursor:
            def __enter__(self) -> Cursor:
                return self

            def __exit__(self, *exc: object) -> None:
                pass

            def execute(self, sql: str) -> None:
                assert "WSREP_LOCAL_STATE" in sql
                self.state = server.states.pop(0) if server.states else None
                if self.state is None:
                    raise pymysql.err.OperationalError(2013, "Lost connection")

            def fetchone(self) -> tuple[str] | None:
                return (self.state,) if self.state else None

        class Conn:
            def cursor(self) -> Cursor:
                return Cursor()

            def close(self) -> None:
                pass

        return Conn()


def _ask(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        chunks = []
        while data := s.recv(4096):
            chunks.append(data)
    return b"".join(chunks).decode()


@pytest.fixture
def checker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def start(states: list[str | None], donor: bool = True) -> tuple[int, FakeServer]:
        module = _load(_render(tmp_path, donor))
        fake = FakeServer(states)
        monkeypatch.setattr(module.pymysql, "connect", fake.connect)
        server = module.Listener(("127.0.0.1", 0), module.Check)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server.server_address[1], fake

    started: list[Any] = []
    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def test_each_state_answers_as_haproxy_expects(checker: Any) -> None:
    port, fake = checker(["4", "2", "1", "3", ""])
    answers = [_ask(port) for _ in range(6)]
    assert [a.split("\r\n", 1)[0] for a in answers] == [
        "HTTP/1.1 200 OK", "HTTP/1.1 200 OK", "HTTP/1.1 503 Service Unavailable",
        "HTTP/1.1 503 Service Unavailable", "HTTP/1.1 503 Service Unavailable",
        "HTTP/1.1 503 Service Unavailable"]
    host = socket.gethostname()
    assert [a.rsplit("\r\n", 1)[1] for a in answers] == [
        f"{host}: Synced\n", f"{host}: Donor (serving)\n", f"{host}: wsrep_local_state=1\n",
        f"{host}: wsrep_local_state=3\n", f"{host}: server down\n", f"{host}: server down\n"]
    # five checks on one kept connection; the sixth found the server gone
    assert fake.connects == 2
    body = answers[0].rsplit("\r\n", 1)[1]
    assert f"Content-Length: {len(body.encode())}\r\n" in answers[0]


def test_a_donor_is_refused_unless_allowed(checker: Any) -> None:
    port, _ = checker(["2"], donor=False)
    assert _ask(port).startswith("HTTP/1.1 503 Service Unavailable")


def test_a_connection_the_server_closed_is_replaced_within_the_same_check(checker: Any) -> None:
    port, fake = checker(["4", None, "4"])
    assert _ask(port).startswith("HTTP/1.1 200 OK")
    assert _ask(port).startswith("HTTP/1.1 200 OK")  # lost, reconnected, Synced
    assert fake.connects == 2


def test_the_process_serves_the_socket_systemd_passes_it(tmp_path: Path) -> None:
    """As furet-clustercheck.socket starts it: its listening socket as fd 3, LISTEN_PID its
    own pid. A server that is not there is 503 'server down', check after check; without
    the socket it refuses to start, in one line."""
    script = _render(tmp_path, config=str(tmp_path / "absent.cnf"))
    (tmp_path / "absent.cnf").write_text(f"[client]\nuser = u\npassword = p\n"
                                         f"socket = {tmp_path}/no.sock\n")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    proc = subprocess.Popen(
        ["bash", "-c", f'exec 3<&{listener.fileno()}; LISTEN_PID=$$ LISTEN_FDS=1 exec '
                       f'"{sys.executable}" "{script}"'],
        pass_fds=(listener.fileno(),))
    try:
        for _ in range(2):
            answer = _ask(port)
            assert answer.startswith("HTTP/1.1 503 Service Unavailable"), answer
            assert answer.endswith(": server down\n")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        listener.close()
    alone = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           env={"PATH": os.environ["PATH"]}, timeout=30)
    assert alone.returncode == 2
    assert alone.stderr.strip() == ("furet-clustercheck: start it through "
                                    "furet-clustercheck.socket")
