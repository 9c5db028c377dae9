"""The application's database endpoint: HAProxy 2.6 on the app_endpoint host, switched
between the legacy master, Galera, a new Galera cluster (a major upgrade's) and refusing
connections through its runtime API (the admin socket); and the reader of that API's
answers (``show stat``, ``show map``).

The haproxy.cfg of the app_endpoint role chooses a backend per new connection from a map::

    use_backend %[str(active),map(/etc/haproxy/furet/app_endpoint.map,app_refused)]

whose one line is ``active app_legacy`` (or app_galera, app_galera_next, app_refused): the
names are :data:`BACKENDS` and :data:`MAP_KEY`, the role and this module must agree on them.

Invariants of :func:`switch`:

- The active backend lives twice, in the map file and in HAProxy's memory: ``set map``
  changes memory only, and a reload reads the file again. So the file is written first (a
  temporary file in the same directory, fsynced, renamed over it, its mode and owner kept),
  then memory. Interrupted between the two, the file names the new side and HAProxy still
  sends to the old one: :func:`status` says they disagree, and the same switch run again
  finishes the work (each step is skipped when already done).
- ``use_backend`` is evaluated when a connection is accepted. A connection already open stays
  on its server as long as the client keeps it (``timeout client 1h``): an application's
  pool would go on writing to the old side. So the sessions of every server of the backend
  that was active are shut, and the switch waits (bounded) until HAProxy counts no session
  on any side but the new one; a session left on a side no longer active (a switch
  interrupted before it cut them) is shut by the next run.
- A side is switched to only when HAProxy counts one of its servers able to take
  connections (UP, or without a health check); ``refused`` needs none. Otherwise one line
  names the backend and its servers' states, and nothing is changed.

The runtime API is a unix stream socket: one command line in, the answer until HAProxy
closes it; a command that changes something answers an empty line, anything else is its
error. ``show stat`` is CSV whose header line begins with ``# ``: :func:`parse_stat` reads it
by column name. (The haproxy_galera role's Ansible module keeps its own small parser: a
module is shipped alone to the host and cannot import furet.)
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from migration.enums import EndpointSide
from migration.errors import FuretError

DEFAULT_SOCKET = "/run/haproxy/admin.sock"
DEFAULT_MAP = "/etc/haproxy/furet/app_endpoint.map"
SOCKET_ENV = "FURET_ENDPOINT_SOCKET"
MAP_ENV = "FURET_ENDPOINT_MAP"
MAP_KEY = "active"
BACKENDS: Mapping[EndpointSide, str] = {
    EndpointSide.LEGACY: "app_legacy",
    EndpointSide.GALERA: "app_galera",
    # the nodes of a new cluster (inventory group galera_next); none when there is none
    EndpointSide.GALERA_NEXT: "app_galera_next",
    EndpointSide.REFUSED: "app_refused",  # no servers: every connection is closed at once
}
DEFAULT_BACKEND = BACKENDS[EndpointSide.REFUSED]  # map()'s default in haproxy.cfg
SOCKET_TIMEOUT_S = 10.0
SETTLE_POLL_S = 0.1
# The runtime API splits a command into words on blanks and a line into commands on ';'
# (a backslash escapes them): a path or name holding one would be another command.
_UNSAFE = frozenset(" \t\r\n;\\")
_TYPE_BACKEND, _TYPE_SERVER = "1", "2"  # show stat's `type` column


# --- what HAProxy reports ------------------------------------------------------------------

@dataclass(frozen=True)
class Server:
    name: str
    status: str  # UP, "UP 1/2", DOWN, "DOWN 1/2", MAINT, DRAIN, "no check"...
    scur: int  # current sessions
    backup: bool
    check: str  # last health check: check_status and check_desc

    @property
    def usable(self) -> bool:
        """HAProxy gives it new connections: UP (also "UP 1/2", failing checks but not yet
        down) or not checked at all."""
        return self.status.startswith("UP") or self.status == "no check"

    def state(self) -> str:
        return f"{self.name} {self.status}{' (backup)' if self.backup else ''}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "scur": self.scur,
                "backup": self.backup, "check": self.check}


@dataclass(frozen=True)
class Backend:
    name: str
    status: str
    scur: int
    servers: tuple[Server, ...] = ()

    @property
    def usable(self) -> bool:
        return any(s.usable for s in self.servers)

    def states(self) -> str:
        return ", ".join(s.state() for s in self.servers) or "no servers"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "scur": self.scur,
                "servers": [s.to_dict() for s in self.servers]}


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def parse_stat(text: str) -> dict[str, Backend]:
    """``show stat``'s CSV: every backend in HAProxy's order, each with its servers
    (frontends and listeners left out)."""
    body = text[2:] if text.startswith("# ") else text
    servers: dict[str, list[Server]] = {}
    backends: dict[str, Backend] = {}
    for row in csv.DictReader(io.StringIO(body)):
        name, kind = row.get("pxname") or "", row.get("type")
        if kind == _TYPE_SERVER:
            check = " ".join(v for v in (row.get("check_status"), row.get("check_desc")) if v)
            servers.setdefault(name, []).append(Server(
                row.get("svname") or "", row.get("status") or "", _int(row.get("scur")),
                row.get("bck") == "1", check))
        elif kind == _TYPE_BACKEND:
            backends[name] = Backend(name, row.get("status") or "", _int(row.get("scur")))
    return {name: replace(b, servers=tuple(servers.get(name, ())))
            for name, b in backends.items()}


def parse_map_entries(text: str) -> dict[str, str]:
    """``show map FILE``: ``<entry address> <key> <value>`` per line."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3:
            entries.setdefault(parts[1], parts[2].strip())
    return entries


