"""furet endpoint (migration/endpoint.py) without a real HAProxy: `show stat` and `show map`
as HAProxy 2.6 prints them, the runtime API commands a switch sends (in order) to a fake
HAProxy that keeps a map and sessions, the map file written atomically (mode, owner, a
symlink kept; no temporary file left), the unix-socket client (read to EOF, one line per
socket problem), and the CLI's one-line errors. The real HAProxy is in
tests/integration/test_endpoint.py."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from migration import endpoint
from migration.cli import cli
from migration.endpoint import RuntimeApi, UnixSocket
from migration.enums import EndpointSide
from migration.errors import FuretError

REAL_SHOW_STAT = (  # haproxy 2.6.12 (Debian bookworm), verbatim
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,"
    "wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttl"
    "e,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_"
    "1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_to"
    "t,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,"
    "ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_ris"
    "e,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_"
    "rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache"
    "_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_"
    "conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,a"
    "gg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_"
    "rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors"
    ",h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,"
    "h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connection"
    "s,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spli"
    "ced_bytes_in,h1_spliced_bytes_out,\n"
    "app_db,FRONTEND,,,0,0,9984,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,,,,,,,,0,0,0"
    ",,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,tcp,,0,0,0,,0,0,0,,,,,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0"
    ",0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\n"
    "app_legacy,legacy1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,1,1,,1,3,1,,0,,2,0,,0,L4CON"
    ",,0,,,,,,,,,,,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,3,0"
    ",,,,127.0.0.31:1,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,"
    ",,,,\n"
    "app_legacy,BACKEND,0,0,0,0,1,0,0,0,0,0,,0,0,0,0,DOWN,0,0,0,,1,1,1,,1,3,0,,0,,1,0,,0,,,,,"
    ",,,,,,,,,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,tcp,roundrobin,,,,,,,0,0,0,,,,,0,0,0,0,0,"
    ",,,,0,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\n"
    "app_galera,galera1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,1,1,,1,4,1,,0,,2,0,,0,L4CON"
    ",,0,,,,,,,,,,,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,3,0"
    ",,,,127.0.0.31:2,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,"
    ",,,,\n"
    "app_galera,galera2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,0,1,1,1,1,1,,1,4,2,,0,,2,0,,0,L4CON"
    ",,0,,,,,,,,,,,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,3,0"
    ",,,,127.0.0.31:3,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,"
    ",,,,\n"
    "app_galera,BACKEND,0,0,0,0,1,0,0,0,0,0,,0,0,0,0,DOWN,0,0,0,,1,1,1,,1,4,0,,0,,1,0,,0,,,,,"
    ",,,,,,,,,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,tcp,roundrobin,,,,,,,0,0,0,,,,,0,0,0,0,0,"
    ",,,,0,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\n"
    "app_refused,BACKEND,0,0,0,0,1,0,0,0,0,0,,0,0,0,0,UP,0,0,0,,0,1,,,1,5,0,,0,,1,0,,0,,,,,,,"
    ",,,,,,,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,tcp,roundrobin,,,,,,,0,0,0,,,,,0,0,0,0,0,,,"
    ",,0,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\n"
    "\n"
)
HEADER = REAL_SHOW_STAT.splitlines()[0][2:].split(",")


def test_show_stat_of_haproxy_2_6_is_parsed_per_backend_and_server() -> None:
    backends = endpoint.parse_stat(REAL_SHOW_STAT)
    assert list(backends) == ["app_legacy", "app_galera", "app_refused"]  # no FRONTEND
    legacy, galera, refused = backends.values()
    assert [(s.name, s.status, s.scur, s.backup) for s in galera.servers] == [
        ("galera1", "DOWN", 0, False), ("galera2", "DOWN", 0, True)]
    assert legacy.servers[0].check == "L4CON Layer4 connection problem"
    assert not legacy.servers[0].usable and not legacy.usable
    assert refused.servers == () and refused.scur == 0
    assert galera.states() == "galera1 DOWN, galera2 DOWN (backup)"


@pytest.mark.parametrize(("status", "usable"), [
    ("UP", True), ("UP 1/2", True), ("no check", True), ("DOWN", False), ("DOWN 1/2", False),
    ("MAINT", False), ("DRAIN", False), ("MAINT (via app_galera/galera1)", False)])
def test_a_server_takes_connections_only_when_up_or_unchecked(status: str,
                                                               usable: bool) -> None:
    assert endpoint.Server("s", status, 0, False, "").usable is usable


def test_show_map_entries_and_the_map_file_are_parsed_alike(tmp_path: Path) -> None:
    assert endpoint.parse_map_entries("0x55ba09ce3df0 active app_legacy\n\n") == {
        "active": "app_legacy"}
    assert endpoint.parse_map_entries("\n") == {}
    path = tmp_path / "app.map"
    path.write_text("# written by the app_endpoint role\n\nactive   app_galera\n")
    assert endpoint.read_map_file(str(path)) == {"active": "app_galera"}


def test_render_map_replaces_the_active_line_and_keeps_the_rest() -> None:
    text = "# managed by furet\nactive app_legacy\nother x\n"
    assert endpoint.render_map(text, "app_galera") == (
        "# managed by furet\nactive app_galera\nother x\n")
    assert endpoint.render_map("# none yet\n", "app_refused") == (
        "# none yet\nactive app_refused\n")
    assert endpoint.render_map("", "app_legacy") == "active app_legacy\n"


def test_the_map_file_is_replaced_atomically_keeping_mode_owner_and_symlink(
        tmp_path: Path) -> None:
    real = tmp_path / "real.map"
    real.write_text("active app_legacy\n")
    os.chmod(real, 0o640)
    if os.geteuid() == 0:
        os.chown(real, 4321, 8765)
    link = tmp_path / "app.map"
    link.symlink_to(real)
    inode = real.stat().st_ino
    endpoint.write_map_file(str(link), "active app_galera\n")
    assert link.is_symlink() and real.read_text() == "active app_galera\n"
    info = real.stat()
    assert info.st_ino != inode  # a new file renamed over the old one, not rewritten
    assert stat.S_IMODE(info.st_mode) == 0o640
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid) == (4321, 8765)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.map", "real.map"]


def test_a_missing_map_file_is_one_line_naming_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.map")
    with pytest.raises(FuretError, match=f"^map file {missing}: not found"):
        endpoint.read_map_file(missing)
    with pytest.raises(FuretError, match=f"^map file {missing}: not found"):
        endpoint.write_map_file(missing, "active app_galera\n")


# --- a fake HAProxy behind the runtime API ----------------------------------------------------

@dataclass
class FakeServer:
    status: str = "UP"
    scur: int = 0
    backup: bool = False


@dataclass
class FakeHaproxy:
    """Answers runtime API command lines as HAProxy 2.6 does, and records them."""

    map_path: str
    active: str | None = "app_legacy"
    backends: dict[str, dict[str, FakeServer]] = field(default_factory=lambda: {
        "app_legacy": {"legacy1": FakeServer(scur=3)},
        "app_galera": {"galera1": FakeServer(), "galera2": FakeServer(backup=True)},
        "app_galera_next": {},
        "app_refused": {}})
    lines: list[str] = field(default_factory=list)
    where: str = "haproxy /run/fake.sock on testhost"

    def __call__(self, line: str) -> str:
        self.lines.append(line)
        words = line.split(" ")
        if line == "show stat":
            return self._stat()
        if line == "show map":
            return ("# id (file) description\n"
                    f"2 ({self.map_path}) pattern loaded from file '{self.map_path}' used by "
                    "map at file '/etc/haproxy/haproxy.cfg' line 22. curr_ver=0 next_ver=0 "
                    "entry_cnt=1\n\n")
        if words[:2] in (["show", "map"], ["set", "map"], ["add", "map"]):
            if words[2] != self.map_path:
                return "Unknown map identifier. Please use #<id> or <file>.\n\n"
            if words[0] == "show":
                return (f"0x55ba09ce3df0 active {self.active}\n\n" if self.active else "\n")
            if words[0] == "set" and (words[3] != "active" or self.active is None):
                return "entry not found.\n\n"
            self.active = words[4]
            return "\n"
        if words[:3] == ["shutdown", "sessions", "server"]:
            backend, _, name = words[3].partition("/")
            server = self.backends.get(backend, {}).get(name)
            if server is None:
                return "No such server.\n\n"
            server.scur = 0
            return "\n"
        return "Unknown command. Please enter one of the following commands only :\n\n"

    def _stat(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, HEADER, lineterminator="\n")
        out.write("# " + ",".join(HEADER) + "\n")
        writer.writerow({"pxname": "app_db", "svname": "FRONTEND", "type": "0",
                         "status": "OPEN", "scur": "0"})
        for backend, servers in self.backends.items():
            for name, s in servers.items():
                writer.writerow({"pxname": backend, "svname": name, "type": "2",
                                 "status": s.status, "scur": str(s.scur),
                                 "bck": "1" if s.backup else "0", "act": "0" if s.backup
                                 else "1", "check_status": "L4OK",
                                 "check_desc": "Layer4 check passed"})
            up = any(s.status.startswith("UP") for s in servers.values()) or not servers
            writer.writerow({"pxname": backend, "svname": "BACKEND", "type": "1",
                             "status": "UP" if up else "DOWN",
                             "scur": str(sum(s.scur for s in servers.values()))})
        return out.getvalue() + "\n"

    @property
    def changes(self) -> list[str]:
        return [x for x in self.lines if not x.startswith("show ")]


@pytest.fixture
def map_file(tmp_path: Path) -> Path:
    path = tmp_path / "app_endpoint.map"
    path.write_text("active app_legacy\n")
    return path


@pytest.fixture
def haproxy(map_file: Path) -> FakeHaproxy:
    return FakeHaproxy(str(map_file))


def test_switch_writes_the_file_then_memory_then_cuts_the_old_sides_sessions(
        haproxy: FakeHaproxy, map_file: Path) -> None:
    actions: list[str] = []
    result = endpoint.switch(RuntimeApi(haproxy), str(map_file), EndpointSide.GALERA,
                             on_action=actions.append)
    assert haproxy.changes == [f"set map {map_file} active app_galera",
                               "shutdown sessions server app_legacy/legacy1"]
    assert haproxy.lines[:2] == ["show stat", f"show map {map_file}"]
    assert map_file.read_text() == "active app_galera\n"
    assert (result.from_backend, result.to_backend, result.changed) == (
        "app_legacy", "app_galera", True)
    assert result.file_written and result.memory_set and result.old_sessions == 0
    assert [s.server for s in result.sessions_shut] == ["app_legacy/legacy1"]
    assert result.sessions_shut[0].sessions == 3
    assert actions == list(result.actions) and len(actions) >= 4
    assert all("\n" not in a for a in actions)
    as_dict = result.to_dict()
    assert (as_dict["from"], as_dict["to"], as_dict["changed"]) == (
        "app_legacy", "app_galera", True)
    json.dumps(as_dict)


def test_a_second_switch_to_the_same_side_changes_nothing(haproxy: FakeHaproxy,
                                                          map_file: Path) -> None:
    endpoint.switch(RuntimeApi(haproxy), str(map_file), EndpointSide.GALERA)
    haproxy.lines.clear()
    before = map_file.stat().st_ino
    result = endpoint.switch(RuntimeApi(haproxy), str(map_file), EndpointSide.GALERA)
    assert haproxy.changes == [] and not result.changed
    assert result.from_backend == result.to_backend == "app_galera"
    assert map_file.stat().st_ino == before


def test_a_switch_finishes_one_interrupted_between_file_and_memory(haproxy: FakeHaproxy,
                                                                   map_file: Path) -> None:
    map_file.write_text("active app_galera\n")  # written, but `set map` never ran
    result = endpoint.switch(RuntimeApi(haproxy), str(map_file), EndpointSide.GALERA)
    assert haproxy.changes == [f"set map {map_file} active app_galera",
                               "shutdown sessions server app_legacy/legacy1"]
    assert result.from_backend == "app_legacy" and not result.file_written
    assert result.changed


def test_leftover_sessions_on_a_side_no_longer_active_are_cut_on_a_rerun(
        haproxy: FakeHaproxy, map_file: Path) -> None:
    map_file.write_text("active app_galera\n")
    haproxy.active = "app_galera"  # switched, then interrupted before the sessions were cut
    result = endpoint.switch(RuntimeApi(haproxy), str(map_file), EndpointSide.GALERA)
    assert haproxy.changes == ["shutdown sessions server app_legacy/legacy1"]
    assert result.changed and result.old_sessions == 0


def test_a_missing_memory_entry_is_added(haproxy: FakeHaproxy, map_file: Path) -> None:
    haproxy.active = None
    result = endpoint.switch(RuntimeApi(haproxy), str(map_file), EndpointSide.LEGACY)
    assert result.from_backend == "app_refused"  # haproxy.cfg's map() default
    assert haproxy.changes == [f"add map {map_file} active app_legacy"]


def test_a_target_without_a_server_up_is_refused_and_nothing_changes(
        haproxy: FakeHaproxy, map_file: Path) -> None:
    haproxy.backends["app_galera"]["galera1"].status = "DOWN"
    haproxy.backends["app_galera"]["galera2"].status = "MAINT"
    with pytest.raises(FuretError) as error:
        endpoint.switch(RuntimeApi(haproxy), str(map_file), EndpointSide.GALERA)
    message = str(error.value)
    assert "\n" not in message and "app_galera" in message
    assert "galera1 DOWN, galera2 MAINT (backup)" in message and "nothing changed" in message
    assert haproxy.changes == [] and map_file.read_text() == "active app_legacy\n"


def test_a_switch_to_a_new_cluster_cuts_the_old_clusters_sessions(
        haproxy: FakeHaproxy, map_file: Path) -> None:
    haproxy.backends["app_galera_next"] = {"galeranext1": FakeServer(),
                                           "galeranext2": FakeServer(backup=True)}
    map_file.write_text("active app_galera\n")
    haproxy.active = "app_galera"
    haproxy.backends["app_galera"]["galera1"].scur = 4
    result = endpoint.switch(RuntimeApi(haproxy), str(map_file), EndpointSide.GALERA_NEXT)
    assert haproxy.changes == [f"set map {map_file} active app_galera_next",
                               "shutdown sessions server app_legacy/legacy1",  # 3 open
                               "shutdown sessions server app_galera/galera1",
                               "shutdown sessions server app_galera/galera2"]
    assert map_file.read_text() == "active app_galera_next\n"
    assert (result.from_backend, result.to_backend) == ("app_galera", "app_galera_next")


def test_a_new_cluster_the_inventory_lacks_is_refused_naming_its_backend(
        haproxy: FakeHaproxy, map_file: Path) -> None:
    with pytest.raises(FuretError) as error:  # the role renders app_galera_next empty
        endpoint.switch(RuntimeApi(haproxy), str(map_file), EndpointSide.GALERA_NEXT)
    assert "backend app_galera_next has no server UP" in str(error.value)
    assert haproxy.changes == [] and map_file.read_text() == "active app_legacy\n"


def test_refused_needs_no_server(haproxy: FakeHaproxy, map_file: Path) -> None:
    result = endpoint.switch(RuntimeApi(haproxy), str(map_file), EndpointSide.REFUSED)
    assert result.to_backend == "app_refused" and haproxy.active == "app_refused"
    assert map_file.read_text() == "active app_refused\n"


def test_a_dry_run_reads_only(haproxy: FakeHaproxy, map_file: Path) -> None:
    before = map_file.read_bytes()
    result = endpoint.switch(RuntimeApi(haproxy), str(map_file), EndpointSide.GALERA,
                             dry_run=True)
    assert haproxy.changes == [] and map_file.read_bytes() == before
    assert haproxy.active == "app_legacy" and not result.changed and result.dry_run
    assert result.actions and all(a.startswith(("would ", "checked ", "dry run"))
                                  for a in result.actions), result.actions
    assert any("app_legacy/legacy1" in a for a in result.actions)


def test_a_backend_the_config_lacks_is_one_line(haproxy: FakeHaproxy, map_file: Path) -> None:
    del haproxy.backends["app_galera"]
    with pytest.raises(FuretError, match="has no backend app_galera"):
        endpoint.switch(RuntimeApi(haproxy), str(map_file), EndpointSide.GALERA)
    assert haproxy.changes == []


def test_a_map_haproxy_did_not_load_is_one_line_naming_the_loaded_ones(
        haproxy: FakeHaproxy, tmp_path: Path) -> None:
    other = tmp_path / "other.map"
    other.write_text("active app_legacy\n")
    with pytest.raises(FuretError) as error:
        endpoint.switch(RuntimeApi(haproxy), str(other), EndpointSide.GALERA)
    assert f"has no map {other} loaded" in str(error.value)
    assert haproxy.map_path in str(error.value)
    assert haproxy.changes == [] and other.read_text() == "active app_legacy\n"


def test_status_says_when_file_and_memory_disagree(haproxy: FakeHaproxy,
                                                   map_file: Path) -> None:
    status = endpoint.status(RuntimeApi(haproxy), str(map_file))
    assert (status.in_file, status.in_memory, status.agree) == (
        "app_legacy", "app_legacy", True)
    assert status.backend("app_legacy").scur == 3
    map_file.write_text("active app_galera\n")
    status = endpoint.status(RuntimeApi(haproxy), str(map_file))
    assert not status.agree and "disagree" in status.verdict()
    assert json.loads(json.dumps(status.to_dict()))["agree"] is False


@pytest.mark.parametrize("bad", ["/etc/haproxy/a map", "/x;shutdown sessions", "/x\nclear"])
def test_words_that_would_break_a_runtime_command_are_refused(bad: str) -> None:
    fake = FakeHaproxy(bad)
    with pytest.raises(FuretError, match="cannot be sent"):
        RuntimeApi(fake).set_map(bad, "active", "app_galera")
    assert fake.lines == []


# --- the unix socket ---------------------------------------------------------------------------

@contextlib.contextmanager
def _answering(path: Path, answer: bytes) -> Iterator[list[bytes]]:
    """A unix socket that reads one command line, answers in small pieces, closes."""
    received: list[bytes] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            received.append(conn.recv(4096))
            for i in range(0, len(answer), 7):
                conn.sendall(answer[i:i + 7])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        thread.join(5)
        server.close()


def test_the_socket_client_sends_one_line_and_reads_to_eof(tmp_path: Path) -> None:
    sock = tmp_path / "admin.sock"
    with _answering(sock, b"0x55ba09ce3df0 active app_galera\n\n") as received:
        entries = RuntimeApi(UnixSocket(str(sock))).show_map("/etc/haproxy/furet/a.map")
    assert received == [b"show map /etc/haproxy/furet/a.map\n"]
    assert entries == {"active": "app_galera"}


def test_socket_problems_are_one_line_naming_the_socket(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "none.sock"
    with pytest.raises(FuretError, match=f"{missing}.*not found"):
        UnixSocket(str(missing))("show stat")
    (tmp_path / "file.sock").write_text("")  # a path that is no socket: refused
    with pytest.raises(FuretError, match="refused"):
        UnixSocket(str(tmp_path / "file.sock"))("show stat")

    def denied(self: socket.socket, address: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(socket.socket, "connect", denied)  # root passes any mode: simulate
    with pytest.raises(FuretError, match=r"permission denied \(.*group"):
        UnixSocket(str(missing))("show stat")


# --- the CLI -----------------------------------------------------------------------------------

def test_cli_errors_are_one_line_and_paths_come_from_the_environment(
        tmp_path: Path, map_file: Path) -> None:
    env = {"FURET_LOG_DIR": str(tmp_path / "logs"),
           "FURET_ENDPOINT_SOCKET": str(tmp_path / "no.sock"),
           "FURET_ENDPOINT_MAP": str(map_file)}
    for args in (["endpoint", "status"], ["endpoint", "switch", "--to", "galera"],
                 ["endpoint", "switch", "--to", "legacy", "--dry-run", "--json"]):
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 2, (args, result.output)
        lines = [x for x in result.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert lines[0].startswith("furet: error: ") and f"{tmp_path}/no.sock" in lines[0]
    result = CliRunner().invoke(cli, ["endpoint", "switch", "--to", "nowhere"], env=env)
    assert result.exit_code == 2 and "nowhere" in result.stderr


def test_cli_switch_prints_one_line_per_action_or_json(
        haproxy: FakeHaproxy, map_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(endpoint, "UnixSocket", lambda path, timeout=10.0: haproxy)
    result = CliRunner().invoke(cli, ["endpoint", "switch", "--to", "galera", "--map",
                                      str(map_file), "--socket", "/run/fake.sock"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) >= 4 and all(x.startswith("furet ") for x in lines)
    assert "app_legacy/legacy1" in result.stdout
    result = CliRunner().invoke(cli, ["endpoint", "switch", "--to", "galera", "--map",
                                      str(map_file), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["from"], data["to"], data["changed"]) == ("app_galera", "app_galera", False)
    result = CliRunner().invoke(cli, ["endpoint", "status", "--map", str(map_file), "--json"])
    assert json.loads(result.stdout)["active"] == "app_galera"
