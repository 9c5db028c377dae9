"""playbooks/callback_plugins/furet_preload.py: before each task, the controller's main
process loads the Jinja plugins of the configured paths, so the workers it forks for the
task find them loaded. Checked in a process of its own (Ansible's plugin loader is global):
after the callback, resolving a filter (Ansible's own, or furet's from
playbooks/filter_plugins) imports nothing more; the callback itself imported them."""

from __future__ import annotations

import json
import subprocess

from tests.helpers import BIN, REPO

SCRIPT = """
import json, sys
from ansible.plugins.loader import (add_all_plugin_dirs, callback_loader, filter_loader,
                                    init_plugin_loader, test_loader)
init_plugin_loader()
add_all_plugin_dirs(sys.argv[1])             # what ansible-playbook does for playbooks/
callback = callback_loader.get("furet_preload")
before = set(sys.modules)
callback.v2_playbook_on_task_start(None, False)
loaded = set(sys.modules) - before
for name in ("to_nice_yaml", "regex_replace", "furet_argv", "furet_group_addresses"):
    assert filter_loader.get(name) is not None, name
assert test_loader.get("regex") is not None
worker = set(sys.modules) - before - loaded
print(json.dumps({"by_callback": sorted(loaded), "by_worker": sorted(worker)}))
"""


def test_the_workers_find_the_jinja_plugins_loaded() -> None:
    run = subprocess.run([str(BIN / "python"), "-c", SCRIPT, str(REPO / "playbooks")],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    modules = json.loads(run.stdout.splitlines()[-1])
    assert any("filter" in m and "furet" in m for m in modules["by_callback"]), modules
    assert modules["by_worker"] == [], modules

