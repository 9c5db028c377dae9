"""What ``fabfile.py`` does, as plain functions: pick the inventory and the hosts, build the
remote ``furet`` command line, run it on each host with its output streamed back, and
report per host which one failed and why (like Fabric's ``GroupException``).

The remote side is furet as the ``etl_runner`` role installs it: ``furet`` on PATH and its
settings in ``/etc/furet/furet.yml``, so no password ever crosses the command line.
"""

from __future__ import annotations

import datetime
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from migration.errors import FuretError
from migration.inventory import InventoryHost

DEFAULT_INVENTORY = "inventories/lab/hosts.yml"
INVENTORY_ENV = "FURET_INVENTORY"
ETL_GROUP = "etl"
REMOTE_FURET = "furet"
REMOTE_CONFIG = "/etc/furet/furet.yml"
STRATEGIES = ("ts", "naive", "id")
EXIT_NOT_FOUND = 127
EXIT_SSH = 1  # a host that could not be reached has no remote exit code

# Tasks that change the migration's state run on one host only: two concurrent rounds of
# one flow, or a freeze from two places, are never what the operator meant.
ONE_HOST_TASKS = frozenset({"round", "freeze", "unfreeze", "rehearsal"})


def resolve_inventory(task_value: str | None, env: Mapping[str, str],
                      identity: Sequence[str] = ()) -> str:
    """Inventory path: the task's ``-i/--inventory`` > an inventory given to fab's own ``-i``
    > ``FURET_INVENTORY`` > the lab inventory.

    ``fab -i X task`` is Fabric's ``--identity`` (an SSH key). furet takes SSH keys from the
    inventory, so a value there that names an inventory (``.yml``/``.yaml``/``.ini`` or a
    directory) is taken as one rather than silently ignored.
    """
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


def furet_command(args: Sequence[str], config: str = REMOTE_CONFIG) -> str:
    """The remote command line, quoted for the remote shell."""
    return shlex.join([REMOTE_FURET, "--config", config, *args])


def round_args(flow: str, final: bool = False, strategy: str | None = None,
               max_quarantined: int | str | None = None, as_json: bool = False) -> list[str]:
    if not flow or not flow.strip():
        raise FuretError("--flow is required (runtime, rt_bo, cassandra_prod)")
    args = ["round", "--flow", flow.strip()]
    if final:
        args.append("--final")
    if strategy:
        if strategy not in STRATEGIES:
            raise FuretError(f"--strategy {strategy!r} is not one of "
                             f"{', '.join(STRATEGIES)}")
        args += ["--strategy", strategy]
    if max_quarantined not in (None, ""):
        args += ["--max-quarantined", str(_non_negative(max_quarantined, "--max-quarantined"))]
    if as_json:
        args.append("--json")
    return args


def status_args(flow: str | None = None, last: int | str | None = None,
                as_json: bool = False) -> list[str]:
    args = ["status"]
    if flow:
        args += ["--flow", flow]
    if last not in (None, ""):
        args += ["--last", str(_non_negative(last, "--last"))]
    if as_json:
        args.append("--json")
    return args


def freeze_args(timeout: float | str | None = None) -> list[str]:
    args = ["legacy", "freeze"]
    if timeout not in (None, ""):
        try:
            seconds = float(timeout)  # type: ignore[arg-type]
        except ValueError:
            raise FuretError(f"--timeout {timeout!r} is not a number") from None
        args += ["--timeout", f"{seconds:g}"]
    return args


def unfreeze_args() -> list[str]:
    return ["legacy", "unfreeze"]


