"""Cassandra sessions (cassandra-driver) with errors that name the hosts, never a password.

With ``cassandra.ssl_ca`` every connection is TLS and the node's certificate must chain to
that CA; with ``ssl_verify_identity`` (the default) the node's address must also be in its
certificate's SANs. The driver checks each node against its own address (no
``server_hostname``: one name would be wrong for every other node), so the certificates
carry the nodes' IPs (role pki). A failed handshake is one line naming the node and the CA.
"""

from __future__ import annotations

import re
import ssl
from typing import Any

from migration.config import CassandraSettings
from migration.errors import FuretError

# The driver reports a failed handshake as an OSError whose text holds the ssl module's:
# "Tried connecting to [...]. Last error: [SSL: CERTIFICATE_VERIFY_FAILED] certificate
# verify failed: self-signed certificate (_ssl.c:1006)".
_SSL_TEXT = re.compile(r"\[SSL(?:: [A-Z0-9_]+)?\] (?P<reason>.*?)(?: \(_ssl\.c:\d+\))?$")


def ssl_context(settings: CassandraSettings) -> ssl.SSLContext | None:
    """The verifying client context of ``settings.ssl_ca`` (None: no TLS)."""
    if not settings.ssl_ca:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)   # CERT_REQUIRED, check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=settings.ssl_ca)
    except (OSError, ssl.SSLError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise FuretError(f"{settings.where}: TLS: cannot read the CA file {settings.ssl_ca}: "
                         f"{why}") from None
    context.check_hostname = settings.ssl_verify_identity
    return context


def tls_failure(exc: BaseException) -> tuple[str, str] | None:
    """``(node, reason)`` of the first failed TLS handshake in a NoHostAvailable (or None)."""
    errors = getattr(exc, "errors", None) or {}
    for node, error in errors.items():
        if isinstance(error, ssl.SSLError):
            return str(node), str(getattr(error, "verify_message", "") or error.reason or error)
        match = _SSL_TEXT.search(str(error).strip())
        if match:
            return str(node), match["reason"].rstrip(".")
    return None


def _reset_by_every_node(exc: BaseException) -> bool:
    errors = getattr(exc, "errors", None) or {}
    return bool(errors) and all(isinstance(e, ConnectionResetError) for e in errors.values())


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
                      protocol_version=5, connect_timeout=10, ssl_context=ssl_context(settings))
    try:
        session = cluster.connect(keyspace)
    except Exception as exc:  # NoHostAvailable, AuthenticationFailed, InvalidRequest
        cluster.shutdown()
        tls = tls_failure(exc)
        if tls:
            raise FuretError(f"cassandra {tls[0]}: TLS: {tls[1]} (CA {settings.ssl_ca})") \
                from None
        what = type(exc).__name__
        if settings.password:
            what += ": " + str(exc).replace(settings.password, "***")[:200]
        else:
            what += ": " + str(exc)[:200]
        where = settings.where + (f" keyspace {keyspace}" if keyspace else "")
        if not settings.ssl_ca and _reset_by_every_node(exc):
            what += " (a node that requires TLS resets plaintext clients: set cassandra.ssl_ca)"
        raise FuretError(f"{where}: {what}") from None
    return cluster, session
