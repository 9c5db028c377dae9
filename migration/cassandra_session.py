"""Cassandra sessions (cassandra-driver) with errors that name the hosts, never a password."""

from __future__ import annotations

from typing import Any

from migration.config import CassandraSettings
from migration.errors import FuretError


def cassandra_session(settings: CassandraSettings, keyspace: str | None = None) -> Any:
    """A connected ``(cluster, session)``; the caller shuts the cluster down."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

    policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.local_dc or None))
    profile = ExecutionProfile(load_balancing_policy=policy, request_timeout=30)
    auth = (PlainTextAuthProvider(settings.user, settings.password)
            if settings.user else None)
    cluster = Cluster(list(settings.hosts), port=settings.port, auth_provider=auth,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                      protocol_version=5, connect_timeout=10)
    try:
        session = cluster.connect(keyspace)
    except Exception as exc:  # NoHostAvailable, AuthenticationFailed, InvalidRequest
        cluster.shutdown()
        what = type(exc).__name__
        if settings.password:
            what += ": " + str(exc).replace(settings.password, "***")[:200]
        else:
            what += ": " + str(exc)[:200]
        where = settings.where + (f" keyspace {keyspace}" if keyspace else "")
        raise FuretError(f"{where}: {what}") from None
    return cluster, session
