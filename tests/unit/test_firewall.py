"""The firewall role (roles/firewall), on the controller only: no host is contacted.

playbooks/firewall_render.yml renders each host's /etc/nftables.conf of the lab and of the
example production inventory; the tests read which source reaches which port on each host,
and the real ``nft`` (Debian's, fetched with ``apt-get download`` into .cache/nft, never
installed) checks every ruleset inside a private network namespace (``unshare -n``), so
nothing is loaded into this machine's own firewall.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, PlaybookRun, load_file_module, run_playbook

PRODUCTION = REPO / "inventories/production"
NFT_CACHE = REPO / ".cache" / "nft"
NFT_PACKAGES = ("nftables", "libnftables1")
LAB_HOSTS = ("legacy1", "galera1", "galera2", "galera3", "cassandra1", "cassandra2",
             "cassandra3", "etl1", "app1", "backup1")
CONTROLLER = "10.213.0.1"
GALERA = ("10.213.0.21", "10.213.0.22", "10.213.0.23")
CASSANDRA = ("10.213.0.31", "10.213.0.32", "10.213.0.33")
LEGACY, ETL, APP, BACKUP = "10.213.0.11", "10.213.0.41", "10.213.0.51", "10.213.0.61"
EVERYONE = (CONTROLLER, LEGACY, *GALERA, *CASSANDRA, ETL, APP, BACKUP, "10.213.0.99",
            "192.0.2.7")


# --- reading a rendered ruleset -------------------------------------------------------------

_SET = re.compile(r"set (?P<name>\w+) \{(?P<body>(?:[^{}]|\{[^{}]*\})*)\}")
_ELEMENTS = re.compile(r"elements = \{ (?P<items>[^}]*) \}")
_RULE = re.compile(r"^\s*(?P<proto>tcp|udp) dport (?P<ports>\d+|\{ [\d, ]+ \}) "
                   r"ip6? saddr @(?P<set>\w+) accept", re.M)
_REFUSED = re.compile(r"^\s*tcp dport \{ (?P<ports>[\d, ]+) \} counter reject with tcp reset",
                      re.M)


@dataclass
class Ruleset:
    text: str
    sets: dict[str, list[str]]
    rules: list[tuple[str, int, str]]          # (proto, port, set name)
    refused: set[int]

    @classmethod
    def parse(cls, text: str) -> Ruleset:
        sets = {}
        for match in _SET.finditer(text):
            elements = _ELEMENTS.search(match["body"])
            sets[match["name"]] = elements["items"].split(", ") if elements else []
        rules = [(m["proto"], int(port), m["set"]) for m in _RULE.finditer(text)
                 for port in re.findall(r"\d+", m["ports"])]
        refused = _REFUSED.search(text)
        return cls(text, sets, rules,
                   {int(p) for p in refused["ports"].split(", ")} if refused else set())

    def ports(self) -> set[tuple[str, int]]:
        return {(proto, port) for proto, port, _ in self.rules}

    def reaches(self, source: str, port: int, proto: str = "tcp") -> bool:
        address = ipaddress.ip_address(source)
        return any(address in ipaddress.ip_network(element)
                   for p, n, name in self.rules if (p, n) == (proto, port)
                   for element in self.sets[name])

    def sources(self, port: int, proto: str = "tcp") -> set[str]:
        """Which of EVERYONE the ruleset lets in on ``port``."""
        return {s for s in EVERYONE if self.reaches(s, port, proto)}


def _render(tmp_path: Path, *args: str, inventory: Path | None = None) -> PlaybookRun:
    return run_playbook("firewall_render.yml", "-e", f"firewall_render_dir={tmp_path / 'nft'}",
                        *args, inventory=inventory)


def _rulesets(tmp_path: Path) -> dict[str, Ruleset]:
    return {p.stem: Ruleset.parse(p.read_text()) for p in sorted((tmp_path / "nft").glob("*.nft"))}


def _production(tmp_path: Path) -> Path:
    """A copy of the example production inventory (no vault.yml: the firewall needs none)."""
    root = tmp_path / "production"
    shutil.copytree(PRODUCTION, root)
    return root / "hosts.yml"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ruleset]:
    tmp_path = tmp_path_factory.mktemp("lab")
    run = _render(tmp_path)
    assert run.returncode == 0, run.output[-4000:]
    return _rulesets(tmp_path)


# --- the port matrix of the lab ----------------------------------------------------------

def test_every_lab_host_gets_a_ruleset_that_replaces_furets_table_only(
        lab: dict[str, Ruleset]) -> None:
    assert sorted(lab) == sorted(LAB_HOSTS)
    for host, rules in lab.items():
        head = rules.text.index("table inet furet {")
        assert rules.text.index("table inet furet\ndelete table inet furet\n") < head, host
        code = [line for line in rules.text.splitlines() if not line.lstrip().startswith("#")]
        assert not [line for line in code if "flush" in line], host
        assert "elements = { }" not in rules.text, host          # a syntax error in nft
        assert "policy drop;" in rules.text, host
        # the running SSH session survives: established traffic is accepted first
        chain = rules.text[rules.text.index("chain input"):]
        assert chain.index("ct state established,related accept") < chain.index("dport"), host
        assert rules.sources(22) == {CONTROLLER} | ({BACKUP} if host[:-1] in
                                                     ("galera", "cassandra") else set()), host
        # local-only services are never opened
        assert not rules.ports() & {("tcp", 7199), ("tcp", 8404)}, host
        # every service port of the host is refused at once (RST) to anyone else
        assert rules.refused == {p for proto, p in rules.ports() if proto == "tcp"} - {22}, host


def test_galera_peers_only_reach_the_galera_ports(lab: dict[str, Ruleset]) -> None:
    for host in ("galera1", "galera2", "galera3"):
        rules = lab[host]
        for port in (4567, 4568, 4444):
            assert rules.sources(port) == set(GALERA), (host, port)
        assert rules.sources(3306) == {CONTROLLER, ETL, APP, BACKUP}, host
        assert rules.sources(9200) == {ETL, APP}, host          # the HAProxy hosts' checks
        assert rules.ports() == {("tcp", p) for p in (22, 3306, 4444, 4567, 4568, 9200)}, host


def test_cassandra_native_port_is_open_to_etl_backup_and_controller_not_app(
        lab: dict[str, Ruleset]) -> None:
    for host in ("cassandra1", "cassandra2", "cassandra3"):
        rules = lab[host]
        assert rules.sources(9042) == {ETL, BACKUP, CONTROLLER}, host
        assert not rules.reaches(APP, 9042), host
        # internode: the peers, and the ETL host's streamed SSTables (bulk_load SSTABLE)
        assert rules.sources(7000) == set(CASSANDRA) | {ETL}, host
        assert rules.ports() == {("tcp", 22), ("tcp", 7000), ("tcp", 9042)}, host


def test_etl_endpoint_legacy_and_backup_hosts(lab: dict[str, Ruleset]) -> None:
    # etl1: HAProxy for the backup host's ledger, and the lab's time server (chrony)
    assert lab["etl1"].sources(3306) == {BACKUP, CONTROLLER}
    assert lab["etl1"].sources(123, "udp") == set(EVERYONE) - {"192.0.2.7"}
    assert lab["etl1"].ports() == {("tcp", 22), ("tcp", 3306), ("udp", 123)}
    # app1: the endpoint, for the web app on app1 itself (web_app) and the controller
    assert lab["app1"].sources(3306) == {APP, CONTROLLER}
    assert lab["app1"].ports() == {("tcp", 22), ("tcp", 3306)}
    # legacy1 (managed in the lab): the ETL, the endpoint and the backup host
    assert lab["legacy1"].sources(3306) == {ETL, APP, BACKUP, CONTROLLER}
    assert not lab["legacy1"].reaches(GALERA[0], 3306)
    # backup1 serves nothing but SSH to the management networks
    assert lab["backup1"].ports() == {("tcp", 22)}
    assert lab["backup1"].refused == set()


# --- production example, overlaps and the real nft -----------------------------------------

def test_production_example_renders_and_skips_an_unmanaged_legacy_master(tmp_path: Path) -> None:
    inventory = _production(tmp_path)
    # a client network that contains hosts of the inventory: nft refuses overlapping
    # intervals in one set, so the hosts inside 192.0.2.0/24 must be left out of it
    run = _render(tmp_path, "-e", json.dumps({"firewall_client_networks": ["192.0.2.0/24"]}),
                  inventory=inventory)
    assert run.returncode == 0, run.output[-4000:]
    rules = _rulesets(tmp_path)
    assert "mysql-master.rbx" not in rules        # legacy_mysql_manage_server: false
    assert len(rules) == 12
    galera = rules["mariadb1.rbx"]
    assert galera.sets["galera_clients_v4"] == ["192.0.2.0/24"]
    assert galera.sets["ssh_management_v4"] == ["203.0.113.0/28"]
    assert galera.sets["galera_peers_v4"] == ["192.0.2.21", "192.0.2.22", "198.51.100.23"]
    assert rules["app-endpoint1.rbx"].reaches("198.51.100.200", 3306)      # firewall_app_networks
    assert not rules["app-endpoint1.rbx"].reaches("198.51.100.23", 22)
    _nft_check(tmp_path / "nft")


def _nft() -> Path:
    """Debian's nft, extracted (never installed) under .cache/nft; skips when it cannot be."""
    binary = NFT_CACHE / "root/usr/sbin/nft"
    if not binary.exists():
        if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
            pytest.skip("no apt-get/dpkg here to fetch Debian's nftables")
        NFT_CACHE.mkdir(parents=True, exist_ok=True)
        got = subprocess.run(["apt-get", "download", *NFT_PACKAGES], cwd=NFT_CACHE,
                             capture_output=True, text=True, timeout=300, check=False)
        if got.returncode != 0:
            pytest.skip(f"apt-get download {' '.join(NFT_PACKAGES)} failed (apt unreachable?): "
                        f"{got.stderr.strip().splitlines()[-1:]}")
        for deb in sorted(NFT_CACHE.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(NFT_CACHE / "root")], check=True,
                           timeout=60)
    missing = [line for line in subprocess.run(
        ["ldd", str(binary)], env=_nft_env(), capture_output=True, text=True, timeout=30,
        check=False).stdout.splitlines() if "not found" in line]
    if missing:
        pytest.skip(f"nft needs libraries this machine lacks: {missing}")
    if subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=30,
                      check=False).returncode != 0:
        pytest.skip("unshare -n is not permitted here (needs root or user namespaces)")
    return binary


