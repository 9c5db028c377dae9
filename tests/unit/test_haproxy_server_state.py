"""roles/haproxy_galera/library/haproxy_server_state.py: the reader of one server's state
in HAProxy (no HAProxy needed: `show stat` is given as text, the clock is fake)."""

from __future__ import annotations

import importlib.util

from tests.helpers import REPO

_SPEC = importlib.util.spec_from_file_location(
    "haproxy_server_state",
    REPO / "roles" / "haproxy_galera" / "library" / "haproxy_server_state.py")
haproxy_server_state = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(haproxy_server_state)

STAT = ("# pxname,svname,status,check_status,check_desc\n"
        "galera,galera1,UP,L7OK,Layer7 check passed\n"
        "galera,galera2,UP 1/2,L7STS,Layer7 wrong status\n")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_server_is_found_by_backend_and_name() -> None:
    assert haproxy_server_state.parse_stat(STAT, "galera", "galera2") == (
        "UP 1/2", "L7STS Layer7 wrong status")
    assert haproxy_server_state.parse_stat(STAT, "other", "galera2") is None


def test_a_status_in_transition_is_read_again_until_it_settles() -> None:
    reads = iter([("UP 1/2", "L7STS"), ("UP 1/2", "L7STS"), ("DOWN", "L7STS")])
    clock = FakeClock()
    assert haproxy_server_state.settled(lambda: next(reads), 5, clock, clock.sleep) == (
        "DOWN", "L7STS")
    assert clock.now == 1.0


def test_a_status_that_never_settles_is_returned_as_last_read_when_the_time_is_up() -> None:
    calls = []

    def read() -> tuple[str, str]:
        calls.append(1)
        return "DOWN 1/2", "L7OK"

    clock = FakeClock()
    assert haproxy_server_state.settled(read, 4, clock, clock.sleep) == ("DOWN 1/2", "L7OK")
    assert clock.now == 4.0 and len(calls) == 9


def test_without_settle_the_first_read_is_the_answer() -> None:
    reads = iter([("UP 1/2", "L7STS"), ("DOWN", "L7STS")])
    clock = FakeClock()
    assert haproxy_server_state.settled(lambda: next(reads), 0, clock, clock.sleep)[0] == "UP 1/2"
