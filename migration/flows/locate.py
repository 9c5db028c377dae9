"""Where a flow's YAML file is: the search rules of ``--flow``, in one place.

``--flow`` takes a name or a path. A value with a ``/`` or a suffix (``flows/x.yml``) is a
path, read as given. A name (``runtime``) is searched in two directories:

- the flows furet ships, ``migration/flows/*.yml``;
- the deployed flows, the directory of ``flows.dir`` in furet.yml (``FURET_FLOWS_DIR``;
  the etl_runner role copies the inventory's ``flows/*.yml`` to ``/etc/furet/flows`` and
  sets it). Unset, or a directory that does not exist yet: no deployed flows.

Invariant: a name means one file, the same on every host and across furet upgrades. The
ledger records rounds by flow name, so a deployed flow never shadows a shipped one: the
same name in both directories is refused, naming both files (rename the deployed one).
For the same reason a flow found by name must declare that name (``name:`` in the file),
so that ``furet status --flow X`` finds the rounds of ``furet round --flow X``.
Only ``*.yml`` files not starting with a dot are flows, as the role deploys only those
(its manifest of deployed files, ``.furet-managed``, is not one).
"""

from __future__ import annotations

from pathlib import Path

from migration.errors import FuretError

SHIPPED_DIR = Path(__file__).resolve().parent
SUFFIX = ".yml"


def is_path(name_or_path: str) -> bool:
    """``--flow`` values with a ``/`` or a suffix are file paths, others flow names."""
    return "/" in name_or_path or bool(Path(name_or_path).suffix)


def flow_names(directory: str | Path) -> list[str]:
    """The flow names of a directory (``*.yml`` stems); none if unset or absent."""
    if not directory or not Path(directory).is_dir():
        return []
    return sorted(p.stem for p in Path(directory).glob(f"*{SUFFIX}")
                  if p.is_file() and not p.name.startswith("."))


def locate_flow(name_or_path: str, flows_dir: str | Path = "",
                shipped_dir: Path = SHIPPED_DIR) -> Path:
    """The file of a flow name (shipped, else deployed in ``flows_dir``) or a path.
    Raises FuretError: unknown name (listing both sets), a name in both directories,
    a path that is not a file."""
    if is_path(name_or_path):
        path = Path(name_or_path)
        if not path.is_file():
            raise FuretError(f"flow file {path} not found")
        return path
    shipped = shipped_dir / f"{name_or_path}{SUFFIX}"
    deployed = Path(flows_dir) / f"{name_or_path}{SUFFIX}" if flows_dir else None
    found = [p for p in (shipped, deployed) if p is not None and p.is_file()]
    if len(found) == 2:
        raise FuretError(f"flow {name_or_path!r} is both shipped ({shipped}) and deployed "
                         f"({deployed}): a deployed flow may not shadow a shipped one; rename the "
                         "deployed file and its name:")
    if not found:
        raise FuretError(f"unknown flow {name_or_path!r} ({_known(flows_dir, shipped_dir)})")
    return found[0]


def check_declared_name(declared: str, name_or_path: str, path: Path) -> None:
    """A flow found by name must declare that name (the ledger keys rounds by it)."""
    if not is_path(name_or_path) and declared != name_or_path:
        raise FuretError(f"flow file {path} declares name {declared!r}: a flow looked up as "
                         f"{name_or_path!r} must declare name: {name_or_path}")


def _known(flows_dir: str | Path, shipped_dir: Path) -> str:
    shipped = f"shipped: {', '.join(flow_names(shipped_dir)) or 'none'}"
    if not flows_dir:
        return f"{shipped}; no deployed flows: flows.dir is not set"
    if not Path(flows_dir).is_dir():
        return f"{shipped}; no deployed flows: {flows_dir} does not exist"
    return f"{shipped}; deployed in {flows_dir}: {', '.join(flow_names(flows_dir)) or 'none'}"
