"""The backups furet took and what their restore tests proved, in the ledger (furet.backups;
the SQL is :mod:`migration.engine.ledger`'s), and the cutover's gate on them.

``furet backup legacy|galera|cassandra --record`` records a backup once it is complete (its
directory, the sha256 of its manifest, when it was taken); ``furet backup restore-test DIR
--record`` records the result against that manifest, so a restore test of a directory whose
manifest changed since (a backup taken again there) proves nothing about it. The cutover's
preflight (:func:`gate`) then asks, for each kind it needs, the newest backup: younger than
``max_age_s`` and its restore test passed, else one line naming the backup.

The ledger the gate reads is the target's, where ``--record`` wrote them; a cutover onto a
new Galera cluster (runbook galera-next) reads the source's instead: the old cluster, whose
ledger playbooks/backup.yml kept recording into (``ledger: legacy``).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import socket
from collections.abc import Sequence
from pathlib import Path

from migration.config import FuretConfig
from migration.engine import ledger
from migration.errors import FuretError

KINDS = ("legacy", "galera", "cassandra")
MANIFEST = "manifest.json"


def _manifest(directory: Path) -> tuple[str, str, str]:
    """(kind, created_at as DATETIME text in UTC, sha256) of a backup's manifest."""
    path = directory / MANIFEST
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise FuretError(f"backup {directory}: no readable {MANIFEST} ({exc})") from None
    kind, created = str(data.get("kind", "")), str(data.get("created_at", ""))
    if kind not in KINDS:
        raise FuretError(f"backup {directory}: {MANIFEST} says kind {kind!r}")
    try:
        when = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        raise FuretError(f"backup {directory}: {MANIFEST} has no created_at") from None
    if when.tzinfo is not None:
        when = when.astimezone(datetime.UTC).replace(tzinfo=None)
    return kind, when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], hashlib.sha256(raw).hexdigest()


def record_backup(config: FuretConfig, directory: Path | str) -> str:
    folder = Path(directory).resolve()
    kind, created_at, sha = _manifest(folder)
    # playbooks/backup.yml writes ROOT/<id>/<kind>: the id is the parent's name there
    backup_id = folder.parent.name if folder.name == kind else folder.name
    with ledger.opened(config.target) as conn:
        ledger.backup_recorded(conn, backup_id, kind, socket.gethostname(), str(folder), sha,
                               created_at)
    return f"recorded {kind} backup {backup_id} in the ledger ({config.target.where})"


def record_restore(config: FuretConfig, directory: Path | str, passed: bool,
                   detail: str) -> str:
    folder = Path(directory).resolve()
    _, _, sha = _manifest(folder)
    with ledger.opened(config.target) as conn:
        known = ledger.backup_restore_recorded(conn, socket.gethostname(), str(folder), sha,
                                               "passed" if passed else "failed", detail)
    if not known:
        raise FuretError(f"backup {folder}: not recorded in the ledger with this manifest "
                         "(take it with --record, then restore-test it)")
    return f"recorded its restore test ({'passed' if passed else 'failed'}) in the ledger"


def _age(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


LEDGERS = ("target", "legacy")


def gate(config: FuretConfig, kinds: Sequence[str], max_age_s: float,
         ledger_of: str = "target") -> list[dict[str, str]]:
    """The newest backup of each kind in ``kinds`` in the ledger on ``ledger_of`` (the
    target's, or the legacy's), each younger than ``max_age_s`` and proven by a passed
    restore test; else FuretError naming each backup that is not."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise FuretError(f"preflight: unknown backup kind(s) {', '.join(unknown)} "
                         f"(known: {', '.join(KINDS)})")
    if ledger_of not in LEDGERS:
        raise FuretError(f"preflight: backups_ledger {ledger_of!r} is not one of "
                         f"{', '.join(LEDGERS)}")
    server = config.legacy if ledger_of == "legacy" else config.target
    with ledger.opened(server) as conn:
        latest = ledger.latest_backups(conn)
    problems, used = [], []
    for kind in kinds:
        row = latest.get(kind)
        if row is None:
            problems.append(f"no {kind} backup recorded in the ledger on {server.where} "
                            "(playbooks/backup.yml)")
            continue
        name = f"{kind} backup {row.backup_id} ({row.host}:{row.path})"
        if row.age_s > max_age_s:
            problems.append(f"{name} is {_age(row.age_s)} old, --max-backup-age "
                            f"{_age(max_age_s)}")
        if row.restore_result == "":
            problems.append(f"{name} has no restore test (playbooks/restore_test.yml)")
        elif row.restore_result != "passed":
            problems.append(f"restore test of {name} failed: {row.restore_detail}")
        used.append({"kind": kind, "id": row.backup_id, "host": row.host, "path": row.path,
                     "age": _age(row.age_s), "restore_test": row.restore_result or "none"})
    if problems:
        raise FuretError("preflight: " + "; ".join(problems))
    return used