def _nft_env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LD_LIBRARY_PATH": str(NFT_CACHE / "root/usr/lib/x86_64-linux-gnu")}


def _in_netns(script: str) -> subprocess.CompletedProcess[str]:
    """``script`` (sh) in a new, empty network namespace: nothing reaches this machine's."""
    return subprocess.run(["unshare", "-n", "sh", "-ec", script], env=_nft_env(),
                          capture_output=True, text=True, timeout=60, check=False)


def _nft_check(folder: Path) -> None:
    nft = _nft()
    for path in sorted(folder.glob("*.nft")):
        done = _in_netns(f"'{nft}' -c -f '{path}'")
        assert done.returncode == 0, f"{path.name}: {done.stderr}"


def test_every_lab_ruleset_passes_nft_and_loads_twice(tmp_path: Path) -> None:
    run = _render(tmp_path)
    assert run.returncode == 0, run.output[-4000:]
    _nft_check(tmp_path / "nft")
    nft, galera1 = _nft(), tmp_path / "nft" / "galera1.nft"
    # the file replaces furet's table: loaded twice (a re-run), one table, same rules
    done = _in_netns(f"'{nft}' -f '{galera1}'; '{nft}' -f '{galera1}'; '{nft}' list ruleset")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("table inet furet") == 1
    assert done.stdout.count("ip saddr @galera_peers_v4 accept") == 1
    assert "elements = { 10.213.0.21, 10.213.0.22, 10.213.0.23 }" in _flat(done.stdout)


