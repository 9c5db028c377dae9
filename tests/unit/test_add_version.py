"""The pure parts of `furet legacy add-version`: reading the server's refusals, choosing the
locking ALTER from them, the batch SQL for one- and two-column keys, the plan's text."""

from __future__ import annotations

import pymysql
import pytest

from migration.legacy.add_version import (
    COLUMN_DEFINITION,
    INSTANT,
    ONLINE,
    AddVersionResult,
    AlterChoice,
    Clause,
    Outcome,
    Plan,
    alter_sql,
    backfill_sql,
    batches_estimate,
    locking_clause,
    next_keys_sql,
    refusal,
)

# What MariaDB 10.11 answers (measured on the lab's legacy server) and MySQL 5.7's word
# for an algorithm it does not know.
NO_INSTANT = pymysql.err.NotSupportedError(
    1845, "ALGORITHM=INSTANT is not supported for this operation. Try ALGORITHM=INPLACE")
FULLTEXT = pymysql.err.NotSupportedError(
    1846, "LOCK=NONE is not supported. Reason: Fulltext index creation requires a lock. "
          "Try LOCK=SHARED")
MYISAM = pymysql.err.NotSupportedError(
    1845, "ALGORITHM=INPLACE is not supported for this operation. Try ALGORITHM=COPY")
COPY_NEEDS_LOCK = pymysql.err.NotSupportedError(
    1846, "LOCK=NONE is not supported. Reason: COPY algorithm requires a lock. Try LOCK=SHARED")
MYSQL57 = pymysql.err.InternalError(1800, "Unknown ALGORITHM 'INSTANT'")
EXCLUSIVE = pymysql.err.NotSupportedError(
    1846, "LOCK=SHARED is not supported. Reason: something needs more. Try LOCK=EXCLUSIVE.")


def test_refusals_are_read_from_the_servers_answer() -> None:
    instant = refusal(INSTANT, NO_INSTANT)
    assert instant is not None
    assert (instant.reason, instant.suggestion) == ("not supported for this operation",
                                                    ("ALGORITHM", "INPLACE"))
    assert instant.short() == ("ALGORITHM=INSTANT (not supported for this operation; "
                               "try ALGORITHM=INPLACE)")
    online = refusal(ONLINE, FULLTEXT)
    assert online is not None
    assert (online.reason, online.suggestion) == ("Fulltext index creation requires a lock",
                                                  ("LOCK", "SHARED"))
    old = refusal(INSTANT, MYSQL57)
    assert old is not None and old.suggestion is None
    assert old.short() == "ALGORITHM=INSTANT (Unknown ALGORITHM 'INSTANT')"
    # anything else is not an answer about the algorithm: it is raised, not followed
    assert refusal(INSTANT, pymysql.err.OperationalError(1205, "Lock wait timeout")) is None
    assert refusal(INSTANT, pymysql.err.ProgrammingError(1060, "Duplicate column")) is None


@pytest.mark.parametrize(("clause", "answer", "expected"), [
    (ONLINE, FULLTEXT, Clause("INPLACE", "SHARED")),   # InnoDB with a FULLTEXT index
    (ONLINE, MYISAM, Clause("COPY", "SHARED")),        # MyISAM: only a copy
    (Clause("COPY", "NONE"), COPY_NEEDS_LOCK, Clause("COPY", "SHARED")),
    (Clause("COPY", "SHARED"), EXCLUSIVE, Clause("COPY", "EXCLUSIVE")),
    (ONLINE, MYSQL57, Clause("COPY", "SHARED")),       # no suggestion: the copy
])
def test_the_locking_alter_is_the_one_the_server_names(clause: Clause, answer: Exception,
                                                       expected: Clause) -> None:
    refused = refusal(clause, answer)
    assert refused is not None
    assert locking_clause(refused) == expected


def test_clauses_say_what_the_web_app_sees() -> None:
    assert INSTANT.sql == "ALGORITHM=INSTANT" and INSTANT.online
    assert ONLINE.sql == "ALGORITHM=INPLACE, LOCK=NONE" and ONLINE.online
    shared = Clause("INPLACE", "SHARED")
    assert not shared.online and shared.effect == "writes wait for the whole ALTER, reads go on"
    assert Clause("COPY", "EXCLUSIVE").effect == "reads and writes wait for the whole ALTER"


def test_alter_sql_quotes_names() -> None:
    assert alter_sql("shop", "or`ders", "v", INSTANT) == (
        f"ALTER TABLE `shop`.`or``ders` ADD COLUMN `v` {COLUMN_DEFINITION}, "
        "ALGORITHM=INSTANT")


