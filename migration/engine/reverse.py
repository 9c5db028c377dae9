"""Reverse rounds (``furet round --flow F --reverse``): after the switch the application
writes the target; the rounds of ``F.reverse`` (:mod:`migration.flows.reverse`) copy those
writes back into the legacy, so that a rollback loses nothing. They are rounds like any
other (:mod:`migration.engine.round`: windows, ``(version, key)`` cursor, version-aware
upsert, quarantine); what differs is here.

- **Where they start.** Not at zero: the first reverse round is a window round from the
  watermark of the cutover's final round, ``(final watermark - overlap, now - lag]``, so it
  reads what the application wrote since the switch (and the overlap), never the whole
  tables again. The cutover's final round is the first finished final round after the
  forward flow's last non-final one: its watermark was taken with the legacy frozen, before
  the switch (the runbook switches only after the final rounds and the verify gate). A
  final round run again later (after the switch) would start the reverse rounds after
  writes they must copy, so it is not the one taken. Without such a round there was no
  switch: refused. Later reverse rounds go on from their own watermarks.
- **Where their rows and their ledger are.** Rows go to the legacy, the ledger stays on the
  target (no ``furet`` schema is written on the legacy), so a batch's rows and its
  checkpoint cannot commit in one transaction: the rows commit first, then the checkpoint
  (:meth:`migration.engine.round._Run._commit_batch`). A round killed in between writes that
  batch again when it resumes, which the version-aware upsert makes harmless (same version,
  same values), and its rows are counted once, by the one checkpoint.
- **The legacy is read-only.** It was frozen at the cutover (``SET GLOBAL read_only = ON``,
  :mod:`migration.legacy.freeze`) and stays so after the switch: the application's account
  has no READ_ONLY ADMIN, so it cannot write there by mistake. furet's legacy account has
  it (``roles/legacy_mysql``: the freeze needs it) and its writes pass read_only; that is
  what reverse rounds rely on, plus INSERT and UPDATE (DELETE for ``deletes: propagate``)
  on the data, which a reverse round checks first (:func:`check_writable`: one statement
  per table that changes nothing) and refuses with one line naming the missing right.
- **The final round.** ``--final`` reads up to now with no safety lag, so the source (the
  target database) must no longer take writes: the rollback switches the application
  endpoint to a backend that refuses connections. furet cannot see the endpoint, so the
  final reverse round needs ``--assume-frozen``, the operator's word, and checks what it
  can see (:func:`assert_source_frozen`: no transaction of another account holding
  uncommitted writes on the node it reads, when its account has PROCESS there; after the
  round, :func:`check_nothing_after`: no row stamped after the round's end, which a write
  still arriving would leave).
"""

from __future__ import annotations

import pymysql

from migration.canonical import key_text
from migration.config import DbSettings
from migration.db import db_error, error_code, query, query_trx_now
from migration.engine import ledger
from migration.engine.keys import Key, quote
from migration.engine.results import RoundSummary
from migration.engine.versions import VersionCodec
from migration.enums import Deletes, Strategy
from migration.errors import FuretError
from migration.flows.mapping import Flow

READ_ONLY_ERRORS = frozenset({1290, 1836})
DENIED_ERRORS = frozenset({1142, 1143, 1044})   # command / column / database denied
NO_PROCESS = 1227                               # innodb_trx without PROCESS
# Transactions of other accounts holding uncommitted writes (or waiting to write); furet's
# own (the ledger, its heartbeat, other flows' rounds) run as ``%s`` and are left out.
IN_FLIGHT_SQL = ("SELECT p.user, COUNT(*) FROM information_schema.innodb_trx t "
                 "JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id "
                 "WHERE (t.trx_rows_modified > 0 OR t.trx_state = 'LOCK WAIT') "
                 "AND p.user <> %s GROUP BY p.user ORDER BY p.user")


def start_marks(conn: pymysql.connections.Connection, flow: Flow,
                where: str) -> dict[str, tuple[int, str | None]]:
    """The first reverse round's watermarks per (reverse) source table: those of the
    cutover's final round of ``flow.reverse_of`` (see the module docstring). ``conn``: the
    ledger; ``where``: its server, for messages."""
    forward = flow.reverse_of
    rounds = [r for r in ledger.rounds_of(conn, forward) if r.strategy == Strategy.TS]
    if not rounds:
        raise FuretError(f"flow {flow.name}: {where}: flow {forward} has no round in the "
                         f"ledger: reverse rounds start at the cutover's final round (`furet "
                         f"round --flow {forward} --final`, legacy frozen)")
    after = [i for i, r in enumerate(rounds) if not r.final]
    finals = [r for r in rounds[(after[-1] + 1) if after else 0:] if r.status == "done"]
    if not finals:
        last = rounds[-1]
        state = "not final" if not last.final else "unfinished"
        raise FuretError(f"flow {flow.name}: {where}: round {last.round_no} of flow {forward} "
                         f"is {state}: reverse rounds start at the cutover's final round "
                         f"(`furet round --flow {forward} --final`, legacy frozen, then the "
                         "switch)")
    cutover = finals[0]
    marks = ledger.round_watermarks(conn, forward, cutover.round_no)
    found: dict[str, tuple[int, str | None]] = {}
    for tf in flow.tables:
        back = tf.targets[0].table  # the forward flow's source table
        if back not in marks:
            raise FuretError(f"flow {flow.name}: {where}: final round {cutover.round_no} of "
                             f"flow {forward} has no watermark for table {back}: run the "
                             "cutover's final round of the flow as it is now")
        found[tf.source] = marks[back]
    return found


