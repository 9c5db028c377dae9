"""Migrate your own database, on the lab, the way the README says, through `fab` and a flow
the etl_runner role deploys: `fab flow-init` (on etl1) -> the flow in the inventory's
flows directory -> `playbooks/etl.yml --tags etl:flows` -> `fab target-schema --apply` ->
`fab round` x3 with changes in between -> `fab freeze` -> `fab round --final` ->
`fab verify` (exit 0) -> every row compared between legacy1 and galera1.

The schema is `shop` on legacy1 (the lab's "own database": inventories/lab/group_vars
grant it), three tables furet did not write: a two-column key with a DATETIME(0) version,
a string key with epoch seconds in an INT, and a table without a version column whose
deleted rows must be deleted on the target (`deletes: propagate`, as `flow init` writes).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from migration.inventory import InventoryHost
from tests.helpers import PlaybookRun, run_playbook
from tests.helpers import fab as run_fab
from tests.lab.conftest import ProvisionedLab
from tests.lab.galera_client import node_sql

NAME = "shop"
TABLES = {
    "order_line": "(order_id INT UNSIGNED NOT NULL, line_no SMALLINT UNSIGNED NOT NULL, "
                  "sku VARCHAR(20) NOT NULL, qty INT NOT NULL, updated_at DATETIME NOT NULL, "
                  "PRIMARY KEY (order_id, line_no), KEY (updated_at))",
    "member": "(code VARCHAR(16) NOT NULL PRIMARY KEY, name VARCHAR(40) NOT NULL, "
              "modified INT NOT NULL, KEY (modified)) DEFAULT CHARSET latin1",
    "tag_link": "(post_id INT NOT NULL, tag VARCHAR(20) NOT NULL, note VARCHAR(30) NULL, "
                "PRIMARY KEY (post_id, tag))",
}
ORDER = {"order_line": "order_id, line_no", "member": "code", "tag_link": "post_id, tag"}
COLUMNS = {"order_line": ("order_id", "line_no", "sku", "qty", "updated_at"),
           "member": ("code", "name", "modified"), "tag_link": ("post_id", "tag", "note")}


fab = functools.partial(run_fab, check=True)  # each fab here must succeed


def deploy(flows_dir: Path) -> PlaybookRun:
    run = run_playbook("etl.yml", "--tags", "etl:flows", "-e",
                       f"etl_runner_flows_dir={flows_dir}")
    assert run.returncode == 0 and run.recap["etl1"]["failed"] == 0, run.output[-4000:]
    return run


@pytest.fixture(scope="module")
def shop(legacy_provisioned: ProvisionedLab, galera_healthy: ProvisionedLab,
         etl_provisioned: ProvisionedLab, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[InventoryHost, InventoryHost, Path]]:
    """shop filled on legacy1, nothing of it on Galera, the flow of a previous run
    forgotten; afterwards the legacy writable and the flows directory of etl1 empty."""
    legacy = legacy_provisioned.host("legacy1")
    galera = galera_healthy.host("galera1")
    node_sql(legacy, "SET GLOBAL read_only = 0")
    statements = [f"DROP TABLE IF EXISTS shop.{t}; CREATE TABLE shop.{t} {ddl}"
                  for t, ddl in TABLES.items()]
    node_sql(legacy, "; ".join(statements) + "; "
             "INSERT INTO shop.order_line SELECT seq DIV 3 + 1, seq MOD 3 + 1, "
             "CONCAT('SKU-', seq MOD 97), 1 + seq MOD 5, UTC_TIMESTAMP() - INTERVAL 2 HOUR "
             "FROM shop.seq_0_to_5999; "
             "INSERT INTO shop.member SELECT CONCAT('m', LPAD(seq, 5, '0')), "
             "ELT(1 + seq MOD 3, 'Zoé', 'Noël', 'Ådne'), UNIX_TIMESTAMP() - 7200 "
             "FROM shop.seq_0_to_1999; "
             "INSERT INTO shop.tag_link SELECT seq DIV 2 + 1, ELT(1 + seq MOD 2, 'news', "
             "'tech'), NULL FROM shop.seq_0_to_2999")
    node_sql(galera, "DROP DATABASE IF EXISTS shop; DELETE FROM furet.quarantine WHERE "
                     "flow = 'shop'; DELETE FROM furet.chunks WHERE flow = 'shop'; "
                     "DELETE FROM furet.round_tables WHERE flow = 'shop'; "
                     "DELETE FROM furet.rounds WHERE flow = 'shop'", warn=True)
    flows = tmp_path_factory.mktemp("inventory") / "flows"
    flows.mkdir()
    yield legacy, galera, flows
    node_sql(legacy, "SET GLOBAL read_only = 0", warn=True)
    empty = flows.parent / "empty"
    empty.mkdir(exist_ok=True)
    deploy(empty)


def _rows(host: InventoryHost, table: str) -> str:
    """Every row as the hex of its UTF-8 text (latin1 converted): only ASCII travels back
    over SSH, whose output is decoded in pieces that may split a multibyte character."""
    fields = ", ".join(f"IFNULL({c}, '\\\\N')" for c in COLUMNS[table])
    return node_sql(host, f"SELECT HEX(CONVERT(CONCAT_WS(0x09, {fields}) USING utf8mb4)) "
                          f"FROM shop.{table} ORDER BY {ORDER[table]}")


def test_own_database_through_fab_with_a_deployed_flow(
        shop: tuple[InventoryHost, InventoryHost, Path]) -> None:
    legacy, galera, flows = shop
    made = fab("flow-init", "--source-db", "shop", "--target", "mariadb:shop", "--name", NAME)
    flow = yaml.safe_load(made.stdout)
    assert {t["source"]: (t["key"], t["version"]) for t in flow["tables"]} == {
        "order_line": (["order_id", "line_no"], "updated_at"), "member": ("code", "modified"),
        "tag_link": (["post_id", "tag"], "none")}
    (flows / f"{NAME}.yml").write_text(made.stdout)   # as written, no hand edit
    deploy(flows)
    fab("target-schema", "--flow", NAME, "--apply")

    fab("round", "--flow", NAME)
    # the application: same-second updates, new rows, deletes on the version-less table
    node_sql(legacy, "UPDATE shop.order_line SET qty = qty + 1, updated_at = UTC_TIMESTAMP() "
                     "WHERE order_id % 10 = 0; "
                     "INSERT INTO shop.order_line VALUES (9001, 1, 'NEW', 1, UTC_TIMESTAMP()); "
                     "UPDATE shop.member SET name = 'Øyvind', modified = UNIX_TIMESTAMP() "
                     "WHERE code < 'm00100'; "
                     "DELETE FROM shop.tag_link WHERE post_id % 7 = 0; "
                     "INSERT INTO shop.tag_link VALUES (5000, 'misc', 'new')")
    fab("round", "--flow", NAME)
    node_sql(legacy, "UPDATE shop.order_line SET sku = 'LAST', updated_at = UTC_TIMESTAMP() "
                     "WHERE order_id = 1; DELETE FROM shop.tag_link WHERE post_id = 1")
    fab("round", "--flow", NAME)
    fab("freeze")
    final = fab("round", "--flow", NAME, "--final", "--json")
    summary = json.loads(final.stdout)
    assert summary["final"] and summary["rows_quarantined"] == 0
    tables = {t["source_table"]: t for t in summary["tables"]}
    assert tables["tag_link"]["version_type"] == "none"
    verdict = fab("verify", "--flow", NAME, "--reports", str(flows.parent / "reports"))
    assert "etl1 ok" in verdict.stderr
    fab("unfreeze")
    for table in TABLES:
        source = _rows(legacy, table)
        assert source and _rows(galera, table) == source, table
    posts = node_sql(galera, "SELECT DISTINCT post_id FROM shop.tag_link").split()
    assert posts and not {"1", "7", "14"} & set(posts) and "5000" in posts
