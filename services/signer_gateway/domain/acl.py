"""Which caller may use which key ids (shell-style patterns)."""

from __future__ import annotations

from fnmatch import fnmatchcase

from proofline_kit.auth import ROLE_ADMIN, Caller
from proofline_kit.settings import SettingsError


class KeyAcl:
    """`caller_id=pattern|pattern;caller_id=pattern`. Admins may use every key."""

    def __init__(self, patterns: dict[str, tuple[str, ...]]) -> None:
        self._patterns = patterns

    @classmethod
    def parse(cls, spec: str) -> KeyAcl:
        patterns: dict[str, tuple[str, ...]] = {}
        for entry in filter(None, (p.strip() for p in spec.split(";"))):
            caller_id, sep, raw = entry.partition("=")
            if not sep or not caller_id.strip() or not raw.strip():
                raise SettingsError("SIGNER_ACL entries must look like caller_id=pattern|pattern")
            patterns[caller_id.strip()] = tuple(p.strip() for p in raw.split("|") if p.strip())
        return cls(patterns)

    def allows(self, caller: Caller, key_id: str) -> bool:
        if ROLE_ADMIN in caller.roles:
            return True
        return any(fnmatchcase(key_id, pattern) for pattern in self._patterns.get(caller.caller_id, ()))
