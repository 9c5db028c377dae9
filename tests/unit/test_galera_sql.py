"""The SQL the engine sends: version-aware upserts and keyset reads."""

from __future__ import annotations

from migration.config import DbSettings
from migration.db import db_error
from migration.engine.galera_writer import upsert_sql
from migration.engine.plan import ChunkSpec
from migration.engine.reader import Cursor, select_batch_sql
from migration.sql_literals import literal, values_batches


def test_upsert_assigns_version_last_and_never_touches_the_key() -> None:
    prefix, suffix = upsert_sql("db", "t", ["id", "a", "updated_ts", "b"], "id", "updated_ts")
    assert prefix == "INSERT INTO `db`.`t` (`id`, `a`, `updated_ts`, `b`) VALUES "
    assert suffix.endswith("`updated_ts` = GREATEST(`updated_ts`, VALUES(`updated_ts`))")
    assert "`a` = IF(VALUES(`updated_ts`) >= `updated_ts`, VALUES(`a`), `a`)" in suffix
    assert "`id` =" not in suffix


def test_window_read_uses_the_compound_cursor() -> None:
    spec = ChunkSpec(0, "window", "id", ts_lo=100, ts_hi=200)
    sql, args = select_batch_sql("db", "t", ("id", "v"), "id", "v", spec, Cursor(150, 7), 500)
    assert "`v` > %s AND `v` <= %s AND `v` >= %s AND (`v` > %s OR (`v` = %s AND `id` > %s))" \
        in sql
    assert sql.endswith("ORDER BY `v`, `id` LIMIT 500")
    assert args == [100, 200, 150, 150, 150, 7]


def test_key_read_resumes_after_the_cursor() -> None:
    spec = ChunkSpec(3, "key", "id", key_lo=1000, key_hi=2000)
    sql, args = select_batch_sql("db", "t", ("id", "v"), "id", "v", spec, Cursor(None, 1500), 10)
    assert "WHERE `id` > %s AND `id` <= %s ORDER BY `id` LIMIT 10" in sql
    assert args == [1500, 2000]


def test_literals_and_batches() -> None:
    assert literal(None) == "NULL" and literal(5) == "5"
    assert literal("l'olivier") == "'l\\'olivier'"
    assert literal(b"\xe9") == "X'e9'"
    batches = list(values_batches([(i, "x" * 10) for i in range(10)], 4, 10_000))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [len(b) for b in values_batches([(i, "x" * 10) for i in range(10)], 100, 40)] == \
        [2, 2, 2, 2, 2]


def test_access_denied_names_server_and_user_never_the_password() -> None:
    settings = DbSettings("legacy", "127.0.0.11", 3306, "furet", "s3cret")
    exc = Exception(1045, "Access denied for user 'furet'@'127.0.0.1' (using password: YES)")
    message = str(db_error(exc, settings, "lf_runtime"))
    assert message == ("legacy 127.0.0.11:3306 database lf_runtime: "
                       "access denied for user 'furet'")
    assert "s3cret" not in str(db_error(Exception(1234, "oops s3cret"), settings))
