"""The commands that destroy or invent data (``legacy init``, ``legacy seed``, ``target
init --drop``, ``cassandra init --truncate``: the lab's rehearsals) refuse on a production
host unless the operator says so: its settings say ``site.production: true`` (the
etl_runner role writes it for every inventory not marked ``furet_lab: true``)."""

from __future__ import annotations

from migration.config import FuretConfig
from migration.errors import FuretError

CONFIRM_FLAG = "--i-know-this-is-production"


def refuse_on_production(config: FuretConfig, command: str, what: str,
                         confirmed: bool) -> None:
    """Raise one line naming the command and what it would do, unless these settings are
    not production's or the operator passed CONFIRM_FLAG."""
    if config.site.production and not confirmed:
        source = config.source_file or "the settings"
        raise FuretError(f"{command}: refused: {source} is a production host's (site."
                         f"production: true) and this would {what}; pass {CONFIRM_FLAG} if "
                         "that is really what you want")
