"""What ``fabfile.py`` does, as plain functions: build each Fabric task from the command
contract (:mod:`migration.contract`), pick the inventory and the hosts, build the remote
``furet`` command line, run it on each host with its output streamed back, and report per
host which one failed and why (like Fabric's ``GroupException``).

The remote side is furet as the ``etl_runner`` role installs it: the command and its
settings file where the inventory says (:class:`~migration.inventory.RemotePaths`: the
role's ``etl_runner_config_dir`` and ``etl_runner_bin_link``), so no password ever crosses
the command line. Every value is checked against the contract before any host is reached.
"""

from __future__ import annotations

import datetime
import inspect
import os
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from migration import contract, failure
from migration.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, FuretError
from migration.inventory import InventoryHost, RemotePaths, use_vault_password_file

DEFAULT_INVENTORY = "inventories/lab/hosts.yml"
INVENTORY_ENV = "FURET_INVENTORY"
ETL_GROUP = "etl"
EXIT_NOT_FOUND = 127
EXIT_SSH = EXIT_USER_ERROR  # a host not reached has no remote code; never 1 ("differences")
LOCAL_REPORTS = "reports"

# Tasks that change the migration's state, or fetch one host's reports, run on one host
# only: two concurrent rounds of one flow, or a freeze from two places, are never what the
# operator meant.
ONE_HOST_TASKS = frozenset({c.task for c in contract.COMMANDS.values() if c.one_host}
                           | {"rehearsal"})


def resolve_inventory(task_value: str | None, env: Mapping[str, str],
                      identity: Sequence[str] = (), vault_password_file: str | None = None
                      ) -> str:
    """Inventory path: the task's ``-i/--inventory`` > an inventory given to fab's own ``-i``
    > ``FURET_INVENTORY`` > the lab inventory. The task's ``--vault-password-file``, if
    any, is the password of the inventory's vault-encrypted files
    (:func:`migration.inventory.use_vault_password_file`).

    ``fab -i X task`` is Fabric's ``--identity`` (an SSH key). furet takes SSH keys from the
    inventory, so a value there that names an inventory (``.yml``/``.yaml``/``.ini`` or a
    directory) is taken as one rather than silently ignored.
    """
    use_vault_password_file(vault_password_file)
    if task_value:
        return task_value
    for value in identity:
        if value.endswith((".yml", ".yaml", ".ini")) or Path(value).is_dir():
            return value
    return env.get(INVENTORY_ENV) or DEFAULT_INVENTORY


def split_hosts(value: str | None) -> tuple[str, ...]:
    """``--on etl1,etl2`` (names or groups); the ``etl`` group when not given."""
    patterns = tuple(p.strip() for p in (value or "").split(",") if p.strip())
    return patterns or (ETL_GROUP,)


def furet_command(args: Sequence[str], paths: RemotePaths | None = None) -> str:
    """The remote command line, quoted for the remote shell (``paths``: the host's, else
    the etl_runner role's defaults)."""
    paths = paths or RemotePaths.from_vars({})
    return shlex.join([paths.bin, "--config", paths.config, *args])


argv = contract.argv


@dataclass(frozen=True)
class HostOutcome:
    """What one host answered: ok, or why not (remote exit code, or None if never ran)."""

    host: str
    ok: bool
    exit_code: int | None
    reason: str = ""


def outcome_from_result(host: str, exited: int, stderr: str) -> HostOutcome:
    if exited == 0:
        return HostOutcome(host, True, 0)
    if exited == EXIT_NOT_FOUND:
        return HostOutcome(host, False, exited, "furet is not installed there (exit 127): "
                                                "run playbooks/etl.yml")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    reason = lines[-1] if lines else "no error message"
    return HostOutcome(host, False, exited, f"exit {exited}: {reason}")


def outcome_from_error(host: InventoryHost, exc: BaseException) -> HostOutcome:
    detail = str(exc) or type(exc).__name__
    return HostOutcome(host.name, False, None,
                       f"SSH to {host.user}@{host.address}:{host.port}: "
                       f"{type(exc).__name__}: {detail}")


