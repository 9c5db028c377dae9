"""Keys of any shape and versions of any type: SQL, ledger text and unit conversions."""

from __future__ import annotations

import datetime
import decimal

import pytest

from migration.canonical import key_text
from migration.engine import keys
from migration.engine.versions import check_values, codec_for
from migration.errors import FuretError


@pytest.mark.parametrize("key", [
    (42,), (-7,), ("abc",), ("123",), (1, "x"), (b"\x00\xff", 3),
    (decimal.Decimal("1.50"), datetime.date(2026, 1, 2)),
    (datetime.datetime(2026, 1, 2, 3, 4, 5, 600), datetime.timedelta(seconds=90), None),
])
def test_ledger_text_round_trips(key: tuple) -> None:
    text = keys.encode(key)
    assert text is not None and keys.decode(text) == key


def test_one_integer_key_stays_bare_as_furet_0_1_wrote_it() -> None:
    assert keys.encode((1500,)) == "1500" and keys.decode("1500") == (1500,)
    assert keys.decode("9f1b") == ("9f1b",)  # a bare uid of an older ledger


def test_key_text_of_composite_keys_never_collides() -> None:
    assert key_text((1, 23)) != key_text((12, 3))
    assert key_text((5,)) == "5" and key_text((1, "é")) == '["1", "é"]'


def test_among_composite_keys() -> None:
    sql, args = keys.among(("a", "b"), [(1, 2), (3, 4)], negate=True)
    assert sql == "NOT ((`a` = %s AND `b` = %s) OR (`a` = %s AND `b` = %s))"
    assert args == [1, 2, 3, 4]


def test_three_column_bound() -> None:
    sql, args = keys.up_to(("a", "b", "c"), (1, 2, 3))
    assert sql == ("`a` <= %s AND (`a` < %s OR (`a` = %s AND (`b` < %s OR (`b` = %s AND "
                   "(`c` <= %s)))))")
    assert args == [1, 1, 1, 2, 2, 3]


def test_units_from_the_type_and_durations_round_up_to_a_tick() -> None:
    assert codec_for("t", "v", "bigint", None).unit == "ms"
    seconds = codec_for("t", "v", "int", None)
    assert seconds.unit == "s" and seconds.duration(1) == 1 and seconds.duration(2001) == 3
    assert seconds.from_ms(1_700_000_000_999) == 1_700_000_000
    assert codec_for("t", "v", "bigint", None, unit="us").duration(5) == 5000
    dt0 = codec_for("t", "v", "datetime", 0)
    assert dt0.tick == 1_000_000 and dt0.duration(1) == 1_000_000 and dt0.duration(0) == 0
    assert dt0.from_micros(1_700_000_000_654_321) == 1_700_000_000_000_000
    ts3 = codec_for("t", "v", "timestamp", 3)
    assert ts3.tick == 1000 and ts3.micros(ts3.duration(1)) == 1000


@pytest.mark.parametrize("args, message", [
    (("varchar", None, "", ""), "is VARCHAR: expected BIGINT/INT epoch time, TIMESTAMP"),
    (("datetime", 0, "ms", ""), "version_unit applies to integer version columns"),
    (("timestamp", 3, "", "Europe/Paris"), "version_timezone applies to DATETIME"),
    (("bigint", None, "", "UTC"), "version_timezone applies to DATETIME"),
    (("bigint", None, "min", ""), "version_unit 'min' is not one of s, ms, us"),
    (("datetime", 0, "", "Mars/Olympus"), "version_timezone 'Mars/Olympus' is not UTC"),
])
def test_bad_version_columns_are_one_line(args: tuple, message: str) -> None:
    with pytest.raises(FuretError, match=message):
        codec_for("flow f table t", "v", *args)


def test_datetime_in_a_named_zone_reads_and_binds_the_same_instant() -> None:
    paris = codec_for("t", "v", "datetime", 6, timezone="Europe/Paris")
    local = datetime.datetime(2026, 7, 1, 12, 0, 0, 250)  # CEST, UTC+2
    value = paris.ledger(local)
    assert value is not None and paris.text(value) == "2026-07-01T10:00:00.000250Z"
    assert paris.param(value) == "2026-07-01 12:00:00.000250"
    assert paris.ledger("0000-00-00 00:00:00") is None  # a zero date is not an instant


def test_wrong_units_and_zones_are_refused() -> None:
    ms = codec_for("flow f table t", "v", "bigint", None)
    now = 1_800_000_000_000
    check_values(ms, "w", now - 5, now)
    with pytest.raises(FuretError, match="that is epoch seconds, not ms; set version_unit: s"):
        check_values(ms, "w", 1_799_999_000, now)
    dt = codec_for("flow f table t", "v", "datetime", 0)
    with pytest.raises(FuretError, match="3600 s ahead of the source's clock: set "
                                         "version_timezone"):
        check_values(dt, "w", dt.from_ms(now + 3_600_000), dt.from_ms(now))
