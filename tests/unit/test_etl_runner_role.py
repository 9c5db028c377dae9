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
    template = env.from_string((ROLE / "templates/etc/furet/furet.yml.j2").read_text())
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values = {
        **{k: v for k, v in defaults.items() if "{{" not in str(v)},
        "ansible_managed": "Ansible managed", "inventory_hostname": "etl1",
        "etl_runner_legacy_host": "10.213.0.11", "etl_runner_cassandra_hosts": ["10.0.0.31"],
        "etl_runner_cassandra_local_dc": "rbx", "etl_runner_rounds": {"workers": 2},
        "etl_runner_legacy_password": "p'q\"r: s", "etl_runner_target_password": "t",
        "etl_runner_cassandra_password": "c", "etl_runner_remote_flows_dir": "/etc/furet/flows",
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
