"""`proofline-identity` end to end: the console script as a subprocess, and `run()` in process
for the refusals; the key file it writes is signed with by the real `proofline-intent`."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from bsv import PublicKey

from proofline_tools.identity.cli import EXIT_REFUSED, EXIT_USAGE, run

BIN = Path(sys.executable).parent
IDENTITY = BIN / "proofline-identity"
INTENT = BIN / "proofline-intent"
SHARE_LINE = re.compile(r"^share (\d) \((for the service backup|yours: write them down)\): ([a-z ]+)$")


def identity(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(IDENTITY), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def printed_pubkey(output: str) -> str:
    match = re.search(r"^public key: (0[23][0-9a-f]{64})$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def printed_shares(output: str) -> dict[int, tuple[str, str]]:
    found = {}
    for line in output.splitlines():
        if match := SHARE_LINE.match(line):
            found[int(match.group(1))] = (match.group(2), match.group(3))
    return found


def in_process(argv: Sequence[str], stdin: str = "", environ: dict[str, str] | None = None) -> tuple[int, str]:
    out = io.StringIO()
    code = run(argv, stdin=io.StringIO(stdin), out=out, environ=environ or {})
    return code, out.getvalue()


def test_create_pubkey_recover_with_the_console_script(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "identity.key"
    created = identity("create", "--key-file", str(key_file))
    assert created.returncode == 0, created.stderr
    pubkey = printed_pubkey(created.stdout)
    shares = printed_shares(created.stdout)
    assert sorted(shares) == [1, 2, 3, 4, 5]
    assert [shares[n][0] for n in (1, 2)] == ["for the service backup"] * 2
    assert [shares[n][0] for n in (3, 4, 5)] == ["yours: write them down"] * 3
    assert len({words for _, words in shares.values()}) == 5

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret_hex = key_file.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}\n", secret_hex)
    assert secret_hex.strip() not in created.stdout + created.stderr

    shown = identity("pubkey", "--key-file", str(key_file))
    assert (shown.returncode, shown.stdout) == (0, f"{pubkey}\n")

    # The user's 3 shares, one per line; then the service's 2 with one of the user's.
    for numbers in ((3, 4, 5), (1, 2, 4)):
        restored = tmp_path / f"restored-{''.join(map(str, numbers))}.key"
        lines = "".join(f"{shares[n][1]}\n" for n in numbers)
        recovered = identity("recover", "--key-file", str(restored), stdin=lines)
        assert recovered.returncode == 0, recovered.stderr
        assert printed_pubkey(recovered.stdout) == pubkey
        assert restored.read_text() == secret_hex
        assert stat.S_IMODE(restored.stat().st_mode) == 0o600


def test_proofline_intent_signs_with_the_created_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "identity.key"
    code, output = in_process(["create", "--key-file", str(key_file)])
    assert code == 0
    pubkey = printed_pubkey(output)

    def intent(*args: str) -> str:
        done = subprocess.run(
            [str(INTENT), "--key-file", str(key_file), *args], capture_output=True, text=True, timeout=60, check=True
        )
        return done.stdout

    assert intent("--print-pubkey") == f"{pubkey}\n"
    request = json.loads(intent("--record", '{"doc":"signed by a backed-up key"}'))["intent"]
    payload, signature = base64.b64decode(request["signed_payload"]), base64.b64decode(request["signature"])
    assert base64.b64decode(request["pubkey"]).hex() == pubkey
    assert json.loads(payload)["record"] == {"doc": "signed by a backed-up key"}
    assert PublicKey(pubkey).verify(signature, payload, hasher=lambda m: hashlib.sha256(m).digest())


def test_the_pasted_lines_of_create_recover_as_they_are(tmp_path: Path) -> None:
    code, output = in_process(["create", "--key-file", str(tmp_path / "a.key")])
    assert code == 0
    pasted = "# my shares\n\n" + "\n".join(line for line in output.splitlines() if "yours" in line) + "\n"
    code, recovered = in_process(["recover", "--key-file", str(tmp_path / "b.key")], pasted)
    assert code == 0
    assert printed_pubkey(recovered) == printed_pubkey(output)


def test_too_few_shares_or_another_keys_share_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for name in ("a.key", "b.key"):
        code, output = in_process(["create", "--key-file", str(tmp_path / name)])
        assert code == 0
        outputs.append({n: words for n, (_, words) in printed_shares(output).items()})
    mine, other = outputs
    capsys.readouterr()
    target = tmp_path / "restored.key"

    code, _ = in_process(["recover", "--key-file", str(target)], f"{mine[3]}\n{mine[5]}\n")
    assert code == EXIT_REFUSED
    assert "TOO_FEW_SHARES" in capsys.readouterr().err
    assert not target.exists()

    code, _ = in_process(["recover", "--key-file", str(target)], f"{mine[3]}\n{mine[5]}\n{other[4]}\n")
    assert code == EXIT_REFUSED
    assert "SHARES_MISMATCH" in capsys.readouterr().err
    assert not target.exists()

    words = mine[4].split()
    words[7] = "zero" if words[7] != "zero" else "acid"
    code, _ = in_process(["recover", "--key-file", str(target)], f"{mine[3]}\n{' '.join(words)}\n{mine[5]}\n")
    assert code == EXIT_REFUSED
    assert "SHARE_INVALID" in capsys.readouterr().err
    assert not target.exists()


def test_an_existing_key_file_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_file = tmp_path / "identity.key"
    code, output = in_process(["create", "--key-file", str(key_file)])
    assert code == 0
    before = key_file.read_text()
    capsys.readouterr()
    assert in_process(["create", "--key-file", str(key_file)]) == (EXIT_USAGE, "")
    assert "already exists" in capsys.readouterr().err
    user = "".join(f"{words}\n" for n, (_, words) in printed_shares(output).items() if n > 2)
    assert in_process(["recover", "--key-file", str(key_file)], user) == (EXIT_USAGE, "")
    assert key_file.read_text() == before


def test_a_missing_key_file_has_no_pubkey(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert in_process(["pubkey", "--key-file", str(tmp_path / "none.key")]) == (EXIT_USAGE, "")
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "none.key").exists()


def test_the_passphrase_comes_from_the_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"IDENTITY_PASSPHRASE": "correct horse battery staple"}
    created = identity(
        "create", "--key-file", str(tmp_path / "a.key"), "--passphrase-env", "IDENTITY_PASSPHRASE", env=environ
    )
    assert created.returncode == 0, created.stderr
    assert "correct horse" not in created.stdout + created.stderr
    pubkey = printed_pubkey(created.stdout)
    user = "".join(f"{words}\n" for n, (_, words) in printed_shares(created.stdout).items() if n > 2)

    argv = ["recover", "--passphrase-env", "IDENTITY_PASSPHRASE", "--key-file"]
    code, output = in_process([*argv, str(tmp_path / "b.key")], user, environ)
    assert (code, printed_pubkey(output)) == (0, pubkey)
    # Without the passphrase SLIP-0039 yields another key; --expect-pubkey catches it, writing nothing.
    code, output = in_process(["recover", "--key-file", str(tmp_path / "c.key")], user)
    assert code == 0 and printed_pubkey(output) != pubkey
    capsys.readouterr()
    code, _ = in_process(["recover", "--key-file", str(tmp_path / "d.key"), "--expect-pubkey", pubkey], user)
    assert code == EXIT_USAGE
    assert "wrong passphrase" in capsys.readouterr().err
    assert not (tmp_path / "d.key").exists()
    # A named variable that is not set is an error, not an empty passphrase.
    code, _ = in_process([*argv, str(tmp_path / "e.key")], user, {})
    assert code == EXIT_USAGE
    assert "IDENTITY_PASSPHRASE" in capsys.readouterr().err
    assert not (tmp_path / "e.key").exists()


class RecordingUploader:
    def __init__(self) -> None:
        self.uploads: list[tuple[bytes, list[str]]] = []

    def upload(self, pubkey: bytes, shares: Sequence[str]) -> None:
        self.uploads.append((pubkey, list(shares)))


def test_an_uploader_receives_exactly_the_service_shares(tmp_path: Path) -> None:
    uploader = RecordingUploader()
    out = io.StringIO()
    assert run(["create", "--key-file", str(tmp_path / "a.key")], out=out, environ={}, uploader=uploader) == 0
    shares = printed_shares(out.getvalue())
    [(pubkey, uploaded)] = uploader.uploads
    assert pubkey.hex() == printed_pubkey(out.getvalue())
    assert uploaded == [shares[1][1], shares[2][1]]
