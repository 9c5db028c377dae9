"""Each remote-capable `furet` command described once: its options, their types, defaults,
help, and the checks that couple them. Everything else is derived from this table:

- the click options of ``furet round|status|verify|legacy freeze|unfreeze|add-version``,
  ``furet flow init`` and ``furet target schema``, and of the ``furet`` group
  (:meth:`Command.click_params`, used by :mod:`migration.cli`);
- the Fabric tasks' arguments and help (:mod:`migration.fabric_tasks`, ``fabfile.py``);
- the remote argv, validated and typed (:func:`argv`, also the ``furet_argv`` filter of
  ``playbooks/verify_gate.yml``).

``furet flow check FLOW`` (a positional argument) and ``furet endpoint status|switch`` (run
on the app_endpoint host, beside HAProxy's admin socket) are described the same way in
:data:`LOCAL_COMMANDS`: click options only, no Fabric task.

Invariant: an option exists in one place, :data:`COMMANDS` (or :data:`GLOBAL` for the
group's options). A test (tests/unit/test_contract.py) walks every command and proves click,
fab and :func:`argv` agree, so a new option is one entry here plus the code that uses its
value. Values given to :func:`argv` are checked with the same rules click applies (ranges,
choices, required, couplings), so a bad value fails on the controller before any host is
reached, with one :class:`~migration.errors.FuretError` line naming the flag.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import click

from migration import endpoint
from migration.enums import Consistency, EndpointSide, LiteralsPath, Strategy
from migration.errors import FuretError
from migration.flows.locate import SHIPPED_DIR, flow_names

TEXT, INT, FLOAT, CHOICE, FLAG = "text", "int", "float", "choice", "flag"


def known_flows() -> tuple[str, ...]:
    """The flows furet ships (migration/flows/*.yml), for help and error messages. The
    flows deployed on a host (config flows.dir) are known there only: the remote furet
    resolves the name (migration/flows/locate.py)."""
    return tuple(flow_names(SHIPPED_DIR))


@dataclass(frozen=True)
class Option:
    """One option. ``name`` keys the values everywhere (a Fabric task argument of that name,
    ``values[name]`` for :func:`argv`); ``dest`` is the click parameter name when it must
    differ (``--json`` -> ``as_json``). ``remote``: a Fabric task exposes it and passes it
    to the remote furet; False for options the task sets itself or that only make sense on
    the controller."""

    flag: str
    kind: str = TEXT
    help: str = ""
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False
    choices: type[StrEnum] | None = None
    multiple: bool = False
    required: bool = False
    remote: bool = True
    dest_name: str | None = None
    metavar: str | None = None
    envvar: str | None = None

    @property
    def name(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def dest(self) -> str:
        return self.dest_name or self.name

    # --- click ------------------------------------------------------------------------

    def click_type(self) -> click.ParamType | None:
        if self.kind == INT:
            if self.minimum is None and self.maximum is None:
                return click.INT  # an unbounded IntRange is described as "[x<=None]"
            return click.IntRange(_int_or_none(self.minimum), _int_or_none(self.maximum))
        if self.kind == FLOAT:
            return click.FloatRange(self.minimum, self.maximum, min_open=self.min_open)
        if self.kind == CHOICE:
            assert self.choices is not None, self.flag
            return click.Choice(_values(self.choices), case_sensitive=False)
        return None

    def click_param(self) -> click.Option:
        if self.kind == FLAG:
            return click.Option([self.flag, self.dest], is_flag=True, help=self.help)
        default = str(self.default) if isinstance(self.default, StrEnum) else self.default
        return click.Option(
            [self.flag, self.dest], type=self.click_type(), default=default,
            show_default=self.default is not None, multiple=self.multiple,
            required=self.required, help=self.help, metavar=self.metavar, envvar=self.envvar)

    # --- Fabric -----------------------------------------------------------------------

    def fab_help(self) -> str:
        """The help of a Fabric task argument: the click help plus what click shows itself
        (choices, range, default)."""
        parts = [self.help.rstrip(".") + "."] if self.help else []
        if self.choices is not None:
            parts.append(f"One of {', '.join(_values(self.choices))}.")
        elif self.kind in (INT, FLOAT) and (self.minimum is not None
                                            or self.maximum is not None):
            parts.append(f"Range {self._range()}.")
        if self.default is not None and self.kind != FLAG:
            parts.append(f"Default {self.default}.")
        return " ".join(parts)

    # --- values -----------------------------------------------------------------------

    def _range(self) -> str:
        if self.maximum is None:
            return f"{_number(self.minimum)} or more"
        low = "(" if self.min_open else "["
        return f"{low}{_number(self.minimum)}, {_number(self.maximum)}]"

    def parse(self, value: Any) -> Any:
        """A value from click, Fabric (text) or Python, typed and checked; None when unset.
        Raises FuretError naming the flag."""
        if self.multiple:
            items = [value] if isinstance(value, str) else list(value or ())
            parsed = [self._parse_one(v) for v in items]
            return tuple(v for v in parsed if v is not None) or None
        return self._parse_one(value)

    def _parse_one(self, value: Any) -> Any:
        if self.kind == FLAG:
            return bool(value) or None
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        text = value.strip() if isinstance(value, str) else value
        if self.kind == CHOICE:
            assert self.choices is not None
            for choice in self.choices:
                if str(text).lower() == choice.value.lower():
                    return choice
            raise FuretError(f"{self.flag} {value!r} is not one of "
                             f"{', '.join(_values(self.choices))}")
        if self.kind == INT:
            try:
                number: float = int(text)
            except (TypeError, ValueError):
                raise FuretError(f"{self.flag} {value!r} is not an integer") from None
        elif self.kind == FLOAT:
            try:
                number = float(text)
            except (TypeError, ValueError):
                raise FuretError(f"{self.flag} {value!r} is not a number") from None
            if not math.isfinite(number):
                raise FuretError(f"{self.flag} {value!r} is not a number")
        else:
            return str(text)
        low_ok = (self.minimum is None or number > self.minimum
                  or (number == self.minimum and not self.min_open))
        if not low_ok or (self.maximum is not None and number > self.maximum):
            raise FuretError(f"{self.flag} must be {'in ' if self.maximum is not None else ''}"
                             f"{self._range()}")
        return number

    def render(self, value: Any) -> list[str]:
        """``value`` (already parsed) as argv words; nothing when unset."""
        if value is None:
            return []
        if self.kind == FLAG:
            return [self.flag]
        items = value if self.multiple else (value,)
        return [word for item in items for word in (self.flag, _word(item))]


def _values(choices: type[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in choices)


def _word(value: Any) -> str:
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def _number(value: float | None) -> str:
    return "" if value is None else _word(value)


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class Needs:
    """A coupling: each of ``dependents`` (flags) is refused unless ``flag`` is given."""

    flag: str
    dependents: tuple[str, ...]

    def __call__(self, values: Mapping[str, Any]) -> None:
        given = [d for d in self.dependents if values.get(_key(d))]
        if given and not values.get(_key(self.flag)):
            raise FuretError(f"{' and '.join(given)} only makes sense with {self.flag} "
                             f"(options that need {self.flag}: {', '.join(self.dependents)})")


Check = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class Argument:
    """A positional argument (``furet flow check FLOW``), for :data:`LOCAL_COMMANDS` only:
    a remote argv is built from options. Click arguments have no help of their own: the
    command's help names them."""

    name: str
    metavar: str

    def click_param(self) -> click.Argument:
        return click.Argument([self.name], metavar=self.metavar)


def _key(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Command:
    """A furet command as click, Fabric and the remote side see it. ``path`` is its words
    after ``furet`` (``legacy freeze``); ``task`` its Fabric task name; ``one_host``: the
    Fabric task refuses to run it on more than one host (it changes the migration's
    state, or fetches one host's reports)."""

    task: str
    path: tuple[str, ...]
    help: str
    options: tuple[Option, ...] = ()
    checks: tuple[Check, ...] = ()
    one_host: bool = False
    fab_help: str = ""
    fab_options: tuple[Option, ...] = field(default=())
    arguments: tuple[Argument, ...] = ()

    def option(self, name: str) -> Option:
        for option in (*self.options, *GLOBAL):
            if option.name == name:
                return option
        raise KeyError(f"furet {' '.join(self.path)} has no option {name!r}")

    def click_params(self) -> list[click.Parameter]:
        return [*(a.click_param() for a in self.arguments),
                *(option.click_param() for option in self.options)]

    def remote_options(self) -> tuple[Option, ...]:
        """What the Fabric task takes and passes on: this command's remote options, then
        the group's."""
        return tuple(o for o in (*self.options, *GLOBAL) if o.remote)

    def parse(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` (by option name; missing or None = unset) typed, required options and
        couplings checked. Unknown names are a programming error (KeyError)."""
        parsed = {name: self.option(name).parse(value) for name, value in values.items()}
        for option in self.options:
            if option.required and parsed.get(option.name) is None:
                flows = (f" (shipped: {', '.join(known_flows())}; or a flow deployed in "
                         "flows.dir)") if option.name == "flow" else ""
                raise FuretError(f"{option.flag} is required{flows}")
        self.check(parsed)
        return parsed

    def check(self, values: Mapping[str, Any]) -> None:
        for check in self.checks:
            check(values)


FLOW_HELP = (f"Flow name, shipped ({', '.join(known_flows())}: migration/flows/*.yml) or "
             "deployed in flows.dir (the inventory's flows/ on the ETL hosts), or a YAML path.")
JSON = Option("--json", FLAG, "Print the result as JSON.", dest_name="as_json")
NO_PROGRESS = Option("--no-progress", FLAG, "No progress output.")
REVERSE = Option("--reverse", FLAG, "The flow reversed (F.reverse): target -> legacy, the "
                 "application's writes after the switch (MariaDB-to-MariaDB flows).")

# The `furet` group's options: they come before the command word (`furet --target-host H
# round ...`). --config is the remote host's file, which fab takes from the inventory.
GLOBAL: tuple[Option, ...] = (
    Option("--config", help="YAML settings (default: $FURET_CONFIG, else ./furet.yml if "
                            "present). Order: defaults < file < FURET_* env < flags.",
           metavar="FILE", envvar="FURET_CONFIG", remote=False, dest_name="config_path"),
    Option("--legacy-host", help="Legacy MySQL host."),
    Option("--legacy-port", INT, "Legacy MySQL port.", minimum=1, maximum=65535),
    Option("--target-host", help="Target Galera (or HAProxy) host."),
    Option("--target-port", INT, "Target Galera port.", minimum=1, maximum=65535),
)

COMMANDS: dict[str, Command] = {c.task: c for c in (
    Command("round", ("round",), "Run (or resume) the next round of a flow.", one_host=True,
            options=(
                Option("--flow", help=FLOW_HELP, required=True),
                Option("--final", FLAG, "Cutover round: safety lag 0 (freeze writes first)."),
                Option("--strategy", CHOICE, "ts = furet; naive and id only to show their losses.",
                       default=Strategy.TS, choices=Strategy),
                Option("--workers", INT, "Parallel chunk copiers (default: rounds.workers).",
                       minimum=1, maximum=64),
                Option("--chunk-rows", INT, "Rows per chunk (default: rounds.chunk_rows).",
                       minimum=1),
                Option("--batch-rows", INT, "Rows per write batch (default: rounds.batch_rows).",
                       minimum=1, maximum=10_000),
                Option("--overlap-ms", INT, "Re-read this much before the watermark.", minimum=0),
                Option("--safety-lag-ms", INT, "Leave the last milliseconds for the next round.",
                       minimum=0),
                Option("--max-rows-per-second", INT, "Per worker; 0 = unthrottled.", minimum=0),
                Option("--max-quarantined", INT,
                       "Exit non-zero when the round quarantines more rows than this.", minimum=0),
                Option("--literals", CHOICE, "auto: MariaDB targets get row literals built by the "
                       "source server where the mapping allows; python: every row through Python.",
                       default=LiteralsPath.AUTO, choices=LiteralsPath),
                REVERSE,
                Option("--assume-frozen", FLAG, "With --reverse --final: the application no "
                       "longer reaches the target (the rollback switched its endpoint away, "
                       "which furet cannot see)."),
                JSON, NO_PROGRESS),
            checks=(Needs("--reverse", ("--assume-frozen",)),
                    Needs("--final", ("--assume-frozen",)))),
    Command("status", ("status",),
            "The rounds of every flow recorded in the target's furet ledger, and the "
            "quarantine.", options=(
                Option("--flow", help="Only this flow."),
                Option("--last", INT, "Rounds per flow.", default=10, minimum=1),
                JSON)),
    Command("verify", ("verify",),
            "Compare a flow's source and target by chunk checksums; list, and repair, the "
            "rows that differ. Exit 0 when they agree, 1 when they differ, 2 on errors.",
            one_host=True,
            fab_help="furet verify on the ETL host; its JSON and HTML reports are fetched "
                     "to ./reports/.",
            options=(
                Option("--flow", help=FLOW_HELP, required=True),
                # set by fab verify itself (a remote directory per run, plain progress)
                Option("--report-dir", help="Write verify-<flow>-<time>.json and .html there.",
                       metavar="DIR", remote=False),
                Option("--no-progress", FLAG, "No progress output.", remote=False),
                Option("--repair", FLAG,
                       "Re-copy missing and different rows (version-aware), then re-check."),
                Option("--delete-extra", FLAG, "With --repair: delete extra target rows."),
                Option("--overwrite-newer", FLAG,
                       "With --repair: overwrite rows a newer target copy shadows."),
                Option("--since", help="Versions after this (epoch ms or ISO, UTC)."),
                Option("--until", help="Versions up to this (epoch ms or ISO, UTC)."),
                Option("--sample", FLOAT, "Share of chunks to check (random).", default=1.0,
                       minimum=0, maximum=1, min_open=True),
                Option("--seed", INT, "Random seed of --sample."),
                Option("--table", help="Only this source table (repeatable).", multiple=True,
                       dest_name="tables"),
                Option("--workers", INT, "Parallel chunk checksums / Cassandra readers "
                       "(default: rounds.workers).", minimum=1, maximum=64),
                Option("--chunk-time", FLOAT,
                       "Target seconds per checksum query (chunk size adapts).", default=0.3,
                       minimum=0.01, maximum=60),
                Option("--max-rows-per-second", INT,
                       "Throttle all reads together; 0 = unthrottled.", default=0, minimum=0),
                Option("--max-load", INT,
                       "Pause while Threads_running on a server is above this; 0 = off.",
                       default=0, minimum=0),
                Option("--scan-consistency", CHOICE,
                       "Cassandra consistency of the checksum pass over the ring.",
                       default=Consistency.LOCAL_ONE, choices=Consistency),
                Option("--scan-page-rows", INT,
                       "Rows per page of the Cassandra checksum pass; each reader holds one "
                       "page (memory: about workers x pages, whatever the table's size).",
                       default=10000, minimum=100, maximum=100000),
                Option("--consistency", CHOICE,
                       "Cassandra consistency of the reads that confirm a difference "
                       "(drill-down, repair).",
                       default=Consistency.LOCAL_QUORUM, choices=Consistency),
                Option("--max-report-rows", INT,
                       "Diff rows listed per table in the reports (counts stay exact).",
                       default=1000, minimum=0),
                Option("--json", FLAG, "Print the report as JSON.", dest_name="as_json"),
                REVERSE,
            ),
            checks=(Needs("--repair", ("--delete-extra", "--overwrite-newer")),),
            fab_options=(Option("--reports", help="Local directory for the fetched reports.",
                                default="reports", remote=False),)),
    Command("freeze", ("legacy", "freeze"),
            "Legacy read-only on, then wait until no write is in flight.", one_host=True,
            options=(Option("--timeout", FLOAT, "Seconds to wait for in-flight writes.",
                            default=60.0, minimum=0),)),
    Command("unfreeze", ("legacy", "unfreeze"), "Legacy read-only off.", one_host=True),
    Command("add_version", ("legacy", "add-version"),
            "Give a legacy table a version column, online. TIMESTAMP(3) NOT NULL DEFAULT "
            "CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), then a backfill in small "
            "batches by primary key; nothing if the column exists.", one_host=True,
            options=(
                Option("--table", help="The legacy table.", required=True),
                Option("--database", help="Its database.", default="lf_runtime"),
                Option("--column", help="The version column's name.", default="updated_ts"),
                Option("--dry-run", FLAG, "Print the plan (the ALTER, its algorithm and lock "
                       "as the server answers, the backfill batches); change nothing."),
                Option("--allow-lock", FLAG, "Run the ALTER even when the server can only do "
                       "it with a lock that blocks writes to the table."),
                Option("--batch-rows", INT, "Rows per backfill batch (one short UPDATE).",
                       default=1000, minimum=1, maximum=10_000),
                Option("--pause-ms", INT, "Pause between backfill batches.", default=0,
                       minimum=0, maximum=60_000),
                NO_PROGRESS)),
    Command("flow_init", ("flow", "init"),
            "Print a complete, commented flow YAML for a legacy database, read from its "
            "information_schema: key = primary key, the best version column (or none), every "
            "column mapped. Tables without a primary key are listed and left out.",
            one_host=True, options=(
                Option("--source-db", help="The legacy database.", required=True),
                Option("--tables", help="Only these tables, comma separated (default: all)."),
                Option("--target", help="mariadb:DATABASE or cassandra:KEYSPACE.",
                       required=True),
                Option("--name", help="The flow's name (default: the source database, or "
                                      "SOURCE_to_TARGET when they differ)."))),
    Command("target_schema", ("target", "schema"),
            "Print the CREATE statements of a flow's target tables, made from the source "
            "tables' definitions (Galera: InnoDB, utf8mb4, the source's primary key); "
            "--apply creates what is missing.",
            one_host=True, options=(
                Option("--flow", help=FLOW_HELP, required=True),
                Option("--apply", FLAG, "Create the database and the missing tables (existing "
                       "ones are left as they are)."),
                Option("--replication", help="Cassandra flows: the replication map of a new "
                       "keyspace (default: that of furet cassandra init)."))),
)}

# Commands run where the operator works, with a positional argument (``furet flow check
# FLOW``), or on the host they act on (``furet endpoint``: the app_endpoint host, where
# HAProxy's admin socket is): described like COMMANDS, click options only, no Fabric task
# and no remote argv.
ENDPOINT_SOCKET = Option("--socket", help=f"HAProxy's admin socket, level admin (env "
                                          f"{endpoint.SOCKET_ENV}).",
                         default=endpoint.DEFAULT_SOCKET, envvar=endpoint.SOCKET_ENV,
                         metavar="PATH", dest_name="socket_path")
ENDPOINT_MAP = Option("--map", help="The map file of haproxy.cfg's use_backend, as written "
                                    f"there (env {endpoint.MAP_ENV}).",
                      default=endpoint.DEFAULT_MAP, envvar=endpoint.MAP_ENV, metavar="FILE",
                      dest_name="map_path")
# `furet backup legacy|galera|cassandra`'s shared options.
BACKUP_TO = Option("--to", help="The backup's directory (new or empty).", required=True,
                   metavar="DIR")
RECORD = Option("--record", FLAG, "Record it in the ledger on the target (furet.backups), "
                "which the cutover's preflight reads.")
LOCK_WAIT = Option("--lock-wait", FLOAT, "Seconds to wait for running rounds to release their "
                   "flow locks before refusing.", default=300.0, minimum=0)
HOLD_REASON = Option("--reason", help="What the hold is for, as the refusals will name it "
                     "(e.g. \"galera upgrade to 10.11.19\").", metavar="TEXT")
LOCAL_COMMANDS: dict[str, Command] = {c.task: c for c in (
    Command("hold_take", ("hold", "take"),
            "Put furet on hold (migration/hold.py) in the ledger on the target: every round, "
            "repair, backup and schema change is refused naming the hold until it is released. "
            "Refused while a round or repair runs (naming it) or while another reason holds "
            "it; taken again for the same reason, it changes nothing.",
            options=(replace(HOLD_REASON, required=True),)),
    Command("hold_release", ("hold", "release"),
            "End the hold (with --reason: only if it is that one); none is not an error.",
            options=(HOLD_REASON,)),
    Command("hold_show", ("hold", "show"),
            "Whether furet is on hold, for what, since when, taken on which host.",
            options=(JSON,)),
    Command("flow_check", ("flow", "check"),
            "Check FLOW (a flow name, as --flow takes it, or a YAML path) against the live "
            "source and target schemas: one line per table; exit 2 if a table does not fit.",
            arguments=(Argument("flow", "FLOW"),)),
    Command("backup_legacy", ("backup", "legacy"),
            "Back up the legacy master: a consistent dump (mariadb-dump --single-transaction "
            "--master-data=2, zstd) and furet's chunk checksums taken at the same point, into "
            "DIR with a manifest of sha256. Refused when a table is not InnoDB.",
            options=(
                BACKUP_TO,
                Option("--database", help="A database to back up (repeatable; default: "
                       "lf_runtime and lf_bo).", multiple=True, dest_name="databases"),
                RECORD)),
    Command("backup_galera", ("backup", "galera"),
            "Back up a Galera node, run on the backup host: the mariadb-backup xbstream that "
            "--stream-command writes on stdout goes through zstd into DIR (sha256 taken as it "
            "is written), with furet's chunk checksums of the databases taken while the flow "
            "locks of the flows writing them are held; the archive is then extracted and "
            "prepared once to prove it, and DIR gets a manifest.",
            options=(
                BACKUP_TO,
                Option("--stream-command", help="A shell command writing `mariadb-backup "
                       "--backup --stream=xbstream --galera-info` of the node to stdout "
                       "(e.g. ssh to the node with a forced command).", required=True,
                       metavar="CMD"),
                Option("--database", help="A database to checksum (repeatable; default: "
                       "lf_runtime and lf_bo). The archive holds the whole datadir.",
                       multiple=True, dest_name="databases"),
                Option("--source-host", help="The node CMD streams, for the checksums "
                       "(default: the target host)."),
                Option("--source-port", INT, "Its port (default: the target port).",
                       minimum=1, maximum=65535),
                LOCK_WAIT,
                Option("--workdir", help="Where the archive is extracted and prepared once "
                       "(default: DIR; needs the datadir's size free).", metavar="DIR"),
                RECORD)),
    Command("backup_cassandra", ("backup", "cassandra"),
            "Back up the Cassandra ring, run on the backup host: under the locks of the "
            "Cassandra flows, a tagged snapshot of their keyspaces on every node (checked with "
            "nodetool listsnapshots) and furet's token-bucket checksums read at CL ALL; then "
            "each node's snapshot streamed as tar through zstd into DIR/cassandra/NODE.tar.zst, "
            "with the node's manifest (dc, rack, tokens, schema.cql, every file's sha256); the "
            "snapshots are cleared, also on failure.",
            options=(
                BACKUP_TO,
                Option("--node", help="NAME=COMMAND, once per node of the ring: furet runs "
                       "`COMMAND info|snapshot|files|stream|clear ...`, COMMAND reaching the "
                       "node's furet-cassandra-backup (e.g. cassandra1='ssh -i KEY "
                       "root@cassandra1', a forced command).", multiple=True, required=True,
                       metavar="NAME=COMMAND", dest_name="nodes"),
                Option("--flow", help="A Cassandra flow whose keyspace is backed up and whose "
                       "lock is held (repeatable; default: every flow targeting Cassandra).",
                       multiple=True, dest_name="flows"),
                Option("--splits", INT, "Token ranges of the checksums.", default=256,
                       minimum=1, maximum=65536),
                LOCK_WAIT, RECORD)),
    Command("backup_restore_test", ("backup", "restore-test"),
            "Prove the backup in DIR restores: check its files' sha256, load the dump (legacy) "
            "or extract and prepare the archive (galera) into a scratch mariadbd, or import "
            "the snapshots (cassandra) into a scratch Cassandra node, and compare it with the "
            "recorded checksums; exit 2 naming the file or the table and "
            "chunk that differ.",
            arguments=(Argument("directory", "DIR"),),
            options=(
                Option("--workdir", help="Where the scratch server's datadir goes (default: "
                       "the system's temporary directory; galera: needs the datadir's size "
                       "free).", metavar="DIR"),
                Option("--cassandra-dist", help="cassandra: the Cassandra distribution of the "
                       "scratch node, unpacked or its tarball (default: /opt/cassandra).",
                       metavar="PATH", envvar="FURET_CASSANDRA_DIST"),
                Option("--record", FLAG, "Record the result in the ledger against the "
                       "backup's manifest (the backup was taken with --record)."))),
    Command("endpoint_status", ("endpoint", "status"),
            "Where the application's database endpoint (HAProxy) sends new connections, per "
            "its map file and per its memory (exit 2 when they disagree), and each backend's "
            "servers with their state and current sessions.",
            options=(ENDPOINT_SOCKET, ENDPOINT_MAP, JSON)),
    Command("endpoint_switch", ("endpoint", "switch"),
            "Send the endpoint's new connections to the legacy master, to Galera, to a new "
            "Galera cluster (galera-next: a major upgrade's), or nowhere (refused), and cut "
            "the sessions left on the old side. Writes the map file, then HAProxy's memory; "
            "refused when the new side has no server UP; a second run changes nothing.",
            options=(
                Option("--to", CHOICE, "The new side; refused: every connection is closed "
                       "(a rollback's write freeze).", choices=EndpointSide, required=True),
                Option("--dry-run", FLAG, "Print what the switch would do; change nothing."),
                Option("--timeout", FLOAT, "Seconds to wait until no session is left on the "
                       "old side.", default=5.0, minimum=0, maximum=300),
                ENDPOINT_SOCKET, ENDPOINT_MAP, JSON)),
)}

# What every Fabric task takes besides its command's options (never passed on).
FAB_COMMON: tuple[Option, ...] = (
    Option("--inventory", help="Ansible inventory (default: $FURET_INVENTORY, else "
                               "inventories/lab/hosts.yml).", remote=False),
    Option("--on", help="Hosts or groups, comma separated (default: fab -H's host, else "
                        "the etl group).", remote=False),
    Option("--vault-password-file", help="Password of the inventory's ansible-vault files "
                                         "(default: $ANSIBLE_VAULT_PASSWORD_FILE, ansible.cfg's "
                                         "vault_password_file, else asked in a terminal).",
           remote=False),
)


def argv(command: str, values: Mapping[str, Any] | None = None) -> list[str]:
    """The argv after ``furet --config FILE`` for ``command`` with ``values`` (by option
    name, this command's and the group's; None, "" and False mean unset): validated like
    click would, then the group's options, the command's words, its options in contract
    order. Raises FuretError before anything is run."""
    spec = COMMANDS[command]
    parsed = spec.parse(values or {})
    words: list[str] = []
    for option in GLOBAL:
        words += option.render(parsed.get(option.name))
    words += spec.path
    for option in spec.options:
        words += option.render(parsed.get(option.name))
    return words


def click_command(group: click.Group, task: str) -> Callable[[Callable[..., Any]],
                                                              click.Command]:
    """Decorator: register the function as the click command of ``COMMANDS[task]`` (or
    ``LOCAL_COMMANDS[task]``) in ``group``, with the contract's arguments, options, help and
    checks (run before the function)."""
    spec = COMMANDS[task] if task in COMMANDS else LOCAL_COMMANDS[task]

    def decorate(function: Callable[..., Any]) -> click.Command:
        def callback(*args: Any, **params: Any) -> Any:
            spec.check({o.name: params.get(o.dest) for o in spec.options})
            return function(*args, **params)

        callback.__name__ = function.__name__
        callback.__doc__ = function.__doc__
        command = click.Command(spec.path[-1], callback=callback, params=spec.click_params(),
                                help=spec.help)
        group.add_command(command)
        return command

    return decorate


def global_params() -> list[click.Parameter]:
    return [option.click_param() for option in GLOBAL]

