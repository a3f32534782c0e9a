"""The identity key file, in the format `proofline-intent --key-file` reads: the 32-byte secret as
hex on one line, mode 0600. It is written once (never over an existing file) and never printed."""

from __future__ import annotations

import os
from pathlib import Path

from proofline_tools.signed_intents import IdentityKey


class KeyFileError(Exception):
    """A key file that cannot be read, or is not written because one is already there."""


def write_new_key_file(path: Path, key: IdentityKey) -> None:
    """Create `path` with mode 0600 holding `key`; an existing file is refused, never replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists: not overwritten") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(key.secret.hex() + "\n")


def read_key_file(path: Path) -> IdentityKey:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise KeyFileError(f"{path} does not exist") from None
    try:
        return IdentityKey.from_secret(bytes.fromhex(text.strip()))
    except ValueError:
        raise KeyFileError(f"{path} does not hold an identity secret (64 hex digits)") from None
