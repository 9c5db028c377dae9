#!/usr/bin/python3
# -*- coding: utf-8 -*-
# furet: the haproxy_galera role's reader of one server's state through HAProxy's runtime
# API (the admin socket), for the messages of the rolling plays.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: haproxy_server_state
short_description: Read one backend server's state from HAProxy's admin socket
description:
  - Sends C(show stat) to the admin socket and returns the server's status as HAProxy
    reports it (UP, DOWN, MAINT, DRAIN, "UP 1/2"...) and its last health check. Never
    changes anything; runs in check mode.
options:
  socket: {type: path, required: true, description: HAProxy's admin socket.}
  backend: {type: str, required: true, description: Backend name.}
  server: {type: str, required: true, description: Server name in that backend.}
  settle:
    type: int
    default: 0
    description:
      - Seconds to read again while the status is in transition ("UP 1/2": up, with one
        failed check of those that mark it down), so that the answer says where HAProxy
        is going. The status as last read is returned when the time is up.
"""

RETURN = r"""
status: {type: str, returned: success, description: HAProxy's status of the server.}
check: {type: str, returned: success, description: Last health check (check_status and check_desc).}
"""

import csv
import io
import socket
import time

from ansible.module_utils.basic import AnsibleModule


def parse_stat(text, backend, server):
    """(status, check) of backend/server in `show stat`'s CSV, or None."""
    lines = text.lstrip("# ").splitlines()
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        if row.get("pxname") == backend and row.get("svname") == server:
            check = " ".join(v for v in (row.get("check_status", ""), row.get("check_desc", ""))
                             if v)
            return row.get("status", ""), check
    return None


def in_transition(status):
    """HAProxy writes a status between two states with the checks counted: "UP 1/2"."""
    return "/" in status


def settled(read, settle, clock=time.monotonic, sleep=time.sleep, interval=0.5):
    """read() until its status is not in transition or `settle` seconds have passed."""
    deadline = clock() + settle
    found = read()
    while found is not None and in_transition(found[0]) and clock() < deadline:
        sleep(interval)
        found = read()
    return found


def read_stat(module, path, backend, server):
    chunks = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(b"show stat\n")
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as exc:
        module.fail_json(msg="HAProxy admin socket %s: %s" % (path, exc))
    return parse_stat(b"".join(chunks).decode("utf-8", "replace"), backend, server)


def main():
    module = AnsibleModule(argument_spec=dict(
        socket=dict(type="path", required=True),
        backend=dict(type="str", required=True),
        server=dict(type="str", required=True),
        settle=dict(type="int", default=0)), supports_check_mode=True)
    p = module.params
    found = settled(lambda: read_stat(module, p["socket"], p["backend"], p["server"]),
                    p["settle"])
    if found is None:
        module.fail_json(msg="HAProxy has no server %s in backend %s" % (p["server"], p["backend"]))
    module.exit_json(changed=False, status=found[0], check=found[1])


if __name__ == "__main__":
    main()