# --- the preflight --------------------------------------------------------------------------

def _flat(output: str) -> str:
    return " ".join(output.split())


@pytest.mark.parametrize(("override", "expected"), [
    ({"firewall_management_networks": []},
     "host mariadb1.rbx: firewall_management_networks is empty"),
    ({"firewall_client_networks": ["10.0.0.0/8", "bastion"]},
     "host mariadb1.rbx: firewall_client_networks holds bastion, which is not an IP address"),
    ({"firewall_app_networks": []},
     "host app-endpoint1.rbx: firewall_app_networks is empty and the inventory has no web_app"),
])
def test_preflight_refuses_naming_the_host_and_the_variable(
        tmp_path: Path, override: dict, expected: str) -> None:
    run = _render(tmp_path, "-e", json.dumps(override), inventory=_production(tmp_path))
    assert run.returncode != 0
    assert expected in _flat(run.output), run.output[-3000:]
    refused = expected.split(":")[0].removeprefix("host ")
    assert not (tmp_path / "nft" / f"{refused}.nft").exists()


def test_preflight_refuses_a_host_without_an_ip_address(tmp_path: Path) -> None:
    inventory = _production(tmp_path)
    hosts = yaml.safe_load(inventory.read_text())
    hosts["all"]["children"]["etl"]["hosts"]["etl1.rbx"]["ansible_host"] = "etl1.example.net"
    inventory.write_text(yaml.safe_dump(hosts))
    run = _render(tmp_path, inventory=inventory)
    assert run.returncode != 0
    assert ("host etl1.rbx: 'etl1.example.net' is not an IP address" in _flat(run.output)
            and "set firewall_addresses" in _flat(run.output)), run.output[-3000:]


