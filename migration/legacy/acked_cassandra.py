"""`furet legacy traffic-check --on cassandra`: the web app's acknowledged writes that the
Cassandra flows copy are in Cassandra, each with that version or a later one.

A Cassandra flow reads the legacy master; the final round of each (`furet round --final`,
the cutover's final rounds) copies what was committed up to its ``now_ms``. So every write
of the acknowledged log (:func:`migration.legacy.traffic.read_acked`) to a table the flow
reads, with a version up to that ``now_ms``, must be in every target table of the flow:
also the writes Galera acknowledged between a switch and a rollback, which the reverse rounds
brought back to the legacy master. Writes acknowledged after the final round (by Galera,
after the switch) are not the flow's and are not checked.

For each such write the source row is read from the MariaDB server given (the target after
the cutover: it holds every row), mapped by the flow's columns (transforms included) to each
target table's primary key, and the version column read there at LOCAL_QUORUM. Rows furet
quarantined are counted apart, as :func:`migration.legacy.traffic.check_acked` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from migration.backup.cassandra import cassandra_flows
from migration.config import DbSettings, FuretConfig
from migration.db import connect, query
from migration.engine import ledger
from migration.errors import FuretError
from migration.flows.mapping import Flow, TableFlow, TargetMap
from migration.legacy.traffic import AckedCheck, Write, quarantined_rows, read_acked


def final_watermark(settings: DbSettings, flow: str) -> int:
    """``now_ms`` of the flow's last round, which must be a finished final round."""
    conn = connect(settings, None)
    try:
        last = ledger.last_round(conn, flow)
    finally:
        conn.close()
    if last is None or not last.final or last.status != "done" or last.now_ms is None:
        raise FuretError(f"flow {flow}: its last round is not a finished final round "
                         "(`furet round --final`): nothing says what Cassandra must hold")
    return int(last.now_ms)


def _primary_key(cluster: Any, keyspace: str, table: str) -> tuple[str, ...]:
    meta = cluster.metadata.keyspaces.get(keyspace)
    if meta is None or table not in meta.tables:
        raise FuretError(f"cassandra: no table {keyspace}.{table}")
    return tuple(c.name for c in meta.tables[table].primary_key)


def _target_key(table: TableFlow, target: TargetMap, row: dict[str, Any],
                pk: tuple[str, ...]) -> tuple[Any, ...]:
    by_target = {c.target: c for c in target.columns}
    return tuple(by_target[name].apply(row[by_target[name].source]) for name in pk)


def check_acked_cassandra(config: FuretConfig, rows_from: DbSettings, path: Path,
                          flows: tuple[Flow, ...] | None = None) -> AckedCheck:
    """Every acknowledged write the Cassandra flows copy is in Cassandra (see the module)."""
    from cassandra import ConsistencyLevel
    from cassandra.query import SimpleStatement

    from migration.cassandra_session import cassandra_session

    chosen = flows if flows is not None else tuple(cassandra_flows(config))
    until = {f.name: final_watermark(config.target, f.name) for f in chosen}
    result = AckedCheck()
    writes = list(read_acked(path))
    cluster, session = cassandra_session(config.cassandra)
    conns: dict[str, Any] = {}
    try:
        quarantine: set[tuple[str, str]] = set()
        for flow in chosen:
            conn = conns.setdefault(flow.source_database, connect(rows_from,
                                                                  flow.source_database))
            quarantine |= quarantined_rows(conn)
            for table in flow.tables:
                if not table.version or len(table.keys) != 1:
                    continue
                for target in table.targets:
                    pk = _primary_key(cluster, flow.target_database, target.table)
                    version = target.target_of(table.version) or table.version
                    select = SimpleStatement(
                        f'SELECT "{version}" FROM "{flow.target_database}"."{target.table}" '
                        f"WHERE {' AND '.join(f'{c} = %s' for c in pk)}",
                        consistency_level=ConsistencyLevel.LOCAL_QUORUM)
                    for write in writes:
                        if write.table != table.source or write.key != table.keys[0] or \
                                write.ts > until[flow.name]:
                            continue
                        result.checked += 1
                        problem = _check(conn, session, select, table, target, pk, version,
                                         write)
                        if problem is None:
                            continue
                        if (write.table, str(write.value)) in quarantine:
                            result.quarantined += 1
                        else:
                            result.missing.append(f"{flow.target_database}.{target.table}: "
                                                  f"{problem}")
    finally:
        for conn in conns.values():
            conn.close()
        cluster.shutdown()
    return result


def _check(conn: Any, session: Any, select: Any, table: TableFlow, target: TargetMap,
           pk: tuple[str, ...], version: str, write: Write) -> str | None:
    """None when the target row holds the write's version or a later one; else why not."""
    what = f"{write.table} {write.key}={write.value} version {write.ts} " \
           f"(acknowledged by {write.server})"
    columns = ", ".join(f"`{c}`" for c in table.source_columns)
    found = query(conn, f"SELECT {columns} FROM `{table.source}` WHERE `{write.key}` = %s",
                  (write.value,))
    if not found:
        return f"{what}: no such row on the server the keys are read from"
    row = dict(zip(table.source_columns, found[0], strict=True))
    rows = list(session.execute(select, _target_key(table, target, row, pk)))
    if not rows or rows[0][0] is None or int(rows[0][0]) < write.ts:
        held = "no row" if not rows else f"version {rows[0][0]}"
        return f"{what}: {held}"
    return None
