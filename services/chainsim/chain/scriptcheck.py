"""Input script verification: a fast P2PKH path and the bsv-sdk interpreter.

The fast path recomputes the BIP143/FORKID sighash itself (one pass per transaction), checks the
public key hash, strict DER, low S and the ECDSA signature with bsv-sdk's native libsecp256k1.
Everything that is not a canonical P2PKH spend is handed to the interpreter so no input is ever
waved through.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Protocol

from services.chainsim.chain.txcodec import ParsedTx, hash256, push_data, pushes, txid_hex, varint

SIGHASH_ALL = 0x01
SIGHASH_NONE = 0x02
SIGHASH_SINGLE = 0x03
SIGHASH_CHRONICLE = 0x20
SIGHASH_FORKID = 0x40
SIGHASH_ANYONECANPAY = 0x80
_ZERO32 = bytes(32)
_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

FAIL_CHECKSIG = "mandatory-script-verify-flag-failed (Script failed an OP_CHECKSIG operation)"
FAIL_EQUALVERIFY = "mandatory-script-verify-flag-failed (Script failed an OP_EQUALVERIFY operation)"
FAIL_DER = "mandatory-script-verify-flag-failed (Non-canonical DER signature)"
FAIL_LOW_S = "mandatory-script-verify-flag-failed (Non-canonical signature: S value is unnecessarily high)"
FAIL_FORKID = "mandatory-script-verify-flag-failed (Signature must use SIGHASH_FORKID)"
FAIL_PUBKEY = "mandatory-script-verify-flag-failed (Public key is neither compressed or uncompressed)"


class ScriptVerifier(Protocol):
    def verify(self, tx: ParsedTx, prevouts: Sequence[tuple[int, bytes]]) -> str | None:
        """None when every input unlocks its prevout, else the node-style failure reason."""


def hash160(data: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


def is_p2pkh(script: bytes) -> bool:
    return len(script) == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac"


def p2pkh_script(pkh: bytes) -> bytes:
    return b"\x76\xa9\x14" + pkh + b"\x88\xac"


def is_strict_der(sig: bytes) -> bool:
    """BIP66 strict DER for a signature *with* its trailing sighash byte."""
    n = len(sig)
    if n < 9 or n > 73 or sig[0] != 0x30 or sig[1] != n - 3:
        return False
    len_r = sig[3]
    if 5 + len_r >= n:
        return False
    len_s = sig[5 + len_r]
    if len_r + len_s + 7 != n or sig[2] != 0x02 or len_r == 0 or sig[4] & 0x80:
        return False
    if len_r > 1 and sig[4] == 0 and not sig[5] & 0x80:
        return False
    if sig[len_r + 4] != 0x02 or len_s == 0 or sig[len_r + 6] & 0x80:
        return False
    return not (len_s > 1 and sig[len_r + 6] == 0 and not sig[len_r + 7] & 0x80)


def _der_s(der: bytes) -> tuple[bytes, int]:
    len_r = der[3]
    len_s = der[5 + len_r]
    return der[4 : 4 + len_r], int.from_bytes(der[6 + len_r : 6 + len_r + len_s], "big")


def _der_encode(r: bytes, s: int) -> bytes:
    def enc(x: bytes) -> bytes:
        x = x.lstrip(b"\x00") or b"\x00"
        if x[0] & 0x80:
            x = b"\x00" + x
        return b"\x02" + bytes((len(x),)) + x

    body = enc(r) + enc(s.to_bytes(32, "big"))
    return b"\x30" + bytes((len(body),)) + body


class SighashContext:
    """BIP143 (FORKID) digests for one transaction; shared hashes are computed once."""

    __slots__ = ("_outputs", "_prevouts", "_sequence", "tx")

    def __init__(self, tx: ParsedTx) -> None:
        self.tx = tx
        self._prevouts: bytes | None = None
        self._sequence: bytes | None = None
        self._outputs: bytes | None = None

    def digest(self, index: int, script_code: bytes, value: int, sighash_type: int) -> bytes:
        tx = self.tx
        base = sighash_type & 0x1F
        anyone = sighash_type & SIGHASH_ANYONECANPAY
        if anyone:
            hash_prevouts = _ZERO32
        else:
            if self._prevouts is None:
                self._prevouts = hash256(b"".join(i[0] for i in tx.inputs))
            hash_prevouts = self._prevouts
        if anyone or base in (SIGHASH_SINGLE, SIGHASH_NONE):
            hash_sequence = _ZERO32
        else:
            if self._sequence is None:
                self._sequence = hash256(b"".join(i[2].to_bytes(4, "little") for i in tx.inputs))
            hash_sequence = self._sequence
        if base not in (SIGHASH_SINGLE, SIGHASH_NONE):
            if self._outputs is None:
                self._outputs = hash256(tx.outputs_blob)
            hash_outputs = self._outputs
        elif base == SIGHASH_SINGLE and index < len(tx.outputs):
            value_out, script_out = tx.outputs[index]
            hash_outputs = hash256(value_out.to_bytes(8, "little") + varint(len(script_out)) + script_out)
        else:
            hash_outputs = _ZERO32
        op, _, seq = tx.inputs[index]
        preimage = b"".join(
            (
                tx.version.to_bytes(4, "little"),
                hash_prevouts,
                hash_sequence,
                op,
                varint(len(script_code)),
                script_code,
                value.to_bytes(8, "little"),
                seq.to_bytes(4, "little"),
                hash_outputs,
                tx.locktime.to_bytes(4, "little"),
                sighash_type.to_bytes(4, "little"),
            )
        )
        return hash256(preimage)


class InterpreterVerifier:
    """Runs bsv-sdk's script interpreter (``bsv.script.Spend``) on every input."""

    def __init__(self) -> None:
        from bsv import Script, Transaction, TransactionOutput
        from bsv.script import Spend

        self._script = Script
        self._transaction = Transaction
        self._output = TransactionOutput
        self._spend = Spend

    def verify(self, tx: ParsedTx, prevouts: Sequence[tuple[int, bytes]]) -> str | None:
        for i in range(len(tx.inputs)):
            reason = self.verify_input(tx, prevouts, i)
            if reason is not None:
                return reason
        return None

    def verify_input(self, tx: ParsedTx, prevouts: Sequence[tuple[int, bytes]], index: int) -> str | None:
        sdk_tx: Any = self._transaction.from_hex(tx.raw)
        if sdk_tx is None:
            return "mandatory-script-verify-flag-failed (transaction could not be decoded)"
        for inp, (value, script) in zip(sdk_tx.inputs, prevouts, strict=True):
            inp.satoshis = value
            inp.locking_script = self._script(script)
        target = sdk_tx.inputs[index]
        spend = self._spend(
            {
                "sourceTXID": txid_hex(tx.inputs[index][0][:32]),
                "sourceOutputIndex": int.from_bytes(tx.inputs[index][0][32:], "little"),
                "sourceSatoshis": prevouts[index][0],
                "lockingScript": self._script(prevouts[index][1]),
                "transactionVersion": tx.version,
                "otherInputs": [x for j, x in enumerate(sdk_tx.inputs) if j != index],
                "outputs": sdk_tx.outputs,
                "inputIndex": index,
                "unlockingScript": target.unlocking_script,
                "inputSequence": target.sequence,
                "lockTime": tx.locktime,
            }
        )
        try:
            ok = spend.validate()
        except Exception as exc:  # the interpreter raises RuntimeError (and others) on failure
            return f"mandatory-script-verify-flag-failed ({exc})"
        return None if ok else "mandatory-script-verify-flag-failed (script evaluated to false)"


