#!/usr/bin/python3
# -*- coding: utf-8 -*-
# furet: idempotent CQL for the cassandra role, with the Python driver of the node
# (Debian's python3-cassandra). No cqlsh exists in this distribution.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: cassandra_cql
short_description: Idempotent CQL (login check, keyspace, role, grants, query) on Cassandra
description:
  - Connects to one node with the DataStax Python driver and does exactly one of
    I(check_login), I(keyspace), I(role) or I(query).
  - Keyspaces and roles are compared with what the cluster holds and changed only when
    they differ; a role's password is checked by logging in with it.
  - Supports check mode (reports the statements it would run).
options:
  login_host: {type: str, default: 127.0.0.1, description: Node to connect to.}
  login_port: {type: int, default: 9042, description: Native transport port.}
  login_user: {type: str, description: Role to log in as.}
  login_password: {type: str, description: Its password.}
  connect_timeout: {type: float, default: 10, description: Seconds.}
  ssl_ca:
    type: str
    description:
      - CA file (PEM) on the host that runs the module. Set, the connection is TLS, the
        node's certificate must chain to it and carry I(login_host) in its SANs. A failed
        handshake fails the module, also with I(check_login).
  check_login:
    type: bool
    default: false
    description: Only try to log in; returns I(can_login) and I(reason), never fails.
  keyspace:
    type: dict
    description: "{name, replication: {dc: rf}, durable_writes} (NetworkTopologyStrategy)."
  role:
    type: dict
    description: "{name, password, login, superuser, grants: [{keyspace, permissions}]}."
  query: {type: str, description: A read-only statement; returns I(rows).}
  statements:
    type: list
    elements: str
    description: Statements run in order (always reported as a change).
  consistency:
    type: str
    default: QUORUM
    description: Consistency level of every statement (ONE, LOCAL_QUORUM, QUORUM, ALL...).
requirements: [python3-cassandra]
"""

EXAMPLES = r"""
- name: Keyspace prod
  cassandra_cql:
    login_host: 10.0.0.1
    login_user: admin
    login_password: "{{ pw }}"
    keyspace: {name: prod, replication: {rbx: 2, gra: 1}}
