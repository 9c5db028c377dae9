"""furet lab down / recreate: podman's rm --force can fail a container that stopped by
itself between its stop timeout and its SIGKILL (a CI run lost its whole lab to it);
what is left is removed at the next try, and a lasting failure is still one line."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from migration.errors import FuretError
from migration.lab.lifecycle import remove_containers

RACE = ("podman rm --force: Error: cannot remove container be3e as it could not be stopped: "
        "sending SIGKILL to container be3e: container state improper: stopped")


@dataclass
class Podman:
    """podman's answers: ``present`` containers; the first ``failures`` rm calls fail as
    the race does, removing only the containers that were not racing."""

    present: set[str]
    racing: set[str]
    failures: int
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def exists(self, kind: str, name: str) -> bool:
        return kind == "container" and name in self.present

    def run(self, *args: str, timeout: float | None = 300) -> None:
        self.calls.append(args)
        names = set(args[4:])
        if self.failures:
            self.failures -= 1
            self.present -= names - self.racing
            raise FuretError(RACE)
        self.present -= names


def test_a_container_that_stopped_during_its_removal_goes_at_the_next_try() -> None:
    podman = Podman({"furet-lab-cassandra1", "furet-lab-etl1"}, {"furet-lab-cassandra1"}, 1)
    remove_containers(podman, ["furet-lab-cassandra1", "furet-lab-etl1"])  # type: ignore[arg-type]
    assert podman.present == set()
    assert [c[4:] for c in podman.calls] == [("furet-lab-cassandra1", "furet-lab-etl1"),
                                            ("furet-lab-cassandra1",)]


def test_a_lasting_failure_is_raised_after_the_last_try() -> None:
    podman = Podman({"furet-lab-cassandra1"}, {"furet-lab-cassandra1"}, 5)
    with pytest.raises(FuretError, match="container state improper"):
        remove_containers(podman, ["furet-lab-cassandra1"])  # type: ignore[arg-type]
    assert len(podman.calls) == 3
