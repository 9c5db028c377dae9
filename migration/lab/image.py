"""The lab base images: built by lab/image/build.sh, one per Debian suite the lab's hosts
use (bookworm; trixie for the hosts of a new cluster), tagged by a hash of the recipe."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable

from migration.errors import FuretError
from migration.lab.config import DEFAULT_SUITE, SUITES, LabConfig
from migration.lab.podman import Podman


def recipe_hash(config: LabConfig) -> str:
    """sha256 over every file of lab/image/ (path and content), first 12 hex digits."""
    digest = hashlib.sha256()
    for path in sorted(p for p in config.image_recipe_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(config.image_recipe_dir)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def image_tag(config: LabConfig, suite: str = DEFAULT_SUITE) -> str:
    """<image>:<hash> for bookworm (as before suites existed), <image>:<suite>-<hash> else."""
    if suite not in SUITES:
        raise FuretError(f"lab_suite {suite!r}: the lab builds {', '.join(SUITES)}")
    prefix = "" if suite == DEFAULT_SUITE else f"{suite}-"
    return f"{config.image}:{prefix}{recipe_hash(config)}"


def _suite_of_tag(config: LabConfig, tag: str) -> str:
    suffix = tag.removeprefix(config.image + ":")
    head, _, _ = suffix.rpartition("-")
    return head if head in SUITES else DEFAULT_SUITE


def ensure_image(config: LabConfig, podman: Podman, say: Callable[[str], None],
                 suite: str = DEFAULT_SUITE) -> str:
    """Build the suite's image unless the current recipe's tag exists; return the tag."""
    tag = image_tag(config, suite)
    if podman.exists("image", tag):
        say(f"image {tag} is cached")
    else:
        say(f"building image {tag} (debootstrap {suite}, ~2 min)")
        started = time.monotonic()
        result = subprocess.run(
            ["bash", str(config.image_recipe_dir / "build.sh"), tag, suite], env=podman.env
        )
        if result.returncode != 0:
            raise FuretError(f"lab image build failed (lab/image/build.sh exit "
                             f"{result.returncode})")
        say(f"image {tag} built in {time.monotonic() - started:.0f} s")
    if suite == DEFAULT_SUITE:
        _tag_latest(config, podman, tag)
    _remove_stale_tags(config, podman, keep=tag, say=say)
    return tag


def latest_tag(config: LabConfig) -> str:
    """The stable name molecule scenarios use (`make lab-image` keeps it current)."""
    return f"{config.image}:latest"


def _tag_latest(config: LabConfig, podman: Podman, tag: str) -> None:
    podman.run("tag", tag, latest_tag(config))


def _remove_stale_tags(config: LabConfig, podman: Podman, keep: str,
                       say: Callable[[str], None]) -> None:
    """Drop older builds of the lab image (of keep's suite) that no container uses any more."""
    listing = podman.run("images", "--format", "{{.Repository}}:{{.Tag}}", config.image,
                         check=False)
    suite = _suite_of_tag(config, keep)
    for tag in listing.stdout.split():
        stale = (tag not in (keep, latest_tag(config)) and tag.startswith(config.image + ":")
                 and _suite_of_tag(config, tag) == suite)
        # rmi refuses an image that a container still uses; that one stays.
        if stale and podman.run("rmi", tag, check=False).returncode == 0:
            say(f"removed old image {tag}")
