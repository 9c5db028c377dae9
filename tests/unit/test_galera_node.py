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


def unit(active: str, sub: str = "", restarts: int = 0) -> tuple[int, str, str]:
    """What `systemctl show --property=ActiveState,SubState,NRestarts` prints."""
    return 0, f"ActiveState={active}\nSubState={sub}\nNRestarts={restarts}\n", ""


ACTIVE, INACTIVE = unit("active", "running"), unit("inactive", "dead")


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
    synced = galera_node.summarise(galera_node.parse_service(ACTIVE[1]),
                                   galera_node.parse_status(STATUS_SYNCED),
                                   galera_node.parse_grastate(GRASTATE_CRASHED))
    assert (synced["member"], synced["synced"], synced["cluster_size"]) == (True, True, 3)
    assert synced["seen"] == "3,Primary,Synced" and synced["has_state"]
    assert galera_node.healthy(synced, 3) and galera_node.healthy(synced)
    assert not galera_node.healthy(synced, 5)

    stopped = galera_node.summarise(galera_node.parse_service(INACTIVE[1]), {},
                                    galera_node.parse_grastate(""))
    assert stopped["seen"] == "server down"
    assert not (stopped["member"] or stopped["synced"] or stopped["has_state"])
    zero = galera_node.parse_grastate("uuid: 00000000-0000-0000-0000-000000000000\nseqno: -1\n")
    assert not galera_node.summarise(galera_node.parse_service(INACTIVE[1]), {},
                                     zero)["has_state"]
    assert (synced["found"], stopped["found"]) == ("synced", "down")


@pytest.mark.parametrize(("service", "status", "found"), [
    (unit("activating", "auto-restart", 1), "", "restarting, restarted 1 time by systemd"),
    (unit("activating", "start", 2), STATUS_SYNCED.replace("Primary", "non-Primary")
     .replace("Synced", "Initialized"), "non-Primary, restarted 2 times by systemd"),
    (unit("activating", "start"), STATUS_SYNCED.replace("Synced", "Joiner"), "joining"),
    (unit("activating", "start"), "", "starting"),
    (unit("active", "running"), STATUS_SYNCED.replace("Primary", "non-Primary"), "non-Primary"),
    (unit("deactivating", "stop-sigterm"), "", "stopping"),
    (unit("failed", "failed"), "", "down (failed)"),
])
def test_what_a_node_was_found_doing(service, status: str, found: str) -> None:
    state = galera_node.summarise(galera_node.parse_service(service[1]),
                                  galera_node.parse_status(status),
                                  galera_node.parse_grastate(GRASTATE_CRASHED))
    assert state["found"] == found


class Failed(Exception):
    pass


class FakeModule:
    """AnsibleModule's surface that Node uses; commands answer from a script."""

    def __init__(self, tmp_path: Path, answers: dict[str, list[tuple[int, str, str]]],
                 check_mode: bool = False, **params) -> None:
        # Commands not scripted (daemon-reload, reset-failed, ...) succeed silently.
        answers = {"systemctl daemon-reload": [(0, "", "")],
                   "systemctl reset-failed": [(0, "", "")], **answers}
        grastate = tmp_path / "grastate.dat"
        grastate.write_text(GRASTATE_CRASHED)
        self.params = {"operation": "read", "wait_synced": False, "cluster_size": 0,
                       "stop_timeout": 0, "settle": 0,
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
        "systemctl show": [INACTIVE],
        "galera_recovery": [(0, "--wsrep_start_position=5981f182-a4cc-11e6-98cc-77fabedd360d:77\n",
                             "")],
    }, recover_position=True)
    node = galera_node.Node(module)
    state = node.read(strict=True)
    assert node.position(state) == {"seqno": 77, "source": "wsrep-recover"}
    assert "mariadb" not in module.commands  # a stopped server is not queried


def test_position_refuses_a_running_node(tmp_path: Path) -> None:
    module = FakeModule(tmp_path, {"systemctl show": [ACTIVE],
                                   "mariadb": [(0, STATUS_SYNCED, "")]})
    node = galera_node.Node(module)
    with pytest.raises(Failed, match="stop it before recovering its position"):
        node.position(node.read(strict=True))



