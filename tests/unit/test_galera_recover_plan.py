"""The Galera recovery's bootstrap decision (roles/mariadb_galera/filter_plugins)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import load_file_module

CLUSTER = "5b62c586-ed9a-11f1-b178-8fd1fe1d7580"
OTHER = "9f1e0c2a-0000-11f1-8000-000000000001"
ZERO = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def plan():
    module = load_file_module("galera_recover",
                              "roles/mariadb_galera/filter_plugins/galera_recover.py")
    return module.FilterModule().filters()["galera_recover_plan"]


def row(host: str, seqno: int, uuid: str = CLUSTER, source: str = "grastate.dat",
        safe: bool = False) -> dict[str, Any]:
    return {"host": host, "uuid": uuid, "seqno": seqno, "source": source,
            "safe_to_bootstrap": safe}


def test_the_most_advanced_node_is_chosen_then_safe_to_bootstrap_then_the_name(plan) -> None:
    assert plan([row("galera1", 10), row("galera2", 12), row("galera3", 11)])["bootstrap"] \
        == "galera2"
    assert plan([row("galera1", 12), row("galera2", 12, safe=True),
                 row("galera3", 12)])["bootstrap"] == "galera2"
    assert plan([row("galera3", 12), row("galera1", 12), row("galera2", 12)])["bootstrap"] \
        == "galera1"


def test_a_node_caught_in_a_state_transfer_is_neither_another_cluster_nor_chosen(plan) -> None:
    # What a CI trial met: a node restarted by systemd was killed while it received an
    # SST; its grastate.dat says the zero UUID, and galera_recovery may still read a
    # (higher, stale) position from the data it was about to replace.
    found = plan([row("galera1", 40), row("galera2", 99, uuid=ZERO, source="wsrep-recover"),
                  row("galera3", -1, uuid=ZERO, source="unrecoverable")])
    assert found == {"bootstrap": "galera1", "error": "", "joining": ["galera2", "galera3"]}


def test_nodes_of_two_clusters_are_refused_naming_each_uuid_and_its_hosts(plan) -> None:
    found = plan([row("galera1", 5), row("galera2", 7, uuid=OTHER), row("galera3", 6)])
    assert found["bootstrap"] == ""
    assert f"{CLUSTER}: galera1, galera3" in found["error"]
    assert f"{OTHER}: galera2" in found["error"]
    assert found["error"].endswith("recover by hand")


def test_no_node_with_a_state_is_refused(plan) -> None:
    found = plan([row(h, -1, uuid=ZERO) for h in ("galera1", "galera2", "galera3")])
    assert found["bootstrap"] == ""
    assert "no node holds a cluster state" in found["error"]
    assert "galera1, galera2, galera3" in found["error"]


def test_an_unrecoverable_most_advanced_position_is_refused(plan) -> None:
    found = plan([row("galera1", -1, source="unrecoverable"),
                  row("galera2", -1, source="unrecoverable")])
    assert found["bootstrap"] == ""
    assert "galera_recovery failed on galera1, galera2" in found["error"]
    # one recoverable node is enough: it is the most advanced known position
    assert plan([row("galera1", -1, source="unrecoverable"),
                 row("galera2", 3, source="wsrep-recover")])["bootstrap"] == "galera2"
