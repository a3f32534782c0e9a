"""Recorded answers of the signing requests (replayed on a retry with the same request_id): Sign's in
a compact binary form, SignTransaction's and SignTransactions' as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from proofline_kit.errors import DomainError, ErrorKind, FieldViolation
from services.signer_gateway.domain import ecdsa
from services.signer_gateway.domain.models import SignatureResult, SignedTransaction, TransactionOutcome

_ANSWER_V2 = b"\x02"
_LENGTH = tuple(bytes((n,)) for n in range(256))


def signatures_to_answer(results: Sequence[SignatureResult]) -> bytes:
    """Sign's recorded answer, compact: 0x02, then each key's id and public key once, then per
    signature its key's index (2 bytes) and its DER (1-byte length). About a third of the JSON form
    (still read for answers recorded before) in bytes written to PostgreSQL per call."""
    index: dict[str, bytes] = {}
    parts = [_ANSWER_V2, b""]
    for key_id, _, public_key in results:
        if key_id not in index:
            index[key_id] = len(index).to_bytes(2, "big")
            encoded = key_id.encode()
            parts.append(_LENGTH[len(encoded)] + encoded + public_key)
    parts[1] = len(index).to_bytes(2, "big")
    parts.extend(index[k] + _LENGTH[len(sig)] + sig for k, sig, _ in results)
    return b"".join(parts)


def signatures_from_answer(raw: bytes) -> list[SignatureResult]:
    if not raw.startswith(_ANSWER_V2):
        return [SignatureResult(k, bytes.fromhex(s), bytes.fromhex(p)) for k, s, p in orjson.loads(raw)]
    keys: list[tuple[str, bytes]] = []
    count = int.from_bytes(raw[1:3], "big")
    at = 3
    for _ in range(count):
        size = raw[at]
        key_id = raw[at + 1 : at + 1 + size].decode()
        at += 1 + size
        keys.append((key_id, raw[at : at + ecdsa.PUBLIC_KEY_BYTES]))
        at += ecdsa.PUBLIC_KEY_BYTES
    results = []
    while at < len(raw):
        key_id, public_key = keys[int.from_bytes(raw[at : at + 2], "big")]
        size = raw[at + 2]
        results.append(SignatureResult(key_id, raw[at + 3 : at + 3 + size], public_key))
        at += 3 + size
    return results


def signed_tx_to_json(result: SignedTransaction) -> bytes:
    return orjson.dumps(_outcome_to_data(result))


def signed_tx_from_json(raw: bytes) -> SignedTransaction:
    return _signed_tx_from_data(orjson.loads(raw))


def _signed_tx_from_data(data: dict[str, Any]) -> SignedTransaction:
    return SignedTransaction(
        raw_tx=bytes.fromhex(data["raw"]),
        txid=data["txid"],
        fee_satoshis=data["fee"],
        sent_satoshis=data["sent"],
        signatures=tuple(SignatureResult(k, bytes.fromhex(s), bytes.fromhex(p)) for k, s, p in data["signatures"]),
    )


def _outcome_to_data(outcome: TransactionOutcome) -> dict[str, Any]:
    if isinstance(outcome, DomainError):
        return {
            "error": {
                "kind": outcome.kind.value,
                "reason": outcome.reason,
                "message": outcome.message,
                "metadata": dict(outcome.metadata),
                "violations": [[v.field, v.description] for v in outcome.field_violations],
            }
        }
    return {
        "raw": outcome.raw_tx.hex(),
        "txid": outcome.txid,
        "fee": outcome.fee_satoshis,
        "sent": outcome.sent_satoshis,
        "signatures": [[s.key_id, s.signature_der.hex(), s.public_key.hex()] for s in outcome.signatures],
    }


def outcomes_to_json(outcomes: list[TransactionOutcome]) -> bytes:
    return orjson.dumps([_outcome_to_data(o) for o in outcomes])


def outcomes_from_json(raw: bytes) -> list[TransactionOutcome]:
    outcomes: list[TransactionOutcome] = []
    for data in orjson.loads(raw):
        error = data.get("error")
        if error is None:
            outcomes.append(_signed_tx_from_data(data))
        else:
            outcomes.append(
                DomainError(
                    ErrorKind(error["kind"]),
                    error["reason"],
                    error["message"],
                    metadata=error["metadata"],
                    field_violations=tuple(FieldViolation(f, d) for f, d in error["violations"]),
                )
            )
    return outcomes
