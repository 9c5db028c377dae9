"""The closed sets of words furet's commands and engine share, defined once.

Each is a ``StrEnum``: its members compare equal to their text (``Strategy.TS == "ts"``),
so the ledger's columns, JSON output and command-line values stay plain strings, and
``choices()`` gives what click and the Fabric tasks accept.
"""

from __future__ import annotations

from enum import StrEnum


class _Choices(StrEnum):
    @classmethod
    def choices(cls) -> tuple[str, ...]:
        return tuple(member.value for member in cls)


class Strategy(_Choices):
    """How a round finds its rows: ``ts`` is furet's; ``naive`` and ``id`` exist only to
    show what they lose (see :mod:`migration.engine.plan`)."""

    TS = "ts"
    NAIVE = "naive"
    ID = "id"


class LiteralsPath(_Choices):
    """How a MariaDB target's rows become SQL literals (see
    :mod:`migration.engine.sql_pushdown`): ``auto`` lets the source server build them where
    the mapping allows, ``python`` sends every row through Python."""

    AUTO = "auto"
    PYTHON = "python"


class BulkLoad(_Choices):
    """How a full round writes a Cassandra target (``cassandra.bulk_load``): ``CQL``
    statements through the ring's write path, or ``SSTABLE``s written by furet's helper and
    streamed to the replicas (:mod:`migration.engine.sstable_writer`)."""

    CQL = "CQL"
    SSTABLE = "SSTABLE"


class Consistency(_Choices):
    """Cassandra read consistency levels furet accepts for verify."""

    ONE = "ONE"
    LOCAL_ONE = "LOCAL_ONE"
    QUORUM = "QUORUM"
    LOCAL_QUORUM = "LOCAL_QUORUM"
    ALL = "ALL"


class WriteConsistency(_Choices):
    """Cassandra consistency levels furet writes rounds and repairs with
    (``cassandra.write_consistency``). None of them is satisfied by one replica's
    acknowledgement where the keyspace has more (ONE, LOCAL_ONE and ANY are left out on
    purpose): a checkpoint advanced on one replica's word is lost with that replica."""

    LOCAL_QUORUM = "LOCAL_QUORUM"
    QUORUM = "QUORUM"
    EACH_QUORUM = "EACH_QUORUM"
    ALL = "ALL"
    TWO = "TWO"
    THREE = "THREE"


class VersionUnit(_Choices):
    """The unit of an integer version column (``version_unit:`` of a flow table): epoch
    seconds, milliseconds or microseconds. Temporal columns (TIMESTAMP, DATETIME) carry
    their own unit; the ledger keeps their instants in microseconds."""

    S = "s"
    MS = "ms"
    US = "us"


class Deletes(_Choices):
    """What a round does with target rows whose source row is gone (tables without a
    version column only, where chunk checksums find them): keep them, or delete them."""

    KEEP = "keep"
    PROPAGATE = "propagate"


class EndpointSide(_Choices):
    """Where the application's database endpoint (HAProxy on the app_endpoint hosts) sends
    new connections: the legacy master, Galera, a new Galera cluster (galera_next: the target
    of a major upgrade, provisioned by playbooks/galera.yml), or nowhere (a rollback's write
    freeze). See :mod:`migration.endpoint`."""

    LEGACY = "legacy"
    GALERA = "galera"
    GALERA_NEXT = "galera-next"
    REFUSED = "refused"