class P2pkhVerifier:
    """Canonical P2PKH spends on the fast path; any other input goes to ``fallback``."""

    def __init__(self, fallback: InterpreterVerifier) -> None:
        from bsv.native import NATIVE_AVAILABLE, NATIVE_MODULE

        if not NATIVE_AVAILABLE:
            raise RuntimeError("bsv-sdk native extension (libsecp256k1) is required for chainsim")
        self._ecdsa_verify = NATIVE_MODULE.ecdsa_verify
        self._fallback = fallback

    def verify(self, tx: ParsedTx, prevouts: Sequence[tuple[int, bytes]]) -> str | None:
        ctx: SighashContext | None = None
        for i, (_, unlock, _) in enumerate(tx.inputs):
            value, lock = prevouts[i]
            if not is_p2pkh(lock):
                reason = self._fallback.verify_input(tx, prevouts, i)
                if reason is not None:
                    return reason
                continue
            items = pushes(unlock)
            if items is None or len(items) != 2 or unlock != push_data(items[0]) + push_data(items[1]):
                reason = self._fallback.verify_input(tx, prevouts, i)
                if reason is not None:
                    return reason
                continue
            sig, pub = items
            if hash160(pub) != lock[3:23]:
                return FAIL_EQUALVERIFY
            if not sig:
                return FAIL_CHECKSIG
            sighash_type = sig[-1]
            if sighash_type & SIGHASH_CHRONICLE:
                reason = self._fallback.verify_input(tx, prevouts, i)
                if reason is not None:
                    return reason
                continue
            if not is_strict_der(sig):
                return FAIL_DER
            if not sighash_type & SIGHASH_FORKID:
                return FAIL_FORKID
            if not ((len(pub) == 33 and pub[0] in (2, 3)) or (len(pub) == 65 and pub[0] == 4)):
                return FAIL_PUBKEY
            der = sig[:-1]
            r, s = _der_s(der)
            if s > _SECP256K1_HALF_N:
                if tx.version < 2:
                    return FAIL_LOW_S
                der = _der_encode(r, _SECP256K1_N - s)
            if ctx is None:
                ctx = SighashContext(tx)
            digest = ctx.digest(i, lock, value, sighash_type)
            try:
                ok = self._ecdsa_verify(der, digest, pub)
            except Exception:  # malformed point
                return FAIL_PUBKEY
            if not ok:
                return FAIL_CHECKSIG
        return None


def make_verifier(mode: str) -> ScriptVerifier:
    interpreter = InterpreterVerifier()
    if mode == "interpreter":
        return interpreter
    return P2pkhVerifier(interpreter)
