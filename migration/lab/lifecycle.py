"""Bring the lab up, down, and report on it.

``up`` is idempotent and recovers from stale state: a lab container that is not running,
runs an older image, or no longer answers (its processes were killed under it) is removed
and recreated; healthy ones are kept. ``down`` removes only the lab's own containers (by
the names it gave them) and its own network.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from tenacity import (
    RetryError,
    Retrying,
    retry,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_fixed,
)

from migration.errors import FuretError
from migration.inventory import InventoryHost
from migration.lab.config import DEFAULT_SUITE, LabConfig
from migration.lab.image import ensure_image, recipe_hash
from migration.lab.podman import Podman
from migration.lab.sshkey import ensure_lab_key

Say = Callable[[str], None]
RECIPE_LABEL = "furet.lab.recipe"
# CAP_SYS_ADMIN lets systemd inside a host set up the sandboxing of packaged units
# (ProtectSystem, PrivateTmp: haproxy, mariadb) as it does on a real server. CAP_NET_ADMIN
# lets the firewall role load its nftables ruleset in the host's own network namespace
# (without it `nft` fails with "Operation not permitted"). A change here recreates the hosts.
RUN_OPTIONS = ("--systemd=always", "--cap-add=SYS_ADMIN", "--cap-add=NET_ADMIN")


@dataclass(frozen=True)
class HostStatus:
    host: str
    container: str
    address: str
    groups: str
    state: str       # podman state, or "absent"
    ssh: str         # the hostname answered over SSH, or why not


@contextmanager
def _lab_lock(config: LabConfig) -> Iterator[None]:
    """One lab operation at a time on this machine (two `lab up` would race)."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    with open(config.state_dir / "lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise FuretError("another lab operation is running (lock .cache/lab/lock)") from exc
        yield


def ssh_hostname(config: LabConfig, host: InventoryHost, timeout: int = 3) -> str | None:
    """The host name answered over SSH with the lab key, or None."""
    cmd = [
        "ssh", "-i", str(host.key_file), "-p", str(host.port),
        "-o", "BatchMode=yes", "-o", f"ConnectTimeout={timeout}",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", f"{host.user}@{host.address}", "hostname",
    ]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5)
    except subprocess.TimeoutExpired:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _container_spec(config: LabConfig, suite: str = DEFAULT_SUITE) -> str:
    """What a lab container is made of: the image recipe (and suite) and the run options."""
    spec = f"{recipe_hash(config)}-{hashlib.sha256(' '.join(RUN_OPTIONS).encode()).hexdigest()[:6]}"
    return spec if suite == DEFAULT_SUITE else f"{spec}-{suite}"


def _ensure_network(config: LabConfig, podman: Podman, say: Say) -> None:
    info = podman.inspect("network", config.network)
    if info is not None:
        subnets = [s.get("subnet") for s in info.get("subnets", [])]
        if config.subnet in subnets:
            return
        say(f"network {config.network} has subnets {subnets}, not {config.subnet}: recreating")
        podman.run("network", "rm", config.network)
    podman.run("network", "create", "--subnet", config.subnet, "--gateway", config.gateway,
               "--label", "furet.lab=1", config.network)
    say(f"network {config.network} created ({config.subnet})")


def _container_is_healthy(config: LabConfig, podman: Podman, name: str, recipe: str) -> str:
    """'' when the container can be kept, else the reason to recreate it."""
    info = podman.inspect("container", name)
    if info is None:
        return "absent"
    state = info.get("State", {}).get("Status", "unknown")
    if state != "running":
        return f"stale ({state})"
    labels = info.get("Config", {}).get("Labels") or {}
    if labels.get(RECIPE_LABEL) != recipe:
        return "runs an older image or older run options"
    probe = podman.run("exec", name, "systemctl", "is-system-running", check=False, timeout=15)
    if probe.stdout.strip() not in ("running", "degraded", "starting", "initializing"):
        return f"not answering (systemd: {probe.stdout.strip() or probe.stderr.strip()})"
    return ""


