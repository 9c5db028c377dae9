"""``furet flow check``: a flow against both live schemas, one verdict per source table.

The rules are :mod:`migration.flows.validate`'s (the ones a round applies before any row
moves), called here table by table, so that every table gets its line (OK, or the one
error naming flow, server, database, table and column) instead of the check stopping at the
first bad table. For a Cassandra flow the source side is checked by
:func:`~migration.flows.validate.validate_mariadb_flow` without a target, the keyspace by
:func:`~migration.flows.validate.validate_cassandra_flow`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from migration.config import FuretConfig
from migration.db import connection
from migration.errors import FuretError
from migration.flows.mapping import Flow, TableFlow, load_flow
from migration.flows.validate import validate_cassandra_flow, validate_mariadb_flow


@dataclass(frozen=True)
class TableCheck:
    source: str
    targets: tuple[str, ...]
    error: str = ""            # "" when the table fits both schemas

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass(frozen=True)
class FlowCheck:
    flow: str
    source: str                # server and database
    target: str                # server and database, or cluster and keyspace
    tables: tuple[TableCheck, ...]

    @property
    def failures(self) -> tuple[TableCheck, ...]:
        return tuple(t for t in self.tables if not t.ok)


def _each(flow: Flow, check: Callable[[Flow], object]) -> tuple[TableCheck, ...]:
    results = []
    for tf in flow.tables:
        try:
            check(dataclasses.replace(flow, tables=(tf,)))
        except FuretError as exc:
            results.append(_result(tf, str(exc)))
        else:
            results.append(_result(tf))
    return tuple(results)


def _result(tf: TableFlow, error: str = "") -> TableCheck:
    return TableCheck(tf.source, tuple(tm.table for tm in tf.targets), error)


def check_flow(config: FuretConfig, flow_ref: str) -> FlowCheck:
    """Check flow ``flow_ref`` (a name or a path). A server that cannot be reached raises;
    a table that does not fit is reported in its :class:`TableCheck`."""
    flow = load_flow(flow_ref, flows_dir=config.flows.dir)
    source = config.db(flow.source_server)
    source_where = f"{source.where} database {flow.source_database}"
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(connection(source))
        if flow.target_kind == "mariadb":
            target = config.db(flow.target_server)
            tgt = stack.enter_context(connection(target))
            tables = _each(flow, lambda one: validate_mariadb_flow(one, src, source, tgt, target))
            return FlowCheck(flow.name, source_where,
                             f"{target.where} database {flow.target_database}", tables)
        from migration.cassandra_session import cassandra_session

        cluster, session = cassandra_session(config.cassandra)
        stack.callback(cluster.shutdown)

        def both(one: Flow) -> None:
            validate_mariadb_flow(one, src, source, None, None)
            validate_cassandra_flow(one, session, config.cassandra)

        return FlowCheck(flow.name, source_where,
                         f"{config.cassandra.where} keyspace {flow.target_database}",
                         _each(flow, both))