@dataclass
class TaskReport:
    """Per-host outcomes of one task, like fabric's GroupResult (succeeded / failed)."""

    task: str
    outcomes: list[HostOutcome] = field(default_factory=list)

    @property
    def succeeded(self) -> list[HostOutcome]:
        return [o for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[HostOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def exit_code(self) -> int:
        """0 when every host succeeded, else the first failure's remote exit code (2 when
        that host was not reached)."""
        if not self.failed:
            return 0
        first = self.failed[0].exit_code
        return first if first else EXIT_SSH

    def lines(self) -> list[str]:
        out = [f"fab {self.task}: {o.host} ok" if o.ok
               else f"fab {self.task}: {o.host} FAILED ({o.reason})" for o in self.outcomes]
        if self.failed:
            out.append(f"fab {self.task}: {len(self.failed)} of {len(self.outcomes)} host(s) "
                       f"failed: {', '.join(o.host for o in self.failed)}")
        return out


class Stream(Protocol):
    """Where a host's output goes: a text file, or a :class:`LinePrefixer` around one."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class LinePrefixer:
    """A text stream that writes ``prefix`` at the start of every line (``[etl1] ...``),
    so that the output of several hosts stays attributable."""

    def __init__(self, stream: Stream, prefix: str) -> None:
        self.stream = stream
        self.prefix = prefix
        self._at_line_start = True

    def write(self, text: str) -> int:
        for piece in text.splitlines(keepends=True):
            if self._at_line_start:
                self.stream.write(self.prefix)
            self.stream.write(piece)
            self._at_line_start = piece.endswith(("\n", "\r"))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


Connect = Callable[[InventoryHost], Any]


def _default_connect(host: InventoryHost) -> Any:
    from migration.remote import connection_for

    return connection_for(host)


def run_on_hosts(task: str, hosts: Sequence[InventoryHost], command: str | Sequence[str],
                 connect: Connect = _default_connect, out: Stream | None = None,
                 err: Stream | None = None) -> TaskReport:
    """Run ``command`` on each host in turn, streaming its stdout/stderr live (no pty, no
    hiding); a host that fails or cannot be reached is recorded and the others still run.
    ``command`` is a shell line, or furet's argv (after ``--config``), which becomes each
    host's own ``furet --config FILE ...`` (:func:`furet_command` with its paths)."""
    out = out or sys.stdout
    err = err or sys.stderr
    report = TaskReport(task)
    prefix = len(hosts) > 1
    for host in hosts:
        out_stream = LinePrefixer(out, f"[{host.name}] ") if prefix else out
        err_stream = LinePrefixer(err, f"[{host.name}] ") if prefix else err
        try:
            line = command if isinstance(command, str) else furet_command(command, host.remote)
            with connect(host) as conn:
                result = conn.run(line, pty=False, warn=True,
                                  out_stream=out_stream, err_stream=err_stream)
            report.outcomes.append(outcome_from_result(host.name, result.exited, result.stderr))
        except Exception as exc:  # one host's failure must not hide the others'
            report.outcomes.append(outcome_from_error(host, exc))
    return report


def select(task: str, inventory: str, patterns: Sequence[str],
           load: Callable[[str, Sequence[str]], list[InventoryHost]] | None = None,
           ) -> list[InventoryHost]:
    """The hosts a task runs on; tasks of ONE_HOST_TASKS refuse anything but one host."""
    if load is None:
        from migration.remote import select_hosts

        load = select_hosts
    hosts = load(inventory, patterns)
    if not hosts:
        raise FuretError(f"inventory {inventory}: no host in {', '.join(patterns)}")
    if task in ONE_HOST_TASKS and len(hosts) != 1:
        names = ", ".join(h.name for h in hosts)
        raise FuretError(f"{task} runs on one host only and {', '.join(patterns)} has "
                         f"{len(hosts)} ({names}): pass --on {hosts[0].name}")
    return hosts


def execute(task: str, args: Sequence[str], inventory: str, patterns: Sequence[str],
            connect: Connect = _default_connect,
            load: Callable[[str, Sequence[str]], list[InventoryHost]] | None = None,
            out: TextIO | None = None, err: TextIO | None = None) -> TaskReport:
    """Select the hosts, then run ``furet <args>`` on them (``args``: see :func:`argv`)."""
    hosts = select(task, inventory, patterns, load)
    return run_on_hosts(task, hosts, list(args), connect, out, err)


# --- fab verify ---------------------------------------------------------------------------


def verify_report_dir(flow: str, now: datetime.datetime | None = None,
                      root: str | None = None) -> str:
    """A remote directory of its own per run, so that exactly its reports are fetched."""
    stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in flow.strip())
    return f"{root or RemotePaths.from_vars({}).reports}/{safe}-{stamp}"


def fetch_reports(host: InventoryHost, remote_dir: str, local_dir: str | Path,
                  connect: Connect = _default_connect) -> list[Path]:
    """Copy the report files of ``remote_dir`` into ``local_dir`` (Connection.get)."""
    folder = Path(local_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fetched = []
    with connect(host) as conn:
        listing = conn.run(f"ls -1 {shlex.quote(remote_dir)}", hide=True, warn=True)
        if listing.exited != 0:
            return []
        for name in sorted(n.strip() for n in listing.stdout.splitlines() if n.strip()):
            if "/" in name or not name.startswith("verify-"):
                continue
            local = folder / name
            conn.get(f"{remote_dir}/{name}", local=str(local))
            fetched.append(local)
    return fetched


def execute_verify(values: Mapping[str, Any], inventory: str, patterns: Sequence[str],
                   local_dir: str | Path = LOCAL_REPORTS, connect: Connect = _default_connect,
                   load: Callable[[str, Sequence[str]], list[InventoryHost]] | None = None,
                   out: TextIO | None = None, err: TextIO | None = None,
                   report_dir: str | None = None) -> tuple[TaskReport, list[Path]]:
    """``furet verify`` with ``values`` (contract names) on the one ETL host, writing its
    reports into a directory of their own under the host's reports directory (or
    ``report_dir``), then the reports fetched even when it found differences (exit 1):
    they are what the operator needs then."""
    contract.COMMANDS["verify"].parse(values)  # bad values fail before the inventory loads
    host = select("verify", inventory, patterns, load)[0]
    remote_dir = report_dir or verify_report_dir(str(values.get("flow") or ""),
                                                 root=host.remote.reports)
    args = argv("verify", {**values, "report_dir": remote_dir, "no_progress": True})
    report = run_on_hosts("verify", [host], args, connect, out, err)
    fetched: list[Path] = []
    if report.outcomes and report.outcomes[0].exit_code in (0, 1):
        try:
            fetched = fetch_reports(host, remote_dir, local_dir, connect)
        except Exception as exc:  # the verdict stands; say why the files are not here
            report.outcomes.append(HostOutcome(host.name, False, None,
                                               f"fetching reports: {type(exc).__name__}: {exc}"))
    return report, fetched


# --- Fabric tasks from the contract ---------------------------------------------------------


def identity(c: Any) -> list[str]:
    """Values of fab's own -i/--identity (see resolve_inventory)."""
    value = c.config.get("connect_kwargs", {}).get("key_filename") or []
    return [value] if isinstance(value, str) else list(value)


def patterns_for(c: Any, on: str | None) -> tuple[str, ...]:
    """--on, else the host of ``fab -H host`` (an inventory name), else the etl group."""
    from fabric import Connection

    if not on and isinstance(c, Connection):
        on = c.original_host
    return split_hosts(on)


def task_options(command: str) -> tuple[contract.Option, ...]:
    """A contract command's Fabric task arguments, in order: -i/--inventory and -o/--on
    first (so they get those short flags), the command's remote options, the group's
    remote options (--target-host...), then the task's own (fab verify --reports)."""
    spec = contract.COMMANDS[command]
    return (*contract.FAB_COMMON, *spec.remote_options(), *spec.fab_options)


def _fab_default(option: contract.Option) -> Any:
    """What invoke sees as the default: False makes a flag, None a text argument (unset:
    furet's own default applies remotely), a list a repeatable one."""
    if option.kind == contract.FLAG:
        return False
    if option.multiple:
        return None  # with Task(iterable=...): a list, [] when not given
    return None if option.remote else option.default


def run_task(c: Any, command: str, values: dict[str, Any]) -> None:
    """The body of a contract task: run ``furet <command>`` with ``values`` (the task's
    arguments by contract name) on the selected hosts."""
    def action() -> tuple[TaskReport, list[Path]]:
        inventory = resolve_inventory(values.pop("inventory", None), os.environ, identity(c),
                                      values.pop("vault_password_file", None))
        patterns = patterns_for(c, values.pop("on", None))
        local = {o.name: values.pop(o.name) for o in contract.COMMANDS[command].fab_options}
        if command == "verify":
            return execute_verify(values, inventory, patterns,
                                  local.get("reports") or LOCAL_REPORTS)
        return execute(command, argv(command, values), inventory, patterns), []

    conclude(command, action)


@contextmanager
def guarded(task: str) -> Iterator[None]:
    """The local side of a fab task fails in one line (invoke's Exit, no traceback): a user
    error or an unexpected exception exits 2 (the latter's traceback in a log file the line
    names, :mod:`migration.failure`), Ctrl-C exits 130. A remote furet that fails has
    printed its own line already: its host's line and exit code say the rest."""
    from invoke import Exit

    failure.begin()
    try:
        yield
    except Exit:
        raise
    except FuretError as exc:
        raise Exit(f"fab {task}: error: {failure.user_error(exc)}",
                   code=EXIT_USER_ERROR) from None
    except KeyboardInterrupt:  # invoke would exit 1 without a word
        raise Exit(f"fab {task}: interrupted", code=EXIT_INTERRUPTED) from None
    except Exception as exc:
        raise Exit(f"fab {task}: error: {failure.unexpected(exc, 'fab')}",
                   code=EXIT_USER_ERROR) from None


def conclude(task: str, action: Callable[[], tuple[TaskReport, list[Path]]]) -> None:
    """Run a task's ``action`` (:func:`guarded`), print the fetched files and one line per
    host; a failed host exits like it did (invoke's Exit)."""
    from invoke import Exit

    with guarded(task):
        report, fetched = action()
    for path in fetched:
        print(f"fab {task}: report {path}", file=sys.stderr, flush=True)
    for line in report.lines():
        print(line, file=sys.stderr, flush=True)
    if report.failed:
        raise Exit(code=report.exit_code)


SHORT_FLAGS = ("inventory", "on")  # -i, -o; the other options are long only (stable names)


def contract_task(command: str) -> Any:
    """The Fabric task of ``contract.COMMANDS[command]``: its signature (which invoke reads
    to make the task's flags) and help are the contract's; its body is :func:`run_task`."""
    from fabric import task
    from fabric.tasks import Task

    class ContractTask(Task):  # type: ignore[misc]  # fabric ships no type hints
        def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> dict[str, Any]:
            opts: dict[str, Any] = super().arg_opts(name, default, taken_names)
            if name not in SHORT_FLAGS:
                opts["names"] = opts["names"][:1]
            return opts

    spec = contract.COMMANDS[command]
    options = task_options(command)

    def body(c: Any, **values: Any) -> None:
        run_task(c, command, values)

    context = inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]  # invoke reads it
        [context, *(inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY,
                                      default=_fab_default(o)) for o in options)])
    body.__name__ = body.__qualname__ = command
    body.__doc__ = spec.fab_help or spec.help
    return task(name=command, help={o.name: o.fab_help() for o in options},
                iterable=[o.name for o in options if o.multiple], klass=ContractTask)(body)