# --- the map file -----------------------------------------------------------------------------

def _map_error(path: str, exc: OSError) -> FuretError:
    if isinstance(exc, FileNotFoundError):
        return FuretError(f"map file {path}: not found (the app_endpoint role writes it; "
                          f"--map or {MAP_ENV} names another)")
    return FuretError(f"map file {path}: {exc.strerror or exc}")


def read_map_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as source:
            return source.read()
    except OSError as exc:
        raise _map_error(path, exc) from None


def parse_map_file(text: str) -> dict[str, str]:
    """A map file as HAProxy reads it: ``key value`` per line, ``#`` lines and blank lines
    ignored; the first line of a key wins."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if parts and not parts[0].startswith("#"):
            entries.setdefault(parts[0], parts[1].strip() if len(parts) > 1 else "")
    return entries


def read_map_file(path: str) -> dict[str, str]:
    return parse_map_file(read_map_text(path))


def render_map(text: str, backend: str) -> str:
    """``text`` with its :data:`MAP_KEY` line saying ``backend`` (added when missing, later
    duplicates dropped); comments and other keys kept as they are."""
    lines, done = [], False
    for line in text.splitlines():
        parts = line.split(None, 1)
        if parts and parts[0] == MAP_KEY:
            if not done:
                lines.append(f"{MAP_KEY} {backend}")
            done = True
        else:
            lines.append(line)
    if not done:
        lines.append(f"{MAP_KEY} {backend}")
    return "\n".join(lines) + "\n"


def write_map_file(path: str, text: str) -> None:
    """Replace the file at ``path`` (through a symlink: its target) by ``text`` atomically:
    a temporary file in the same directory, fsynced, given the old file's mode and owner,
    renamed over it, the directory fsynced. On any failure the old file is left as it was."""
    real = os.path.realpath(path)
    try:
        info = os.stat(real)
    except OSError as exc:
        raise _map_error(path, exc) from None
    directory = os.path.dirname(real)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.", suffix=".tmp",
                                   dir=directory)
    except OSError as exc:
        raise FuretError(f"map file {path}: cannot write in {directory} "
                         f"({exc.strerror or exc}); left as it was") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        mine = os.stat(tmp)
        if (mine.st_uid, mine.st_gid) != (info.st_uid, info.st_gid):
            os.chown(tmp, info.st_uid, info.st_gid)  # before chmod: chown clears setuid bits
        os.chmod(tmp, stat.S_IMODE(info.st_mode))
        os.replace(tmp, real)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise FuretError(f"map file {path}: cannot replace it with its owner "
                             f"{info.st_uid}:{info.st_gid} and mode "
                             f"{stat.S_IMODE(info.st_mode):o} ({exc.strerror or exc}); left "
                             "as it was") from None
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --- the runtime API ----------------------------------------------------------------------------

class Transport(Protocol):
    """Sends one command line to HAProxy's runtime API, returns the whole answer."""

    where: str

    def __call__(self, line: str) -> str: ...


