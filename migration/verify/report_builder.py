"""A compared table's :class:`~migration.verify.report.TableReport`: counts from its chunks,
and the differing rows listed with their columns.

Counts are exact; the listed rows stop at ``max_report_rows`` (different first, then
missing, then extra, each in key order: numbers numerically, then texts, column by column
for a composite key). A listed row
shows both sides' canonical texts: rows a drill-down read by hash only are read again by
key, from the side that knows how (:meth:`~migration.verify.sides.Side.texts`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from migration.verify.drilldown import Classified, differing_columns
from migration.verify.mysql_checksum import RowInfo
from migration.verify.planner import Chunk
from migration.verify.report import DiffRow, TableReport, shown_key
from migration.verify.sides import Pair


def _part_order(text: str) -> tuple[int, Any]:
    return (0, int(text)) if text.lstrip("-").isdigit() else (1, text)


def key_order(key: str) -> tuple[tuple[int, Any], ...]:
    """A key text's sort key: numbers first, numerically, then texts; a composite key's
    text (a JSON list of texts) column by column."""
    if key.startswith("["):
        try:
            parts = json.loads(key)
        except ValueError:
            parts = None
        if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
            return tuple(_part_order(p) for p in parts)
    return (_part_order(key),)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def fill_report(pair: Pair, report: TableReport, done: Sequence[Chunk], found: Classified,
                max_report_rows: int) -> None:
    report.chunks = len(done)
    report.chunks_checked = sum(1 for c in done if c.take)
    report.source_rows = sum(c.source[0] for c in done if c.take)
    report.target_rows = sum(c.target[0] for c in done if c.take)
    report.mismatching_chunks = sum(1 for c in done if c.report.status == "mismatch")
    report.transient_chunks = sum(1 for c in done if c.report.status == "transient")
    report.missing = len(found.missing)
    report.extra = len(found.extra)
    report.different = len(found.different)
    report.chunk_list = [c.report for c in done]
    report.diffs, report.diffs_truncated = diff_rows(pair, found, max_report_rows)


def diff_rows(pair: Pair, found: Classified, limit: int) -> tuple[list[DiffRow], bool]:
    """The first ``limit`` differing rows, and whether more were left out."""
    diffs: list[tuple[str, str, RowInfo | None, RowInfo | None]] = []
    for key, pair_rows in sorted(found.different.items(), key=lambda kv: key_order(kv[0])):
        diffs.append(("different", key, *pair_rows))
    for key, row in sorted(found.missing.items(), key=lambda kv: key_order(kv[0])):
        diffs.append(("missing", key, row, None))
    for key, row in sorted(found.extra, key=lambda kv: key_order(kv[0])):
        diffs.append(("extra", key, None, row))
    truncated = len(diffs) > limit
    diffs = diffs[:limit]
    need_src = [a.key for _, _, a, _ in diffs if a is not None and a.texts is None]
    need_tgt = [b.key for _, _, _, b in diffs if b is not None and b.texts is None]
    src_texts = pair.source.texts(need_src) if need_src else {}
    tgt_texts = pair.target.texts(need_tgt) if need_tgt else {}
    rows = []
    for kind, key, src, tgt in diffs:
        s = src if src is None or src.texts is not None else src_texts.get(key, src)
        t = tgt if tgt is None or tgt.texts is not None else tgt_texts.get(key, tgt)
        s_texts = s.texts if s is not None else None
        t_texts = t.texts if t is not None else None
        columns = differing_columns(pair.names, s_texts, t_texts) \
            if kind == "different" else []
        either = s if s is not None else t
        rows.append(DiffRow(
            kind, shown_key(either.key) if either is not None else key, columns,
            dict(zip(pair.names, s_texts, strict=True)) if s_texts else None,
            dict(zip(pair.names, t_texts, strict=True)) if t_texts else None,
            _int(s.version) if s else None, _int(t.version) if t else None, key))
    return rows, truncated
