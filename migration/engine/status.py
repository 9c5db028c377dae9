"""`furet status`: the rounds recorded in the ledger, per flow, and the quarantine counts."""

from __future__ import annotations

import pymysql

from migration.config import FuretConfig
from migration.db import connection, db_error
from migration.engine import ledger
from migration.engine.results import StatusReport


def status(config: FuretConfig, flow: str | None = None, last: int = 10) -> StatusReport:
    """The last ``last`` rounds of each flow (or of ``flow``) on the target's ledger."""
    settings = config.target
    try:
        with connection(settings) as conn:
            return ledger.status_report(conn, flow, last)
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings, "furet") from None