class UnixSocket:
    """The admin socket: a unix stream socket, one command per connection."""

    def __init__(self, path: str, timeout: float = SOCKET_TIMEOUT_S) -> None:
        self.path = path
        self.timeout = timeout
        self.where = f"haproxy {path} on {socket.gethostname()}"

    def __call__(self, line: str) -> str:
        chunks: list[bytes] = []
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.path)
                sock.sendall(line.encode() + b"\n")
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except FileNotFoundError:
            raise FuretError(f"{self.where}: admin socket not found (is HAProxy running on "
                             f"this host? --socket or {SOCKET_ENV} names another)") from None
        except PermissionError:
            raise FuretError(f"{self.where}: permission denied (run as root or as a member "
                             "of the socket's group)") from None
        except ConnectionRefusedError:
            raise FuretError(f"{self.where}: connection refused (no HAProxy listens on it: "
                             "stopped, or not a socket)") from None
        except TimeoutError:
            raise FuretError(f"{self.where}: no answer to `{line}` within "
                             f"{self.timeout:g}s") from None
        except OSError as exc:
            raise FuretError(f"{self.where}: {exc.strerror or exc}") from None
        return b"".join(chunks).decode("utf-8", "replace")


def _first_line(answer: str) -> str:
    return next((x.strip() for x in answer.splitlines() if x.strip()), "")


class RuntimeApi:
    """The runtime API commands furet uses, each checked: a FuretError names the command
    and HAProxy's answer."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    @property
    def where(self) -> str:
        return self.transport.where

    def _send(self, *words: str) -> str:
        for word in words:
            if not word or set(word) & _UNSAFE:
                raise FuretError(f"{self.where}: {word!r} cannot be sent to HAProxy's runtime "
                                 "API (blanks, ';' and '\\' split its commands)")
        return self.transport(" ".join(words))

    def _change(self, *words: str) -> None:
        answer = self._send(*words)
        if answer.strip():
            raise FuretError(f"{self.where}: `{' '.join(words)}` failed: "
                             f"{_first_line(answer)}")

    def show_stat(self) -> dict[str, Backend]:
        answer = self._send("show", "stat")
        if not answer.startswith("# pxname,"):
            raise FuretError(f"{self.where}: `show stat` answered {_first_line(answer)!r}")
        return parse_stat(answer)

    def maps(self) -> list[str]:
        """The files of the maps HAProxy loaded (``show map``)."""
        return re.findall(r"(?m)^\S+ \((.*?)\) ", self._send("show", "map"))

    def show_map(self, map_path: str) -> dict[str, str]:
        answer = self._send("show", "map", map_path)
        lines = [x for x in answer.splitlines() if x.strip()]
        if any(not x.startswith("0x") for x in lines):
            if "Unknown map identifier" in answer:
                raise FuretError(
                    f"{self.where} has no map {map_path} loaded (its maps: "
                    f"{', '.join(self.maps()) or 'none'}; --map or {MAP_ENV} must name the "
                    "file haproxy.cfg's map() reads, as written there)")
            raise FuretError(f"{self.where}: `show map {map_path}` answered "
                             f"{_first_line(answer)!r}")
        return parse_map_entries(answer)

    def set_map(self, map_path: str, key: str, value: str) -> None:
        self._change("set", "map", map_path, key, value)

    def add_map(self, map_path: str, key: str, value: str) -> None:
        self._change("add", "map", map_path, key, value)

    def shutdown_sessions(self, backend: str, server: str) -> None:
        self._change("shutdown", "sessions", "server", f"{backend}/{server}")


def _furet_backends(api: RuntimeApi, stat_: Mapping[str, Backend]) -> None:
    missing = [name for name in BACKENDS.values() if name not in stat_]
    if missing:
        raise FuretError(f"{api.where} has no backend {', '.join(missing)} (its backends: "
                         f"{', '.join(stat_) or 'none'}; the app_endpoint role's haproxy.cfg "
                         f"declares {', '.join(BACKENDS.values())}); nothing changed")


# --- status -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EndpointStatus:
    where: str
    map_path: str
    in_file: str | None  # None: no entry, map()'s default applies
    in_memory: str | None
    backends: tuple[Backend, ...]  # furet's, in BACKENDS order
    missing: tuple[str, ...]  # furet's backends haproxy.cfg lacks

    @property
    def active(self) -> str:
        """Where HAProxy sends new connections now (its memory)."""
        return self.in_memory or DEFAULT_BACKEND

    @property
    def agree(self) -> bool:
        return (self.in_file or DEFAULT_BACKEND) == self.active

    def backend(self, name: str) -> Backend:
        return next(b for b in self.backends if b.name == name)

    def verdict(self) -> str:
        if self.agree:
            return (f"{self.where}: new connections go to {self.active} (map file "
                    f"{self.map_path} and memory agree)")
        in_file = self.in_file or DEFAULT_BACKEND
        return (f"{self.where}: the map file {self.map_path} says {in_file} but HAProxy's "
                f"memory says {self.active}: they disagree (a switch interrupted, or the file "
                f"edited without a reload); new connections go to {self.active} until a "
                f"reload, then to {in_file}; `furet endpoint switch --to SIDE` makes them "
                "agree")

    def to_dict(self) -> dict[str, Any]:
        return {"where": self.where, "map": self.map_path, "in_file": self.in_file,
                "in_memory": self.in_memory, "active": self.active, "agree": self.agree,
                "backends": [b.to_dict() for b in self.backends],
                "missing_backends": list(self.missing)}


def status(api: RuntimeApi, map_path: str) -> EndpointStatus:
    """The active backend per the map file and per HAProxy's memory, and furet's backends
    with their servers' states and sessions. Reads only."""
    in_file = read_map_file(map_path).get(MAP_KEY)
    stat_ = api.show_stat()
    in_memory = api.show_map(map_path).get(MAP_KEY)
    return EndpointStatus(api.where, map_path, in_file, in_memory,
                          tuple(stat_[n] for n in BACKENDS.values() if n in stat_),
                          tuple(n for n in BACKENDS.values() if n not in stat_))


