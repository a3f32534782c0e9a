"""Development credentials: the signer's master key file and the admin bearer token."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

MASTER_KEY_FILE = "signer-master.key"
MASTER_KEY_BYTES = 32


def ensure_master_key(path: Path) -> Path:
    """Create a random 32-byte key as `1:<base64>` (mode 0600) unless the file exists; reuse it then."""
    if not path.exists():
        _write_new_key(path)
    elif stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)
    return path


def _write_new_key(path: Path) -> None:
    line = f"1:{base64.b64encode(os.urandom(MASTER_KEY_BYTES)).decode()}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(line)


def dev_auth_tokens(admin_token: str) -> str:
    """AUTH_TOKENS (`caller_id:role+role:token`, comma-separated) with one admin caller."""
    return f"admin:admin:{admin_token}"
