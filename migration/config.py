"""Connection and round settings of the migration engine, in one place.

Order (a later source overrides an earlier one, key by key):

1. defaults (the dataclasses below);
2. the YAML file given with ``--config``, else ``furet.yml`` in the current directory if
   present::

       legacy:    {host: 10.0.0.11, port: 3306, user: furet, password: ...}
       target:    {host: 10.0.0.41, port: 3306, user: furet, password: ...}
       cassandra: {hosts: [10.0.0.31, 10.0.0.32], port: 9042, user: ..., password: ...,
                   write_consistency: LOCAL_QUORUM, ssl_ca: /etc/furet/tls/ca.crt,
                   bulk_load: CQL, storage_port: 7000, internode_cert: ...}
       rounds:    {workers: 4, chunk_rows: 20000, batch_rows: 2000, batch_bytes: 2000000,
                   overlap_ms: 60000, safety_lag_ms: 5000, max_rows_per_second: 0,
                   defer_indexes: true}
       traffic:   {user: webapp, password: ...}   # lab only: `furet legacy traffic`
       flows:     {dir: /etc/furet/flows}         # deployed flows (migration/flows/locate.py)

3. ``FURET_<SECTION>_<FIELD>`` environment variables, e.g. ``FURET_LEGACY_HOST``,
   ``FURET_LEGACY_PASSWORD``, ``FURET_TARGET_PORT``, ``FURET_CASSANDRA_HOSTS`` (comma
   separated), ``FURET_ROUNDS_WORKERS``, ``FURET_FLOWS_DIR``;
4. command-line flags (hosts, ports and round tuning; passwords never come from flags so
   that they never show in ``ps``).

Passwords are kept out of ``repr`` and of every message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from migration.enums import BulkLoad, WriteConsistency
from migration.errors import FuretError

DEFAULT_CONFIG_FILE = "furet.yml"


@dataclass(frozen=True)
class DbSettings:
    """One MariaDB/MySQL server (the legacy master or the target Galera/HAProxy)."""

    role: str
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "furet"
    password: str = field(default="", repr=False)
    unix_socket: str = ""
    connect_timeout: int = 10
    # TLS: a CA file makes TLS required and the server's certificate verified against it
    # ("" = no TLS setting). ssl_server_name: the name checked in that certificate when it
    # is not `host` (behind HAProxy: the service name every Galera node carries).
    ssl_ca: str = ""
    ssl_server_name: str = ""
    ssl_verify_identity: bool = True

    @property
    def where(self) -> str:
        """How messages name this server: ``legacy 127.0.0.11:3306`` (never the password)."""
        return f"{self.role} {self.host}:{self.port}"


@dataclass(frozen=True)
class CassandraSettings:
    hosts: tuple[str, ...] = ("127.0.0.1",)
    port: int = 9042
    user: str = ""
    password: str = field(default="", repr=False)
    local_dc: str = ""
    # rounds' and repairs' writes (migration.enums.WriteConsistency): a batch's checkpoint
    # advances only once this many replicas acknowledged its rows
    write_consistency: str = "LOCAL_QUORUM"
    # CA file: TLS to every node, its certificate verified ("" = no TLS)
    ssl_ca: str = ""
    # and each node's address (its IP) checked against the certificate's SANs
    ssl_verify_identity: bool = True
    # how a full round (round 1) writes (migration.enums.BulkLoad): CQL, or SSTABLE files
    # streamed to the replicas by furet's helper (needs Java, the storage port and, with
    # internode TLS, internode_cert; migration/engine/sstable_writer.py)
    bulk_load: str = "CQL"
    # the ring's internode port, which a stream of SSTables reaches
    storage_port: int = 7000
    # whether the ring's internode port speaks TLS (cassandra_internode_encryption: all)
    internode_tls: bool = True
    # this host's key and certificate (one PEM file, signed by the ring's CA, its IP in the
    # SANs) that a stream shows the ring, needed with TLS
    internode_cert: str = ""
    # the helper's launcher ("" = .cache/sstable in a checkout, else /opt/furet/sstable)
    sstable_helper: str = ""

    @property
    def where(self) -> str:
        return f"cassandra {','.join(self.hosts)}:{self.port}"


@dataclass(frozen=True)
class RoundSettings:
    workers: int = 4
    chunk_rows: int = 20000          # keys per round-1 chunk
    batch_rows: int = 2000           # rows per target transaction (Galera write-set)
    batch_bytes: int = 2_000_000     # bytes per target statement / transaction
    overlap_ms: int = 60_000         # re-read this much before the watermark
    safety_lag_ms: int = 5_000       # do not read the last moments (in-flight commits)
    max_rows_per_second: int = 0     # per worker; 0 = unthrottled
    # round 1 drops the secondary indexes of empty MariaDB target tables and builds them
    # at its end (migration.engine.deferred_indexes)
    defer_indexes: bool = True


@dataclass(frozen=True)
class TrafficSettings:
    """The web app's account for ``furet legacy traffic`` (lab and tests only). It must not
    have READ_ONLY ADMIN/SUPER, so that ``furet legacy freeze`` stops it like the real app.
    Empty: traffic uses the ``legacy`` account."""

    user: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class SiteSettings:
    """What the settings are for. ``production``: written true by the etl_runner role for
    an inventory without ``furet_lab: true``; the commands that drop or fill demo schemas
    then refuse without --i-know-this-is-production (:mod:`migration.guard`)."""

    production: bool = False


@dataclass(frozen=True)
class FlowSettings:
    """Where ``--flow NAME`` also looks, after the shipped flows: the directory the
    etl_runner role deploys the inventory's flows to. Empty: shipped flows only."""

    dir: str = ""


