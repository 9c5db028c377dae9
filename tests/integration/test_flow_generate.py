"""`furet flow init` -> `furet target schema --apply` -> `furet flow check` on a scratch
database of varied tables, through the CLI, against the real loopback servers: the flow has
the key and version each table calls for (and says why), the table without a primary key
is left out and reported, the target tables are created once (a second --apply changes
nothing) in utf8mb4 with the source's keys, and the flow fits both live schemas."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from migration.db import connection, query
from migration.flows.generate import is_utc
from migration.flows.mapping import load_flow
from tests.helpers import BIN, REPO

from .conftest import Server, furet_env

pytestmark = pytest.mark.integration
DB = "fg_shop"
SOURCE = [
    f"CREATE DATABASE {DB} DEFAULT CHARACTER SET utf8mb4",
    f"""CREATE TABLE {DB}.orders (
      id INT UNSIGNED NOT NULL AUTO_INCREMENT,
      customer VARCHAR(80) NOT NULL,
      total DECIMAL(12,2) NOT NULL DEFAULT 0.00,
      status ENUM('new','paid','sent') NOT NULL DEFAULT 'new',
      created_at DATETIME NOT NULL,
      updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
                 ON UPDATE CURRENT_TIMESTAMP(3),
      updated_by INT NULL,
      PRIMARY KEY (id), KEY ix_orders_updated (updated_at))""",
    f"""CREATE TABLE {DB}.order_line (
      order_id INT UNSIGNED NOT NULL, line_no SMALLINT UNSIGNED NOT NULL,
      sku VARCHAR(20) NOT NULL, qty INT NOT NULL DEFAULT 1, updated_at DATETIME NOT NULL,
      PRIMARY KEY (order_id, line_no), UNIQUE KEY uq_order_sku (order_id, sku))""",
    f"""CREATE TABLE {DB}.product (
      sku VARCHAR(20) NOT NULL, name VARCHAR(100) NOT NULL, price DECIMAL(10,2) NULL,
      updated_ts BIGINT NOT NULL, PRIMARY KEY (sku), KEY ix_product_updated (updated_ts))""",
    f"""CREATE TABLE {DB}.event (
      id BIGINT NOT NULL, kind VARCHAR(20) NOT NULL, changed_at BIGINT NOT NULL,
      PRIMARY KEY (id), KEY ix_event_changed (changed_at))""",
    f"""CREATE TABLE {DB}.country (
      code CHAR(2) NOT NULL, name VARCHAR(60) NOT NULL, is_updated INT NOT NULL DEFAULT 0,
      PRIMARY KEY (code))""",
    f"""CREATE TABLE {DB}.customer_l1 (
      id INT NOT NULL, full_name VARCHAR(120) NOT NULL, bio TEXT NULL, photo BLOB NULL,
      mtime INT UNSIGNED NOT NULL, PRIMARY KEY (id), KEY ix_mtime (mtime)
    ) DEFAULT CHARSET=latin1""",
    f"""CREATE TABLE {DB}.audit_log (
      at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, actor INT NOT NULL,
      msg VARCHAR(200) NOT NULL)""",
    f"""CREATE TABLE {DB}.kitchen_sink (
      id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
      price DECIMAL(10,2) NULL, ratio DOUBLE NULL,
      kind ENUM('a','b','é') NOT NULL DEFAULT 'a', flags SET('x','y','z') NULL,
      doc JSON NULL, raw BLOB NULL, token BINARY(16) NULL, yr YEAR NULL, dur TIME(3) NULL,
      bits BIT(4) NULL DEFAULT b'0101',
      zd DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00',
      total DECIMAL(12,2) AS (price * 2) VIRTUAL,
      changed_on TIMESTAMP NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP,
      updated_ts BIGINT NOT NULL,
      PRIMARY KEY (id), KEY ix_total (total), KEY ix_sink_updated (updated_ts))""",
    f"INSERT INTO {DB}.product VALUES ('p1', 'Pen', 1.50, 1732950000123)",
    f"INSERT INTO {DB}.event VALUES (1, 'login', 1732950000)",
    f"INSERT INTO {DB}.customer_l1 VALUES (1, 'Zoé Ñandú', 'café crème', NULL, 1732950000)",
    f"INSERT INTO {DB}.kitchen_sink (price, doc, updated_ts) VALUES (1.5, '{{\"a\": 1}}', "
    "1732950000123)",
]
PRIMARY_KEYS = {"orders": ["id"], "order_line": ["order_id", "line_no"], "product": ["sku"],
                "event": ["id"], "country": ["code"], "customer_l1": ["id"],
                "kitchen_sink": ["id"]}


def _furet(servers: dict[str, Server], *args: str,
           extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "furet"), *args], cwd=REPO, capture_output=True,
                          text=True, env={**furet_env(servers), **(extra_env or {})},
                          timeout=300)


def _drop(servers: dict[str, Server]) -> None:
    for server in servers.values():
        with contextlib.closing(server.root()) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")


@pytest.fixture
def shop(servers: dict[str, Server]) -> Iterator[dict[str, Server]]:
    """The scratch source database on legacy; dropped from both servers at the end."""
    _drop(servers)
    with contextlib.closing(servers["legacy"].root()) as conn, conn.cursor() as cur:
        for statement in SOURCE:
            cur.execute(statement)
    try:
        yield servers
    finally:
        _drop(servers)


def _flow_init(servers: dict[str, Server], path: Path, *args: str,
               db: str = DB) -> tuple[Any, str, str]:
    run = _furet(servers, "flow", "init", "--source-db", db, *args)
    assert run.returncode == 0, run.stderr
    path.write_text(run.stdout)
    return yaml.safe_load(run.stdout), run.stdout, run.stderr


def _why(lines: list[str], table: str) -> str:
    """The comment of ``table``'s version line: after it, or on the lines just above it."""
    start = lines.index(f"  - source: {table}")
    at = next(i for i in range(start, len(lines)) if lines[i].startswith("    version:"))
    above = []
    for line in reversed(lines[start + 2:at]):
        if not line.startswith("    # "):
            break
        above.insert(0, line[6:])
    inline = lines[at].partition("  # ")[2]
    return " ".join([*above, inline]).strip()


