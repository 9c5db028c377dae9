"""Config order: defaults < file < FURET_* environment < flags; passwords stay hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration.config import load_config
from migration.errors import FuretError


def test_defaults_file_env_flags_in_order(tmp_path: Path) -> None:
    path = tmp_path / "furet.yml"
    path.write_text("legacy: {host: file-host, port: 3307, password: from-file}\n"
                    "rounds: {workers: 8}\n")
    env = {"FURET_LEGACY_PORT": "3308", "FURET_TARGET_HOST": "env-target",
           "FURET_ROUNDS_OVERLAP_MS": "1234", "UNRELATED": "x"}
    config = load_config(str(path), env=env, flags={"legacy": {"host": "flag-host",
                                                               "port": None}})
    assert config.legacy.host == "flag-host"        # flag beats file
    assert config.legacy.port == 3308                # env beats file, unset flag keeps it
    assert config.legacy.password == "from-file"
    assert config.target.host == "env-target"
    assert config.target.port == 3306                # default
    assert config.rounds.workers == 8
    assert config.rounds.overlap_ms == 1234
    assert "from-file" not in repr(config)


def test_default_file_is_used_when_present(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}).source_file == ""
    (tmp_path / "furet.yml").write_text("target: {port: 4000}\n")
    assert load_config(env={}).target.port == 4000


@pytest.mark.parametrize("text, message", [
    ("legacy: {hots: x}\n", "unknown setting legacy.hots"),
    ("legacy: {port: abc}\n", "legacy.port = 'abc' is not a valid int"),
    ("galera: {}\n", "unknown section(s) galera"),
])
def test_bad_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(FuretError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(str(path), env={})


def test_cassandra_hosts_from_env() -> None:
    config = load_config(env={"FURET_CASSANDRA_HOSTS": "10.0.0.1, 10.0.0.2"})
    assert config.cassandra.hosts == ("10.0.0.1", "10.0.0.2")
