"""The recovery's bootstrap decision (tasks/recover_decide.yml), in Python so that it is
read in one place and unit-tested (tests/unit/test_galera_recover_plan.py).

    {{ rows | galera_recover_plan }}
        rows: [{'host', 'uuid', 'seqno', 'source', 'safe_to_bootstrap'}, ...], one per node
        -> {'bootstrap': 'galera2', 'error': '', 'joining': ['galera3']}

A node whose grastate.dat carries the zero UUID was in a state transfer (SST) when it went
down: it holds no cluster state, its data is replaced by the next transfer, so it neither
counts as another cluster nor can it be bootstrapped from ('joining'). The others must
carry one cluster UUID; the most advanced seqno wins, then a node already marked
safe_to_bootstrap, then the host name. A decision that would bootstrap from a node whose
position could not be recovered is refused, like a cluster of no node with a state.
"""

from __future__ import annotations

from typing import Any

ZERO_UUID = "00000000-0000-0000-0000-000000000000"


def _has_state(row: dict[str, Any]) -> bool:
    return bool(row.get("uuid")) and row["uuid"] != ZERO_UUID


def galera_recover_plan(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Which node to bootstrap from, or why not (error: one line, recover by hand)."""
    with_state = [row for row in rows if _has_state(row)]
    joining = sorted(row["host"] for row in rows if not _has_state(row))
    plan: dict[str, Any] = {"bootstrap": "", "error": "", "joining": joining}
    uuids = sorted({row["uuid"] for row in with_state})
    if not with_state:
        plan["error"] = ("no node holds a cluster state (every grastate.dat carries the zero "
                         f"UUID: {', '.join(joining)} were in a state transfer); recover by hand")
        return plan
    if len(uuids) > 1:
        owners = "; ".join(
            f"{uuid}: {', '.join(sorted(r['host'] for r in with_state if r['uuid'] == uuid))}"
            for uuid in uuids)
        plan["error"] = (f"the nodes carry different cluster UUIDs ({owners}): "
                         "they are not one cluster; recover by hand")
        return plan
    ranked = sorted(with_state, key=lambda row: (-int(row["seqno"]),
                                                 not row.get("safe_to_bootstrap"), row["host"]))
    best = ranked[0]
    if best.get("source") == "unrecoverable":
        unrecoverable = sorted(r["host"] for r in with_state if r.get("source") == "unrecoverable")
        plan["error"] = ("no node has a recoverable position (galera_recovery failed on "
                         f"{', '.join(unrecoverable)}); recover by hand")
        return plan
    plan["bootstrap"] = best["host"]
    return plan


class FilterModule:
    """Ansible's entry point for the role's filters."""

    def filters(self) -> dict[str, Any]:
        return {"galera_recover_plan": galera_recover_plan}
