"""What the benchmarks need of the lab: its hosts, the lab-only passwords of its inventory,
and furet run on etl1 over SSH exactly as `fab` runs it."""

from __future__ import annotations

import json
import os
import re
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from migration.config import DbSettings
from migration.fabric_tasks import furet_command
from migration.inventory import InventoryHost
from migration.lab.config import GALERA_SERVICE_NAME, lab_ca_file, load_lab_config
from migration.lab.podman import Podman
from migration.remote import connection_for, select_hosts

REPO = Path(__file__).resolve().parent.parent
INVENTORY = REPO / "inventories" / "lab" / "hosts.yml"
GROUP_VARS = REPO / "inventories" / "lab" / "group_vars"


def lab_var(group: str, name: str) -> Any:
    """A variable of the lab inventory's group_vars (LAB ONLY passwords live there)."""
    return yaml.safe_load((GROUP_VARS / f"{group}.yml").read_text())[name]


def host(name: str) -> InventoryHost:
    return select_hosts(INVENTORY, [name])[0]


@dataclass(frozen=True)
class LabEndpoints:
    legacy: DbSettings          # legacy1, furet's account
    target: DbSettings          # HAProxy on etl1 -> the Galera writer
    cassandra_hosts: list[str]
    cassandra_user: str
    cassandra_password: str
    cassandra_dc: str           # etl1's data centre: the ring's local DC for clients


def endpoints() -> LabEndpoints:
    return LabEndpoints(
        legacy=DbSettings("legacy", host("legacy1").address, 3306, "furet",
                          lab_var("etl", "etl_runner_legacy_password"),
                          ssl_ca=str(lab_ca_file())),
        target=DbSettings("target", host("etl1").address, 3306, "furet",
                          lab_var("etl", "etl_runner_target_password"),
                          ssl_ca=str(lab_ca_file()), ssl_server_name=GALERA_SERVICE_NAME),
        cassandra_hosts=[h.address for h in select_hosts(INVENTORY, ["cassandra"])],
        cassandra_user="furet",
        cassandra_password=lab_var("etl", "etl_runner_cassandra_password"),
        cassandra_dc=str(host("etl1").variables.get("dc", "")))


@dataclass
class RemoteRun:
    args: list[str]
    stdout: str
    seconds: float
    peak_rss_mib: float

    def json(self) -> Any:
        return json.loads(self.stdout)


# furet's peak resident memory, as the kernel counts it for a child that has exited
# (getrusage RUSAGE_CHILDREN, ru_maxrss in KiB on Linux): the python3 of etl1 runs furet
# and prints it after furet's own output, on a line of its own.
_RSS_MARK = "furet-bench-peak-rss-kib "
_PEAK_RSS = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
             "print('\\n" + _RSS_MARK + "%d' % resource.getrusage(resource.RUSAGE_CHILDREN)"
             ".ru_maxrss, flush=True); sys.exit(rc)")


def furet_on_etl1(*args: str, ok_exits: tuple[int, ...] = (0,)) -> RemoteRun:
    """``furet ARGS`` on etl1 with its /etc/furet/furet.yml; stderr (progress lines) streams
    here live, stdout is returned, with furet's peak RSS. Fails loudly with the remote
    error."""
    started = time.monotonic()
    command = f"python3 -c {shlex.quote(_PEAK_RSS)} {furet_command(list(args))}"
    with connection_for(host("etl1")) as conn:
        result = conn.run(command, hide="out", warn=True, pty=False, err_stream=sys.stderr)
    seconds = time.monotonic() - started
    stdout, _, rss = result.stdout.rpartition(_RSS_MARK)
    if result.exited not in ok_exits or not rss.strip().isdigit():
        raise SystemExit(f"bench: furet {' '.join(args)} on etl1 failed "
                         f"(exit {result.exited}):\n{result.stdout[-2000:]}")
    return RemoteRun(list(args), stdout, seconds, round(int(rss) / 1024, 1))


