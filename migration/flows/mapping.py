"""Flows as data: load and check the YAML mappings of ``migration/flows/*.yml``.

A flow copies tables of one source database into one target (MariaDB/Galera database or
Cassandra keyspace). Per source table: its ``key`` (the row identity and the chunking
column), its ``version`` column (epoch ms, bigger = newer) and one or more target tables,
each a map ``target column: source column`` or ``target column: {from: col, transform: t}``.

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

from migration.errors import FuretError

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
    key: str
    version: str
    targets: tuple[TargetMap, ...]
    id_column: str = ""  # the auto-increment column the old ETL tracks (--strategy id)

    @property
    def source_columns(self) -> tuple[str, ...]:
        """Columns to read: key and version first, then every mapped one once."""
        seen = [self.key, self.version]
        for target in self.targets:
            for col in target.columns:
                if col.source not in seen:
                    seen.append(col.source)
            if target.ref_time and target.ref_time.source not in seen:
                seen.append(target.ref_time.source)
        if self.id_column and self.id_column not in seen:
            seen.append(self.id_column)
        return tuple(seen)


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


def parse_flow(data: Any, path: str = "<flow>") -> Flow:
    if not isinstance(data, dict):
        raise FuretError(f"flow file {path}: expected a mapping")
    name = _need(data, "name", f"flow file {path}")
    where = f"flow {name}"
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
        key = _need(raw, "key", twhere)
        version = _need(raw, "version", twhere)
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
            if target_map.target_of(key) is None:
                raise FuretError(f"{twhere} -> {ttable}: key column {key} is not mapped")
            if target_map.target_of(version) is None:
                raise FuretError(f"{twhere} -> {ttable}: version column {version} is not mapped")
            targets.append(target_map)
        tables.append(TableFlow(src, key, version, tuple(targets), str(raw.get("id_column", ""))))
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


def load_flow(name_or_path: str, directory: Path = FLOWS_DIR) -> Flow:
    """A shipped flow by name (``runtime``) or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = directory / f"{name_or_path}.yml"
    if not path.is_file():
        raise FuretError(f"unknown flow {name_or_path!r} (shipped: {', '.join(flow_names())})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise FuretError(f"flow file {path}: not valid YAML ({exc.__class__.__name__})") from None
    return parse_flow(data, str(path))
