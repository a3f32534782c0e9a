"""A secret split into SLIP-0039 mnemonic shares and rebuilt from them (trezor's `shamir-mnemonic`).

One group, `threshold` of `count` members. Below the threshold the shares say nothing about the
secret: Shamir's scheme over GF(256) makes every secret equally likely given any `threshold - 1`
shares, and SLIP-0039 also encrypts the secret under the passphrase before splitting it. So the
wallet's backup storage, which holds at most 2 shares of a 3-of-5 split, can never rebuild a key,
nor learn a single bit of it, on its own.

Every refusal is a `ShareError` whose `reason` is one of TOO_FEW_SHARES, SHARES_MISMATCH or
SHARE_INVALID (also the prefix of its message). The messages never contain a share's words: the
library's own messages quote a share's first words, so they are not passed on.

A wrong passphrase is not detectable: SLIP-0039 decrypts to another, valid-looking secret (plausible
deniability by design). Callers compare the rebuilt public key with the one they expect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import shamir_mnemonic
from shamir_mnemonic import EncryptedMasterSecret, MnemonicError, Share
from shamir_mnemonic.shamir import ShareGroup

TOO_FEW_SHARES: Final = "TOO_FEW_SHARES"
SHARES_MISMATCH: Final = "SHARES_MISMATCH"
SHARE_INVALID: Final = "SHARE_INVALID"

DEFAULT_THRESHOLD: Final = 3
DEFAULT_COUNT: Final = 5
# SLIP-0039's passphrase stretching: 10,000 * 2**e PBKDF2 rounds per Feistel round (e = 1: 20,000).
ITERATION_EXPONENT: Final = 1


class ShareError(Exception):
    """Shares that cannot give the secret; `reason` is stable, the rest of the message explains."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def check_passphrase(passphrase: bytes) -> None:
    """SLIP-0039 passphrases are printable ASCII (code points 32-126)."""
    if not all(32 <= c <= 126 for c in passphrase):
        raise ValueError("a SLIP-0039 passphrase contains only printable ASCII characters")


def split_secret(
    secret: bytes, *, threshold: int = DEFAULT_THRESHOLD, count: int = DEFAULT_COUNT, passphrase: bytes = b""
) -> list[str]:
    """`count` mnemonics (member index order) any `threshold` of which give `secret` back."""
    check_passphrase(passphrase)
    groups = shamir_mnemonic.generate_mnemonics(
        1, [(threshold, count)], secret, passphrase, iteration_exponent=ITERATION_EXPONENT
    )
    return list(groups[0])


def combine_shares(mnemonics: Sequence[str], passphrase: bytes = b"") -> bytes:
    """The secret behind `mnemonics` (threshold of them or more; each extra one is checked too)."""
    check_passphrase(passphrase)
    shares = [decode_share(m) for m in mnemonics]
    if not shares:
        raise ShareError(TOO_FEW_SHARES, "no shares given")
    groups = group_shares(shares)
    return recover(groups).decrypt(passphrase)


def decode_share(mnemonic: str) -> Share:
    try:
        return Share.from_mnemonic(mnemonic)
    except MnemonicError as error:
        raise ShareError(SHARE_INVALID, share_problem(str(error))) from None


def share_problem(message: str) -> str:
    """What is wrong with one share, in words that do not quote the share."""
    for marker, problem in (
        ("checksum", "a share's checksum does not match (a word is wrong or missing)"),
        ("padding", "a share's padding is invalid"),
        ("length", "a share has the wrong number of words"),
        ("word", "a share contains a word outside the SLIP-0039 word list"),
        ("threshold", "a share's group threshold is greater than its group count"),
    ):
        if marker in message:
            return problem
    return "a share is not a valid SLIP-0039 mnemonic"


def group_shares(shares: Sequence[Share]) -> dict[int, ShareGroup]:
    """Shares by group, refused unless they all come from one split (identifier and parameters)."""
    first = shares[0]
    groups: dict[int, ShareGroup] = {}
    for share in shares:
        if share.common_parameters() != first.common_parameters():
            raise ShareError(SHARES_MISMATCH, "the shares come from different backups (their headers differ)")
        group = groups.setdefault(share.group_index, ShareGroup())
        if group and share.group_parameters() != group.group_parameters():
            raise ShareError(SHARES_MISMATCH, "shares of one group disagree on its member threshold")
        if share not in group and any(other.index == share.index for other in group):
            raise ShareError(SHARES_MISMATCH, f"two different shares carry the same member index {share.index + 1}")
        group.add(share)
    return groups


def recover(groups: dict[int, ShareGroup]) -> EncryptedMasterSecret:
    """The encrypted secret from the complete groups; every share beyond a minimal set must agree."""
    complete = [groups[i] for i in sorted(groups) if groups[i].is_complete()]
    needed = next(iter(groups.values())).common_parameters().group_threshold
    if len(complete) < needed:
        raise ShareError(TOO_FEW_SHARES, too_few(groups, needed))
    ordered = [sorted(group, key=lambda share: share.index) for group in complete]
    minimal = [members[: group.member_threshold()] for members, group in zip(ordered, complete, strict=True)]
    chosen = minimal[:needed]
    expected = recover_selection(chosen)
    # Each extra share, and each extra complete group, takes a place in the minimal set in turn: one
    # that does not lie on the same polynomials changes the result (or fails the digest).
    for g, (members, base) in enumerate(zip(ordered, minimal, strict=True)):
        slot = min(g, needed - 1)
        with_group = [*chosen[:slot], base, *chosen[slot + 1 :]]
        if g >= needed:
            check_agrees(recover_selection(with_group), expected)
        for extra in members[len(base) :]:
            with_group[slot] = [*base[:-1], extra]
            check_agrees(recover_selection(with_group), expected)
    return expected


def too_few(groups: dict[int, ShareGroup], needed: int) -> str:
    if needed == 1:
        group = next(iter(groups.values()))
        return f"{len(group)} distinct share(s) given, {group.member_threshold()} needed"
    return f"{needed} complete groups needed, {sum(g.is_complete() for g in groups.values())} given"


def recover_selection(selection: Sequence[Sequence[Share]]) -> EncryptedMasterSecret:
    groups: dict[int, ShareGroup] = {}
    for members in selection:
        for share in members:
            groups.setdefault(share.group_index, ShareGroup()).add(share)
    try:
        return shamir_mnemonic.recover_ems(groups)
    except MnemonicError:
        # The digest check failed: shares that look alike but do not belong to one split.
        raise ShareError(SHARES_MISMATCH, "the shares do not combine (digest mismatch): not one backup") from None


def check_agrees(found: EncryptedMasterSecret, expected: EncryptedMasterSecret) -> None:
    if found != expected:
        raise ShareError(SHARES_MISMATCH, "the shares do not all belong to one backup")