def test_a_node_caught_in_a_state_transfer_has_no_position_to_recover(tmp_path: Path) -> None:
    # the zero UUID (a transfer under way), or no grastate.dat at all: galera_recovery
    # is not run on what may be half a copy
    module = FakeModule(tmp_path, {"systemctl show": [INACTIVE]}, recover_position=True)
    node = galera_node.Node(module)
    Path(module.params["grastate"]).write_text(
        "# GALERA saved state\nversion: 2.1\nuuid: 00000000-0000-0000-0000-000000000000\n"
        "seqno: -1\nsafe_to_bootstrap: 0\n")
    assert node.position(node.read(strict=True)) == {"seqno": -1, "source": "no cluster state"}
    Path(module.params["grastate"]).unlink()
    assert node.position(node.read(strict=True)) == {"seqno": -1, "source": "no cluster state"}
    assert "galera_recovery" not in module.commands


def test_a_cluster_uuid_without_a_readable_seqno_asks_innodb(tmp_path: Path) -> None:
    module = FakeModule(tmp_path, {
        "systemctl show": [INACTIVE],
        "galera_recovery": [(0, "--wsrep_start_position=5981f182-a4cc-11e6-98cc-77fabedd360d:91\n",
                             "")],
    }, recover_position=True)
    Path(module.params["grastate"]).write_text(
        "# GALERA saved state\nversion: 2.1\nuuid: 5981f182-a4cc-11e6-98cc-77fabedd360d\n"
        "seqno: \nsafe_to_bootstrap: 0\n")
    node = galera_node.Node(module)
    assert node.position(node.read(strict=True)) == {"seqno": 91, "source": "wsrep-recover"}


def test_an_active_server_whose_status_cannot_be_read_fails_a_plain_read(tmp_path: Path) -> None:
    module = FakeModule(tmp_path, {"systemctl show": [ACTIVE],
                                   "mariadb": [(1, "", "Can't connect through socket")]})
    node = galera_node.Node(module)
    with pytest.raises(Failed, match="wsrep status cannot be read: Can't connect"):
        node.read(strict=True)
    assert node.read(strict=False)["seen"] == "server down"  # while waiting: not yet