def check_writable(conn: pymysql.connections.Connection, settings: DbSettings,
                   flow: Flow) -> None:
    """Refuse, before any row moves, a legacy that furet's account cannot write: each target
    table gets the statements a round will run, made to change nothing (``WHERE FALSE``);
    read_only and the privileges are checked when a statement starts, so they fail as the
    round's own would."""
    user = settings.user
    for tf in flow.tables:
        for tm in tf.targets:
            table = f"{quote(flow.target_database)}.{quote(tm.table)}"
            key = quote(tf.target_keys(tm)[0])
            columns = ", ".join(quote(c.target) for c in tm.columns)
            statements = [f"UPDATE {table} SET {key} = {key} WHERE FALSE",
                          f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table} "
                          "WHERE FALSE"]
            rights = "SELECT, INSERT, UPDATE"
            if tf.deletes == Deletes.PROPAGATE:
                statements.append(f"DELETE FROM {table} WHERE FALSE")
                rights += ", DELETE"
            where = f"{settings.where} database {flow.target_database} table {tm.table}"
            for statement in statements:
                try:
                    query(conn, statement)
                except pymysql.MySQLError as exc:
                    code = error_code(exc)
                    if code in READ_ONLY_ERRORS:
                        raise FuretError(
                            f"{where}: the server is read-only (frozen at the cutover) and "
                            f"furet's account {user!r} cannot write through it: reverse rounds "
                            "need READ_ONLY ADMIN (MySQL 5.x: SUPER) for that account, and "
                            f"{rights} on {flow.target_database}") from None
                    if code in DENIED_ERRORS:
                        raise FuretError(
                            f"{where}: furet's account {user!r} may not write this table "
                            f"(error {code}): reverse rounds need {rights} on "
                            f"{flow.target_database}, and READ_ONLY ADMIN while it is "
                            "read-only") from None
                    raise db_error(exc, settings, flow.target_database, tm.table) from None


def assume_frozen_needed(flow: Flow, settings: DbSettings) -> FuretError:
    """The refusal of ``--reverse --final`` without ``--assume-frozen``."""
    return FuretError(
        f"flow {flow.name}: --final needs the source frozen: {settings.where} database "
        f"{flow.source_database} takes the application's writes until the rollback switches "
        "the application endpoint away from it, which furet cannot see; switch it (to "
        "refused), then run the final reverse round with --assume-frozen")


def assert_source_frozen(conn: pymysql.connections.Connection, settings: DbSettings,
                         flow: Flow) -> None:
    """With ``--assume-frozen``: refuse while another account holds uncommitted writes on the
    source node (they could commit after the final round read their range). Needs PROCESS
    on the source; without it (``innodb_trx`` refused) this cannot be seen, and
    :func:`check_nothing_after` is what is left."""
    try:
        rows = query_trx_now(conn, IN_FLIGHT_SQL, (settings.user,))
    except pymysql.MySQLError as exc:
        if error_code(exc) == NO_PROCESS:
            return
        raise db_error(exc, settings) from None
    if rows:
        who = ", ".join(f"{n} of {user!r}" for user, n in rows)
        raise FuretError(
            f"flow {flow.name}: --final --assume-frozen, but on {settings.where} transactions "
            f"still hold uncommitted writes ({who}; information_schema.innodb_trx): the "
            "application still reaches the source? switch its endpoint away (to refused), "
            "let them end, then run the final reverse round again")


def check_nothing_after(conn: pymysql.connections.Connection, settings: DbSettings,
                        flow: Flow, codecs: dict[str, VersionCodec | None],
                        summary: RoundSummary) -> None:
    """After a final reverse round: refuse when a source row is stamped after the round's
    window end. Such a row was not read: written after the round started (the source was
    not frozen), or stamped ahead of the source's clock. The round is recorded; the next
    final round reads from its watermark."""
    windows = {t.source_table: t.window_hi for t in summary.tables}
    for tf in flow.tables:
        codec = codecs.get(tf.source)
        hi = windows.get(tf.source)
        if codec is None or hi is None:
            continue
        try:
            top = query(conn, f"SELECT MAX({quote(tf.version)}) FROM "
                              f"{quote(flow.source_database)}.{quote(tf.source)}")[0][0]
        except pymysql.MySQLError as exc:
            raise db_error(exc, settings, flow.source_database, tf.source) from None
        newest = codec.ledger(top)
        if newest is not None and newest > hi:
            raise FuretError(
                f"flow {flow.name} final round {summary.round_no}: {settings.where} database "
                f"{flow.source_database} table {tf.source} holds version {codec.text(newest)}, "
                f"after the round's end {codec.text(hi)}: the source still takes writes (the "
                "application still reaches it?) or stamps ahead of its clock; switch the "
                "endpoint away (to refused), then run the final reverse round again")


def deletable(conn: pymysql.connections.Connection, flow: Flow, table: str,
              keys: list[Key]) -> list[Key]:
    """Of the legacy rows a reverse sync chunk found gone from the target (``deletes:
    propagate``), those it may delete: not the rows the forward flow quarantined, which the
    target never held (they stay in the legacy as the cutover left them). ``conn``: the
    ledger."""
    if not keys:
        return keys
    held = ledger.quarantined_versions(conn, flow.reverse_of, table)
    conn.commit()
    return [key for key in keys if key_text(key) not in held]