_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def go_duration(text: str) -> float:
    """Seconds of a Go duration as podman prints it (``1m2.5s``, ``350ms``)."""
    return sum(float(n) * _GO_UNITS[u] for n, u in _GO_DURATION.findall(text))


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each lab host (its container, as podman counts it) and by
    the client tools this process ran (``controller``: the baselines' mysqldump, mysql,
    myloader, dsbulk, pt-table-sync run on the build machine, beside the lab)."""
    config = load_lab_config(REPO)
    stats = Podman(config.containers_conf).run("stats", "--no-stream", "--format", "json")
    out = {}
    for entry in json.loads(stats.stdout or "[]"):
        name = str(entry.get("name", ""))
        if name.startswith(config.container_prefix):
            out[name[len(config.container_prefix):]] = go_duration(str(entry["cpu_time"]))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["controller"] = children.ru_utime + children.ru_stime
    return out


# The JIT compilers' threads of a HotSpot JVM, as /proc names them (cut at 15 characters).
JIT_THREADS = ("C1 CompilerThre", "C2 CompilerThre")
# Each node's JVM: the cassandra unit's main process; its own /proc/<pid>/stat (every
# thread's CPU, exited ones included), then each of its threads' (a thread may end between
# the listing and its read: the others are read all the same).
_JVM_STAT = ('pid=$(systemctl show -p MainPID --value cassandra) && cat /proc/$pid/stat '
             '&& cat /proc/$pid/task/*/stat 2>/dev/null')


@dataclass(frozen=True)
class JvmCpu:
    """A Cassandra node's JVM at one moment: its CPU seconds so far, and its JIT compiler
    threads' (by thread id: HotSpot may start and stop compiler threads)."""

    pid: int
    seconds: float
    compilers: dict[int, float]


def parse_jvm_stat(text: str, ticks_per_s: float) -> JvmCpu:
    """A :class:`JvmCpu` from the process's stat line then its threads' (``_JVM_STAT``)."""
    lines = [line for line in text.splitlines() if line.strip()]

    def fields(line: str) -> tuple[int, str, float]:
        name = line[line.index("(") + 1:line.rindex(")")]
        rest = line[line.rindex(")") + 2:].split()   # state is field 3: utime 14, stime 15
        return int(line.split(" ", 1)[0]), name, (int(rest[11]) + int(rest[12])) / ticks_per_s

    pid, _, seconds = fields(lines[0])
    compilers = {tid: s for tid, name, s in map(fields, lines[1:]) if name in JIT_THREADS}
    return JvmCpu(pid, seconds, compilers)


def on_cassandra_nodes(*command: str, check: bool = True
                       ) -> dict[str, subprocess.CompletedProcess[str]]:
    """``command`` run on each Cassandra node of the lab (``podman exec``), by node."""
    config = load_lab_config(REPO)
    podman = Podman(config.containers_conf)
    return {h.name: podman.run("exec", config.container_prefix + h.name, *command,
                               check=check)
            for h in select_hosts(INVENTORY, ["cassandra"])}


def ring_jvm_cpu() -> dict[str, JvmCpu]:
    """Each Cassandra node's :class:`JvmCpu`, read on the node."""
    ticks = float(os.sysconf("SC_CLK_TCK"))   # the kernel's, which the containers share
    out = {}
    # check=False: the read exits non-zero when a thread ended before its own read
    # (_JVM_STAT); the other threads are there. Nothing read at all is the error below.
    for node, read in on_cassandra_nodes("sh", "-c", _JVM_STAT, check=False).items():
        if not read.stdout.strip():
            raise SystemExit(f"bench: {node}: the Cassandra JVM's CPU could not be read "
                             f"(is cassandra running?): {read.stderr.strip()[:300]}")
        out[node] = parse_jvm_stat(read.stdout, ticks)
    return out


def jit_seconds(before: dict[str, JvmCpu], after: dict[str, JvmCpu]) -> tuple[float, float]:
    """CPU seconds the ring's JIT compilers used between two readings, and its JVMs' in
    all; a node whose JVM restarted in between counts from zero."""
    jit = total = 0.0
    for node, now in after.items():
        then = before.get(node)
        if then is None or then.pid != now.pid:
            then = JvmCpu(now.pid, 0.0, {})
        total += now.seconds - then.seconds
        jit += sum(s - then.compilers.get(tid, 0.0) for tid, s in now.compilers.items())
    return jit, total


def settle_cassandra(timeout: float = 900.0) -> float:
    """Wait until no Cassandra node has compactions pending (the previous load's), so that
    a measure does not pay for the one before it; the seconds waited."""
    started = time.monotonic()
    while True:
        pending = 0
        for node, run in on_cassandra_nodes("nodetool", "compactionstats").items():
            stats = run.stdout
            match = re.search(r"pending tasks:?\s+(\d+)", stats)
            if match is None:
                raise SystemExit(f"bench: {node}: no 'pending tasks' in nodetool "
                                 f"compactionstats: {stats[:300]}")
            pending += int(match.group(1))
        waited = time.monotonic() - started
        if pending == 0:
            return waited
        if waited > timeout:
            print(f"bench: {pending} compactions still pending after {waited:.0f} s; "
                  "measuring anyway", file=sys.stderr)
            return waited
        time.sleep(5)


def put_text(name: str, path: str, text: str) -> None:
    """Write ``text`` to ``path`` on lab host ``name`` (mode 0644)."""
    import io

    with connection_for(host(name)) as conn:
        conn.put(io.BytesIO(text.encode("utf-8")), remote=path)
        conn.run(f"chmod 0644 {path}", hide=True)
