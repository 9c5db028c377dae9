"""`furet status`: the rounds recorded in the ledger, per flow, and the quarantine counts."""

from __future__ import annotations

from typing import Any

import pymysql

from migration.config import FuretConfig
from migration.db import connection, db_error, query
from migration.engine.ledger import round_summary


def status(config: FuretConfig, flow: str | None = None, last: int = 10) -> dict[str, Any]:
    settings = config.target
    try:
        with connection(settings) as conn:
            exists = query(conn, "SELECT COUNT(*) FROM information_schema.tables WHERE "
                                 "table_schema = 'furet' AND table_name = 'rounds'")[0][0]
            if not exists:
                return {"rounds": [], "quarantine": []}
            where, args = ("WHERE flow = %s", (flow,)) if flow else ("", ())
            keys = query(conn, f"SELECT flow, round_no FROM furet.rounds {where} "
                               f"ORDER BY flow, round_no DESC", args)
            per_flow: dict[str, int] = {}
            rounds = []
            for name, number in keys:
                per_flow[name] = per_flow.get(name, 0) + 1
                if per_flow[name] <= last:
                    rounds.append(round_summary(conn, name, number))
            rounds.sort(key=lambda r: (r["flow"], r["round_no"]))
            quarantine = [
                {"flow": f, "source_table": t, "reason": r, "rows": int(n)}
                for f, t, r, n in query(
                    conn, "SELECT flow, source_table, SUBSTRING_INDEX(reason, ': ', 2), COUNT(*) "
                          f"FROM furet.quarantine {where} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                    args)]
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings, "furet") from None
    return {"rounds": rounds, "quarantine": quarantine}