"""

RETURN = r"""
can_login: {type: bool, returned: check_login, description: The login worked.}
reason: {type: str, returned: check_login, description: ok, auth or unreachable (+ message).}
statements: {type: list, returned: always, description: Statements run (passwords masked).}
rows: {type: list, returned: query, description: Rows as dicts.}
"""

import re
import ssl
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from cassandra import AuthenticationFailed, ConsistencyLevel
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster, NoHostAvailable
    from cassandra.policies import WhiteListRoundRobinPolicy
    from cassandra.query import SimpleStatement
    HAS_DRIVER = True
    DRIVER_ERROR = None
except ImportError:
    HAS_DRIVER = False
    DRIVER_ERROR = traceback.format_exc()

NTS = "org.apache.cassandra.locator.NetworkTopologyStrategy"
# What GRANT ALL gives on a keyspace (5.0 adds UNMASK and SELECT_MASKED).
ALL_ON_KEYSPACE = {"CREATE", "ALTER", "DROP", "SELECT", "MODIFY", "AUTHORIZE"}


def ssl_context(params):
    """A client context verifying the node against params['ssl_ca'] (None: plaintext)."""
    if not params.get("ssl_ca"):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)   # CERT_REQUIRED and check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=params["ssl_ca"])
    return context


def connect(params, user=None, password=None):
    auth = PlainTextAuthProvider(user, password) if user else None
    cluster = Cluster([params["login_host"]], port=params["login_port"], auth_provider=auth,
                      ssl_context=ssl_context(params),
                      load_balancing_policy=WhiteListRoundRobinPolicy([params["login_host"]]),
                      connect_timeout=params["connect_timeout"],
                      control_connection_timeout=params["connect_timeout"])
    try:
        return cluster, cluster.connect()
    except Exception:
        cluster.shutdown()
        raise


# A failed handshake, as the driver reports it: "... [SSL: CERTIFICATE_VERIFY_FAILED]
# certificate verify failed: self-signed certificate (_ssl.c:1006)".
SSL_TEXT = re.compile(r"\[SSL(?:: [A-Z0-9_]+)?\] (.*?)(?: \(_ssl\.c:\d+\))?$")


def login_error(exc):
    """('auth'|'tls'|'unreachable', message) for a failed connection."""
    errors = getattr(exc, "errors", None) or {}
    for err in errors.values():
        match = SSL_TEXT.search(str(err).strip())
        if match:
            return "tls", match.group(1).rstrip(".")[:300]
    for err in errors.values():
        if isinstance(err, AuthenticationFailed) or "AuthenticationFailed" in repr(err) \
                or "Bad credentials" in str(err) or "incorrect" in str(err):
            return "auth", str(err)[:300]
    if isinstance(exc, AuthenticationFailed):
        return "auth", str(exc)[:300]
    return "unreachable", str(exc)[:300]


def cql_name(name):
    """Quote an identifier when it is not a plain lower-case one."""
    if name.replace("_", "a").isalnum() and name == name.lower() and not name[0].isdigit():
        return name
    return '"' + name.replace('"', '""') + '"'


def cql_text(value):
    return "'" + str(value).replace("'", "''") + "'"


def plain(value):
    """A JSON-friendly copy of a CQL value (UUIDs, sets, maps...)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)) or hasattr(value, "__iter__"):
        items = [plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    return str(value)


CONSISTENCY = ["QUORUM"]


def run(session, statement, params=None):
    level = getattr(ConsistencyLevel, CONSISTENCY[0])
    stmt = SimpleStatement(statement, consistency_level=level)
    return session.execute(stmt, params)


class Cql:
    def __init__(self, module, session):
        self.module = module
        self.session = session
        self.statements = []
        self.changed = False

    def apply(self, statement, shown=None):
        self.statements.append(shown or statement)
        self.changed = True
        if not self.module.check_mode:
            run(self.session, statement)

    def keyspace(self, spec):
        name = spec["name"]
        replication = spec.get("replication") or {}
        if not replication:
            self.module.fail_json(msg="keyspace %s: replication {dc: rf} is empty" % name)
        durable = bool(spec.get("durable_writes", True))
        wanted = {"class": NTS}
        wanted.update({str(dc): str(int(rf)) for dc, rf in replication.items()})
        rows = list(run(self.session, "SELECT replication, durable_writes FROM "
                        "system_schema.keyspaces WHERE keyspace_name = %s", (name,)))
        repl = "{'class': 'NetworkTopologyStrategy', %s}" % ", ".join(
            "%s: %d" % (cql_text(dc), int(rf)) for dc, rf in sorted(replication.items()))
        options = "replication = %s AND durable_writes = %s" % (repl, str(durable).lower())
        if not rows:
            self.apply("CREATE KEYSPACE IF NOT EXISTS %s WITH %s" % (cql_name(name), options))
        elif dict(rows[0].replication) != wanted or bool(rows[0].durable_writes) != durable:
            self.apply("ALTER KEYSPACE %s WITH %s" % (cql_name(name), options))

    def password_works(self, name, password):
        try:
            cluster, _ = connect(self.module.params, name, password)
        except NoHostAvailable as exc:
            kind, msg = login_error(exc)
            if kind == "auth":
                return False
            self.module.fail_json(msg="checking the password of role %s: %s" % (name, msg))
        cluster.shutdown()
        return True

    def role(self, spec):
        name = spec["name"]
        login = bool(spec.get("login", True))
        superuser = bool(spec.get("superuser", False))
        password = spec.get("password")
        rows = list(run(self.session, "SELECT can_login, is_superuser FROM system_auth.roles "
                        "WHERE role = %s", (name,)))
        opts = "LOGIN = %s AND SUPERUSER = %s" % (str(login).lower(), str(superuser).lower())
        if not rows:
            if password:
                self.apply("CREATE ROLE %s WITH PASSWORD = %s AND %s"
                           % (cql_name(name), cql_text(password), opts),
                           "CREATE ROLE %s WITH PASSWORD = '***' AND %s" % (cql_name(name), opts))
            else:
                self.apply("CREATE ROLE %s WITH %s" % (cql_name(name), opts))
        else:
            if bool(rows[0].can_login) != login or bool(rows[0].is_superuser) != superuser:
                self.apply("ALTER ROLE %s WITH %s" % (cql_name(name), opts))
            if password and login and not self.password_works(name, password):
                self.apply("ALTER ROLE %s WITH PASSWORD = %s" % (cql_name(name), cql_text(password)),
                           "ALTER ROLE %s WITH PASSWORD = '***'" % cql_name(name))
        for grant in spec.get("grants") or []:
            self.grant(name, grant)

    def grant(self, role, grant):
        keyspace = grant["keyspace"]
        wanted = {p.upper() for p in grant["permissions"]}
        rows = list(run(self.session, "SELECT permissions FROM system_auth.role_permissions "
                        "WHERE role = %s AND resource = %s", (role, "data/" + keyspace)))
        current = set(rows[0].permissions or []) if rows else set()
        for perm in sorted(wanted):
            have = ALL_ON_KEYSPACE <= current if perm in ("ALL", "ALL PERMISSIONS") else perm in current
            if not have:
                self.apply("GRANT %s ON KEYSPACE %s TO %s" % (perm, cql_name(keyspace), cql_name(role)))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            login_host=dict(type="str", default="127.0.0.1"),
            login_port=dict(type="int", default=9042),
            login_user=dict(type="str"),
            login_password=dict(type="str", no_log=True),
            connect_timeout=dict(type="float", default=10),
            ssl_ca=dict(type="str"),
            check_login=dict(type="bool", default=False),
            keyspace=dict(type="dict"),
            role=dict(type="dict", no_log=False),
            query=dict(type="str"),
            statements=dict(type="list", elements="str"),
            consistency=dict(type="str", default="QUORUM"),
        ),
        mutually_exclusive=[("check_login", "keyspace", "role", "query", "statements")],
        supports_check_mode=True,
    )
    if not HAS_DRIVER:
        module.fail_json(msg=missing_required_lib("python3-cassandra"), exception=DRIVER_ERROR)
    p = module.params
    if not hasattr(ConsistencyLevel, p["consistency"].upper()):
        module.fail_json(msg="unknown consistency level %s" % p["consistency"])
    CONSISTENCY[0] = p["consistency"].upper()
    if p["role"] and p["role"].get("password"):
        module.no_log_values.add(p["role"]["password"])

    try:
        ssl_context(p)
    except (OSError, ssl.SSLError) as exc:
        module.fail_json(msg="%s:%s: TLS: cannot read the CA file %s: %s"
                         % (p["login_host"], p["login_port"], p["ssl_ca"], exc))
    try:
        cluster, session = connect(p, p["login_user"], p["login_password"])
    except NoHostAvailable as exc:
        kind, msg = login_error(exc)
        if kind == "tls":
            module.fail_json(msg="%s:%s: TLS: %s (CA %s)" % (p["login_host"], p["login_port"],
                                                            msg, p["ssl_ca"]))
        if p["check_login"]:
            module.exit_json(changed=False, can_login=False, reason="%s: %s" % (kind, msg))
        module.fail_json(msg="%s:%s as %s: %s (%s)" % (p["login_host"], p["login_port"],
                                                       p["login_user"], kind, msg))
    try:
        if p["check_login"]:
            module.exit_json(changed=False, can_login=True, reason="ok", statements=[])
        cql = Cql(module, session)
        if p["query"]:
            rows = [{k: plain(v) for k, v in r._asdict().items()} for r in run(session, p["query"])]
            module.exit_json(changed=False, rows=rows, statements=[p["query"]])
        if p["statements"]:
            for statement in p["statements"]:
                cql.apply(statement)
        if p["keyspace"]:
            cql.keyspace(p["keyspace"])
        if p["role"]:
            cql.role(p["role"])
        module.exit_json(changed=cql.changed, statements=cql.statements)
    except Exception as exc:  # InvalidRequest, Unauthorized, Unavailable...
        module.fail_json(msg="%s: %s" % (type(exc).__name__, str(exc)[:500]),
                         statements=getattr(locals().get("cql"), "statements", []))
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