def test_batches_walk_a_composite_key_by_keyset() -> None:
    sql, args = next_keys_sql("shop", "lines", ("order_id", "line_no"), None, 500)
    assert sql == ("SELECT `order_id`, `line_no` FROM `shop`.`lines` "
                   "ORDER BY `order_id`, `line_no` LIMIT 500")
    assert args == []
    sql, args = next_keys_sql("shop", "lines", ("order_id", "line_no"), (7, 2), 500)
    assert sql == ("SELECT `order_id`, `line_no` FROM `shop`.`lines` WHERE `order_id` >= %s "
                   "AND (`order_id` > %s OR (`order_id` = %s AND (`line_no` > %s))) "
                   "ORDER BY `order_id`, `line_no` LIMIT 500")
    assert args == [7, 7, 7, 2]
    sql, args = backfill_sql("shop", "lines", "v", ("order_id", "line_no"), ("modified",),
                             (7, 2), (9, 1))
    assert sql == (
        "UPDATE `shop`.`lines` SET `v` = NOW(3), `modified` = `modified` WHERE "
        "((`order_id` >= %s AND (`order_id` > %s OR (`order_id` = %s AND (`line_no` > %s)))) "
        "AND (`order_id` <= %s AND (`order_id` < %s OR (`order_id` = %s AND "
        "(`line_no` <= %s))))) AND `v` <= %s")
    assert args == [7, 7, 7, 2, 9, 9, 9, 1]  # the threshold is bound last, by the caller


def test_the_first_batch_has_no_lower_bound() -> None:
    sql, args = backfill_sql("shop", "items", "v", ("id",), (), None, (1000,))
    assert sql == ("UPDATE `shop`.`items` SET `v` = NOW(3) WHERE (`id` <= %s) AND `v` <= %s")
    assert args == [1000]


def _plan(clause: Clause, rows: int = 4_500, pinned: tuple[str, ...] = (),
          triggers: tuple[str, ...] = ()) -> Plan:
    refusals = tuple(r for r in (refusal(INSTANT, NO_INSTANT), refusal(ONLINE, FULLTEXT))
                     if r is not None) if not clause.online else ()
    return Plan("legacy 10.0.0.11:3306 database shop table items", "shop", "items",
                "updated_ts", "InnoDB", ("id",),
                AlterChoice(alter_sql("shop", "items", "updated_ts", clause), clause, refusals),
                rows, 1000, "READ COMMITTED", pinned, triggers, probed_on_copy=True)


def test_plan_text_of_an_online_alter() -> None:
    plan = _plan(INSTANT, pinned=("modified",), triggers=("audit_items",))
    assert batches_estimate(4_500, 1000) == plan.batches == 5
    assert plan.lines() == [
        "legacy 10.0.0.11:3306 database shop table items: add-version plan",
        f"  1. ALTER TABLE `shop`.`items` ADD COLUMN `updated_ts` {COLUMN_DEFINITION}, "
        "ALGORITHM=INSTANT",
        "     ALGORITHM=INSTANT (the server's answer on an empty copy of the table): metadata "
        "only: reads and writes go on (a brief metadata lock)",
        "  2. backfill: ~4,500 rows in ~5 batches of 1,000 rows by primary key (`id`)",
        "     one autocommit UPDATE per batch at READ COMMITTED: `updated_ts` = NOW(3) where it "
        "still holds the ALTER's time",
        "     leaves `modified` unchanged (set to itself: its own ON UPDATE CURRENT_TIMESTAMP "
        "does not fire)",
        "     UPDATE triggers fire for every backfilled row: audit_items",
    ]


def test_plan_text_of_a_locking_alter_names_the_lock_and_the_refusals() -> None:
    lines = _plan(Clause("INPLACE", "SHARED"), rows=800).lines()
    assert lines[1].endswith("ALGORITHM=INPLACE, LOCK=SHARED")
    assert ("     refused by the server: ALGORITHM=INPLACE, LOCK=NONE (Fulltext index creation "
            "requires a lock; try LOCK=SHARED)") in lines
    assert ("     NOT ONLINE: it locks shop.items (LOCK=SHARED); furet runs it only with "
            "--allow-lock") in lines
    assert "~800 rows in ~1 batch of 1,000 rows" in lines[-2]


def test_result_lines() -> None:
    where = "legacy 10.0.0.11:3306 database shop table items"
    exists = AddVersionResult(Outcome.EXISTS, where, "updated_ts", existing_type="bigint(20)")
    assert exists.lines() == [f"{where}: already has column updated_ts (bigint(20)); "
                              "nothing changed"]
    added = AddVersionResult(Outcome.ADDED, where, "updated_ts", _plan(INSTANT),
                             alter_seconds=0.04, rows_walked=4_500, rows_backfilled=4_480,
                             batches=5, batch_retries=2, seconds=1.5)
    assert added.lines() == [
        f"{where}: added updated_ts {COLUMN_DEFINITION} with ALGORITHM=INSTANT in 0.0s; "
        "backfilled 4,480 of 4,500 rows in 5 batches (2 retried after lock waits), 1.5s in all"]
    planned = AddVersionResult(Outcome.PLANNED, where, "updated_ts", _plan(INSTANT))
    assert planned.lines()[-1] == f"{where}: dry run, nothing changed"