def test_flow_init_writes_keys_versions_and_why(shop: dict[str, Server],
                                                tmp_path: Path) -> None:
    path = tmp_path / "shop.yml"
    data, text, stderr = _flow_init(shop, path, "--target", f"mariadb:{DB}")
    assert stderr.strip() == (f"furet flow init: table {DB}.audit_log left out: no primary key "
                              "(Galera needs one)")
    assert "#   - audit_log: no primary key (Galera needs one)" in text
    assert data["name"] == DB and data["source"] == {"server": "legacy", "database": DB}
    assert data["target"] == {"kind": "mariadb", "server": "target", "database": DB}
    tables = {t["source"]: t for t in data["tables"]}
    assert list(tables) == sorted(PRIMARY_KEYS)          # every table but audit_log
    keys = {name: t["key"] if isinstance(t["key"], list) else [t["key"]]
            for name, t in tables.items()}
    assert keys == PRIMARY_KEYS
    assert tables["order_line"]["key"] == ["order_id", "line_no"]     # a YAML list
    versions = {name: t["version"] for name, t in tables.items()}
    assert versions == {"orders": "updated_at", "order_line": "updated_at",
                        "product": "updated_ts", "event": "changed_at", "country": "none",
                        "customer_l1": "mtime", "kitchen_sink": "updated_ts"}
    lines = text.splitlines()
    assert _why(lines, "orders") == ("TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3): the server "
                                     "stamps every write")
    assert _why(lines, "order_line").startswith("DATETIME named like a change column (no ON "
                                                "UPDATE: the application must set it")
    assert _why(lines, "product") == "BIGINT named like a change column: epoch ms (BIGINT)"
    assert _why(lines, "customer_l1") == "INT named like a change column: epoch s (INT)"
    # not the nullable ON UPDATE changed_on: a row whose version is NULL is never copied
    assert _why(lines, "kitchen_sink") == _why(lines, "product")
    # event.changed_at is a BIGINT holding seconds: the unit is said, not the default
    assert tables["event"]["version_unit"] == "s"
    assert "MAX(changed_at) = 1732950000: epoch s, not the BIGINT default (ms)" in text
    assert all("version_unit" not in t for n, t in tables.items() if n != "event")
    # DATETIME: the zone the application writes in (UTC here, if the server's zone is)
    with connection(shop["legacy"].settings()) as conn:
        zone, system = query(conn, "SELECT @@global.time_zone, @@system_time_zone")[0]
    label = f"{zone} ({system})" if zone == "SYSTEM" else zone
    if is_utc(label):
        assert tables["order_line"]["version_timezone"] == "UTC"
        assert ("    version_timezone: UTC  # DATETIME has no zone: this says which zone the "
                "application writes it in") in lines
    else:
        assert "    # version_timezone: UTC" in lines
    assert all("version_timezone" not in t for n, t in tables.items() if n != "order_line")
    # no change column: version none, add-version named, deletes propagated (keep offered)
    assert "`furet legacy add-version --table country` adds one" in _why(lines, "country")
    country = lines.index("  - source: country")
    block = lines[country:country + 10]
    assert any(line.split("  #")[0] == "    deletes: propagate" for line in block)
    assert any("keep: leave them" in line for line in block)
    assert tables["country"]["deletes"] == "propagate"
    # every column mapped to itself, generated ones left out with a note, no utf8 transform
    sink = tables["kitchen_sink"]["targets"][0]
    assert sink["table"] == "kitchen_sink"
    assert sink["columns"] == {c: c for c in (
        "id", "price", "ratio", "kind", "flags", "doc", "raw", "token", "yr", "dur", "bits",
        "zd", "changed_on", "updated_ts")}
    assert "          # total: generated column (VIRTUAL), not copied" in lines
    latin1 = tables["customer_l1"]["targets"][0]["columns"]
    assert latin1 == {"id": "id", "full_name": "full_name", "bio": "bio", "photo": "photo",
                      "mtime": "mtime"}
    assert ("          full_name: full_name  # latin1 varchar: read as utf8mb4, no transform "
            "needed") in lines
    assert all(isinstance(source, str) for t in data["tables"] for target in t["targets"]
               for source in target["columns"].values())          # no transform anywhere
    assert all(len(line) <= 100 for line in lines)
    lint = subprocess.run([str(BIN / "yamllint"), "-s", "-c", str(REPO / ".yamllint"),
                           str(path)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
    # the engine reads it as written
    flow = load_flow(str(path))
    assert flow.table("order_line").keys == ("order_id", "line_no")
    assert flow.table("country").version == "" and flow.table("event").version_unit == "s"


def _target_schema(servers: dict[str, Server], db: str) -> dict[str, Any]:
    with connection(servers["target"].settings()) as conn:
        tables = {r[0]: r[1] for r in query(
            conn, "SELECT table_name, table_collation FROM information_schema.tables WHERE "
                  "table_schema = %s", (db,))}
        columns = query(conn, "SELECT table_name, column_name, column_type, "
                              "character_set_name, collation_name, column_default, "
                              "datetime_precision FROM information_schema.columns WHERE "
                              "table_schema = %s ORDER BY table_name, ordinal_position", (db,))
        indexes = query(conn, "SELECT table_name, index_name, non_unique, column_name FROM "
                              "information_schema.statistics WHERE table_schema = %s ORDER BY "
                              "table_name, index_name, seq_in_index", (db,))
        creates = {t: query(conn, f"SHOW CREATE TABLE `{db}`.`{t}`")[0][1] for t in tables}
    by_index: dict[tuple[str, str], list[str]] = {}
    for table, index, _, column in indexes:
        by_index.setdefault((table, index), []).append(column)
    return {"tables": tables, "creates": creates, "indexes": by_index,
            "columns": {(r[0], r[1]): r[2:] for r in columns},
            "unique": {(r[0], r[1]) for r in indexes if not r[2]}}


def test_target_schema_apply_twice_then_flow_check(shop: dict[str, Server],
                                                   tmp_path: Path) -> None:
    path = tmp_path / "shop.yml"
    _flow_init(shop, path, "--target", f"mariadb:{DB}")
    printed = _furet(shop, "target", "schema", "--flow", str(path))
    assert printed.returncode == 0, printed.stderr
    assert f"CREATE TABLE IF NOT EXISTS `{DB}`.`order_line` (" in printed.stdout
    assert not _target_schema(shop, DB)["tables"]                  # printing creates nothing

    first = _furet(shop, "target", "schema", "--flow", str(path), "--apply")
    assert first.returncode == 0, first.stderr
    assert first.stdout == printed.stdout
    assert f"database {DB} created" in first.stderr
    assert first.stderr.count(" created") == 1 + len(PRIMARY_KEYS)
    before = _target_schema(shop, DB)
    second = _furet(shop, "target", "schema", "--flow", str(path), "--apply")
    assert second.returncode == 0, second.stderr
    assert " created" not in second.stderr
    assert second.stderr.count("exists, left as it is") == len(PRIMARY_KEYS)
    after = _target_schema(shop, DB)
    assert after == before                                        # the second run changed nothing

    assert set(after["tables"]) == set(PRIMARY_KEYS)
    assert all(c.startswith("utf8mb4_") for c in after["tables"].values())
    assert {t: after["indexes"][(t, "PRIMARY")] for t in PRIMARY_KEYS} == PRIMARY_KEYS
    texts = {k: v for k, v in after["columns"].items() if v[1] is not None}
    assert texts and all(charset == "utf8mb4" for _, charset, *_ in texts.values())
    cols = after["columns"]
    assert cols[("customer_l1", "bio")][:3] == ("mediumtext", "utf8mb4", "utf8mb4_general_ci")
    assert cols[("customer_l1", "full_name")][0] == "varchar(120)"
    assert cols[("customer_l1", "photo")][0] == "blob"            # bytes stay bytes
    assert cols[("kitchen_sink", "kind")][0] == "enum('a','b','é')"
    assert cols[("kitchen_sink", "flags")][0] == "set('x','y','z')"
    assert cols[("kitchen_sink", "price")][0] == "decimal(10,2)"
    assert cols[("kitchen_sink", "dur")][0] == "time(3)" and cols[("kitchen_sink", "dur")][4] == 3
    assert cols[("kitchen_sink", "yr")][0] == "year(4)"
    assert cols[("kitchen_sink", "zd")][3] is None                # the zero date default dropped
    assert cols[("kitchen_sink", "bits")][3] == "b'101'"
    assert cols[("orders", "updated_at")][0] == "timestamp(3)"
    assert ("kitchen_sink", "total") not in cols                  # generated: not created
    create = after["creates"]["kitchen_sink"]
    assert "json_valid(`doc`)" in create and "AUTO_INCREMENT" in create
    assert "ON UPDATE current_timestamp(3)" in after["creates"]["orders"]
    assert after["indexes"][("order_line", "uq_order_sku")] == ["order_id", "sku"]
    assert ("order_line", "uq_order_sku") in after["unique"]
    assert after["indexes"][("order_line", "furet_version")] == ["updated_at"]
    assert ("orders", "furet_version") not in after["indexes"]   # ix_orders_updated serves
    assert ("kitchen_sink", "ix_total") not in after["indexes"]
    assert "-- index ix_total left out: column total is not copied" in printed.stdout

    check = _furet(shop, "flow", "check", str(path))
    assert check.returncode == 0, check.stdout + check.stderr
    ok = [line for line in check.stdout.splitlines() if line.startswith("OK")]
    assert sorted(line.split()[1] for line in ok) == sorted(PRIMARY_KEYS)

    with contextlib.closing(shop["target"].root()) as conn, conn.cursor() as cur:
        cur.execute(f"ALTER TABLE {DB}.product DROP COLUMN name")
    broken = _furet(shop, "flow", "check", str(path))
    assert broken.returncode == 2
    assert [line.split()[1] for line in broken.stdout.splitlines()
            if line.startswith("FAIL")] == ["product"]
    assert len([line for line in broken.stdout.splitlines() if line.startswith("OK")]) == \
        len(PRIMARY_KEYS) - 1
    assert broken.stderr.count("\n") == 1
    assert ("table product: unknown column 'name' in the mapping" in broken.stderr
            and "Traceback" not in broken.stderr)


def test_target_schema_refuses_a_table_without_primary_key(shop: dict[str, Server],
                                                           tmp_path: Path) -> None:
    path = tmp_path / "audit.yml"
    path.write_text(yaml.safe_dump({
        "name": "audit", "source": {"server": "legacy", "database": DB},
        "target": {"kind": "mariadb", "server": "target", "database": DB},
        "tables": [{"source": "audit_log", "key": "actor", "version": "none", "targets": [
            {"table": "audit_log", "columns": {"at": "at", "actor": "actor", "msg": "msg"}}]}]}))
    run = _furet(shop, "target", "schema", "--flow", str(path), "--apply")
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert (f"flow audit: legacy 127.0.0.11:3306 database {DB} table audit_log: no primary "
            "key: Galera needs one") in run.stderr
    assert not _target_schema(shop, DB)["tables"]


def test_flow_init_reproduces_the_hand_written_runtime_flow(fresh: dict[str, Server],
                                                            tmp_path: Path) -> None:
    """On the demo schema (target tables made by `furet target init`), the generated flow
    is the shipped runtime flow: same keys, versions and mappings, customer.city's bytes
    decoded by the utf8 transform because its target column is text."""
    path = tmp_path / "runtime.yml"
    data, _, stderr = _flow_init(fresh, path, "--target", "mariadb:lf_runtime", "--name",
                                 "runtime", db="lf_runtime")
    assert stderr == ""
    generated, shipped = load_flow(str(path)), load_flow("runtime")
    assert generated.name == shipped.name
    assert [t.source for t in generated.tables] == sorted(t.source for t in shipped.tables)
    for table in shipped.tables:
        mine = generated.table(table.source)
        assert (mine.keys, mine.version, mine.version_unit) == (table.keys, table.version, "")
        assert mine.targets == table.targets
    assert data["tables"][0]["targets"][0]["columns"]["city"] == {"from": "city",
                                                                  "transform": "utf8"}


def test_cassandra_flow_schema_and_check(shop: dict[str, Server], cassandra_node: str,
                                         tmp_path: Path) -> None:
    from migration.cassandra_session import cassandra_session
    from migration.config import CassandraSettings

    settings = CassandraSettings(hosts=(cassandra_node,))
    env = {"FURET_CASSANDRA_HOSTS": cassandra_node}
    cluster, session = cassandra_session(settings)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {DB}", timeout=60)
        path = tmp_path / "shop_cassandra.yml"
        run = _furet(shop, "flow", "init", "--source-db", DB, "--target", f"cassandra:{DB}",
                     "--tables", "orders,order_line,kitchen_sink,customer_l1")
        assert run.returncode == 0, run.stderr
        path.write_text(run.stdout)
        data = yaml.safe_load(run.stdout)
        assert data["target"] == {"kind": "cassandra", "keyspace": DB}
        assert data["name"] == f"{DB}_to_{DB}"
        assert [t["source"] for t in data["tables"]] == ["orders", "order_line",
                                                         "kitchen_sink", "customer_l1"]
        assert "- table: order_line  # partition key (order_id), clustering (line_no)" in \
            run.stdout
        # TOKEN is reserved in CQL, and the Cassandra writer does not quote names
        assert "          token_: token  # renamed: token is no plain CQL name" in run.stdout
        replication = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        for attempt in ("created", "exists, left as it is"):
            applied = _furet(shop, "target", "schema", "--flow", str(path), "--apply",
                             "--replication", replication, extra_env=env)
            assert applied.returncode == 0, applied.stderr
            said = [ln for ln in applied.stderr.splitlines() if f" table {DB}." in ln]
            assert len(said) == 4 and all(ln.endswith(attempt) for ln in said), applied.stderr
        rows = session.execute("SELECT table_name, column_name, kind, position, type FROM "
                               "system_schema.columns WHERE keyspace_name = %s", (DB,))
        columns = {(r.table_name, r.column_name): (r.kind, r.position, r.type) for r in rows}
        assert columns[("order_line", "order_id")] == ("partition_key", 0, "bigint")
        assert columns[("order_line", "line_no")] == ("clustering", 0, "int")
        assert columns[("orders", "id")] == ("partition_key", 0, "bigint")
        types = {c: columns[("kitchen_sink", c)][2] for c in (
            "id", "price", "ratio", "kind", "flags", "doc", "raw", "token_", "yr", "dur",
            "bits", "zd", "updated_ts")}
        assert types == {"id": "varint", "price": "decimal", "ratio": "double", "kind": "text",
                         "flags": "text", "doc": "text", "raw": "blob", "token_": "blob",
                         "yr": "smallint", "dur": "time", "bits": "blob", "zd": "timestamp",
                         "updated_ts": "bigint"}
        assert ("kitchen_sink", "total") not in columns
        check = _furet(shop, "flow", "check", str(path), extra_env=env)
        assert check.returncode == 0, check.stdout + check.stderr
        assert len([ln for ln in check.stdout.splitlines() if ln.startswith("OK")]) == 4
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {DB}", timeout=60)
        cluster.shutdown()