def _non_negative(value: int | str, flag: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise FuretError(f"{flag} {value!r} is not an integer") from None
    if number < 0:
        raise FuretError(f"{flag} must be 0 or more")
    return number


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
        """0 when every host succeeded, else the first failure's remote exit code (1 when
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


class LinePrefixer:
    """A text stream that writes ``prefix`` at the start of every line (``[etl1] ...``),
    so that the output of several hosts stays attributable."""

    def __init__(self, stream: TextIO, prefix: str) -> None:
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


def run_on_hosts(task: str, hosts: Sequence[InventoryHost], command: str,
                 connect: Connect = _default_connect, out: TextIO | None = None,
                 err: TextIO | None = None) -> TaskReport:
    """Run ``command`` on each host in turn, streaming its stdout/stderr live (no pty, no
    hiding); a host that fails or cannot be reached is recorded and the others still run."""
    out = out or sys.stdout
    err = err or sys.stderr
    report = TaskReport(task)
    prefix = len(hosts) > 1
    for host in hosts:
        out_stream = LinePrefixer(out, f"[{host.name}] ") if prefix else out
        err_stream = LinePrefixer(err, f"[{host.name}] ") if prefix else err
        try:
            with connect(host) as conn:
                result = conn.run(command, pty=False, warn=True,
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
        from migration.remote import select_hosts as load
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
    """Select the hosts, then run ``furet <args>`` on them."""
    hosts = select(task, inventory, patterns, load)
    return run_on_hosts(task, hosts, furet_command(args), connect, out, err)


# --- fab verify ---------------------------------------------------------------------------

REMOTE_REPORTS = "/var/lib/furet/reports"
LOCAL_REPORTS = "reports"
CONSISTENCY_LEVELS = ("ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "ALL")


def verify_report_dir(flow: str, now: datetime.datetime | None = None) -> str:
    """A remote directory of its own per run, so that exactly its reports are fetched."""
    stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in flow.strip())
    return f"{REMOTE_REPORTS}/{safe}-{stamp}"


def verify_args(flow: str, report_dir: str, repair: bool = False, delete_extra: bool = False,
                overwrite_newer: bool = False, since: str | None = None,
                until: str | None = None, sample: float | str | None = None,
                max_rows_per_second: int | str | None = None,
                consistency: str | None = None, as_json: bool = False) -> list[str]:
    if not flow or not flow.strip():
        raise FuretError("--flow is required (runtime, rt_bo, cassandra_prod)")
    if (delete_extra or overwrite_newer) and not repair:
        raise FuretError("--delete-extra and --overwrite-newer need --repair")
    args = ["verify", "--flow", flow.strip(), "--report-dir", report_dir, "--no-progress"]
    if repair:
        args.append("--repair")
    if delete_extra:
        args.append("--delete-extra")
    if overwrite_newer:
        args.append("--overwrite-newer")
    if since:
        args += ["--since", since]
    if until:
        args += ["--until", until]
    if sample not in (None, ""):
        try:
            share = float(sample)  # type: ignore[arg-type]
        except ValueError:
            raise FuretError(f"--sample {sample!r} is not a number") from None
        if not 0 < share <= 1:
            raise FuretError("--sample must be in (0, 1]")
        args += ["--sample", f"{share:g}"]
    if max_rows_per_second not in (None, ""):
        args += ["--max-rows-per-second",
                 str(_non_negative(max_rows_per_second, "--max-rows-per-second"))]
    if consistency:
        if consistency.upper() not in CONSISTENCY_LEVELS:
            raise FuretError(f"--consistency {consistency!r} is not one of "
                             f"{', '.join(CONSISTENCY_LEVELS)}")
        args += ["--consistency", consistency.upper()]
    if as_json:
        args.append("--json")
    return args


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


def execute_verify(args: Sequence[str], report_dir: str, inventory: str,
                   patterns: Sequence[str], local_dir: str | Path = LOCAL_REPORTS,
                   connect: Connect = _default_connect,
                   load: Callable[[str, Sequence[str]], list[InventoryHost]] | None = None,
                   out: TextIO | None = None, err: TextIO | None = None,
                   ) -> tuple[TaskReport, list[Path]]:
    """``furet verify`` on the one ETL host, then its reports fetched even when it found
    differences (exit 1): they are what the operator needs then."""
    hosts = select("verify", inventory, patterns, load)
    if len(hosts) != 1:
        names = ", ".join(h.name for h in hosts)
        raise FuretError(f"verify runs on one host only and {', '.join(patterns)} has "
                         f"{len(hosts)} ({names}): pass --on {hosts[0].name}")
    report = run_on_hosts("verify", hosts, furet_command(args), connect, out, err)
    fetched: list[Path] = []
    if report.outcomes and report.outcomes[0].exit_code in (0, 1):
        try:
            fetched = fetch_reports(hosts[0], report_dir, local_dir, connect)
        except Exception as exc:  # the verdict stands; say why the files are not here
            report.outcomes.append(HostOutcome(hosts[0].name, False, None,
                                               f"fetching reports: {type(exc).__name__}: {exc}"))
    return report, fetched
