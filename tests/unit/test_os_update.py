"""The os_update role's filters: apt's simulation, needrestart's batch output and the
shell-pattern exclusions, read as those tools print them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers import load_file_module

# apt-get --simulate --with-new-pkgs upgrade on a bookworm host (LC_ALL=C)
SIMULATION = """\
Reading package lists...
Building dependency tree...
Calculating upgrade...
The following packages will be upgraded:
  libssl3 openssl tzdata
Inst libssl3 [3.0.17-1~deb12u2] (3.0.17-1~deb12u3 Debian-Security:12/oldstable-security [amd64])
Inst openssl [3.0.17-1~deb12u2] (3.0.17-1~deb12u3 Debian-Security:12/oldstable-security [amd64]) []
Inst tzdata [2025b-0+deb12u1] (2025b-0+deb12u2 Debian:12.12/oldstable-updates [all])
Inst linux-image-6.1.0-41-amd64 (6.1.158-1 Debian-Security:12/oldstable-security [amd64])
Conf libssl3 (3.0.17-1~deb12u3 Debian-Security:12/oldstable-security [amd64])
"""


@pytest.fixture(scope="module")
def filters() -> dict[str, Callable[..., Any]]:
    module = load_file_module("os_update", "roles/os_update/filter_plugins/os_update.py")
    return module.FilterModule().filters()


def test_apt_simulation_lists_what_would_be_installed_and_from_where(filters) -> None:
    found = filters["apt_simulation"](SIMULATION.splitlines())
    assert [p["name"] for p in found] == ["libssl3", "openssl", "tzdata",
                                          "linux-image-6.1.0-41-amd64"]
    assert found[0] == {"name": "libssl3", "old": "3.0.17-1~deb12u2",
                        "version": "3.0.17-1~deb12u3",
                        "archive": "Debian-Security:12/oldstable-security"}
    assert found[2]["archive"] == "Debian:12.12/oldstable-updates"
    assert found[3]["old"] == "" and found[3]["version"] == "6.1.158-1"   # a new package
    assert filters["apt_simulation"](["Reading package lists...", ""]) == []


def test_needrestart_kernel_state_is_read_from_the_batch_lines(filters) -> None:
    batch = ("NEEDRESTART-VER: 3.6\nNEEDRESTART-KCUR: 6.1.0-40-amd64\n"
             "NEEDRESTART-KEXP: 6.1.0-41-amd64\nNEEDRESTART-KSTA: 3\n"
             "NEEDRESTART-SVC: cron.service\n")
    assert filters["needrestart_kernel"](batch) == 3
    # in a container (no kernel check) or needrestart not installed: unknown
    assert filters["needrestart_kernel"]("NEEDRESTART-VER: 3.6\n") == 0
    assert filters["needrestart_kernel"](None) == 0


def test_shell_patterns_leave_out_what_they_match(filters) -> None:
    names = ["libssl3", "mariadb-server", "libmariadb3", "galera-4", "openssl"]
    assert filters["fnmatch_reject"](names, ["mariadb-*", "libmariadb*", "galera-*"]) == [
        "libssl3", "openssl"]
    units = ["furet-clustercheck@12-10.213.0.21:9200-10.213.0.41:3278.service", "cron.service"]
    assert filters["fnmatch_reject"](units, ["furet-clustercheck@*.service"]) == ["cron.service"]
