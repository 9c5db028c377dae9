"""The SQL the engine sends: version-aware upserts and keyset reads."""

from __future__ import annotations

import datetime

from migration.config import DbSettings
from migration.db import db_error
from migration.engine.galera_writer import upsert_sql
from migration.engine.plan import ChunkSpec
from migration.engine.reader import Cursor, select_batch_sql
from migration.engine.versions import codec_for
from migration.sql_literals import literal, values_batches


def test_upsert_assigns_version_last_and_never_touches_the_key() -> None:
    prefix, suffix = upsert_sql("db", "t", ["id", "a", "updated_ts", "b"], ("id",), "updated_ts")
    assert prefix == "INSERT INTO `db`.`t` (`id`, `a`, `updated_ts`, `b`) VALUES "
    assert suffix.endswith("`updated_ts` = GREATEST(`updated_ts`, VALUES(`updated_ts`))")
    assert "`a` = IF(VALUES(`updated_ts`) >= `updated_ts`, VALUES(`a`), `a`)" in suffix
    assert "`id` =" not in suffix


def test_upsert_of_a_composite_key_and_of_a_table_without_version() -> None:
    _, suffix = upsert_sql("db", "t", ["o", "l", "a", "v"], ("o", "l"), "v")
    assert "`o` =" not in suffix and "`l` =" not in suffix
    _, plain = upsert_sql("db", "t", ["o", "l", "a"], ("o", "l"), "")
    assert plain == " ON DUPLICATE KEY UPDATE `a` = VALUES(`a`)"


def test_guarded_upsert_never_merges_into_another_row() -> None:
    _, suffix = upsert_sql("db", "t", ["id", "email", "v"], ("id",), "v", guard=True)
    assert suffix == (" ON DUPLICATE KEY UPDATE `email` = IF(`id` = VALUES(`id`) AND "
                      "VALUES(`v`) >= `v`, VALUES(`email`), `email`), `v` = IF(`id` = "
                      "VALUES(`id`), GREATEST(`v`, VALUES(`v`)), `v`)")
    _, plain = upsert_sql("db", "t", ["id", "email"], ("id",), "", guard=True)
    assert plain == " ON DUPLICATE KEY UPDATE `email` = IF(`id` = VALUES(`id`), " \
                    "VALUES(`email`), `email`)"


EPOCH_MS = codec_for("t", "v", "bigint", None)


def test_window_read_uses_the_compound_cursor() -> None:
    spec = ChunkSpec(0, "window", "id", ts_lo=100, ts_hi=200)
    sql, args = select_batch_sql("db", "t", ("id", "v"), ("id",), EPOCH_MS, spec,
                                 Cursor(150, (7,)), 500)
    assert "`v` > %s AND `v` <= %s AND `v` >= %s AND (`v` > %s OR (`v` = %s AND (`id` > %s)))" \
        in sql
    assert sql.endswith("ORDER BY `v`, `id` LIMIT 500")
    assert args == [100, 200, 150, 150, 150, 7]


def test_key_read_resumes_after_the_cursor() -> None:
    spec = ChunkSpec(3, "key", "id", key_lo=(1000,), key_hi=(2000,))
    sql, args = select_batch_sql("db", "t", ("id", "v"), ("id",), EPOCH_MS, spec,
                                 Cursor(None, (1500,)), 10)
    assert "WHERE `id` > %s AND `id` <= %s ORDER BY `id` LIMIT 10" in sql
    assert args == [1500, 2000]


def test_composite_key_read_walks_the_primary_key() -> None:
    spec = ChunkSpec(1, "key", "o,l", key_lo=(10, 2), key_hi=(20, 1))
    sql, args = select_batch_sql("db", "t", ("o", "l", "v"), ("o", "l"), EPOCH_MS, spec,
                                 Cursor(None, (12, 5)), 10)
    assert ("WHERE (`o` >= %s AND (`o` > %s OR (`o` = %s AND (`l` > %s)))) AND "
            "(`o` <= %s AND (`o` < %s OR (`o` = %s AND (`l` <= %s)))) ORDER BY `o`, `l` "
            "LIMIT 10") in sql
    assert args == [12, 12, 12, 5, 20, 20, 20, 1]


def test_datetime_window_compares_the_column_with_its_own_type() -> None:
    codec = codec_for("t", "changed", "datetime", 0, timezone="+01:00")
    second = codec.ledger(datetime.datetime(2026, 11, 30, 10, 0, 0))
    assert second is not None and codec.param(second) == "2026-11-30 10:00:00.000000"
    assert codec.micros(second) == (1_795_996_800 + 9 * 3600) * 1_000_000  # 09:00 UTC
    spec = ChunkSpec(0, "window", "id", ts_lo=second - codec.duration(1500), ts_hi=second)
    _, args = select_batch_sql("db", "t", ("id", "changed"), ("id",), codec, spec, Cursor(), 9)
    assert args == ["2026-11-30 09:59:58.000000", "2026-11-30 10:00:00.000000"]


def test_literals_and_batches() -> None:
    assert literal(None) == "NULL" and literal(5) == "5"
    assert literal("l'olivier") == "'l\\'olivier'"
    assert literal(b"\xe9") == "X'e9'"
    batches = list(values_batches([(i, "x" * 10) for i in range(10)], 4, 10_000))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [len(b) for b in values_batches([(i, "x" * 10) for i in range(10)], 100, 40)] == \
        [2, 2, 2, 2, 2]


def test_access_denied_names_server_and_user_never_the_password() -> None:
    settings = DbSettings("legacy", "127.0.0.11", 3306, "furet", "s3cret",
                          ssl_ca="/etc/furet/tls/ca.crt")
    exc = Exception(1045, "Access denied for user 'furet'@'127.0.0.1' (using password: YES)")
    message = str(db_error(exc, settings, "lf_runtime"))
    assert message == ("legacy 127.0.0.11:3306 database lf_runtime: "
                       "access denied for user 'furet'")
    assert "s3cret" not in str(db_error(Exception(1234, "oops s3cret"), settings))
