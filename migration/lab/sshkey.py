"""The lab's root SSH key pair, generated once under .cache/lab/ssh (never committed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def ensure_lab_key(state_dir: Path) -> Path:
    """Create the key pair if missing; return the authorized_keys file mounted in hosts."""
    ssh_dir = state_dir / "ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ssh_dir / "id_ed25519"
    if not key.exists() or not key.with_suffix(".pub").exists():
        key.unlink(missing_ok=True)
        key.with_suffix(".pub").unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "furet-lab", "-f", str(key)],
            check=True,
        )
    authorized = ssh_dir / "authorized_keys"
    shutil.copyfile(key.with_suffix(".pub"), authorized)
    authorized.chmod(0o644)
    return authorized