def _preflight_only(tmp_path: Path, inventory: Path, *args: str) -> PlaybookRun:
    """The role's entry point preflight alone (playbooks/preflight.yml would also want the
    production vault). Its filters are those beside furet's playbooks."""
    (tmp_path / "filter_plugins").symlink_to(REPO / "playbooks" / "filter_plugins")
    playbook = tmp_path / "firewall_preflight.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Firewall preflight", "hosts": "all", "gather_facts": False,
        "tasks": [{"name": "Preflight of the role", "ansible.builtin.include_role": {
            "name": "firewall", "tasks_from": "preflight"}}]}]))
    return run_playbook(str(playbook), *args, inventory=inventory)


@pytest.mark.parametrize(("args", "refused"), [
    ((), True),
    (("-e", "firewall_enabled=false"), False),
], ids=["some_host_has_the_firewall", "no_host_has_the_firewall"])
def test_source_addresses_are_checked_when_any_host_has_the_firewall(
        tmp_path: Path, args: tuple[str, ...], refused: bool) -> None:
    """The check of every host's addresses runs once for the play, whatever the first host
    says: in the example production inventory that is mysql-master.rbx, whose firewall is
    off (an unmanaged legacy master). With no firewall anywhere, nothing needs them."""
    inventory = _production(tmp_path)
    hosts = yaml.safe_load(inventory.read_text())
    assert next(iter(hosts["all"]["children"]["legacy_mysql"]["hosts"])) == "mysql-master.rbx"
    hosts["all"]["children"]["etl"]["hosts"]["etl1.rbx"]["ansible_host"] = "etl1.example.net"
    inventory.write_text(yaml.safe_dump(hosts, sort_keys=False))     # mysql-master.rbx first
    run = _preflight_only(tmp_path, inventory, *args)
    assert (run.returncode != 0) == refused, run.output[-3000:]
    assert ("host etl1.rbx: 'etl1.example.net' is not an IP address"
            in _flat(run.output)) == refused, run.output[-3000:]


def test_the_lab_passes_the_preflight_playbook_which_runs_the_firewall_checks() -> None:
    run = run_playbook("preflight.yml")
    assert run.returncode == 0, run.output[-3000:]
    assert "firewall : Preflight | firewall_management_networks is set" in run.output


# --- the controller's address, the wiring, the lab containers --------------------------------

def _filters() -> dict:
    module = load_file_module("furet_network", "playbooks/filter_plugins/furet_network.py")
    return module.FilterModule().filters()


def test_controller_address_in_management_networks() -> None:
    filters = _filters()
    furet_ip_in_networks, furet_nft_elements = (filters["furet_ip_in_networks"],
                                                filters["furet_nft_elements"])

    assert furet_ip_in_networks("10.213.0.1", ["10.213.0.1/32"])
    assert furet_ip_in_networks("::ffff:10.213.0.1", ["10.213.0.0/24"])  # as sshd may show it
    assert not furet_ip_in_networks("10.213.0.2", ["10.213.0.1/32", "2001:db8::/32"])
    assert not furet_ip_in_networks("", ["0.0.0.0/0"])
    assert furet_nft_elements(["10.0.0.5", "10.0.0.0/24", "10.0.1.1", "2001:db8::1",
                               "10.0.0.0/24"], 4) == ["10.0.0.0/24", "10.0.1.1"]
    assert furet_nft_elements(["10.0.0.5", "2001:db8::/64", "2001:db8::1"], 6) == \
        ["2001:db8::/64"]


def test_site_applies_the_firewall_after_common_and_the_lab_hosts_may_load_it() -> None:
    from migration.lab.lifecycle import RUN_OPTIONS

    site = [p["ansible.builtin.import_playbook"]
            for p in yaml.safe_load((REPO / "playbooks/site.yml").read_text())]
    assert site.index("firewall.yml") == site.index("common.yml") + 1
    assert "--cap-add=NET_ADMIN" in RUN_OPTIONS          # else nft: Operation not permitted
    apply = (REPO / "roles/firewall/tasks/apply.yml").read_text()
    # armed before loading, confirmed by a NEW connection, disarmed after it
    order = [apply.index(s) for s in ("systemd-run", "nft -f", "meta: reset_connection",
                                      "wait_for_connection")] + [apply.rindex("systemctl stop")]
    assert order == sorted(order)
