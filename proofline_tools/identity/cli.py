"""`proofline-identity`: create an identity key with its 3-of-5 SLIP-0039 backup, recover it from
3 shares, print its public key. Offline, the service's 2 shares are printed, marked; online (`--wallet`)
they go to the wallet. An upload step also plugs in through `run(..., uploader=...)`.

    proofline-identity create --key-file ~/.proofline/identity.key [--passphrase-env VAR]
        [--wallet ADDR --account ACCOUNT_ID --token-env VAR [--label LABEL]]
    proofline-identity recover --key-file ~/.proofline/identity.key < three-shares.txt
    proofline-identity recover --key-file K --from-wallet ADDR --account ID --token-env VAR --expect-pubkey HEX
    proofline-identity pubkey --key-file ~/.proofline/identity.key

With `--wallet`, `create` registers the key with the account (its consent proof) and uploads
shares 1-2 to the wallet's backup storage (StoreBackupShares); only the user's 3 are printed.
With `--from-wallet`, `recover` asks the wallet to mail a one-time code (BeginRecovery), reads the
code from the first line of stdin, fetches the wallet's 2 shares (CompleteRecovery) and reads 1 (or
more) of the user's from the following lines.

The key file is the one `proofline-intent --key-file` signs with. The secret itself is never
printed; the shares are, on purpose, because they are the user's own backup.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from proofline_tools.identity.backup import SHARE_COUNT, THRESHOLD, Backup, ShareUploader, back_up, restore
from proofline_tools.identity.keyfile import KeyFileError, read_key_file, write_new_key_file
from proofline_tools.identity.shares import ShareError, check_passphrase
from proofline_tools.identity.wallet_client import WalletBackupClient, WalletCallError
from proofline_tools.signed_intents import IdentityKey

EXIT_REFUSED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input the user can fix (a passphrase variable that is unset, a key file in the way)."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="proofline-identity", description="Identity keys made here, backed up as 3-of-5 SLIP-0039 shares"
    )
    commands = top.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="generate a key, write the key file, print its 5 shares")
    recover = commands.add_parser("recover", help="rebuild the key file from 3 or more shares read from stdin")
    pubkey = commands.add_parser("pubkey", help="print the key file's compressed public key (hex)")
    for command in (create, recover, pubkey):
        command.add_argument("--key-file", type=Path, required=True, help="the identity secret (hex, mode 0600)")
    for command in (create, recover):
        command.add_argument(
            "--passphrase-env",
            metavar="VAR",
            default=None,
            help="read the SLIP-0039 passphrase from this environment variable (default: no passphrase)",
        )
    recover.add_argument("--expect-pubkey", default=None, help="refuse to write unless the rebuilt key has this pubkey")
    create.add_argument("--wallet", metavar="ADDR", default=None, help="register the key and upload shares 1-2 here")
    create.add_argument("--label", default="proofline-identity", help="the key's label at the wallet")
    recover.add_argument(
        "--from-wallet", metavar="ADDR", default=None, help="fetch the wallet's 2 shares after a mailed code"
    )
    for command in (create, recover):
        command.add_argument("--account", metavar="ACCOUNT_ID", default=None, help="the wallet account")
        command.add_argument("--token-env", metavar="VAR", default=None, help="the bearer token's environment variable")
    return top


def wallet_client(address: str, args: argparse.Namespace, environ: Mapping[str, str]) -> WalletBackupClient:
    if not args.account:
        raise UsageError("--account is required with a wallet address")
    if not args.token_env or not environ.get(args.token_env):
        raise UsageError("--token-env VAR is required with a wallet address, and VAR must be set")
    return WalletBackupClient(address, args.account, environ[args.token_env])


def read_passphrase(variable: str | None, environ: Mapping[str, str]) -> bytes:
    if variable is None:
        return b""
    if variable not in environ:
        raise UsageError(f"--passphrase-env {variable}: the variable is not set")
    passphrase = environ[variable].encode("utf-8")
    try:
        check_passphrase(passphrase)
    except ValueError as error:
        raise UsageError(f"--passphrase-env {variable}: {error}") from None
    return passphrase


def read_mnemonics(lines: Iterable[str]) -> list[str]:
    """One share a line; blank lines and `#` comments are skipped, and a `share n (...):` label
    such as `create` prints is dropped, so its lines can be pasted back as they are."""
    mnemonics = []
    for line in lines:
        text = line.split(":")[-1].strip()
        if text and not line.lstrip().startswith("#"):
            mnemonics.append(" ".join(text.split()))
    return mnemonics


def print_backup(backup: Backup, out: TextIO, *, uploaded: bool = False) -> None:
    print(f"public key: {backup.pubkey.hex()}", file=out)
    print(f"any {THRESHOLD} of these {SHARE_COUNT} shares rebuild the key; fewer reveal nothing about it", file=out)
    for number, share in enumerate(backup.shares, start=1):
        if backup.is_for_service(number) and uploaded:
            print(f"share {number}: kept by the wallet's backup storage", file=out)
            continue
        part = "for the service backup" if backup.is_for_service(number) else "yours: write them down"
        print(f"share {number} ({part}): {share}", file=out)


def create(
    args: argparse.Namespace,
    passphrase: bytes,
    out: TextIO,
    uploader: ShareUploader | None,
    environ: Mapping[str, str],
) -> None:
    if args.key_file.exists():
        raise UsageError(f"{args.key_file} already exists: not overwritten")
    key = IdentityKey.generate()
    backup = back_up(key, passphrase)
    client = wallet_client(args.wallet, args, environ) if args.wallet else None
    try:
        if client is not None:
            client.register(key, args.label)
            client.upload(backup.pubkey, backup.service_shares)
        if uploader is not None:
            uploader.upload(backup.pubkey, backup.service_shares)
    finally:
        if client is not None:
            client.close()
    write_new_key_file(args.key_file, key)
    print_backup(backup, out, uploaded=client is not None)


def wallet_shares(args: argparse.Namespace, stdin: TextIO, environ: Mapping[str, str]) -> list[str]:
    """The wallet's shares of the key `--expect-pubkey` names, after the mailed code (stdin's first line)."""
    if args.expect_pubkey is None:
        raise UsageError("--from-wallet needs --expect-pubkey (the key to recover)")
    try:
        pubkey = bytes.fromhex(args.expect_pubkey.strip())
    except ValueError:
        raise UsageError("--expect-pubkey must be hex") from None
    client = wallet_client(args.from_wallet, args, environ)
    try:
        recovery_id = client.begin_recovery(pubkey)
        if stdin.isatty():
            print("a one-time code was mailed to the account's address; enter it:", file=sys.stderr)
        code = stdin.readline().strip()
        shares = client.complete_recovery(recovery_id, code)
    finally:
        client.close()
    if stdin.isatty():
        print("enter 1 or more of your shares, one per line, then end the input (Ctrl-D):", file=sys.stderr)
    return shares


def recover(
    args: argparse.Namespace, passphrase: bytes, stdin: TextIO, out: TextIO, environ: Mapping[str, str]
) -> None:
    if args.key_file.exists():
        raise UsageError(f"{args.key_file} already exists: not overwritten")
    service = wallet_shares(args, stdin, environ) if args.from_wallet else []
    if not service and stdin.isatty():
        print(f"enter {THRESHOLD} or more shares, one per line, then end the input (Ctrl-D):", file=sys.stderr)
    try:
        key = restore(service + read_mnemonics(stdin), passphrase)
    except ValueError:
        raise UsageError("the shares hold a secret that is not a secp256k1 identity key") from None
    if args.expect_pubkey is not None and key.pubkey.hex() != args.expect_pubkey.strip().lower():
        raise UsageError(
            f"the shares rebuild {key.pubkey.hex()}, not {args.expect_pubkey}"
            " (a wrong passphrase, or another key's shares?)"
        )
    write_new_key_file(args.key_file, key)
    print(f"public key: {key.pubkey.hex()}", file=out)


def run(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    uploader: ShareUploader | None = None,
) -> int:
    args = parser().parse_args(argv)
    stdin = sys.stdin if stdin is None else stdin
    out = sys.stdout if out is None else out
    try:
        if args.command == "pubkey":
            print(read_key_file(args.key_file).pubkey.hex(), file=out)
            return 0
        environ = os.environ if environ is None else environ
        passphrase = read_passphrase(args.passphrase_env, environ)
        if args.command == "create":
            create(args, passphrase, out, uploader, environ)
        else:
            recover(args, passphrase, stdin, out, environ)
    except (ShareError, WalletCallError) as error:
        print(f"proofline-identity: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except (UsageError, KeyFileError) as error:
        print(f"proofline-identity: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
