"""Integration test of the furet Apache Cassandra distribution (`make cassandra-dist`).

Extracts the tarball named by .cache/cassandra/current, starts ONE node on 127.0.0.21
with bin/cassandra (heap 512m, everything under pytest's tmp dir), then checks a CQL
write/read round trip with cassandra-driver and `bin/nodetool status`.
The node is always stopped (SIGTERM, then SIGKILL) by the fixture finalizer.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DIST_DIR = REPO / ".cache" / "cassandra"
ADDRESS = "127.0.0.21"
STORAGE_PORT = 7000
NATIVE_PORT = 9042
JMX_PORT = 7199
HEAP = "512m"
START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 60


@dataclass
class Node:
    home: Path
    base: Path
    proc: subprocess.Popen[bytes]
    start_seconds: float


def _tarball() -> Path:
    current = DIST_DIR / "current"
    if current.is_symlink():
        target = current.resolve()
    elif current.is_file():
        target = DIST_DIR / current.read_text().strip()
    else:
        pytest.fail(f"{current} not found: run make cassandra-dist (packaging/cassandra/build.sh)")
    if not target.is_file():
        pytest.fail(f"{current} names {target}, which is missing: run make cassandra-dist")
    return target


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"<{path} missing>"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _write_conf(home: Path, base: Path) -> Path:
    conf = base / "conf"
    shutil.copytree(home / "conf", conf)
    storage = base / "storage"
    cfg = {
        "cluster_name": "furet-it",
        "num_tokens": 4,
        "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
        "storage_compatibility_mode": "NONE",
        "data_file_directories": [str(storage / "data")],
        "commitlog_directory": str(storage / "commitlog"),
        "saved_caches_directory": str(storage / "saved_caches"),
        "hints_directory": str(storage / "hints"),
        "cdc_raw_directory": str(storage / "cdc_raw"),
        "seed_provider": [
            {
                "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                "parameters": [{"seeds": f"{ADDRESS}:{STORAGE_PORT}"}],
            }
        ],
        "listen_address": ADDRESS,
        "rpc_address": ADDRESS,
        "storage_port": STORAGE_PORT,
        "native_transport_port": NATIVE_PORT,
        "start_native_transport": True,
        "endpoint_snitch": "GossipingPropertyFileSnitch",
        "authenticator": "AllowAllAuthenticator",
        "authorizer": "AllowAllAuthorizer",
        "commitlog_sync": "periodic",
        "commitlog_sync_period": "10000ms",
        "commitlog_segment_size": "8MiB",
        "auto_snapshot": False,
        "concurrent_reads": 4,
        "concurrent_writes": 4,
        "concurrent_counter_writes": 4,
    }
    (conf / "cassandra.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return conf


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # bin/cassandra execs java: this is the JVM
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # own session: the whole group
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    tarball = _tarball()
    for port in (NATIVE_PORT, STORAGE_PORT, JMX_PORT):
        if _port_open(ADDRESS, port):
            pytest.fail(f"{ADDRESS}:{port} is already in use; stop whatever listens there")

    base = tmp_path_factory.mktemp("cassandra-dist")
    with tarfile.open(tarball) as tar:
        tar.extractall(base, filter="data")
    (home,) = [p for p in base.iterdir() if p.name.startswith("apache-cassandra-")]
    conf = _write_conf(home, base)
    logs = base / "logs"
    logs.mkdir()

    env = dict(os.environ)
    env.update(
        CASSANDRA_CONF=str(conf),
        CASSANDRA_LOG_DIR=str(logs),
        CASSANDRA_STORAGE_DIR=str(base / "storage"),
        CASSANDRA_HEAP=HEAP,
        JMX_HOST=ADDRESS,
        JMX_PORT=str(JMX_PORT),
        JVM_EXTRA_OPTS=(
            "-Dcassandra.skip_wait_for_gossip_to_settle=0 "
            "-Dcassandra.ring_delay_ms=1000 "
            "-Dcassandra.available_processors=2"
        ),
    )
    cmd = [str(home / "bin" / "cassandra"), "-f", "-p", str(base / "cassandra.pid")]
    if os.geteuid() == 0:
        cmd.append("-R")  # the launcher refuses root without it, like upstream

    stdout = logs / "stdout.log"
    t0 = time.monotonic()
    with stdout.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = t0 + START_TIMEOUT_S
        while not _port_open(ADDRESS, NATIVE_PORT):
            if proc.poll() is not None:
                pytest.fail(
                    f"cassandra exited with {proc.returncode} before opening {NATIVE_PORT}\n"
                    f"--- stdout ---\n{_tail(stdout)}\n--- system.log ---\n"
                    f"{_tail(logs / 'system.log')}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"native port {ADDRESS}:{NATIVE_PORT} not open after {START_TIMEOUT_S}s\n"
                    f"--- system.log ---\n{_tail(logs / 'system.log')}"
                )
            time.sleep(0.5)
        started = time.monotonic() - t0
        print(f"\ncassandra {home.name} on {ADDRESS}: CQL port open after {started:.1f}s")
        yield Node(home=home, base=base, proc=proc, start_seconds=started)
    finally:
        t1 = time.monotonic()
        _stop(proc)
        print(f"\ncassandra stopped (rc={proc.returncode}) in {time.monotonic() - t1:.1f}s")


def test_cql_write_read(node: Node) -> None:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import WhiteListRoundRobinPolicy

    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy([ADDRESS]), request_timeout=30
    )
    cluster = Cluster(
        [ADDRESS], port=NATIVE_PORT, execution_profiles={EXEC_PROFILE_DEFAULT: profile}
    )
    try:
        session = cluster.connect()
        session.execute(
            "CREATE KEYSPACE IF NOT EXISTS furet_it "
            "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute(
            "CREATE TABLE IF NOT EXISTS furet_it.kv (k uuid PRIMARY KEY, v text, n int)"
        )
        key = uuid.uuid4()
        session.execute(
            "INSERT INTO furet_it.kv (k, v, n) VALUES (%s, %s, %s)", (key, "bonjour furet", 42)
        )
        row = session.execute("SELECT v, n FROM furet_it.kv WHERE k = %s", (key,)).one()
        assert row is not None
        assert (row.v, row.n) == ("bonjour furet", 42)
        version = session.execute("SELECT release_version FROM system.local").one()
        print(f"release_version={version.release_version}")
        assert node.home.name.endswith(version.release_version)
    finally:
        cluster.shutdown()


def test_nodetool_status(node: Node) -> None:
    nodetool = node.home / "bin" / "nodetool"
    res = subprocess.run(
        [str(nodetool), "-h", ADDRESS, "-p", str(JMX_PORT), "status"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    print(res.stdout)
    assert res.returncode == 0, f"nodetool failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    assert "UN" in res.stdout
    assert ADDRESS in res.stdout
    assert any(line.startswith("UN") and ADDRESS in line for line in res.stdout.splitlines()), (
        res.stdout
    )
