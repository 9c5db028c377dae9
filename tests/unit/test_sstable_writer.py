"""The SSTable path's parts that need no ring (tests/integration/test_sstable_load.py runs
the helper against a real node): the loader's options, the writer's CREATE TABLE, the
helper's framing and its one-line failure, the setting's words."""

from __future__ import annotations

import dataclasses
import os
import stat
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from migration.config import CassandraSettings, load_config
from migration.engine.sstable_helper import Flushed, SstableHelper
from migration.engine.sstable_writer import create_table, loader_options
from migration.errors import FuretError


def test_loader_options_name_the_ring_and_keep_tls_in_a_private_file(tmp_path: Path) -> None:
    settings = CassandraSettings(hosts=("10.0.0.31", "10.0.0.32"), port=9142, user="furet",
                                 password="s3cret", storage_port=7001,
                                 ssl_ca="/etc/furet/tls/ca.crt",
                                 internode_cert="/etc/furet/tls/node.pem")
    options = loader_options(settings, tmp_path)
    assert options[:6] == ["-d", "10.0.0.31,10.0.0.32", "-p", "9142", "-sp", "7001"]
    assert options[options.index("-u") + 1] == "furet"
    assert options[options.index("-pw") + 1] == "s3cret"   # over the pipe, never argv
    conf_path = Path(options[options.index("-f") + 1])
    assert stat.S_IMODE(conf_path.stat().st_mode) == 0o600
    conf = yaml.safe_load(conf_path.read_text())
    assert conf["server_encryption_options"]["keystore"] == "/etc/furet/tls/node.pem"
    assert conf["server_encryption_options"]["truststore"] == "/etc/furet/tls/ca.crt"
    assert conf["server_encryption_options"]["outbound_keystore"] == "/etc/furet/tls/node.pem"
    assert conf["client_encryption_options"]["truststore"] == "/etc/furet/tls/ca.crt"
    assert conf["client_encryption_options"]["keystore"] == "/etc/furet/tls/node.pem"
    assert "s3cret" not in conf_path.read_text()

    plain = loader_options(CassandraSettings(hosts=("127.0.0.22",), internode_tls=False),
                           tmp_path / "none")
    assert "-f" not in plain and "-u" not in plain


def test_a_ring_with_tls_needs_this_hosts_certificate(tmp_path: Path) -> None:
    with pytest.raises(FuretError) as refused:
        loader_options(CassandraSettings(hosts=("10.0.0.31",), ssl_ca="/ca.crt"), tmp_path)
    assert str(refused.value) == (
        "cassandra 10.0.0.31:9042: streamed SSTables (cassandra.bulk_load: SSTABLE) to a ring "
        "with TLS need cassandra.internode_cert (or cassandra.bulk_load: CQL)")


def _column(name: str, cql_type: str, reversed_: bool = False) -> SimpleNamespace:
    return SimpleNamespace(name=name, cql_type=cql_type, is_reversed=reversed_)


def _session(columns: list[SimpleNamespace], partition: int, clustering: int,
             user_types: tuple[str, ...] = ()) -> SimpleNamespace:
    table = SimpleNamespace(columns={c.name: c for c in columns},
                            partition_key=columns[:partition],
                            clustering_key=columns[partition:partition + clustering])
    keyspace = SimpleNamespace(tables={"quotes": table},
                               user_types={u: object() for u in user_types})
    return SimpleNamespace(cluster=SimpleNamespace(
        metadata=SimpleNamespace(keyspaces={"prod": keyspace})))


def test_create_table_keeps_the_key_and_the_clustering_order() -> None:
    columns = [_column("customer_id", "bigint"), _column("created_ts", "bigint", True),
               _column("quote_id", "bigint"), _column("Status", "text"),
               _column("tags", "frozen<list<text>>")]
    ddl = create_table(_session(columns, 1, 2), "prod", "quotes")
    assert ddl == ('CREATE TABLE prod.quotes (customer_id bigint, created_ts bigint, '
                   'quote_id bigint, "Status" text, tags frozen<list<text>>, PRIMARY KEY '
                   '((customer_id), created_ts, quote_id)) WITH CLUSTERING ORDER BY '
                   '(created_ts DESC, quote_id ASC)')
    assert create_table(_session(columns[:1], 1, 0), "prod", "quotes") == \
        "CREATE TABLE prod.quotes (customer_id bigint, PRIMARY KEY ((customer_id)))"


