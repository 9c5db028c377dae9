"""Row-level classification of a mismatching chunk: missing, extra and different rows.

Pure functions over :class:`~migration.verify.mysql_checksum.RowInfo` maps keyed by the
key text (:func:`migration.canonical.key_text`: an ``int`` id from MySQL and a ``bigint``
from Cassandra meet, a composite key is one text).
A target may hold several rows for one key (a Cassandra row whose clustering columns
changed leaves its old row behind): the one that matches the source is kept, the others
are extra.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from migration.verify.mysql_checksum import RowInfo


@dataclass
class Classified:
    missing: dict[str, RowInfo] = field(default_factory=dict)          # source row
    extra: list[tuple[str, RowInfo]] = field(default_factory=list)     # target rows
    different: dict[str, tuple[RowInfo, RowInfo]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.different)


def group(rows: Sequence[tuple[str, RowInfo]]) -> dict[str, list[RowInfo]]:
    out: dict[str, list[RowInfo]] = {}
    for key, info in rows:
        out.setdefault(key, []).append(info)
    return out


def classify(source: Mapping[str, RowInfo], target: Mapping[str, list[RowInfo]],
             source_elsewhere: Mapping[str, RowInfo] | None = None,
             target_elsewhere: Mapping[str, list[RowInfo]] | None = None) -> Classified:
    """Compare one chunk's rows. ``*_elsewhere``: rows of the same keys found outside the
    chunk (under a time window, a stale copy has another version, so another chunk):
    such a key is *different*, not missing on one side and extra on the other."""
    source_elsewhere = source_elsewhere or {}
    target_elsewhere = target_elsewhere or {}
    out = Classified()
    for key, src in source.items():
        rows = list(target.get(key, [])) or list(target_elsewhere.get(key, []))
        if not rows:
            out.missing[key] = src
            continue
        same = next((r for r in rows if r.hash == src.hash), None)
        partner = same or rows[0]
        if same is None:
            out.different[key] = (src, partner)
        out.extra.extend((key, r) for r in target.get(key, []) if r is not partner)
    for key, rows in target.items():
        if key in source:
            continue
        src_other = source_elsewhere.get(key)
        if src_other is None:
            out.extra.extend((key, r) for r in rows)
            continue
        same = next((r for r in rows if r.hash == src_other.hash), None)
        partner = same or rows[0]
        if same is None and key not in out.different:
            out.different[key] = (src_other, partner)
        out.extra.extend((key, r) for r in rows if r is not partner)
    return out


def differing_columns(names: Sequence[str], source: Sequence[str | None] | None,
                      target: Sequence[str | None] | None) -> list[str]:
    """Names of the columns whose canonical texts differ (all when a side is unknown)."""
    if source is None or target is None:
        return list(names)
    return [n for n, a, b in zip(names, source, target, strict=True) if a != b]


def merge(into: Classified, other: Classified) -> None:
    """Add one chunk's result to a table's; a key different anywhere is only different."""
    into.different.update(other.different)
    into.missing.update(other.missing)
    into.extra.extend(other.extra)
    for key in list(into.missing):
        if key in into.different:
            del into.missing[key]
    partners = {id(t) for _, t in into.different.values()}
    seen: set[int] = set()
    extra = []
    for key, row in into.extra:
        if id(row) in partners or id(row) in seen:
            continue
        seen.add(id(row))
        extra.append((key, row))
    into.extra = extra
