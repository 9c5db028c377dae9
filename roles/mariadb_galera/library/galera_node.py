#!/usr/bin/python3
# -*- coding: utf-8 -*-
# furet: the mariadb_galera role's one reader of a node's Galera state. Everything the role
# and its operations decide from (bootstrap, join, health gates, rolling restart, recovery)
# reads it here: the service, the wsrep status variables, grastate.dat and, for a crashed
# node, the position `galera_recovery` (mariadbd --wsrep-recover) finds in InnoDB.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: galera_node
short_description: Read a Galera node's state; start, restart or bootstrap it and wait until Synced
description:
  - Reads whether the service runs, the node's wsrep status (over the unix socket, as root),
    and its saved state in grastate.dat (cluster UUID, seqno, safe_to_bootstrap).
  - With I(recover_position), a stopped node whose grastate.dat says seqno -1 (it crashed)
    gets its position from C(galera_recovery); the result says which source was used.
  - I(operation) start, restart or new_cluster acts first (C(systemctl start|restart),
    C(galera_new_cluster)); with I(wait_synced) the module then polls until the node is
    Synced in a Primary component (of I(cluster_size) nodes when not 0) or fails after
    I(timeout) seconds naming the host and the last state seen. Acting and waiting in one
    task is what lets C(throttle: 1) restart a cluster one node at a time.
  - Reading never changes anything and runs in check mode; an operation in check mode only
    reports the change.
options:
  operation:
    type: str
    choices: [read, start, restart, new_cluster]
    default: read
    description: What to do before reading.
  wait_synced: {type: bool, default: false, description: Poll until Synced in a Primary component.}
  cluster_size: {type: int, default: 0, description: With wait_synced, also wait for this size.}
  timeout: {type: int, default: 300, description: Seconds to wait with wait_synced.}
  recover_position:
    type: bool
    default: false
    description: Return I(position), recovered with galera_recovery when seqno is -1.
  login_unix_socket: {type: path, default: /run/mysqld/mysqld.sock, description: Server socket.}
  grastate: {type: path, default: /var/lib/mysql/grastate.dat, description: Saved state file.}
  service: {type: str, default: mariadb, description: systemd unit of the server.}
"""

EXAMPLES = r"""
- name: Restart this node and wait until it is Synced again
  galera_node:
    operation: restart
    wait_synced: true
    timeout: 300
  throttle: 1
"""

RETURN = r"""
galera:
  type: dict
  returned: always
  description: >-
    running, status (WSREP_* name: value), member (Primary), synced, cluster_size, uuid,
    seqno, safe_to_bootstrap (grastate.dat), has_state (a cluster UUID is saved), seen
    ("size,status,state" or "server down"); position {seqno, source} with recover_position.
healthy: {type: bool, returned: always, description: Synced in a Primary component of the wanted size.}
"""

import re
import socket
import time

from ansible.module_utils.basic import AnsibleModule

ZERO_UUID = "00000000-0000-0000-0000-000000000000"
STATUS_VARIABLES = (
    "WSREP_CLUSTER_SIZE", "WSREP_CLUSTER_STATE_UUID", "WSREP_CLUSTER_STATUS",
    "WSREP_LOCAL_STATE", "WSREP_LOCAL_STATE_COMMENT", "WSREP_READY",
)
STATUS_SQL = (
    "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
    "WHERE VARIABLE_NAME IN (%s)" % ", ".join("'%s'" % v for v in STATUS_VARIABLES)
)
ACTIONS = {
    "start": ["systemctl", "start"],
    "restart": ["systemctl", "restart"],
}
POLL_SECONDS = 2


def parse_grastate(text):
    """uuid, seqno (int or None) and safe_to_bootstrap of a grastate.dat's text."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.lstrip().startswith("#"):
            values[key.strip()] = value.strip()
    seqno = values.get("seqno", "")
    return {
        "uuid": values.get("uuid", ""),
        "seqno": int(seqno) if re.fullmatch(r"-?\d+", seqno) else None,
        "safe_to_bootstrap": values.get("safe_to_bootstrap") == "1",
    }