def _run_container(config: LabConfig, podman: Podman, host: InventoryHost, tag: str,
                   recipe: str, authorized_keys: str) -> None:
    add_hosts = [f"--add-host={h.name}:{h.address}" for h in config.hosts if h is not host]
    podman.run(
        "run", "--detach", "--name", config.container_name(host), "--hostname", host.name,
        "--network", config.network, "--ip", host.address, *RUN_OPTIONS,
        "--label", "furet.lab=1", "--label", f"{RECIPE_LABEL}={recipe}",
        "--volume", f"{authorized_keys}:/root/.ssh/authorized_keys:ro",
        *add_hosts, tag,
    )


def _wait_for_ssh(config: LabConfig, host: InventoryHost) -> None:
    @retry(stop=stop_after_delay(config.ssh_wait_seconds), wait=wait_fixed(0.5),
           retry=retry_if_result(lambda answer: answer != host.name))
    def probe() -> str | None:
        return ssh_hostname(config, host, timeout=2)

    try:
        probe()
    except RetryError as exc:
        raise FuretError(
            f"lab host {host.name} ({host.address}) did not answer over SSH within "
            f"{config.ssh_wait_seconds} s; see `podman logs {config.container_name(host)}`"
        ) from exc


def up(config: LabConfig, say: Say) -> float:
    """Start every lab host; return the seconds taken (image build excluded)."""
    podman = Podman(config.containers_conf)
    with _lab_lock(config):
        authorized_keys = ensure_lab_key(config.state_dir)
        tags = {suite: ensure_image(config, podman, say, suite)
                for suite in dict.fromkeys(config.suite(h) for h in config.hosts)}
        started = time.monotonic()
        _ensure_network(config, podman, say)
        created = []
        for host in config.hosts:
            name = config.container_name(host)
            suite = config.suite(host)
            recipe = _container_spec(config, suite)
            reason = _container_is_healthy(config, podman, name, recipe)
            if not reason:
                continue
            if reason != "absent":
                say(f"{host.name}: {reason}, recreating")
                remove_containers(podman, [name])
            _run_container(config, podman, host, tags[suite], recipe, str(authorized_keys))
            created.append(host.name)
        if created:
            say(f"started {len(created)} host(s): {', '.join(created)}")
        else:
            say("every lab host was already running")
        with ThreadPoolExecutor(max_workers=len(config.hosts)) as pool:
            list(pool.map(lambda h: _wait_for_ssh(config, h), config.hosts))
        elapsed = time.monotonic() - started
        say(f"{len(config.hosts)} hosts answer over SSH ({elapsed:.1f} s)")
        return elapsed


def remove_containers(podman: Podman, names: list[str], attempts: int = 3) -> None:
    """``podman rm --force`` of ``names``, again for those still there when it failed:
    podman fails a container that stops by itself between the end of its stop timeout and
    its SIGKILL ("container state improper: stopped"; a JVM's slow stop); stopped, it goes
    at the next try. The last failure is raised."""
    for attempt in Retrying(stop=stop_after_attempt(attempts), wait=wait_fixed(1),
                            retry=retry_if_exception_type(FuretError), reraise=True):
        with attempt:
            left = [n for n in names if podman.exists("container", n)]
            if left:
                podman.run("rm", "--force", "--time", "5", *left, timeout=120)


def down(config: LabConfig, say: Say) -> None:
    """Remove the lab's containers (by the names it gave them) and its network."""
    podman = Podman(config.containers_conf)
    with _lab_lock(config):
        names = [config.container_name(h) for h in config.hosts]
        present = [n for n in names if podman.exists("container", n)]
        if present:
            remove_containers(podman, present)
            say(f"removed {len(present)} container(s)")
        if podman.exists("network", config.network):
            podman.run("network", "rm", config.network)
            say(f"removed network {config.network}")
        if not present:
            say("no lab container was present")


def status(config: LabConfig) -> list[HostStatus]:
    podman = Podman(config.containers_conf)

    def one(host: InventoryHost) -> HostStatus:
        name = config.container_name(host)
        info = podman.inspect("container", name)
        state = info.get("State", {}).get("Status", "unknown") if info else "absent"
        answer = ssh_hostname(config, host) if state == "running" else None
        return HostStatus(host.name, name, host.address, ",".join(host.groups), state,
                          answer or "-")

    with ThreadPoolExecutor(max_workers=len(config.hosts)) as pool:
        return list(pool.map(one, config.hosts))
