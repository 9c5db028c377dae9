"""`furet cassandra init`: the keyspace and query tables of cql/prod.cql."""

from __future__ import annotations

from pathlib import Path

from migration.config import CassandraSettings
from migration.errors import FuretError

CQL_DIR = Path(__file__).resolve().parent / "cql"
# DESIGN.md: prod is replicated to every DC (RBX and GRA), per-DC replication factor.
DEFAULT_REPLICATION = "{'class': 'NetworkTopologyStrategy', 'rbx': 3, 'gra': 3}"


def init_cassandra(settings: CassandraSettings, keyspace: str = "prod",
                   replication: str = DEFAULT_REPLICATION, truncate: bool = False) -> list[str]:
    """Create the keyspace (if missing) and the query tables; ``truncate`` empties them."""
    from migration.cassandra_session import cassandra_session

    script = (CQL_DIR / "prod.cql").read_text()
    script = "\n".join(ln for ln in script.splitlines() if not ln.strip().startswith("--"))
    cluster, session = cassandra_session(settings)
    tables = []
    try:
        # A keyspace made by the cassandra role stays as it is: furet's role may create
        # tables in it but has no CREATE on <all keyspaces>, which CREATE KEYSPACE IF NOT
        # EXISTS needs even when the keyspace exists.
        exists = keyspace in cluster.metadata.keyspaces
        for statement in script.split(";"):
            text = statement.strip().format(keyspace=keyspace, replication=replication)
            if not text or (exists and text.upper().startswith("CREATE KEYSPACE")):
                continue
            try:
                session.execute(text, timeout=60)
            except Exception as exc:
                raise FuretError(f"{settings.where} keyspace {keyspace}: "
                                 f"{type(exc).__name__}: {str(exc)[:200]}") from None
            if text.upper().startswith("CREATE TABLE"):
                tables.append(text.split()[5].split("(")[0])
        for table in tables if truncate else []:
            try:
                session.execute(f"TRUNCATE {table}", timeout=120)
            except Exception as exc:
                raise FuretError(f"{settings.where} table {table}: cannot truncate: "
                                 f"{type(exc).__name__}: {str(exc)[:200]}") from None
    finally:
        cluster.shutdown()
    return tables
