"""Every environment variable the code reads is documented in a README."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILES = [
    ROOT / "proofline_kit" / "settings.py",
    ROOT / "proofline_kit" / "chain" / "settings.py",
    ROOT / "proofline_tools" / "devstack" / "config.py",
    *sorted((ROOT / "services").glob("*/settings.py")),
]
# Read through f-strings with a service prefix; the README documents them as <PREFIX>_...
PREFIXED = re.compile(r"^(SIGNER|UTXO|PUBLISHER|WALLET)_(GRPC_HOST|GRPC_PORT|METRICS_PORT|DB_SCHEMA|DB_POOL_SIZE)$")


def documented_text() -> str:
    readmes = [ROOT / "README.md", *sorted((ROOT / "services").glob("*/README.md"))]
    return "\n".join(p.read_text() for p in readmes)


def test_every_environment_variable_is_documented() -> None:
    docs = documented_text()
    names: set[str] = set()
    for path in SETTINGS_FILES:
        names.update(re.findall(r'"((?:[A-Z][A-Z0-9]*_)+[A-Z0-9]+)"', path.read_text()))
    assert len(names) > 20
    missing = sorted(n for n in names if not PREFIXED.match(n) and f"`{n}`" not in docs and n not in docs)
    assert missing == []
