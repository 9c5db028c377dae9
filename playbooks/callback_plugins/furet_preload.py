"""Loads the filter and test plugins of the configured paths (Ansible's own, the
playbooks' ``filter_plugins``, the roles') once, in the controller's main process, before
each task: the workers Ansible forks for each task and host then find them loaded instead
of loading every one of them again (a profile of a converged ``site.yml`` on the lab put 14 %
of the controller's CPU there; README, make test).

A notification callback the playbooks of this directory load by themselves
(``CALLBACK_NEEDS_ENABLED = False``); it prints nothing and changes no result. The loader
keeps what it loaded until a new plugin directory is added (a role's ``filter_plugins``
met at run time), after which the next task's call loads them again.
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, test_loader

DOCUMENTATION = """
    name: furet_preload
    type: notification
    short_description: Jinja plugins loaded once in the controller, not in each worker
    description:
      - Before each task, loads the filter and test plugins of the configured paths in the
        controller's main process (a no-op once they are loaded), so that the forked
        workers inherit them.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "furet_preload"
    CALLBACK_NEEDS_ENABLED = False

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        for loader in (filter_loader, test_loader):
            for _ in loader.all():
                break   # the first item: the loader has loaded them all by then

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self.v2_playbook_on_task_start(task, False)
