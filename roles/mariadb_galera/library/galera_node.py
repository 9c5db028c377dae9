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
short_description: Read a Galera node's state; stop, start, restart or bootstrap it, bounded
description:
  - Reads the service's systemd state (ActiveState, SubState, NRestarts: how many times
    systemd restarted it by itself), the node's wsrep status (over the unix socket, as
    root) and its saved state in grastate.dat (cluster UUID, seqno, safe_to_bootstrap),
    and says in one word what it found (I(found)): synced, joining, non-Primary, starting,
    restarting (systemd is about to restart it), stopping, down.
  - I(operation) stop never hangs: it first holds the service (a runtime drop-in with
    C(Restart=no), so systemd does not start the node again until a start of this module
    releases it), asks systemd to stop, waits I(stop_timeout) seconds, then kills every
    process of the unit (SIGKILL; InnoDB and galera_recovery make that safe) and waits
    for it to be gone. restart is that stop, then a start.
  - With I(recover_position), a stopped node whose grastate.dat says seqno -1 (it crashed)
    gets its position from C(galera_recovery); the result says which source was used. A
    node with no grastate.dat or with the zero UUID (killed in a state transfer) has no
    cluster state: position seqno -1, source "no cluster state", galera_recovery not run.
  - I(operation) start, restart or new_cluster acts first (C(systemctl start),
    C(galera_new_cluster)); with I(wait_synced) the start does not block in systemctl (a
    joiner that cannot join would hold it) and the module polls until the node is
    Synced in a Primary component (of I(cluster_size) nodes when not 0), fails at once
    when systemd says the service failed (with the journal's last lines), or fails after
    I(timeout) seconds naming the host and the last state seen. Acting and waiting in one
    task is what lets C(throttle: 1) restart a cluster one node at a time.
  - I(settle) makes a read of a node that runs (or that systemd is restarting) but is
    not Synced in a Primary component wait up to that many seconds for it to get there
    by itself (Galera's pc.recovery after a power loss); a down node is read at once.
  - Reading never changes anything and runs in check mode; an operation in check mode only
    reports the change.
options:
  operation:
    type: str
    choices: [read, stop, start, restart, new_cluster, release]
    default: read
    description: What to do before reading (release only removes the hold of a stop).
  stop_timeout: {type: int, default: 30, description: Seconds a stop may take before SIGKILL.}
  settle: {type: int, default: 0, description: Seconds a read waits for a running node to be Synced.}
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
    running, active_state, sub_state, restarts (systemd's NRestarts), found (one word and
    the restarts), status (WSREP_* name: value), member (Primary), synced, cluster_size,
    cluster_uuid, uuid, seqno, safe_to_bootstrap (grastate.dat), has_state (a cluster UUID
    is saved), seen ("size,status,state" or "server down"); position {seqno, source} with
    recover_position; stopped ("was down", "stopped" or "killed after N s") with stop.
healthy: {type: bool, returned: always, description: Synced in a Primary component of the wanted size.}
"""

import os
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
POLL_SECONDS = 2
# After SIGKILL a unit is gone within a second or two; this bounds the wait all the same.
KILL_WAIT_SECONDS = 30
# The hold: a runtime drop-in (gone at the next boot) that stops systemd from restarting a
# node that a play stopped or killed, until a start of this module removes it.
HOLD_DROPIN = "/run/systemd/system/%s.service.d/zz-furet-hold.conf"
HOLD_TEXT = ("# furet (galera_node): held down by a play; the play's next start removes this\n"
             "[Service]\nRestart=no\n")
SERVICE_PROPERTIES = ("ActiveState", "SubState", "NRestarts")
DOWN_STATES = ("inactive", "failed")


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


def parse_service(text):
    """ActiveState, SubState, NRestarts of `systemctl show --property=...` (KEY=VALUE lines)."""
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    restarts = values.get("NRestarts", "")
    return {"active_state": values.get("ActiveState", "unknown"),
            "sub_state": values.get("SubState", ""),
            "restarts": int(restarts) if restarts.isdigit() else 0}


def found_label(state):
    """One word for what a node was found doing, then how often systemd restarted it."""
    active, sub, status = state["active_state"], state["sub_state"], state["status"]
    if active == "active" and state["member"] and state["synced"]:
        label = "synced"
    elif active == "activating" and sub == "auto-restart":
        label = "restarting"
    elif active == "deactivating":
        label = "stopping"
    elif active in ("active", "activating", "reloading"):
        if not status:
            label = "starting"
        elif not state["member"]:
            label = "non-Primary"
        else:
            label = "joining"
    elif active == "failed":
        label = "down (failed)"
    else:
        label = "down"
    if state["restarts"]:
        label += ", restarted %d time%s by systemd" % (state["restarts"],
                                                       "" if state["restarts"] == 1 else "s")
    return label


def summarise(service, status, grastate):
    """What the role decides from, in one dict (the facts of tasks/state.yml)."""
    size = status.get("WSREP_CLUSTER_SIZE", "")
    uuid = grastate["uuid"]
    seen = "server down"
    if status:
        seen = "%s,%s,%s" % (size or "?", status.get("WSREP_CLUSTER_STATUS", "?"),
                             status.get("WSREP_LOCAL_STATE_COMMENT", "?"))
    state = {
        "running": service["active_state"] == "active",
        "active_state": service["active_state"],
        "sub_state": service["sub_state"],
        "restarts": service["restarts"],
        "status": status,
        "cluster_uuid": status.get("WSREP_CLUSTER_STATE_UUID", ""),
        "member": status.get("WSREP_CLUSTER_STATUS") == "Primary",
        "synced": status.get("WSREP_LOCAL_STATE_COMMENT") == "Synced",
        "cluster_size": int(size) if size.isdigit() else 0,
        "uuid": uuid,
        "seqno": grastate["seqno"],
        "safe_to_bootstrap": grastate["safe_to_bootstrap"],
        "has_state": bool(uuid) and uuid != ZERO_UUID,
        "seen": seen,
    }
    state["found"] = found_label(state)
    return state


def healthy(state, cluster_size=0):
    """Synced in a Primary component, of cluster_size nodes when it is not 0."""
    return bool(state["member"] and state["synced"]
                and (not cluster_size or state["cluster_size"] == cluster_size))


class Node:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.host = socket.gethostname()
        # systemd's NRestarts when this module started the service (see act, wait).
        self.restarts_before = None

    def fail(self, msg, **extra):
        self.module.fail_json(msg="%s: %s" % (self.host, msg), **extra)

    def service(self):
        rc, out, _ = self.module.run_command(
            ["systemctl", "show", "--property=" + ",".join(SERVICE_PROPERTIES), self.p["service"]])
        return parse_service(out if rc == 0 else "")

    def systemctl(self, *args, **kwargs):
        rc, out, err = self.module.run_command(["systemctl"] + list(args) + [self.p["service"]])
        if rc != 0 and kwargs.get("check", True):
            self.fail("systemctl %s %s failed (rc %s): %s"
                      % (" ".join(args), self.p["service"], rc, (err or out).strip()))
        return rc

    def hold(self):
        """systemd must not start the node again by itself (Restart=) until release()."""
        path = HOLD_DROPIN % self.p["service"]
        try:
            with open(path) as handle:
                if handle.read() == HOLD_TEXT:
                    return
        except FileNotFoundError:
            pass
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(HOLD_TEXT)
        self.module.run_command(["systemctl", "daemon-reload"])

    def release(self):
        """Whether a hold was there to remove."""
        path = HOLD_DROPIN % self.p["service"]
        if not os.path.exists(path):
            return False
        os.remove(path)
        self.module.run_command(["systemctl", "daemon-reload"])
        return True

    def wait_down(self, seconds):
        deadline = time.monotonic() + seconds
        while True:
            service = self.service()
            if service["active_state"] in DOWN_STATES:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)

    def stop(self):
        """Stop within stop_timeout seconds, else SIGKILL; held down afterwards."""
        self.hold()
        before = self.service()
        if before["active_state"] in DOWN_STATES:
            self.module.run_command(["systemctl", "reset-failed", self.p["service"]])
            return "was down"
        # --no-block: a node stuck joining holds a stop in stop-sigterm for as long as the
        # unit's TimeoutStopSec allows (15 min, then no SIGKILL, on Debian's unit).
        self.systemctl("stop", "--no-block")
        how = "stopped"
        if not self.wait_down(self.p["stop_timeout"]):
            self.systemctl("kill", "--signal=SIGKILL", check=False)
            if not self.wait_down(KILL_WAIT_SECONDS):
                self.fail("%s still not down %d s after SIGKILL (seen: %s)"
                          % (self.p["service"], KILL_WAIT_SECONDS, self.service()["active_state"]))
            how = "killed after %d s" % self.p["stop_timeout"]
        self.module.run_command(["systemctl", "reset-failed", self.p["service"]])
        return how

    def journal_tail(self):
        """The first [ERROR] lines of the server's last start that logged any (the cause;
        the ones after it are consequences), else the unit's last lines, for a failed start."""
        rc, out, _ = self.module.run_command(
            ["journalctl", "-u", self.p["service"], "-n", "1000", "--no-pager", "-o", "cat"])
        lines = [line.strip() for line in out.splitlines() if line.strip()] if rc == 0 else []
        # systemd may already have started it again: the last start that logged errors
        starts = [0] + [i for i, line in enumerate(lines) if "] Starting MariaDB" in line]
        for begin, end in reversed(list(zip(starts, starts[1:] + [len(lines)]))):
            errors = [line for line in lines[begin:end] if "[ERROR]" in line]
            if errors:
                return " | ".join(errors[:2])
        return " | ".join(lines[-4:])

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
        service = self.service()
        active = service["active_state"]
        # A node that is still starting (a joiner) may already answer: read it leniently.
        status = (self.status(strict) if active == "active"
                  else self.status(False) if active in ("activating", "reloading") else {})
        return summarise(service, status, self.grastate())

    def settle(self, seconds):
        """Read; a node that runs (or is being restarted) but is not Synced in a Primary
        component gets up to `seconds` to get there by itself. A down node: at once."""
        deadline = time.monotonic() + seconds
        while True:
            state = self.read(strict=False)
            if (healthy(state) or state["active_state"] in DOWN_STATES
                    or time.monotonic() >= deadline):
                return state
            time.sleep(POLL_SECONDS)

    def position(self, state):
        """Where this node's data ends: grastate.dat, or galera_recovery after a crash."""
        if not state["has_state"]:
            # No grastate.dat, or the zero UUID: the node was in a state transfer (or never
            # joined). It holds no cluster state; the next transfer replaces its data, so
            # InnoDB's recovery is not run on what may be half a copy.
            return {"seqno": -1, "source": "no cluster state"}
        if state["seqno"] is not None and state["seqno"] != -1:
            return {"seqno": state["seqno"], "source": "grastate.dat"}
        # seqno -1 (a crash), or a cluster UUID without a readable seqno: InnoDB knows.
        if self.module.check_mode:
            # galera_recovery runs InnoDB's crash recovery: not in check mode.
            return {"seqno": -1, "source": "unknown in check mode"}
        if state["running"]:
            self.fail("seqno -1 while %s runs: stop it before recovering its position"
                      % self.p["service"], galera=state)
        rc, out, err = self.module.run_command(["galera_recovery"])
        found = parse_recovered_position(out) if rc == 0 else None
        if found is None:
            # A member of the cluster whose InnoDB cannot be recovered: its position is
            # unknown (it may have held writes the others lack, lost with its InnoDB). It
            # ranks last; the recovery never bootstraps from it, and refuses when no other
            # node has a known position.
            return {"seqno": -1, "source": "unrecoverable",
                    "detail": "galera_recovery rc %s: %s" % (rc, (err or out).strip()[-200:])}
        return {"seqno": found[1], "source": "wsrep-recover"}

    def act(self, operation):
        """Returns how the node was stopped, for stop and restart."""
        stopped = None
        if operation in ("stop", "restart"):
            stopped = self.stop()
        if operation == "stop":
            return stopped
        self.release()
        self.module.run_command(["systemctl", "reset-failed", self.p["service"]])
        if operation == "new_cluster":
            command = ["galera_new_cluster"]
        elif self.p["wait_synced"]:
            # The wait below bounds the start; systemctl would block until a joiner is in.
            command = ["systemctl", "start", "--no-block", self.p["service"]]
        else:
            command = ["systemctl", "start", self.p["service"]]
        restarts = self.service()["restarts"]
        rc, out, err = self.module.run_command(command)
        if rc != 0:
            self.fail("%s failed (rc %s): %s%s" % (" ".join(command), rc, (err or out).strip(),
                                                   self.journal_suffix()))
        # A server that dies while starting is restarted by systemd (Restart=), never
        # "failed": the wait counts those restarts as a failed start.
        self.restarts_before = restarts
        return stopped

    def journal_suffix(self):
        tail = self.journal_tail()
        return "; journal: %s" % tail if tail else ""

    def wait(self):
        started = time.monotonic()
        deadline = started + self.p["timeout"]
        while True:
            state = self.read(strict=False)
            if healthy(state, self.p["cluster_size"]) or time.monotonic() >= deadline:
                return state, round(time.monotonic() - started, 1)
            crashed = (self.restarts_before is not None
                       and state["restarts"] > self.restarts_before)
            if state["active_state"] == "failed" or crashed:
                self.fail("%s failed to start (%s)%s" % (self.p["service"], state["found"],
                                                          self.journal_suffix()),
                          galera=state, healthy=False)
            time.sleep(POLL_SECONDS)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            operation=dict(type="str", default="read",
                           choices=["read", "stop", "start", "restart", "new_cluster",
                                    "release"]),
            stop_timeout=dict(type="int", default=30),
            settle=dict(type="int", default=0),
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
    if changed and module.check_mode and p["operation"] != "release":
        # Nothing was started: report what is there now, without waiting for it.
        state = node.read(strict=False)
        module.exit_json(changed=True, galera=state, healthy=healthy(state, p["cluster_size"]))
    if p["operation"] == "release":
        released = False if module.check_mode else node.release()
        module.exit_json(changed=released, galera=node.read(strict=False), healthy=False)
    stopped = node.act(p["operation"]) if changed else None
    if p["operation"] == "stop":
        state = node.read(strict=False)
        state["stopped"] = stopped
        module.exit_json(changed=stopped != "was down", galera=state, healthy=False)
    if p["wait_synced"]:
        state, waited = node.wait()
        if stopped:
            state["stopped"] = stopped
        if not healthy(state, p["cluster_size"]):
            size = " of size %d" % p["cluster_size"] if p["cluster_size"] else ""
            node.fail("not Synced in a Primary component%s after %d s (last seen: %s, %s)"
                      % (size, p["timeout"], state["seen"], state["found"]),
                      changed=changed, galera=state, healthy=False, waited=waited)
        module.exit_json(changed=changed, galera=state, healthy=True, waited=waited)
    state = node.settle(p["settle"]) if p["settle"] else node.read(strict=True)
    if p["recover_position"]:
        state["position"] = node.position(state)
    module.exit_json(changed=changed, galera=state, healthy=healthy(state, p["cluster_size"]))


if __name__ == "__main__":
    main()