def test_create_table_refuses_a_user_defined_type_naming_the_setting() -> None:
    columns = [_column("id", "bigint"), _column("address", "frozen<address>")]
    with pytest.raises(FuretError) as refused:
        create_table(_session(columns, 1, 0, ("address",)), "prod", "quotes")
    assert "column address has a user-defined type" in str(refused.value)
    assert "cassandra.bulk_load: CQL" in str(refused.value)
    with pytest.raises(FuretError, match="table nope: not found"):
        create_table(_session(columns, 1, 0), "prod", "nope")


def _fake_helper(tmp_path: Path, body: str) -> str:
    """A launcher speaking the helper's answers from a shell script (the framing's other
    end is the real Java helper in the integration test)."""
    path = tmp_path / "fake-helper"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def _text(value: str) -> bytes:
    return struct.pack(">I", len(value)) + value.encode()


def test_frames_are_the_helpers_contract(tmp_path: Path) -> None:
    helper = SstableHelper(_fake_helper(tmp_path, 'cat > "$1/../frames"\n'), str(tmp_path))
    helper.table("prod", "quotes", "CREATE T", "INSERT I")
    helper.table("prod", "quotes", "CREATE T", "INSERT I")   # declared once
    helper.row("quotes", 7, [struct.pack(">q", 1), None, b"abc"])
    helper.close()
    assert (tmp_path / "frames").read_bytes() == (
        b"T\x00" + _text("prod") + _text("quotes") + _text("CREATE T") + _text("INSERT I")
        + b"R\x00" + struct.pack(">q", 7) + struct.pack(">H", 3)
        + struct.pack(">i", 8) + struct.pack(">q", 1) + struct.pack(">i", -1)
        + struct.pack(">i", 3) + b"abc" + b"Q")
    assert not helper.work.exists()   # close() removes the work directory


def test_flush_reads_the_refused_rows_then_the_segment(tmp_path: Path) -> None:
    answers = ('printf "refused quotes 7 InvalidRequestException: Invalid null value\\n'
               'flushed 41 $1/segment-000000\\n"; cat > /dev/null\n')
    with SstableHelper(_fake_helper(tmp_path, answers), str(tmp_path)) as helper:
        flushed = helper.flush()
        assert flushed == Flushed(helper.work / "segment-000000", 41,
                                  [("quotes", 7, "InvalidRequestException: Invalid null value")])


def test_a_helper_that_died_is_one_line_with_its_last_words(tmp_path: Path) -> None:
    launcher = _fake_helper(tmp_path, 'echo "Error: no java" >&2\necho "  at line 3" >&2\n'
                                      "exit 3\n")
    with SstableHelper(launcher, str(tmp_path)) as helper, pytest.raises(FuretError) as died:
        helper.flush()
    assert str(died.value) == "sstable helper stopped (exit 3): at line 3"
    with pytest.raises(FuretError, match="cassandra.sstable_helper: /nope not found"):
        SstableHelper("/nope")


def test_bulk_load_is_one_of_its_words(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text("cassandra: {bulk_load: sstable, storage_port: 7001}\n")
    config = load_config(str(good))
    assert (config.cassandra.bulk_load, config.cassandra.storage_port) == ("SSTABLE", 7001)
    assert dataclasses.replace(config.cassandra, bulk_load="CQL").bulk_load == "CQL"
    bad = tmp_path / "bad.yml"
    bad.write_text("cassandra: {bulk_load: copy}\n")
    with pytest.raises(FuretError, match=r"cassandra.bulk_load = 'copy' is not one of"):
        load_config(str(bad))


def test_work_directories_of_gone_processes_are_removed(tmp_path: Path) -> None:
    gone = tmp_path / "furet-sstable-999999999-abc"   # no such pid
    alive = tmp_path / f"furet-sstable-{os.getpid()}-def"
    other = tmp_path / "furet-sstable-x"
    for path in (gone, alive, other):
        (path / "segment-000000").mkdir(parents=True)
    with SstableHelper(_fake_helper(tmp_path, "cat > /dev/null\n"), str(tmp_path)) as helper:
        assert helper.work.name.startswith(f"furet-sstable-{os.getpid()}-")
        assert not gone.exists() and alive.exists() and other.exists()
