"""Flows as data: load and check the YAML mappings of ``migration/flows/*.yml``.

A flow copies tables of one source database into one target (MariaDB/Galera database or
Cassandra keyspace). Per source table:

- ``key``: the row identity and the chunking order, one column or a list of columns (a
  composite primary key: ``key: [order_id, line_no]``);
- ``version``: the column that says which copy of a row is newer (epoch seconds, ms or us
  in an integer, a TIMESTAMP or a DATETIME: :mod:`migration.engine.versions`), with
  ``version_unit:`` (integer columns) and ``version_timezone:`` (DATETIME) to override
  what the type implies; ``version: none`` for a table without one;
- ``deletes``: ``keep`` (default) or ``propagate`` (tables without a version column);
- one or more target tables, each a map ``target column: source column`` or
  ``target column: {from: col, transform: t}``.

This module checks a mapping's shape (no server needed); :mod:`migration.flows.validate`
checks it against the live schemas before any row moves.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from migration.enums import Deletes, VersionUnit
from migration.errors import FuretError
from migration.flows.locate import check_declared_name, locate_flow

FLOWS_DIR = Path(__file__).resolve().parent


class TransformError(ValueError):
    """A value a transform cannot convert: the row goes to quarantine with this reason."""


def _utf8(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TransformError(f"bad encoding: invalid UTF-8 at byte {exc.start}") from None
    return value


def _ms_to_day(value: Any) -> Any:
    if value is None:
        return None
    return datetime.datetime.fromtimestamp(int(value) / 1000, datetime.UTC).date()


def _trim(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "utf8": _utf8,            # raw legacy bytes -> text, invalid UTF-8 is quarantined
    "ms_to_day": _ms_to_day,  # epoch ms -> UTC date (Cassandra day buckets)
    "trim": _trim,
    "lower": _lower,
}
TARGET_KINDS = ("mariadb", "cassandra")
SERVERS = ("legacy", "target")
# The ledger keys the reverse rounds of flow F as F + this (migration.flows.reverse): no
# flow file may take such a name
REVERSE_SUFFIX = ".reverse"


@dataclass(frozen=True)
class ColumnMap:
    target: str
    source: str
    transform: str = ""

    def apply(self, value: Any) -> Any:
        return TRANSFORMS[self.transform](value) if self.transform else value


@dataclass(frozen=True)
class RefTimeMap:
    """Old ETL only (``--strategy id``): fill ``column`` with the minute id of ``source``."""

    column: str
    source: str
    table: str = "bo_ref_time"


@dataclass(frozen=True)
class TargetMap:
    table: str
    columns: tuple[ColumnMap, ...]
    ref_time: RefTimeMap | None = None

    def target_of(self, source_column: str) -> str | None:
        for col in self.columns:
            if col.source == source_column:
                return col.target
        return None


@dataclass(frozen=True)
class TableFlow:
    source: str
    keys: tuple[str, ...]
    version: str                      # "" for `version: none`
    targets: tuple[TargetMap, ...]
    id_column: str = ""  # the auto-increment column the old ETL tracks (--strategy id)
    version_unit: str = ""            # integer versions: s, ms or us ("" = from the type)
    version_timezone: str = ""        # DATETIME versions: the application's zone ("" = UTC)
    deletes: Deletes = Deletes.KEEP

    @property
    def source_columns(self) -> tuple[str, ...]:
        """Columns to read: the key columns and the version first, then every mapped one
        once (a row's key is ``row[:len(keys)]``, its version ``row[len(keys)]``)."""
        seen = [*self.keys, *([self.version] if self.version else [])]
        for target in self.targets:
            for col in target.columns:
                if col.source not in seen:
                    seen.append(col.source)
            if target.ref_time and target.ref_time.source not in seen:
                seen.append(target.ref_time.source)
        if self.id_column and self.id_column not in seen:
            seen.append(self.id_column)
        return tuple(seen)

    @property
    def width(self) -> int:
        """Number of key columns: a row's key is ``row[:width]``, its version ``row[width]``."""
        return len(self.keys)

    def target_keys(self, target: TargetMap) -> tuple[str, ...]:
        """The key columns' names in ``target``."""
        return tuple(target.target_of(k) or k for k in self.keys)


@dataclass(frozen=True)
class Flow:
    name: str
    description: str
    source_server: str
    source_database: str
    target_kind: str
    target_server: str
    target_database: str
    tables: tuple[TableFlow, ...]
    path: str = ""
    # a reverse flow (migration.flows.reverse): the name of the flow it inverts
    reverse_of: str = ""

    def table(self, source_table: str) -> TableFlow:
        for table in self.tables:
            if table.source == source_table:
                return table
        raise FuretError(f"flow {self.name}: no source table {source_table}")


def _need(data: dict[str, Any], key: str, where: str, kind: type = str) -> Any:
    if key not in data or data[key] in (None, ""):
        raise FuretError(f"{where}: missing {key!r}")
    if not isinstance(data[key], kind):
        raise FuretError(f"{where}: {key!r} must be a {kind.__name__}")
    return data[key]


def _columns(raw: Any, where: str) -> tuple[ColumnMap, ...]:
    if not isinstance(raw, dict) or not raw:
        raise FuretError(f"{where}: 'columns' must be a non-empty mapping target: source")
    columns = []
    for target, spec in raw.items():
        if isinstance(spec, str):
            columns.append(ColumnMap(str(target), spec))
            continue
        if not isinstance(spec, dict) or "from" not in spec:
            raise FuretError(f"{where} column {target}: expected a source column name or "
                             "{from: column, transform: name}")
        transform = str(spec.get("transform", ""))
        if transform and transform not in TRANSFORMS:
            raise FuretError(f"{where} column {target}: unknown transform {transform!r} "
                             f"(known: {', '.join(sorted(TRANSFORMS))})")
        columns.append(ColumnMap(str(target), str(spec["from"]), transform))
    return tuple(columns)


def _keys(raw: Any, where: str) -> tuple[str, ...]:
    """``key: id`` or ``key: [order_id, line_no]``."""
    if isinstance(raw, str) and raw:
        return (raw,)
    if isinstance(raw, list) and raw and all(isinstance(k, str) and k for k in raw):
        if len(set(raw)) != len(raw):
            raise FuretError(f"{where}: 'key' lists a column twice")
        return tuple(raw)
    if raw in (None, "", []):
        raise FuretError(f"{where}: missing 'key'")
    raise FuretError(f"{where}: 'key' must be a column name or a list of column names")


def parse_flow(data: Any, path: str = "<flow>") -> Flow:
    if not isinstance(data, dict):
        raise FuretError(f"flow file {path}: expected a mapping")
    name = _need(data, "name", f"flow file {path}")
    where = f"flow {name}"
    if name.endswith(REVERSE_SUFFIX):
        raise FuretError(f"flow file {path}: flow name {name} ends with {REVERSE_SUFFIX}, "
                         "which names the reverse rounds of a flow in the ledger (`furet round "
                         "--flow F --reverse`): choose another name")
    source = _need(data, "source", where, dict)
    target = _need(data, "target", where, dict)
    kind = target.get("kind", "mariadb")
    if kind not in TARGET_KINDS:
        raise FuretError(f"{where}: target kind {kind!r} is not one of {', '.join(TARGET_KINDS)}")
    for side, spec in (("source", source), ("target", target)):
        server = spec.get("server", "target" if side == "target" else "legacy")
        if server not in SERVERS and not (side == "target" and kind == "cassandra"):
            raise FuretError(f"{where}: {side} server {server!r} is not legacy or target")
    tables = []
    raw_tables = _need(data, "tables", where, list)
    for raw in raw_tables:
        if not isinstance(raw, dict):
            raise FuretError(f"{where}: each entry of 'tables' must be a mapping")
        src = _need(raw, "source", f"{where} table")
        twhere = f"{where} table {src}"
        keys = _keys(raw.get("key"), twhere)
        version = _need(raw, "version", twhere)
        version = "" if version == "none" else version
        unit = str(raw.get("version_unit", "") or "")
        if unit and unit not in VersionUnit.choices():
            raise FuretError(f"{twhere}: version_unit {unit!r} is not one of "
                             f"{', '.join(VersionUnit.choices())}")
        try:
            deletes = Deletes(str(raw.get("deletes", Deletes.KEEP)))
        except ValueError:
            raise FuretError(f"{twhere}: deletes {raw.get('deletes')!r} is not one of "
                             f"{', '.join(Deletes.choices())}") from None
        if deletes == Deletes.PROPAGATE and version:
            raise FuretError(f"{twhere}: deletes: propagate needs `version: none` (a round "
                             "finds deleted rows by chunk checksums only without a version)")
        targets = []
        for traw in _need(raw, "targets", twhere, list):
            ttable = _need(traw, "table", f"{twhere} target")
            cols = _columns(traw.get("columns"), f"{twhere} -> {ttable}")
            ref_time = None
            if traw.get("ref_time"):
                rt = traw["ref_time"]
                ref_time = RefTimeMap(_need(rt, "column", f"{twhere} ref_time"),
                                      _need(rt, "from", f"{twhere} ref_time"),
                                      str(rt.get("table", "bo_ref_time")))
            target_map = TargetMap(ttable, cols, ref_time)
            for key in keys:
                if target_map.target_of(key) is None:
                    raise FuretError(f"{twhere} -> {ttable}: key column {key} is not mapped")
            if version and target_map.target_of(version) is None:
                raise FuretError(f"{twhere} -> {ttable}: version column {version} is not mapped")
            targets.append(target_map)
        tables.append(TableFlow(src, keys, version, tuple(targets), str(raw.get("id_column", "")),
                                unit, str(raw.get("version_timezone", "") or ""), deletes))
    return Flow(
        name=name, description=str(data.get("description", "")),
        source_server=str(source.get("server", "legacy")),
        source_database=_need(source, "database", f"{where} source"),
        target_kind=kind, target_server=str(target.get("server", "target")),
        target_database=_need(target, "database" if kind == "mariadb" else "keyspace",
                              f"{where} target"),
        tables=tuple(tables), path=path)


def flow_names(directory: Path = FLOWS_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yml"))


def load_flow(name_or_path: str, directory: Path = FLOWS_DIR, flows_dir: str | Path = "") -> Flow:
    """A flow by name (shipped in ``directory``, or deployed in ``flows_dir``: config
    ``flows.dir``) or a YAML file by path; the search rules are in :mod:`.locate`."""
    path = locate_flow(name_or_path, flows_dir, directory)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise FuretError(f"flow file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise FuretError(f"flow file {path}: not valid YAML ({exc.__class__.__name__})") from None
    flow = parse_flow(data, str(path))
    check_declared_name(flow.name, name_or_path, path)
    return flow
