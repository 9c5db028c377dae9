"""A scratch single-node Cassandra, owned and always stopped by its caller: the node of a
Cassandra restore test (and of the integration tests' loopback ring).

It runs a distribution as ``packaging/cassandra/build.sh`` makes it (``bin/cassandra``,
``bin/nodetool``, ``conf/``, ``lib/``): an unpacked directory (``/opt/cassandra`` where the
cassandra role installed one) used in place, or its tarball, unpacked into the node's
working directory. Its configuration, data, commit log and logs are all in that working
directory (a temporary one by default), never in the distribution's. It binds one address
(``127.0.0.1`` by default) on free ports, or on the ports given; JMX has no authentication,
so it binds that address only; auto_snapshot is off, so a dropped keyspace leaves no files.

:func:`scratch_cassandra` is a context manager: whatever happens inside, the node is
stopped by its own process handle (SIGTERM, then SIGKILL of its process group after
:data:`STOP_TIMEOUT_S`) and its working directory removed (unless the caller gave one to
keep). Measured on a 2-core host: ready 8-10 s after exec with the settings below (gossip
settle and ring delay cut: a single node has nobody to wait for), stopped in 5-6 s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from migration.config import CassandraSettings
from migration.errors import FuretError

DEFAULT_DIST = Path("/opt/cassandra")   # where the cassandra role installs a tarball
START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 60
NODETOOL_TIMEOUT_S = 3600               # an import of a large table takes its time
HEAP = "512m"
QUICK_START = ("-Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=1000 "
               "-Dcassandra.available_processors=2")


@dataclass(frozen=True)
class Ports:
    native: int
    storage: int
    jmx: int

    @classmethod
    def free(cls, address: str) -> Ports:
        """Three distinct free ports of ``address`` (held together while chosen)."""
        with contextlib.ExitStack() as stack:
            socks = [stack.enter_context(socket.socket()) for _ in range(3)]
            for sock in socks:
                sock.bind((address, 0))
            native, storage, jmx = (int(s.getsockname()[1]) for s in socks)
        return cls(native, storage, jmx)


@dataclass(frozen=True)
class CassandraNode:
    """A running node: where it listens and where its files are."""

    address: str
    ports: Ports
    home: Path          # the distribution: bin/, lib/
    base: Path          # the node's working directory: conf/, storage/, logs/
    dc: str
    pid: int
    env: Mapping[str, str] = field(repr=False, default_factory=dict)

    @property
    def where(self) -> str:
        return f"scratch cassandra {self.address}:{self.ports.native}"

    @property
    def conf(self) -> Path:
        return self.base / "conf"

    @property
    def data(self) -> Path:
        """The node's one data directory: ``<keyspace>/<table>-<id>/``."""
        return self.base / "storage" / "data"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def nodetool_path(self) -> Path:
        return self.home / "bin" / "nodetool"

    @property
    def settings(self) -> CassandraSettings:
        return CassandraSettings(hosts=(self.address,), port=self.ports.native,
                                 local_dc=self.dc)

    def nodetool(self, *args: str, timeout: float = NODETOOL_TIMEOUT_S
                 ) -> subprocess.CompletedProcess[str]:
        """``nodetool ARGS`` against this node (not checked: the caller reads the code)."""
        return subprocess.run([str(self.nodetool_path), *args], env=dict(self.env),
                              capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _listening(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((address, port)) == 0


def unpack_dist(dist: Path, into: Path) -> Path:
    """The distribution's home: ``dist`` itself when it is a directory, else the
    ``apache-cassandra-*`` directory of the tarball ``dist`` unpacked into ``into``."""
    dist = dist.resolve() if dist.is_symlink() else dist
    if dist.is_dir():
        if not (dist / "bin" / "cassandra").is_file():
            raise FuretError(f"{dist}: not a Cassandra distribution (no bin/cassandra); "
                             "give an unpacked one or its tarball (make cassandra-dist)")
        return dist
    if not dist.is_file():
        raise FuretError(f"{dist}: no Cassandra distribution there (the cassandra role "
                         "installs one in /opt/cassandra; make cassandra-dist builds its "
                         "tarball in .cache/cassandra)")
    try:
        with tarfile.open(dist) as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise FuretError(f"{dist}: cannot unpack the Cassandra distribution: {exc}") from None
    homes = [p for p in into.iterdir() if p.name.startswith("apache-cassandra-")]
    if len(homes) != 1 or not (homes[0] / "bin" / "cassandra").is_file():
        raise FuretError(f"{dist}: not a Cassandra distribution tarball (no "
                         "apache-cassandra-*/bin/cassandra inside)")
    return homes[0]


def node_yaml(base: dict[str, Any], address: str, ports: Ports, storage: Path,
              cluster_name: str, num_tokens: int,
              extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The distribution's cassandra.yaml made a single node's on ``address``."""
    cfg = dict(base)
    cfg.pop("allocate_tokens_for_local_replication_factor", None)
    cfg.update({
        "cluster_name": cluster_name, "num_tokens": num_tokens,
        "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
        "storage_compatibility_mode": "NONE",
        "data_file_directories": [str(storage / "data")],
        "commitlog_directory": str(storage / "commitlog"),
        "saved_caches_directory": str(storage / "saved_caches"),
        "hints_directory": str(storage / "hints"), "cdc_raw_directory": str(storage / "cdc"),
        "seed_provider": [{"class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                           "parameters": [{"seeds": f"{address}:{ports.storage}"}]}],
        "listen_address": address, "rpc_address": address,
        "storage_port": ports.storage, "native_transport_port": ports.native,
        "start_native_transport": True,
        "endpoint_snitch": "GossipingPropertyFileSnitch", "auto_snapshot": False,
        "authenticator": "AllowAllAuthenticator", "authorizer": "AllowAllAuthorizer",
        "commitlog_sync": "periodic", "commitlog_sync_period": "10000ms",
    })
    cfg.update(extra or {})
    return cfg


def _last_error(logs: Path) -> str:
    """The last ERROR (or exception) line of the node's logs, for a failed start."""
    found = ""
    for name in ("system.log", "stdout.log"):
        with contextlib.suppress(OSError):
            for text in (logs / name).read_text(errors="replace").splitlines():
                if " ERROR " in text or "Exception" in text:
                    found = text.strip()
        if found:
            return found[:400]
    return "no ERROR line in its logs"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the JVM and nothing else
        proc.wait(30)


@contextlib.contextmanager
def scratch_cassandra(dist: Path | str = DEFAULT_DIST, *, address: str = "127.0.0.1",
                      ports: Ports | None = None, workdir: Path | str | None = None,
                      keep_dir: Path | None = None, cluster_name: str = "furet-restore",
                      dc: str = "scratch", num_tokens: int = 4, heap: str = HEAP,
                      settings: Mapping[str, Any] | None = None,
                      jvm_options: Sequence[str] = (QUICK_START,)) -> Iterator[CassandraNode]:
    """A running node (see the module docstring), stopped and removed on exit.

    ``workdir``: where its temporary working directory is made (default: the system's);
    ``keep_dir``: a directory to use as is and keep (the integration tests' node, for its
    logs). ``settings``: more cassandra.yaml settings, over the scratch ones."""
    if keep_dir is not None:
        base = keep_dir
        base.mkdir(parents=True, exist_ok=True)
    else:
        base = Path(tempfile.mkdtemp(prefix="furet-cassandra-", dir=workdir))
    proc: subprocess.Popen[bytes] | None = None
    try:
        home = unpack_dist(Path(dist), base)
        ports = ports or Ports.free(address)
        for port in (ports.native, ports.storage, ports.jmx):
            if _listening(address, port):
                raise FuretError(f"scratch cassandra: {address}:{port} is in use (another "
                                 "node or restore test?)")
        conf, storage, logs = base / "conf", base / "storage", base / "logs"
        shutil.copytree(home / "conf", conf, dirs_exist_ok=True)
        logs.mkdir(exist_ok=True)
        original = yaml.safe_load((conf / "cassandra.yaml").read_text()) or {}
        (conf / "cassandra.yaml").write_text(yaml.safe_dump(
            node_yaml(original, address, ports, storage, cluster_name, num_tokens, settings),
            sort_keys=False))
        (conf / "cassandra-rackdc.properties").write_text(f"dc={dc}\nrack=rack1\n")
        env = dict(os.environ, CASSANDRA_CONF=str(conf), CASSANDRA_LOG_DIR=str(logs),
                   CASSANDRA_STORAGE_DIR=str(storage), CASSANDRA_HEAP=heap,
                   JMX_HOST=address, JMX_PORT=str(ports.jmx),
                   JVM_EXTRA_OPTS=" ".join(jvm_options))
        cmd = [str(home / "bin" / "cassandra"), "-f", "-p", str(base / "cassandra.pid")]
        if os.geteuid() == 0:
            cmd.append("-R")
        with (logs / "stdout.log").open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        node = CassandraNode(address, ports, home, base, dc, proc.pid, env)
        _wait_ready(proc, node)
        yield node
    finally:
        if proc is not None:
            _stop(proc)
        if keep_dir is None:
            shutil.rmtree(base, ignore_errors=True)


def _wait_ready(proc: subprocess.Popen[bytes], node: CassandraNode) -> None:
    """Until the CQL port answers; one line naming the node and its last ERROR if it exits
    or takes longer than :data:`START_TIMEOUT_S`."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _listening(node.address, node.ports.native):
        if proc.poll() is not None:
            raise FuretError(f"{node.where} exited ({proc.returncode}) while starting: "
                             f"{_last_error(node.logs)}")
        if time.monotonic() > deadline:
            raise FuretError(f"{node.where} not ready after {START_TIMEOUT_S}s: "
                             f"{_last_error(node.logs)}")
        time.sleep(0.5)
