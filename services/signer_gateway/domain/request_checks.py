"""A signing request's own checks, made without the database or a backend: its fields, the
transaction it names and whether its keys own the outputs it spends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from proofline_kit.errors import DomainError, ErrorKind, FieldViolation, invalid_argument
from services.signer_gateway.domain import ecdsa
from services.signer_gateway.domain.models import KEY_ID_PATTERN, DigestToSign, SignedTransaction, TransactionToSign
from services.signer_gateway.domain.policy import SpendSummary, summarize_spend
from services.signer_gateway.domain.transactions import UnsignedTransaction, p2pkh_hash, parse_transaction

MAX_BATCH_ITEMS = 1024


def check_key_id(key_id: str) -> None:
    if not KEY_ID_PATTERN.match(key_id):
        raise invalid_argument("KEY_ID_INVALID", "key_id", "1-128 characters of [A-Za-z0-9._:-]")


def check_batch(items: Sequence[DigestToSign]) -> None:
    if not items:
        raise invalid_argument("BATCH_EMPTY", "items", "at least one item is required")
    if len(items) > MAX_BATCH_ITEMS:
        raise invalid_argument("BATCH_TOO_LARGE", "items", f"at most {MAX_BATCH_ITEMS} items per call")
    if all(len(i.digest) == ecdsa.DIGEST_BYTES for i in items) and all(
        KEY_ID_PATTERN.match(k) for k in {i.key_id for i in items}
    ):
        return
    violations = []
    for index, item in enumerate(items):
        if not KEY_ID_PATTERN.match(item.key_id):
            violations.append(FieldViolation(f"items[{index}].key_id", "1-128 characters of [A-Za-z0-9._:-]"))
        if len(item.digest) != ecdsa.DIGEST_BYTES:
            violations.append(FieldViolation(f"items[{index}].digest", f"must be 32 bytes, got {len(item.digest)}"))
    reason = "DIGEST_LENGTH_INVALID" if "digest" in violations[0].field else "KEY_ID_INVALID"
    raise DomainError(ErrorKind.INVALID_ARGUMENT, reason, violations[0].description, field_violations=tuple(violations))


@dataclass(slots=True)
class PendingTransaction:
    """One transaction of a call on its way through the checks."""

    request: TransactionToSign
    unsigned: UnsignedTransaction | None = None
    key_ids: tuple[str, ...] = ()
    error: DomainError | None = None
    summary: SpendSummary | None = None
    result: SignedTransaction | None = None


def prepare(request: TransactionToSign) -> PendingTransaction:
    """Parse and check the transaction's own fields (no database): its error, if any, is its answer."""
    try:
        unsigned = _parse_request(request)
    except DomainError as error:
        return PendingTransaction(request, error=error)
    return PendingTransaction(request, unsigned, tuple(sorted({k.key_id for k in request.input_keys})))


def _parse_request(request: TransactionToSign) -> UnsignedTransaction:
    tx = parse_transaction(request.unsigned_tx)
    if tx is None:
        raise invalid_argument("TRANSACTION_MALFORMED", "unsigned_tx", "not a parseable transaction")
    if len(request.spent_outputs) != len(tx.inputs):
        raise invalid_argument(
            "SPENT_OUTPUTS_MISMATCH",
            "spent_outputs",
            f"{len(request.spent_outputs)} spent outputs for {len(tx.inputs)} inputs",
        )
    if any(p.satoshis < 0 for p in request.spent_outputs):
        raise invalid_argument("AMOUNT_INVALID", "spent_outputs", "satoshis must not be negative")
    if not request.input_keys:
        raise invalid_argument("INPUT_KEYS_EMPTY", "input_keys", "name at least one input to sign")
    seen: set[int] = set()
    for position, input_key in enumerate(request.input_keys):
        if input_key.input_index >= len(tx.inputs) or input_key.input_index in seen:
            raise invalid_argument(
                "INPUT_INDEX_INVALID", f"input_keys[{position}].input_index", "out of range or listed twice"
            )
        check_key_id(input_key.key_id)
        seen.add(input_key.input_index)
    return UnsignedTransaction(tx, request.spent_outputs)


def check_ownership_and_summarize(item: PendingTransaction, pubkey_hashes: dict[str, bytes]) -> SpendSummary:
    """Every listed input must spend a P2PKH output of its key; then how the transaction moves money."""
    request, unsigned = item.request, item.unsigned
    assert unsigned is not None
    for input_key in request.input_keys:
        owner = p2pkh_hash(request.spent_outputs[input_key.input_index].locking_script)
        if owner != pubkey_hashes[input_key.key_id]:
            raise invalid_argument(
                "INPUT_NOT_OWNED_BY_KEY",
                f"input_keys[{input_key.input_index}]",
                f"spent output is not a P2PKH output of key {input_key.key_id}",
            )
    return summarize_spend(unsigned.outputs, request.spent_outputs, {pubkey_hashes[k] for k in item.key_ids})


def transaction_fingerprint_parts(request: TransactionToSign) -> tuple[object, ...]:
    return (
        request.unsigned_tx.hex(),
        *((p.satoshis, p.locking_script.hex()) for p in request.spent_outputs),
        *((k.input_index, k.key_id) for k in request.input_keys),
    )
