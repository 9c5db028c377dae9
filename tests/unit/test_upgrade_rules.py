"""migration/upgrade.py: which upgrades furet runs and which it refuses, each refusal one
line with its reason."""

from __future__ import annotations

import pytest

from migration.errors import FuretError
from migration.upgrade import (
    Version,
    ist_estimate,
    plan_cassandra_upgrade,
    plan_galera_upgrade,
    refuse_mixed_versions,
    removed_options,
    upstream_version,
)

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


def test_the_upstream_part_of_a_debian_package_version() -> None:
    assert upstream_version("1:10.11.19-0+deb12u1") == "10.11.19"
    assert upstream_version("10.11.6-0+deb12u1") == "10.11.6"
    assert upstream_version("1:11.8.3+maria~deb13") == "11.8.3"
    assert upstream_version("11.8.2~rc1") == "11.8.2"
    assert upstream_version("") == ""


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


GALERA = {"galera1": "10.11.18-MariaDB-0+deb12u1-log", "galera2": "10.11.18-MariaDB-0+deb12u1",
          "galera3": "10.11.18-MariaDB-0+deb12u1"}


def test_a_galera_minor_upgrade_one_node_at_a_time_and_a_resume_skips_the_nodes_done() -> None:
    plan = plan_galera_upgrade(GALERA, "1:10.11.19-0+deb12u1")   # as apt names it
    assert plan.order == ("galera1", "galera2", "galera3") and plan.done == ()
    assert not plan.major_change and plan.path == "10.11.18 -> 10.11.19, a minor upgrade"
    resumed = plan_galera_upgrade({**GALERA, "galera1": "10.11.19-MariaDB"}, "10.11.19")
    assert resumed.order == ("galera2", "galera3") and resumed.done == ("galera1",)
    assert plan_galera_upgrade(dict.fromkeys(GALERA, "10.11.19"), "10.11.19").order == ()


def test_a_galera_major_upgrade_only_to_the_adjacent_series() -> None:
    plan = plan_galera_upgrade(GALERA, "11.4.5")
    assert plan.major_change and plan.path == "10.11.18 -> 11.4.5, a major upgrade"
    # a short-term release belongs to the series before it: 11.2 -> 11.4 is adjacent,
    # 11.2 -> 11.8 is not
    assert plan_galera_upgrade({"g1": "11.2.6"}, "11.4.3").major_change
    with pytest.raises(FuretError, match=r"adjacent major releases \(11.2 -> 11.4 -> 11.8\)"):
        plan_galera_upgrade({"g1": "11.2.6"}, "11.8.3")
    with pytest.raises(FuretError, match="galera_sst_method mariabackup: a major upgrade needs "
                                         "rsync while the versions are mixed"):
        plan_galera_upgrade(GALERA, "11.4.5", "mariabackup")
    assert plan_galera_upgrade(GALERA, "10.11.19", "mariabackup").order   # a minor: any
    with pytest.raises(FuretError) as error:
        plan_galera_upgrade(GALERA, "11.8.9")
    assert str(error.value).startswith(
        "galera1 runs MariaDB 10.11.18: 11.8.9 skips 11.4, and Galera replicates between mixed "
        "versions only across adjacent major releases (10.11 -> 11.4 -> 11.8); upgrade every "
        "node to 11.4 first, or build a new 11.8 cluster")


def test_a_galera_downgrade_is_refused_naming_the_node() -> None:
    with pytest.raises(FuretError) as error:
        plan_galera_upgrade({**GALERA, "galera3": "10.11.19-MariaDB"}, "10.11.18")
    assert str(error.value).startswith(
        "galera3 runs MariaDB 10.11.19, newer than the target 10.11.18: downgrades are refused")
    with pytest.raises(FuretError, match="galera_target_version is empty: give the version"):
        plan_galera_upgrade(GALERA, "")
    with pytest.raises(FuretError, match="MariaDB 10.2.44 is older than 10.3"):
        plan_galera_upgrade({"g1": "10.2.44"}, "10.3.39")


def test_options_the_target_removed_are_named_with_what_the_server_does() -> None:
    options = ["--wsrep_on=ON", "--old-alter-table=1", "--innodb_defragment=1",
               "--loose-max-tmp-tables=32", "--max_tmp_tables=32", "--datadir=/var/lib/mysql"]
    assert removed_options(options, "10.11.19") == []
    assert removed_options(options, "11.4.5") == [
        "old_alter_table (removed in 11.4: the server refuses to start with it)",
        "innodb_defragment (removed in 11.4: the server ignores it with a warning)"]
    assert removed_options(options, "11.8.9")[-1] == (
        "max_tmp_tables (removed in 11.8: the server refuses to start with it)")


def test_ist_or_sst_is_said_from_the_write_rate_and_the_downtime() -> None:
    mib = 2**20
    ist = ist_estimate(200_000, 120, 128 * mib, 2 * 2**30, 50e6)
    assert ist.ist and ist.message == (
        "the gcache (128 MiB) holds 671 s of writes at the measured 0.20 MB/s: a node down "
        "for up to 120 s rejoins by IST")
    sst = ist_estimate(2_000_000, 120, 128 * mib, 2 * 2**30, 50e6)
    assert not sst.ist
    assert sst.message.endswith("each node will take an SST of 2.00 GiB, about 43 s at 50 MB/s; "
                                "raise galera_gcache_size to 458M to rejoin by IST")
    assert "more than a day" in ist_estimate(0, 120, 128 * mib, 0, 50e6).message