# --- switch -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SessionsShut:
    server: str  # backend/server
    sessions: int  # open when they were shut


@dataclass(frozen=True)
class SwitchResult:
    where: str
    map_path: str
    from_backend: str  # where HAProxy sent new connections before (its memory)
    to_backend: str
    file_was: str | None
    dry_run: bool
    file_written: bool
    memory_set: bool
    sessions_shut: tuple[SessionsShut, ...]
    old_sessions: int  # sessions left on the other sides at the end
    seconds: float
    actions: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return self.file_written or self.memory_set or bool(self.sessions_shut
                                                            and not self.dry_run)

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.from_backend, "to": self.to_backend, "changed": self.changed,
                "dry_run": self.dry_run, "where": self.where, "map": self.map_path,
                "file_was": self.file_was, "file_written": self.file_written,
                "memory_set": self.memory_set,
                "sessions_shut": [{"server": s.server, "sessions": s.sessions}
                                  for s in self.sessions_shut],
                "old_sessions": self.old_sessions, "seconds": round(self.seconds, 3),
                "actions": list(self.actions)}


def switch(api: RuntimeApi, map_path: str, side: EndpointSide, *, dry_run: bool = False,
           timeout: float = 5.0, on_action: Callable[[str], None] | None = None
           ) -> SwitchResult:
    """Send the endpoint's new connections to ``side`` and cut the old side's sessions (see
    the module's invariants). Each action is passed to ``on_action`` as it is done, one line.
    ``dry_run``: the same reads and checks, nothing changed, the actions say "would"."""
    started = time.monotonic()
    target = BACKENDS[side]
    others = [name for name in BACKENDS.values() if name != target]
    actions: list[str] = []

    def act(text: str) -> None:
        actions.append(text)
        if on_action is not None:
            on_action(text)

    file_text = read_map_text(map_path)
    file_was = parse_map_file(file_text).get(MAP_KEY)
    before = api.show_stat()
    _furet_backends(api, before)
    memory_was = api.show_map(map_path).get(MAP_KEY)
    previous = memory_was or DEFAULT_BACKEND
    wanted = before[target]
    if side is not EndpointSide.REFUSED:
        up = [s for s in wanted.servers if s.usable]
        if not up:
            raise FuretError(f"{api.where}: backend {target} has no server UP "
                             f"({wanted.states()}); nothing changed, new connections still "
                             f"go to {previous}")
        act(f"checked {target}: {len(up)} of {len(wanted.servers)} servers take connections "
            f"({wanted.states()})")

    file_written = memory_set = False
    if file_was == target:
        act(f"checked map file {map_path}: already {MAP_KEY} {target}")
    else:
        if not dry_run:
            write_map_file(map_path, render_map(file_text, target))
            file_written = True
        act(f"{'would write' if dry_run else 'wrote'} map file {map_path}: {MAP_KEY} {target} "
            f"(was {file_was or 'no entry'})")
    if memory_was == target:
        act(f"checked HAProxy's memory: already {MAP_KEY} {target}")
    else:
        if not dry_run:
            change = api.set_map if memory_was is not None else api.add_map
            change(map_path, MAP_KEY, target)
            memory_set = True
        act(f"{'would set' if dry_run else 'set'} HAProxy's map in memory: {MAP_KEY} {target} "
            f"(was {memory_was or f'no entry: {DEFAULT_BACKEND}'})")

    # After the map: no new connection reaches the old side while its sessions are shut.
    now = before if dry_run else api.show_stat()
    shut: list[SessionsShut] = []
    for name in others:
        for server in now[name].servers:
            if name == previous or server.scur:
                if not dry_run:
                    api.shutdown_sessions(name, server.name)
                shut.append(SessionsShut(f"{name}/{server.name}", server.scur))
                act(f"{'would shut' if dry_run else 'shut'} the sessions of {name}/"
                    f"{server.name} ({server.scur} open)")

    if dry_run:
        act(f"dry run: nothing changed; new connections still go to {previous}")
        left = sum(now[name].scur for name in others)
    else:
        left = _settle(api, map_path, target, others, timeout)
        act(f"checked: map file and memory say {target}, no session left on "
            f"{', '.join(others)} ({time.monotonic() - started:.1f}s)")
    result = SwitchResult(api.where, map_path, previous, target, file_was, dry_run,
                          file_written, memory_set, tuple(shut), left,
                          time.monotonic() - started, tuple(actions))
    if not dry_run:
        act(f"switched new connections from {previous} to {target}" if result.changed
            else f"already on {target}: nothing changed")
        result = replace(result, actions=tuple(actions))
    return result


