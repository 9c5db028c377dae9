"""The etl_runner role's controller-side pieces: the wheelhouse script and furet.yml."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jinja2
import yaml

from migration.config import load_config
from tests.helpers import REPO

ROLE = REPO / "roles" / "etl_runner"
# the role's private values furet.yml reads for the streamed SSTables, as vars/main.yml
# makes them on an ETL host of a TLS ring
SSTABLE_VALUES = {"_etl_runner_sstable": "True", "_etl_runner_sstable_home": "/opt/furet/sstable",
                  "_etl_runner_internode_cert": "/etc/furet/tls/node.pem",
                  "etl_runner_cassandra_storage_port": "7000",
                  "etl_runner_cassandra_internode_tls": "True"}


def _wheelhouse_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("furet_wheelhouse",
                                                  ROLE / "files" / "furet_wheelhouse.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_platforms_cover_every_manylinux_tag_the_host_accepts() -> None:
    tags = _wheelhouse_module().manylinux_platforms("2.36", "x86_64")
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_5_x86_64" in tags
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux_2_37_x86_64" not in tags


def test_key_follows_sources_not_caches(tmp_path: Path) -> None:
    wh = _wheelhouse_module()
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "migration" / "__pycache__").mkdir(parents=True)
    (tmp_path / "migration" / "cli.py").write_text("x = 1\n")
    (tmp_path / "migration" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\0")

    def key() -> str:
        files = wh.source_files(tmp_path)
        return wh.build_key([(str(p.relative_to(tmp_path)), p.read_bytes()) for p in files],
                            ["3.11"])

    first = key()
    assert [p.name for p in wh.source_files(tmp_path)] == ["pyproject.toml", "cli.py"]
    (tmp_path / "migration" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\1")
    assert key() == first
    (tmp_path / "migration" / "cli.py").write_text("x = 2\n")
    assert key() != first


def test_rendered_config_is_read_by_furet_as_is(tmp_path: Path) -> None:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = lambda v: v if isinstance(v, bool) else str(v).lower() == "true"
    template = env.from_string((ROLE / "templates/etc/furet/furet.yml.j2").read_text())
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values = {
        **{k: v for k, v in defaults.items() if "{{" not in str(v)},
        "ansible_managed": "Ansible managed", "inventory_hostname": "etl1",
        "etl_runner_legacy_host": "10.213.0.11", "etl_runner_cassandra_hosts": ["10.0.0.31"],
        "etl_runner_target_host": "127.0.0.1", "etl_runner_legacy_ssl_server_name": "",
        "etl_runner_cassandra_local_dc": "rbx", "etl_runner_rounds": {"workers": 2},
        "etl_runner_legacy_password": "p'q\"r: s", "etl_runner_target_password": "t",
        "etl_runner_cassandra_password": "c", "etl_runner_remote_flows_dir": "/etc/furet/flows",
        "etl_runner_production": "True",   # as Ansible renders the role's default
        "etl_runner_cassandra_ssl_ca": "/etc/furet/tls/ca.crt",
        # TLS to a managed legacy (furet's CA) and to Galera behind HAProxy (its name)
        "etl_runner_legacy_tls": "True", "etl_runner_target_tls": "True",
        "etl_runner_target_ssl_server_name": "galera.furet.internal",
        **SSTABLE_VALUES,
    }
    path = tmp_path / "furet.yml"
    path.write_text(template.render(**values))
    config = load_config(str(path), env={})
    assert (config.legacy.host, config.legacy.password) == ("10.213.0.11", "p'q\"r: s")
    assert (config.target.host, config.target.port) == ("127.0.0.1", 3306)
    assert config.cassandra.hosts == ("10.0.0.31",) and config.cassandra.local_dc == "rbx"
    assert config.rounds.workers == 2
    assert config.flows.dir == "/etc/furet/flows"
    assert config.cassandra.write_consistency == "LOCAL_QUORUM"
    assert config.site.production is True
    assert (config.target.ssl_ca, config.target.ssl_server_name) == (
        "/etc/furet/tls/ca.crt", "galera.furet.internal")
    assert (config.legacy.ssl_ca, config.legacy.ssl_server_name) == ("/etc/furet/tls/ca.crt", "")
    # the legacy's own CA, when the inventory gives one
    path.write_text(template.render(**values | {"etl_runner_legacy_tls_ca_file": "/x/ca.pem"}))
    assert load_config(str(path), env={}).legacy.ssl_ca == "/etc/furet/tls/legacy-ca.crt"
    # no TLS to a legacy without it
    path.write_text(template.render(**values | {"etl_runner_legacy_tls": "False"}))
    assert load_config(str(path), env={}).legacy.ssl_ca == ""
    # round 1 into Cassandra by streamed SSTables, with this host's certificate; or CQL
    cassandra = config.cassandra
    assert (cassandra.bulk_load, cassandra.storage_port, cassandra.internode_tls) == (
        "SSTABLE", 7000, True)
    assert (cassandra.internode_cert, cassandra.sstable_helper) == (
        "/etc/furet/tls/node.pem", "/opt/furet/sstable/bin/furet-sstable")
    path.write_text(template.render(**values | {"_etl_runner_sstable": "False"}))
    assert load_config(str(path), env={}).cassandra.bulk_load == "CQL"
    assert defaults["etl_runner_cassandra_bulk_load"] == "SSTABLE"


def test_the_role_creates_the_log_directory_furet_writes_to() -> None:
    from migration.failure import SYSTEM_LOG_DIR

    private = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    assert private["_etl_runner_log_dir"] == str(SYSTEM_LOG_DIR)


def test_the_flows_manifest_is_never_taken_for_a_flow(tmp_path: Path) -> None:
    """The role keeps the names of the flows it deployed beside them: furet must not list
    that manifest as a flow (migration/flows/locate.py)."""
    from migration.flows.locate import flow_names

    variables = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    manifest = variables["_etl_runner_flows_manifest"].rsplit("/", 1)[1]
    (tmp_path / manifest).write_text('["orders_copy.yml"]\n')
    (tmp_path / "orders_copy.yml").write_text("name: orders_copy\n")
    assert flow_names(tmp_path) == ["orders_copy"]


def test_furet_verifies_cassandra_with_the_deployed_ca(tmp_path: Path) -> None:
    """cassandra.ssl_ca of furet.yml: the CA the role copies (etl_runner_tls_dir), or none
    when the ring has no TLS."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = lambda v: v if isinstance(v, bool) else str(v).lower() == "true"
    template = env.from_string((ROLE / "templates/etc/furet/furet.yml.j2").read_text())
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["etl_runner_tls_dir"] == "/etc/furet/tls"
    base = {
        **{k: v for k, v in defaults.items() if "{{" not in str(v)},
        "ansible_managed": "Ansible managed", "inventory_hostname": "etl1",
        "etl_runner_legacy_host": "10.213.0.11", "etl_runner_cassandra_hosts": ["10.0.0.31"],
        "etl_runner_target_host": "127.0.0.1", "etl_runner_legacy_ssl_server_name": "",
        "etl_runner_cassandra_local_dc": "rbx", "etl_runner_legacy_password": "l",
        "etl_runner_target_password": "t", "etl_runner_cassandra_password": "c",
        "etl_runner_remote_flows_dir": "/etc/furet/flows", "etl_runner_production": "True",
        "etl_runner_legacy_tls": "False", "etl_runner_target_tls": "False",
        "etl_runner_target_ssl_server_name": "",
        **SSTABLE_VALUES,
    }
    for ca in ("/etc/furet/tls/ca.crt", ""):
        path = tmp_path / "furet.yml"
        path.write_text(template.render(**base, etl_runner_cassandra_ssl_ca=ca))
        assert load_config(str(path), env={}).cassandra.ssl_ca == ca
    # The default follows the ring's cassandra_tls, through the TLS directory.
    assert "etl_runner_tls_dir" in defaults_text("etl_runner_cassandra_ssl_ca")
    assert "cassandra_tls" in defaults_text("etl_runner_cassandra_tls")


def defaults_text(name: str) -> str:
    for line in (ROLE / "defaults" / "main.yml").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line
    raise AssertionError(f"{name} is not a default of the etl_runner role")
