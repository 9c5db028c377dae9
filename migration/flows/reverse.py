"""Reverse flows: a MariaDB-to-MariaDB flow inverted, for the rounds that copy the
application's writes on the target back to the legacy after the switch (``--reverse``), so
that a rollback loses nothing.

The reverse of flow ``F`` (legacy database -> target database) is the flow
``F.reverse``: source the target database, target the legacy database, each table's
mapping inverted (every target column goes back into the legacy column it was copied
from), the same key, version column and ``deletes:`` setting. Its rounds are the rounds of
any flow (same version-aware upsert, same quarantine) and the ledger keys them by that
name, so forward and reverse rounds never mix; the ledger stays on the target.

Invertible, checked here before any server is reached: one target table per source
table and one source table per target table, no ``ref_time``, no source column copied
into two target columns, and transforms with an exact inverse. ``utf8`` has one: it
decoded legacy bytes that are valid UTF-8; the server stores the text back in the legacy
column's own character set (a VARBINARY gets those very bytes; a character a latin1
column cannot hold is refused by furet's strict session and quarantined). ``ms_to_day``,
``trim`` and ``lower`` lose information: refused.

Not reversed, each refused with one line: a Cassandra flow (its query tables are
projections of legacy rows, day buckets and denormalised copies; the rows they hold go
back through the MariaDB flow of their source tables), and a flow whose source is the
target itself (``rt_bo``: back-office data derived on the target, which the legacy never
held as such).
"""

from __future__ import annotations

from pathlib import Path

from migration.errors import FuretError
from migration.flows.mapping import (
    REVERSE_SUFFIX,
    ColumnMap,
    Flow,
    TableFlow,
    TargetMap,
    load_flow,
)

# transform of a forward column -> transform of its reverse column
INVERSE_TRANSFORMS = {"": "", "utf8": ""}
FLOW_NAME_MAX = 64  # furet.rounds.flow

__all__ = ["INVERSE_TRANSFORMS", "REVERSE_SUFFIX", "load_for", "reverse_flow"]


def load_for(name_or_path: str, flows_dir: str | Path, reverse: bool) -> Flow:
    """The flow ``--flow`` names, inverted with ``--reverse``."""
    if (not reverse and name_or_path.endswith(REVERSE_SUFFIX)
            and not Path(name_or_path).is_file()):
        base = name_or_path[:-len(REVERSE_SUFFIX)]
        raise FuretError(f"flow {name_or_path}: the reverse rounds of flow {base} are asked "
                         f"with --flow {base} --reverse")
    flow = load_flow(name_or_path, flows_dir=flows_dir)
    return reverse_flow(flow) if reverse else flow


def reverse_flow(flow: Flow) -> Flow:
    """``flow`` inverted (see the module docstring); a FuretError naming the flow, the table
    and the column when it cannot be."""
    where = f"flow {flow.name}"
    if flow.reverse_of:
        raise FuretError(f"{where} is already a reverse flow (of {flow.reverse_of})")
    if flow.target_kind != "mariadb":
        raise FuretError(f"{where}: --reverse copies the application's writes from a MariaDB "
                         f"target back to the legacy; this flow writes Cassandra keyspace "
                         f"{flow.target_database}, query tables derived from legacy rows (not "
                         "invertible, and their rows go back through the MariaDB flow of their "
                         "source tables, e.g. runtime)")
    if flow.source_server != "legacy" or flow.target_server != "target":
        raise FuretError(f"{where}: --reverse copies the application's writes from the target "
                         f"back to the legacy; this flow reads {flow.source_server} database "
                         f"{flow.source_database} into {flow.target_server} database "
                         f"{flow.target_database} (data derived there, which the legacy never "
                         "held as such): nothing to copy back")
    name = flow.name + REVERSE_SUFFIX
    if len(name) > FLOW_NAME_MAX:
        raise FuretError(f"{where}: the reverse flow's name {name} is longer than "
                         f"{FLOW_NAME_MAX} characters (the ledger's flow names): shorten name:")
    tables: list[TableFlow] = []
    written_from: dict[str, str] = {}
    for tf in flow.tables:
        twhere = f"{where} table {tf.source}"
        if len(tf.targets) != 1:
            raise FuretError(f"{twhere}: copied into {len(tf.targets)} tables ("
                             f"{', '.join(t.table for t in tf.targets)}): a reverse flow needs "
                             "one target table per source table")
        (tm,) = tf.targets
        if tm.table in written_from:
            raise FuretError(f"{where}: target table {tm.table} is written from "
                             f"{written_from[tm.table]} and {tf.source}: which one it goes "
                             "back to is ambiguous")
        written_from[tm.table] = tf.source
        tables.append(_reverse_table(tf, tm, f"{twhere} -> {tm.table}"))
    return Flow(
        name=name,
        description=f"reverse of {flow.name}: {flow.target_server} {flow.target_database} -> "
                    f"{flow.source_server} {flow.source_database} (writes made after the "
                    "switch)",
        source_server=flow.target_server, source_database=flow.target_database,
        target_kind="mariadb", target_server=flow.source_server,
        target_database=flow.source_database, tables=tuple(tables), path=flow.path,
        reverse_of=flow.name)


def _reverse_table(tf: TableFlow, tm: TargetMap, where: str) -> TableFlow:
    if tm.ref_time is not None:
        raise FuretError(f"{where}: ref_time (the old ETL's minute ids) cannot be reversed")
    columns: list[ColumnMap] = []
    back_into: dict[str, str] = {}
    for col in tm.columns:
        if col.transform not in INVERSE_TRANSFORMS:
            raise FuretError(f"{where} column {col.target}: transform {col.transform} loses "
                             "information (no inverse): a reverse flow cannot write "
                             f"{col.source} back")
        if col.source in back_into:
            raise FuretError(f"{where}: source column {col.source} is copied into both "
                             f"{back_into[col.source]} and {col.target}: which one goes back "
                             "is ambiguous")
        back_into[col.source] = col.target
        # back into the legacy column it came from
        columns.append(ColumnMap(col.source, col.target, INVERSE_TRANSFORMS[col.transform]))
    version = (tm.target_of(tf.version) or tf.version) if tf.version else ""
    return TableFlow(source=tm.table, keys=tf.target_keys(tm), version=version,
                     targets=(TargetMap(tf.source, tuple(columns)),), id_column="",
                     version_unit=tf.version_unit, version_timezone=tf.version_timezone,
                     deletes=tf.deletes)