def test_wait_polls_until_synced_at_the_wanted_size(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(galera_node, "POLL_SECONDS", 0)
    joining = STATUS_SYNCED.replace("Synced", "Joined").replace("\t3", "\t2")
    module = FakeModule(tmp_path, {
        "systemctl show": [ACTIVE],
        "mariadb": [(1, "", "starting"), (0, joining, ""), (0, STATUS_SYNCED, "")],
    }, wait_synced=True, cluster_size=3)
    state, _ = galera_node.Node(module).wait()
    assert galera_node.healthy(state, 3) and module.commands.count("mariadb") == 3


def test_check_mode_never_runs_galera_recovery(tmp_path: Path) -> None:
    module = FakeModule(tmp_path, {"systemctl show": [INACTIVE]},
                        check_mode=True, recover_position=True)
    node = galera_node.Node(module)
    assert node.position(node.read(strict=True)) == {"seqno": -1,
                                                     "source": "unknown in check mode"}
    assert "galera_recovery" not in module.commands


@pytest.fixture
def fast(tmp_path: Path, monkeypatch) -> Path:
    """No sleeping between polls; the hold drop-in goes under tmp_path."""
    monkeypatch.setattr(galera_node, "POLL_SECONDS", 0)
    monkeypatch.setattr(galera_node, "KILL_WAIT_SECONDS", 0)
    monkeypatch.setattr(galera_node, "HOLD_DROPIN", str(tmp_path / "%s.service.d" / "hold.conf"))
    return tmp_path / "mariadb.service.d" / "hold.conf"


def test_a_stop_is_held_and_ends_in_time(tmp_path: Path, fast: Path) -> None:
    module = FakeModule(tmp_path, {"systemctl show": [ACTIVE, INACTIVE],
                                   "systemctl stop": [(0, "", "")]})
    assert galera_node.Node(module).act("stop") == "stopped"
    assert "Restart=no" in fast.read_text()  # systemd will not start it again by itself
    assert "systemctl kill" not in module.commands


def test_a_stop_that_hangs_is_killed_after_stop_timeout(tmp_path: Path, fast: Path) -> None:
    # A node stuck joining a cluster that no longer exists: SIGTERM does not end it.
    stuck = unit("deactivating", "stop-sigterm", 1)
    module = FakeModule(tmp_path, {"systemctl show": [unit("activating", "start", 1), stuck,
                                                      unit("failed", "failed", 1)],
                                   "systemctl stop": [(0, "", "")],
                                   "systemctl kill": [(0, "", "")]})
    assert galera_node.Node(module).act("stop") == "killed after 0 s"
    assert module.commands.index("systemctl kill") > module.commands.index("systemctl stop")
    assert fast.exists()


def test_a_node_killed_and_still_not_down_fails_naming_it(tmp_path: Path, fast: Path) -> None:
    stuck = unit("deactivating", "final-sigterm")
    module = FakeModule(tmp_path, {"systemctl show": [stuck], "systemctl stop": [(0, "", "")],
                                   "systemctl kill": [(0, "", "")]})
    with pytest.raises(Failed, match="still not down 0 s after SIGKILL"):
        galera_node.Node(module).act("stop")


def test_a_start_releases_the_hold_and_a_failed_start_fails_at_once(tmp_path: Path,
                                                                    fast: Path) -> None:
    fast.parent.mkdir(parents=True)
    fast.write_text(galera_node.HOLD_TEXT)
    module = FakeModule(tmp_path, {"systemctl show": [unit("activating", "start"),
                                                      unit("failed", "failed")],
                                   "systemctl start": [(0, "", "")],
                                   "mariadb": [(1, "", "no socket")],
                                   "journalctl": [(0, "[ERROR] unknown variable 'x=1'\n", "")]},
                        wait_synced=True, timeout=3600)
    node = galera_node.Node(module)
    node.act("start")
    assert not fast.exists()
    with pytest.raises(Failed, match=r"failed to start \(down \(failed\)\); journal: "
                                     r"\[ERROR\] unknown variable"):
        node.wait()


def test_settle_waits_for_a_running_node_but_not_for_a_down_one(tmp_path: Path,
                                                                fast: Path) -> None:
    forming = STATUS_SYNCED.replace("Primary", "non-Primary").replace("Synced", "Initialized")
    module = FakeModule(tmp_path, {"systemctl show": [ACTIVE],
                                   "mariadb": [(0, forming, ""), (0, forming, ""),
                                               (0, STATUS_SYNCED, "")]})
    assert galera_node.Node(module).settle(60)["found"] == "synced"
    assert module.commands.count("mariadb") == 3
    down = FakeModule(tmp_path, {"systemctl show": [INACTIVE]})
    assert galera_node.Node(down).settle(3600)["found"] == "down"


def test_a_node_killed_during_a_state_transfer_ranks_last(tmp_path: Path) -> None:
    module = FakeModule(tmp_path, {"systemctl show": [INACTIVE],
                                   "galera_recovery": [(1, "", "InnoDB: corrupt")]})
    node = galera_node.Node(module)
    position = node.position(node.read(strict=True))
    assert (position["seqno"], position["source"]) == (-1, "unrecoverable")


# Three starts; the cause is the first [ERROR] of the last one that logged any
# (systemd started it again since), not what follows it.
JOURNAL = """0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1 source revision 1 as process 1
0 [ERROR] an old error
0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1 source revision 1 as process 2
0 [ERROR] mariadbd: unknown variable 'x=1'
0 [ERROR] Aborting
3 [ERROR] WSREP: sst_received failed: State wait was interrupted
0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1 source revision 1 as process 3
0 [Note] WSREP: Recovering GCache ring buffer
"""


def test_a_server_that_crashes_while_starting_fails_at_once(tmp_path: Path, fast: Path) -> None:
    # systemd restarts it (Restart=): the unit is never "failed", it loops in auto-restart.
    module = FakeModule(tmp_path, {"systemctl show": [unit("inactive", "dead", 3),
                                                      unit("activating", "start", 3),
                                                      unit("activating", "auto-restart", 4)],
                                   "systemctl start": [(0, "", "")],
                                   "mariadb": [(1, "", "no socket")],
                                   "journalctl": [(0, JOURNAL, "")]},
                        wait_synced=True, timeout=3600)
    node = galera_node.Node(module)
    node.act("start")
    with pytest.raises(Failed, match=r"failed to start \(restarting, restarted 4 times by "
                                     r"systemd\); journal: 0 \[ERROR\] mariadbd: unknown "
                                     r"variable 'x=1' \| 0 \[ERROR\] Aborting$"):
        node.wait()
