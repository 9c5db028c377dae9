"""What an error becomes on the way out of ``furet`` and ``fab``: one line, never a password,
and for an unexpected exception its traceback in a log file the line names.

The line says what was running (the command, its flow or table) and where, as far as it is
known: names the code attached to the exception (:func:`migration.errors.context`), else the
server and table the database driver was talking to when it raised (a pymysql connection or
a Cassandra request found in the traceback's frames). The exit code is 2 whatever the
exception (1 is verify's "differences", see :mod:`migration.errors`).

Masked in the line and in the log: the passwords of the configuration (and of ``FURET_*``
variables), a DSN's password (``mysql://user:***@host``) and ``password=...``. pymysql's
own texts name the user and host, never the password ("Access denied for user 'furet'@'h'
(using password: YES)"), nor do the Cassandra driver's ("Provided username furet and/or
password are incorrect"); the masking is for the texts nobody checked.

The log goes to the first directory that works: ``FURET_LOG_DIR``, ``/var/log/furet``
(root on the ETL hosts, or any user it is writable for), ``$XDG_STATE_HOME/furet/log``
(default ``~/.local/state/furet/log``), then ``$TMPDIR/furet-<uid>``; one file
``<prog>-<UTC time>-<pid>.log`` per failure, mode 0600.
"""

from __future__ import annotations

import datetime
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migration import __version__
from migration.errors import CONTEXT_KEYS

LOG_DIR_ENV = "FURET_LOG_DIR"
SYSTEM_LOG_DIR = Path("/var/log/furet")
MAX_TEXT = 400  # characters of an exception's text in the line; the log has all of it
MASK = "***"

_DSN_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)", re.I)
_KEY_PASSWORD = re.compile(
    r"(\b(?:password|passwd|pwd|secret|token)\b['\"]?\s*[=:]\s*['\"]?)"
    r"(?!(?:YES|NO)\b)[^\s'\",;)]+", re.I)