def _settle(api: RuntimeApi, map_path: str, target: str, others: list[str],
            timeout: float) -> int:
    """Wait until the file and memory say ``target`` and no session is left on ``others``
    (0 returned), at most ``timeout`` seconds; else one FuretError line. A session still
    counted on an old server (it was connecting when its sessions were shut) is shut
    again."""

    def problems() -> list[str]:
        found = []
        in_file = read_map_file(map_path).get(MAP_KEY)
        in_memory = api.show_map(map_path).get(MAP_KEY)
        if in_file != target:
            found.append(f"the map file says {in_file or 'no entry'}")
        if in_memory != target:
            found.append(f"HAProxy's memory says {in_memory or 'no entry'}")
        stat_ = api.show_stat()
        for name in others:
            for server in stat_[name].servers:
                if server.scur:
                    api.shutdown_sessions(name, server.name)
            if stat_[name].scur:
                found.append(f"{name} still has {stat_[name].scur} sessions "
                             f"({', '.join(f'{s.name} {s.scur}' for s in stat_[name].servers)})")
        return found

    retrying = Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(SETTLE_POLL_S),
                        retry=retry_if_result(bool),
                        retry_error_callback=lambda state: state.outcome.result()
                        if state.outcome else [])
    left = retrying(problems)
    if left:
        raise FuretError(f"{api.where}: switched to {target}, but after {timeout:g}s "
                         f"{'; '.join(left)}")
    return 0
