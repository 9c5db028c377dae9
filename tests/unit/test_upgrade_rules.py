"""migration/upgrade.py: which upgrades furet runs and which it refuses, each refusal one
line with its reason."""

from __future__ import annotations

import pytest

from migration.errors import FuretError
from migration.upgrade import Version, plan_cassandra_upgrade, refuse_mixed_versions

RING = {"cassandra1": ("5.0.8", "rbx"), "cassandra2": ("5.0.8", "rbx"),
        "cassandra3": ("5.0.8", "gra")}


def test_versions_read_as_the_tools_print_them_and_order_pre_releases_first() -> None:
    assert Version.parse("ReleaseVersion: 5.0.9") == Version.parse("5.0.9")
    assert Version.parse("10.11.6-MariaDB-0+deb12u1").major == 10
    assert Version.parse("5.0") == Version.parse("5.0.0")
    assert Version.parse("5.0.0-rc1") < Version.parse("5.0.0") < Version.parse("5.0.1")
    assert Version.parse("5.0-alpha2") < Version.parse("5.0-beta1") < Version.parse("5.0-rc1")
    assert Version.parse("6.0.0-alpha2").prerelease
    with pytest.raises(FuretError, match="'latest' is not a version number"):
        Version.parse("latest")


def test_a_patch_upgrade_goes_dc_by_dc_in_the_order_given() -> None:
    plan = plan_cassandra_upgrade(RING, "5.0.9", ["gra", "rbx"])
    assert plan.order == ("cassandra3", "cassandra1", "cassandra2")
    assert not plan.major_change and plan.storage_compatibility == ()
    assert plan_cassandra_upgrade(RING, "5.0.9").order == ("cassandra1", "cassandra2",
                                                           "cassandra3")


def test_a_resumed_upgrade_skips_the_nodes_already_done() -> None:
    ring = {**RING, "cassandra1": ("5.0.9", "rbx")}
    plan = plan_cassandra_upgrade(ring, "5.0.9")
    assert plan.order == ("cassandra2", "cassandra3") and plan.done == ("cassandra1",)
    assert plan_cassandra_upgrade({h: ("5.0.9", dc) for h, (_, dc) in RING.items()},
                                  "5.0.9").order == ()


def test_a_downgrade_is_refused_naming_the_node() -> None:
    ring = {**RING, "cassandra2": ("5.0.9", "rbx")}
    with pytest.raises(FuretError) as error:
        plan_cassandra_upgrade(ring, "5.0.8")
    assert str(error.value).startswith(
        "cassandra2 runs Cassandra 5.0.9, newer than the target 5.0.8: downgrades are refused")


def test_a_skipped_major_is_refused_and_one_major_is_staged() -> None:
    with pytest.raises(FuretError, match="cassandra1 runs Cassandra 3.11.17: 5.0.9 skips "
                                         "major 4; upgrade every node to the newest 4.x"):
        plan_cassandra_upgrade({"cassandra1": ("3.11.17", "rbx")}, "5.0.9")
    plan = plan_cassandra_upgrade({"c1": ("4.1.10", "rbx"), "c2": ("5.0.9", "rbx")}, "5.0.9")
    assert plan.order == ("c1",) and plan.major_change
    assert plan.storage_compatibility == ("CASSANDRA_4", "UPGRADING", "NONE")


def test_a_pre_release_only_when_asked_and_the_dc_order_must_name_each_dc_once() -> None:
    with pytest.raises(FuretError, match="6.0.0-alpha2 is a pre-release"):
        plan_cassandra_upgrade(RING, "6.0.0-alpha2")
    assert plan_cassandra_upgrade(RING, "6.0.0-alpha2", allow_prerelease=True).major_change
    for order in (["rbx"], ["rbx", "gra", "sbg"], ["rbx", "rbx"]):
        with pytest.raises(FuretError, match="must name each DC of the ring once"):
            plan_cassandra_upgrade(RING, "5.0.9", order)


def test_repair_is_refused_while_versions_are_mixed() -> None:
    refuse_mixed_versions({"c1": "5.0.9", "c2": "ReleaseVersion: 5.0.9"}, "repair")
    with pytest.raises(FuretError) as error:
        refuse_mixed_versions({"c1": "5.0.8", "c2": "5.0.9"}, "repair")
    assert str(error.value).startswith(
        "repair is refused while the nodes run different versions (c1 5.0.8, c2 5.0.9)")
