"""furet: provisioning and migration toolkit (legacy MySQL -> MariaDB Galera + Cassandra)."""

__version__ = "0.1.0"