def parse_status(text):
    """NAME<TAB>VALUE lines of the mariadb client (-N -s) as a dict."""
    rows = (line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    return {name.upper(): value for name, value in rows}


def parse_recovered_position(text):
    """(uuid, seqno) from galera_recovery's '--wsrep_start_position=UUID:SEQNO[,GTID]'."""
    match = re.search(r"wsrep_start_position=([^:\s]+):(-?\d+)", text)
    return (match.group(1), int(match.group(2))) if match else None


def summarise(running, status, grastate):
    """What the role decides from, in one dict (the facts of tasks/state.yml)."""
    size = status.get("WSREP_CLUSTER_SIZE", "")
    uuid = grastate["uuid"]
    seen = "server down"
    if status:
        seen = "%s,%s,%s" % (size or "?", status.get("WSREP_CLUSTER_STATUS", "?"),
                             status.get("WSREP_LOCAL_STATE_COMMENT", "?"))
    return {
        "running": running,
        "status": status,
        "member": status.get("WSREP_CLUSTER_STATUS") == "Primary",
        "synced": status.get("WSREP_LOCAL_STATE_COMMENT") == "Synced",
        "cluster_size": int(size) if size.isdigit() else 0,
        "uuid": uuid,
        "seqno": grastate["seqno"],
        "safe_to_bootstrap": grastate["safe_to_bootstrap"],
        "has_state": bool(uuid) and uuid != ZERO_UUID,
        "seen": seen,
    }


def healthy(state, cluster_size=0):
    """Synced in a Primary component, of cluster_size nodes when it is not 0."""
    return bool(state["member"] and state["synced"]
                and (not cluster_size or state["cluster_size"] == cluster_size))


class Node:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.host = socket.gethostname()

    def fail(self, msg, **extra):
        self.module.fail_json(msg="%s: %s" % (self.host, msg), **extra)

    def running(self):
        rc, out, _ = self.module.run_command(
            ["systemctl", "show", "--property=ActiveState", "--value", self.p["service"]])
        return rc == 0 and out.strip() == "active"

    def status(self, strict):
        client = self.module.get_bin_path("mariadb")
        if client is None:
            if strict:
                self.fail("%s is active but the mariadb client is missing" % self.p["service"])
            return {}
        rc, out, err = self.module.run_command(
            [client, "--protocol=socket", "--socket=%s" % self.p["login_unix_socket"],
             "--connect-timeout=5", "-N", "-s", "-e", STATUS_SQL])
        if rc != 0:
            if strict:
                self.fail("%s is active but its wsrep status cannot be read: %s"
                          % (self.p["service"], err.strip()))
            return {}
        return parse_status(out)

    def grastate(self):
        try:
            with open(self.p["grastate"]) as handle:
                return parse_grastate(handle.read())
        except FileNotFoundError:
            return parse_grastate("")

    def read(self, strict):
        running = self.running()
        return summarise(running, self.status(strict) if running else {}, self.grastate())

    def position(self, state):
        """Where this node's data ends: grastate.dat, or galera_recovery after a crash."""
        if state["seqno"] is None:
            self.fail("%s holds no seqno: this node has no Galera state to recover from"
                      % self.p["grastate"], galera=state)
        if state["seqno"] != -1:
            return {"seqno": state["seqno"], "source": "grastate.dat"}
        if self.module.check_mode:
            # galera_recovery runs InnoDB's crash recovery: not in check mode.
            return {"seqno": -1, "source": "unknown in check mode"}
        if state["running"]:
            self.fail("seqno -1 while %s runs: stop it before recovering its position"
                      % self.p["service"], galera=state)
        rc, out, err = self.module.run_command(["galera_recovery"])
        found = parse_recovered_position(out) if rc == 0 else None
        if found is None:
            self.fail("galera_recovery found no position (rc %s): %s" % (rc, (err or out).strip()),
                      galera=state)
        return {"seqno": found[1], "source": "wsrep-recover"}

    def act(self, operation):
        command = ACTIONS[operation] + [self.p["service"]] if operation in ACTIONS else [
            "galera_new_cluster"]
        rc, out, err = self.module.run_command(command)
        if rc != 0:
            self.fail("%s failed (rc %s): %s" % (" ".join(command), rc, (err or out).strip()))

    def wait(self):
        started = time.monotonic()
        deadline = started + self.p["timeout"]
        while True:
            state = self.read(strict=False)
            if healthy(state, self.p["cluster_size"]) or time.monotonic() >= deadline:
                return state, round(time.monotonic() - started, 1)
            time.sleep(POLL_SECONDS)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            operation=dict(type="str", default="read",
                           choices=["read", "start", "restart", "new_cluster"]),
            wait_synced=dict(type="bool", default=False),
            cluster_size=dict(type="int", default=0),
            timeout=dict(type="int", default=300),
            recover_position=dict(type="bool", default=False),
            login_unix_socket=dict(type="path", default="/run/mysqld/mysqld.sock"),
            grastate=dict(type="path", default="/var/lib/mysql/grastate.dat"),
            service=dict(type="str", default="mariadb"),
        ),
        supports_check_mode=True,
    )
    node = Node(module)
    p = module.params
    changed = p["operation"] != "read"
    if changed and module.check_mode:
        # Nothing was started: report what is there now, without waiting for it.
        state = node.read(strict=False)
        module.exit_json(changed=True, galera=state, healthy=healthy(state, p["cluster_size"]))
    if changed:
        node.act(p["operation"])
    if p["wait_synced"]:
        state, waited = node.wait()
        if not healthy(state, p["cluster_size"]):
            size = " of size %d" % p["cluster_size"] if p["cluster_size"] else ""
            node.fail("not Synced in a Primary component%s after %d s (last seen: %s)"
                      % (size, p["timeout"], state["seen"]),
                      changed=changed, galera=state, healthy=False, waited=waited)
        module.exit_json(changed=changed, galera=state, healthy=True, waited=waited)
    state = node.read(strict=True)
    if p["recover_position"]:
        state["position"] = node.position(state)
    module.exit_json(changed=changed, galera=state, healthy=healthy(state, p["cluster_size"]))


if __name__ == "__main__":
    main()