_SQL_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+((?:[`\"]?[\w$]+[`\"]?\.)?"
                        r"[`\"]?[\w$]+[`\"]?)", re.I)


class OutputClosed(Exception):
    """stdout was closed by its reader (``furet status | head``): click would exit 1."""


@dataclass
class Invocation:
    """What this process is doing, for the line: filled by the CLI as it goes."""

    command: str = ""
    about: dict[str, str] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)


_INVOCATION: ContextVar[Invocation] = ContextVar("furet_invocation")


def current() -> Invocation:
    found = _INVOCATION.get(None)
    if found is None:
        found = Invocation()
        _INVOCATION.set(found)
    return found


def begin(env: Mapping[str, str] | None = None) -> Invocation:
    """A new invocation; the passwords of ``FURET_*`` variables are masked from now on
    (a failure before the configuration is loaded cannot echo them either)."""
    env = os.environ if env is None else env
    invocation = Invocation()
    invocation.secrets.update(v for k, v in env.items()
                              if k.startswith("FURET_") and k.endswith("PASSWORD") and v)
    _INVOCATION.set(invocation)
    return invocation


def note_command(words: Iterable[str]) -> None:
    current().command = " ".join(words)


def note_about(**what: object) -> None:
    """``flow=...``, ``table=...``: what the command works on (empty values are ignored)."""
    for key, value in what.items():
        if isinstance(value, (tuple, list)):
            value = ",".join(str(v) for v in value)
        if value not in (None, ""):
            current().about[key] = str(value)


def note_secrets(*values: str) -> None:
    current().secrets.update(v for v in values if v)


def mask(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` without the known passwords, a DSN's password or ``password=...``."""
    for secret in sorted(current().secrets if secrets is None else secrets, key=len,
                         reverse=True):
        text = text.replace(secret, MASK)
    text = _DSN_PASSWORD.sub(rf"\1{MASK}", text)
    return _KEY_PASSWORD.sub(rf"\1{MASK}", text)


def one_line(text: str, limit: int | None = None) -> str:
    """Newlines folded into spaces; cut at ``limit`` characters."""
    flat = " ".join(part.strip() for part in text.splitlines() if part.strip())
    if limit is not None and len(flat) > limit:
        return flat[:limit - 1] + "…"
    return flat


def user_error(exc: BaseException) -> str:
    """A FuretError's message, as the line prints it."""
    return mask(one_line(_text(exc)))


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not replace the error with another
        return repr(exc.args)


def interrupted() -> str:
    command = current().command
    return f"interrupted: {command}" if command else "interrupted"


def unexpected(exc: BaseException, prog: str) -> str:
    """The line of an unexpected exception (without the ``furet: error:`` prefix), after
    writing its traceback to a log file."""
    text = mask(one_line(_text(exc), MAX_TEXT))
    line = f"{where(exc)}{_type_name(exc)}{': ' + text if text else ''}"
    path, why = save_traceback(exc, prog)
    if path is not None:
        return f"{line} (unexpected error; traceback in {path})"
    return f"{line} (unexpected error; traceback not saved: {why})"


def where(exc: BaseException) -> str:
    """``status, flow runtime, host 10.0.0.41:3306, database lf_runtime: `` or ``""``."""
    invocation = current()
    parts = [invocation.command] if invocation.command else []
    found = {**_driver_context(exc), **_attached_context(exc)}
    named = {**invocation.about, **{k: found[k] for k in CONTEXT_KEYS if k in found}}
    parts += [f"{key} {mask(value)}" for key, value in named.items()]
    return ", ".join(parts) + ": " if parts else ""


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" \
        else f"{kind.__module__}.{kind.__qualname__}"


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current_exc: BaseException | None = exc
    while current_exc is not None and current_exc not in chain and len(chain) < 5:
        chain.append(current_exc)
        current_exc = current_exc.__cause__ or current_exc.__context__
    return chain


def _attached_context(exc: BaseException) -> dict[str, str]:
    found: dict[str, str] = {}
    for link in _chain(exc):
        for key, value in getattr(link, "__furet_context__", {}).items():
            found.setdefault(key, value)
    return found


def _driver_context(exc: BaseException) -> dict[str, str]:
    """The server, database and table of the innermost pymysql connection or Cassandra
    request in the traceback (its frames' ``self``), best effort."""
    try:
        for link in _chain(exc):
            frames = [frame for frame, _ in traceback.walk_tb(link.__traceback__)]
            for frame in reversed(frames):
                found = _from_frame(frame.f_locals)
                if found:
                    return found
    except Exception:  # a lookup must never hide the error itself
        return {}
    return {}


def _from_frame(local: Mapping[str, Any]) -> dict[str, str]:
    obj = local.get("self")
    module = type(obj).__module__
    if module.startswith("pymysql."):
        conn = getattr(obj, "connection", obj)  # a cursor, or the connection itself
        host = getattr(conn, "host", None)
        if not host:
            return {}
        found = {"host": f"{host}:{getattr(conn, 'port', '?')}"}
        database = getattr(conn, "db", None)
        database = database.decode() if isinstance(database, bytes) else database
        if database:
            found["database"] = str(database)
        query = local.get("query") or local.get("sql")
        if isinstance(query, (bytes, str)):
            found.update(_table_of(query if isinstance(query, str) else query.decode(
                "utf-8", "replace")))
        return found
    if module == "cassandra.cluster" and type(obj).__name__ == "ResponseFuture":
        found = {}
        host = getattr(obj, "_current_host", None)
        if host is not None:
            found["host"] = str(getattr(host, "endpoint", host))
        keyspace = getattr(getattr(obj, "session", None), "keyspace", None)
        if keyspace:
            found["database"] = str(keyspace)
        statement = getattr(obj, "query", None)
        text = getattr(statement, "query_string", None) or getattr(
            getattr(statement, "prepared_statement", None), "query_string", None)
        if isinstance(text, str):
            found.update(_table_of(text))
        return found
    return {}


def _table_of(statement: str) -> dict[str, str]:
    found = _SQL_TABLE.search(statement)
    return {"table": found.group(1).replace("`", "").replace('"', "")} if found else {}


# --- the log file ---------------------------------------------------------------------------

def log_dir_candidates(env: Mapping[str, str] | None = None,
                       euid: int | None = None) -> list[Path]:
    """Where a traceback may go, in order (see the module's docstring)."""
    env = os.environ if env is None else env
    euid = os.geteuid() if euid is None else euid
    candidates = [Path(env[LOG_DIR_ENV])] if env.get(LOG_DIR_ENV) else []
    candidates.append(SYSTEM_LOG_DIR)
    if euid != 0:
        state = env.get("XDG_STATE_HOME") or str(
            Path(env.get("HOME") or Path.home()) / ".local" / "state")
        candidates.append(Path(state) / "furet" / "log")
    candidates.append(Path(tempfile.gettempdir()) / f"furet-{euid}")
    return candidates


def save_traceback(exc: BaseException, prog: str) -> tuple[Path | None, str]:
    """Write the log of ``exc`` to the first candidate directory that takes it: its path,
    else None and why not."""
    now = datetime.datetime.now(datetime.UTC)
    name = f"{prog}-{now:%Y%m%dT%H%M%SZ}-{os.getpid()}.log"
    text = mask(_log_text(exc, prog, now))
    why = "no writable directory"
    for folder in log_dir_candidates():
        try:
            folder.mkdir(parents=True, exist_ok=True,
                         mode=0o750 if folder == SYSTEM_LOG_DIR else 0o700)
            if folder.parent == Path(tempfile.gettempdir()) and \
                    folder.stat().st_uid != os.geteuid():
                continue  # a shared /tmp: only a directory of our own
            path = folder / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            return path, ""
        except OSError as err:
            why = f"{folder}: {err.strerror or err}"
    return None, why


def _log_text(exc: BaseException, prog: str, now: datetime.datetime) -> str:
    invocation = current()
    head = [f"{prog} {__version__} (python {sys.version.split()[0]}), pid {os.getpid()}, "
            f"{now.isoformat(timespec='seconds')}",
            f"argv: {' '.join(sys.argv)}",
            f"command: {invocation.command or '-'} "
            + " ".join(f"{k}={v}" for k, v in invocation.about.items()),
            f"where: {where(exc).removesuffix(': ') or '-'}", ""]
    return "\n".join(head) + "".join(traceback.format_exception(exc))
