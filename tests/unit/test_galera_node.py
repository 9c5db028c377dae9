"""roles/mariadb_galera/library/galera_node.py, the role's one reader of Galera state
(no server needed: the commands it runs are faked)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.helpers import REPO

_SPEC = importlib.util.spec_from_file_location(
    "galera_node", REPO / "roles" / "mariadb_galera" / "library" / "galera_node.py")
galera_node = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(galera_node)

GRASTATE_CRASHED = """# GALERA saved state
version: 2.1
uuid:    5981f182-a4cc-11e6-98cc-77fabedd360d
seqno:   -1
safe_to_bootstrap: 0
"""
STATUS_SYNCED = ("WSREP_CLUSTER_SIZE\t3\nWSREP_CLUSTER_STATUS\tPrimary\n"
                 "WSREP_LOCAL_STATE_COMMENT\tSynced\nWSREP_READY\tON\n")


def test_grastate_is_parsed() -> None:
    assert galera_node.parse_grastate(GRASTATE_CRASHED) == {
        "uuid": "5981f182-a4cc-11e6-98cc-77fabedd360d", "seqno": -1, "safe_to_bootstrap": False}
    clean = GRASTATE_CRASHED.replace("-1", "1234").replace("bootstrap: 0", "bootstrap: 1")
    assert galera_node.parse_grastate(clean)["seqno"] == 1234
    assert galera_node.parse_grastate(clean)["safe_to_bootstrap"] is True
    assert galera_node.parse_grastate("") == {"uuid": "", "seqno": None,
                                              "safe_to_bootstrap": False}


@pytest.mark.parametrize(("output", "position"), [
    ("WSREP: Recovered position 5981f182-a4cc-11e6-98cc-77fabedd360d:42\n"
     "--wsrep_start_position=5981f182-a4cc-11e6-98cc-77fabedd360d:42\n",
     ("5981f182-a4cc-11e6-98cc-77fabedd360d", 42)),
    ("--wsrep_start_position=5981f182-a4cc-11e6-98cc-77fabedd360d:1207,0-1-1206",
     ("5981f182-a4cc-11e6-98cc-77fabedd360d", 1207)),
    ("mariadbd: cannot lock the data directory", None),
])
def test_recovered_position_is_parsed(output: str, position) -> None:
    assert galera_node.parse_recovered_position(output) == position


def test_summary_of_a_synced_member_and_of_a_stopped_node() -> None:
    synced = galera_node.summarise(True, galera_node.parse_status(STATUS_SYNCED),
                                   galera_node.parse_grastate(GRASTATE_CRASHED))
    assert (synced["member"], synced["synced"], synced["cluster_size"]) == (True, True, 3)
    assert synced["seen"] == "3,Primary,Synced" and synced["has_state"]
    assert galera_node.healthy(synced, 3) and galera_node.healthy(synced)
    assert not galera_node.healthy(synced, 5)

    stopped = galera_node.summarise(False, {}, galera_node.parse_grastate(""))
    assert stopped["seen"] == "server down"
    assert not (stopped["member"] or stopped["synced"] or stopped["has_state"])
    zero = galera_node.parse_grastate("uuid: 00000000-0000-0000-0000-000000000000\nseqno: -1\n")
    assert not galera_node.summarise(False, {}, zero)["has_state"]


class Failed(Exception):
    pass


class FakeModule:
    """AnsibleModule's surface that Node uses; commands answer from a script."""

    def __init__(self, tmp_path: Path, answers: dict[str, list[tuple[int, str, str]]],
                 check_mode: bool = False, **params) -> None:
        grastate = tmp_path / "grastate.dat"
        grastate.write_text(GRASTATE_CRASHED)
        self.params = {"operation": "read", "wait_synced": False, "cluster_size": 0,
                       "timeout": 4, "recover_position": False, "service": "mariadb",
                       "login_unix_socket": "/run/mysqld/mysqld.sock",
                       "grastate": str(grastate), **params}
        self.check_mode = check_mode
        self.answers = answers
        self.commands: list[str] = []

    def run_command(self, argv: list[str]):
        name = argv[0] if argv[0] != "systemctl" else f"systemctl {argv[1]}"
        self.commands.append(name)
        queue = self.answers[name]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def get_bin_path(self, name: str) -> str:
        return name

    def fail_json(self, **result):
        raise Failed(result["msg"])


def test_a_crashed_stopped_node_gets_its_position_from_galera_recovery(tmp_path: Path) -> None:
    module = FakeModule(tmp_path, {
        "systemctl show": [(0, "inactive\n", "")],
        "galera_recovery": [(0, "--wsrep_start_position=5981f182-a4cc-11e6-98cc-77fabedd360d:77\n",
                             "")],
    }, recover_position=True)
    node = galera_node.Node(module)
    state = node.read(strict=True)
    assert node.position(state) == {"seqno": 77, "source": "wsrep-recover"}
    assert "mariadb" not in module.commands  # a stopped server is not queried


def test_position_refuses_a_running_node_and_a_node_without_state(tmp_path: Path) -> None:
    module = FakeModule(tmp_path, {"systemctl show": [(0, "active\n", "")],
                                   "mariadb": [(0, STATUS_SYNCED, "")]})
    node = galera_node.Node(module)
    with pytest.raises(Failed, match="stop it before recovering its position"):
        node.position(node.read(strict=True))
    Path(module.params["grastate"]).unlink()
    with pytest.raises(Failed, match="no Galera state to recover from"):
        node.position(node.read(strict=True))


def test_an_active_server_whose_status_cannot_be_read_fails_a_plain_read(tmp_path: Path) -> None:
    module = FakeModule(tmp_path, {"systemctl show": [(0, "active\n", "")],
                                   "mariadb": [(1, "", "Can't connect through socket")]})
    node = galera_node.Node(module)
    with pytest.raises(Failed, match="wsrep status cannot be read: Can't connect"):
        node.read(strict=True)
    assert node.read(strict=False)["seen"] == "server down"  # while waiting: not yet


def test_wait_polls_until_synced_at_the_wanted_size(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(galera_node, "POLL_SECONDS", 0)
    joining = STATUS_SYNCED.replace("Synced", "Joined").replace("\t3", "\t2")
    module = FakeModule(tmp_path, {
        "systemctl show": [(0, "active\n", "")],
        "mariadb": [(1, "", "starting"), (0, joining, ""), (0, STATUS_SYNCED, "")],
    }, wait_synced=True, cluster_size=3)
    state, _ = galera_node.Node(module).wait()
    assert galera_node.healthy(state, 3) and module.commands.count("mariadb") == 3


def test_check_mode_never_runs_galera_recovery(tmp_path: Path) -> None:
    module = FakeModule(tmp_path, {"systemctl show": [(0, "inactive\n", "")]},
                        check_mode=True, recover_position=True)
    node = galera_node.Node(module)
    assert node.position(node.read(strict=True)) == {"seqno": -1,
                                                     "source": "unknown in check mode"}
    assert "galera_recovery" not in module.commands