@dataclass(frozen=True)
class FuretConfig:
    legacy: DbSettings = DbSettings("legacy")
    target: DbSettings = DbSettings("target")
    cassandra: CassandraSettings = CassandraSettings()
    rounds: RoundSettings = RoundSettings()
    traffic: TrafficSettings = TrafficSettings()
    flows: FlowSettings = FlowSettings()
    site: SiteSettings = SiteSettings()
    source_file: str = ""

    def db(self, server: str) -> DbSettings:
        if server == "legacy":
            return self.legacy
        if server == "target":
            return self.target
        raise FuretError(f"unknown server {server!r} (expected legacy or target)")

    @property
    def legacy_app(self) -> DbSettings:
        """The legacy server as the web app reaches it (``traffic`` account if set)."""
        if not self.traffic.user:
            return self.legacy
        return replace(self.legacy, user=self.traffic.user, password=self.traffic.password)


_SECTIONS = ("legacy", "target", "cassandra", "rounds", "traffic", "flows", "site")
# settings whose value is one of a closed set of words (checked, upper-cased)
_CHOICES: dict[tuple[str, str], tuple[type[StrEnum], str]] = {
    ("cassandra", "write_consistency"): (
        WriteConsistency, "a write acknowledged by a single replica is not enough for a "
                          "checkpoint"),
    ("cassandra", "bulk_load"): (BulkLoad, "how a full round writes Cassandra"),
}


def _coerce(current: Any, value: Any, name: str) -> Any:
    """Convert a file/env/flag value to the type of the default it replaces."""
    try:
        if isinstance(current, bool):
            return value if isinstance(value, bool) else str(value).lower() in ("1", "yes", "true")
        if isinstance(current, int):
            return int(value)
        if isinstance(current, tuple):
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            return tuple(str(v) for v in value)
        return str(value)
    except (TypeError, ValueError):
        raise FuretError(f"config: {name} = {value!r} is not a valid {type(current).__name__}") \
            from None


def _apply(section_obj: Any, values: Mapping[str, Any], origin: str, section: str) -> Any:
    known = {f.name: f for f in fields(section_obj) if f.name != "role"}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise FuretError(f"{origin}: unknown setting {section}.{key} "
                             f"(known: {', '.join(sorted(known))})")
        if value is None:
            continue
        changes[key] = _coerce(getattr(section_obj, key), value, f"{section}.{key}")
        if (section, key) in _CHOICES:
            kind, why = _CHOICES[(section, key)]
            words = [str(member.value) for member in kind]
            if str(changes[key]).upper() not in words:
                raise FuretError(f"{origin}: {section}.{key} = {value!r} is not one of "
                                 f"{', '.join(words)} ({why})")
            changes[key] = str(changes[key]).upper()
    return replace(section_obj, **changes)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise FuretError(f"config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise FuretError(f"config {path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise FuretError(f"config {path}: expected a mapping of {', '.join(_SECTIONS)}")
    unknown = set(data) - set(_SECTIONS)
    if unknown:
        raise FuretError(f"config {path}: unknown section(s) {', '.join(sorted(unknown))}")
    return data


def _env_values(env: Mapping[str, str], section: str) -> dict[str, str]:
    prefix = f"FURET_{section.upper()}_"
    return {k[len(prefix):].lower(): v for k, v in env.items() if k.startswith(prefix)}


def load_config(path: str | None = None,
                env: Mapping[str, str] | None = None,
                flags: Mapping[str, Mapping[str, Any]] | None = None) -> FuretConfig:
    """Defaults < file < FURET_* environment < flags (``{"legacy": {"host": ...}}``)."""
    env = os.environ if env is None else env
    config = FuretConfig()
    file_path: Path | None = None
    if path:
        file_path = Path(path)
        if not file_path.is_file():
            raise FuretError(f"config file {path} not found")
    elif Path(DEFAULT_CONFIG_FILE).is_file():
        file_path = Path(DEFAULT_CONFIG_FILE)
    sections: dict[str, Any] = {name: getattr(config, name) for name in _SECTIONS}
    if file_path is not None:
        for name, values in _read_file(file_path).items():
            if not isinstance(values, dict):
                raise FuretError(f"config {file_path}: section {name} must be a mapping")
            sections[name] = _apply(sections[name], values, str(file_path), name)
    for name in _SECTIONS:
        values = _env_values(env, name)
        if values:
            sections[name] = _apply(sections[name], values, "environment FURET_*", name)
    for name, values in (flags or {}).items():
        sections[name] = _apply(sections[name], values, "flag", name)
    return FuretConfig(**sections, source_file=str(file_path or ""))
