"""The cassandra role's restart script (furet-cassandra-wait-up), which the throttled
handler `Restart cassandra node` runs: it refuses to restart a node unless the whole ring is
UN, stops a node that crashes after its restart, and waits for UN otherwise.

The script is rendered from the role's template and run by bash with `nodetool`,
`systemctl` and `journalctl` replaced by small scripts that answer what a ring would and
record what they were asked (a unit test: the real ring is tests/lab/test_cassandra_faults.py,
`make soak`)."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest

from tests.helpers import REPO

TEMPLATE = REPO / "roles/cassandra/templates/usr/local/bin/furet-cassandra-wait-up.j2"
ME = "127.0.0.1"

FAKE_NODETOOL = """#!/bin/bash
echo "nodetool $*" >> "$FAKE_DIR/calls"
case "$1" in
  status) cat "$FAKE_DIR/status" ;;
  drain) ;;
esac
"""

# NRestarts goes up by one at each `show` once the file `crash` exists and the unit was
# (re)started: what systemd does with a node that dies after its start (Restart=on-failure).
FAKE_SYSTEMCTL = """#!/bin/bash
echo "systemctl $*" >> "$FAKE_DIR/calls"
case "$1" in
  is-active) [ -e "$FAKE_DIR/active" ] ;;
  restart|start) touch "$FAKE_DIR/started" ;;
  stop) rm -f "$FAKE_DIR/active" ;;
  show)
    n=$(cat "$FAKE_DIR/nrestarts" 2>/dev/null || echo 0)
    if [ -e "$FAKE_DIR/crash" ] && [ -e "$FAKE_DIR/started" ]; then
      n=$((n + 1)); echo "$n" > "$FAKE_DIR/nrestarts"
    fi
    echo "$n" ;;
esac
"""

FAKE_JOURNALCTL = """#!/bin/bash
cat <<'EOF'
INFO  [main] Loading settings from file:/etc/cassandra/cassandra.yaml
Exception (org.apache.cassandra.exceptions.ConfigurationException) encountered during \
startup: Invalid yaml. Please remove properties [furet_test_no_such_option] from your \
cassandra.yaml
EOF
"""

STATUS = """Datacenter: rbx
===============
Status=Up/Down
|/ State=Normal/Leaving/Joining/Moving
--  Address    Load       Tokens  Owns (effective)  Host ID   Rack
{rows}
"""


@pytest.fixture
def native_port() -> Iterator[int]:
    """A port that listens on the loopback, as the node's native port would."""
    with socket.socket() as sock:
        sock.bind((ME, 0))
        sock.listen()
        yield sock.getsockname()[1]


def _ring(*nodes: tuple[str, str]) -> str:
    return STATUS.format(rows="\n".join(
        f"{state}  {address}  1.2 MiB  16  100.0%  id-{address}  r1" for address, state in nodes))


def _run(tmp_path: Path, port: int, status: str, *, active: bool = True,
         crash: bool = False) -> tuple[subprocess.CompletedProcess[str], str]:
    script = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
        TEMPLATE.read_text()).render(
            ansible_managed="test", cassandra_listen_address=ME, cassandra_rpc_address=ME,
            cassandra_native_port=port, _cassandra_service="cassandra")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("nodetool", FAKE_NODETOOL), ("systemctl", FAKE_SYSTEMCTL),
                       ("journalctl", FAKE_JOURNALCTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "status").write_text(status)
    if active:
        (tmp_path / "active").touch()
    if crash:
        (tmp_path / "crash").touch()
    run = subprocess.run(
        ["bash", "-c", script, "furet-cassandra-wait-up", "--restart", "20"],
        capture_output=True, text=True, timeout=60,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_DIR": str(tmp_path)})
    calls = (tmp_path / "calls").read_text() if (tmp_path / "calls").exists() else ""
    return run, calls


def test_a_restart_is_refused_while_a_node_of_the_ring_is_down(
        tmp_path: Path, native_port: int) -> None:
    run, calls = _run(tmp_path, native_port,
                      _ring((ME, "UN"), ("10.0.0.2", "DN"), ("10.0.0.3", "UN")))
    assert run.returncode == 1
    assert "not restarted: the ring is not whole (10.0.0.2 DN)" in run.stderr, run.stderr
    assert "nothing was stopped" in run.stderr
    assert "nodetool drain" not in calls and "systemctl restart" not in calls, calls


def test_a_node_that_crashes_after_its_restart_is_stopped_and_named(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on: the node never came up
        sock.bind((ME, 0))
        closed = sock.getsockname()[1]
    run, calls = _run(tmp_path, closed,
                      _ring((ME, "UN"), ("10.0.0.2", "UN"), ("10.0.0.3", "UN")), crash=True)
    assert run.returncode == 1
    assert "cassandra crashed after its restart (" in run.stderr, run.stderr
    crash = re.search(r"crashed after its restart \((.*?)\); stopped", run.stderr)
    assert crash and "furet_test_no_such_option" in crash.group(1), run.stderr
    assert "stopped so that systemd does not restart it in a loop" in run.stderr
    assert calls.index("nodetool drain") < calls.index("systemctl restart cassandra")
    assert "systemctl stop cassandra" in calls, calls


def test_a_whole_ring_restarts_the_node_and_waits_for_it_up(
        tmp_path: Path, native_port: int) -> None:
    run, calls = _run(tmp_path, native_port,
                      _ring((ME, "UN"), ("10.0.0.2", "UN"), ("10.0.0.3", "UN")))
    assert run.returncode == 0, run.stderr
    assert calls.index("nodetool drain") < calls.index("systemctl restart cassandra")
    assert "systemctl stop" not in calls


def test_a_node_that_is_not_running_is_started_without_a_drain(
        tmp_path: Path, native_port: int) -> None:
    run, calls = _run(tmp_path, native_port, _ring((ME, "UN"), ("10.0.0.2", "DN")),
                      active=False)
    assert run.returncode == 0, run.stderr
    assert "nodetool drain" not in calls and "systemctl restart cassandra" in calls, calls
