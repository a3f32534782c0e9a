"""A signing request's own checks, made without the database or a backend: its fields, the
transaction it names and whether its keys own the outputs it spends."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice

from proofline_kit.errors import DomainError, ErrorKind, FieldViolation, invalid_argument
from services.signer_gateway.domain import ecdsa
from services.signer_gateway.domain.amounts import checked_fee
from services.signer_gateway.domain.models import (
    KEY_ID_PATTERN,
    DigestToSign,
    SignedTransaction,
    TransactionToSign,
    shown_key_id,
)
from services.signer_gateway.domain.policy import SpendSummaries, summarize_for_keys
from services.signer_gateway.domain.transactions import UnsignedTransaction, p2pkh_hash, parse_transaction

MAX_BATCH_ITEMS = 1024
# A batch's error names its first violations only: its size must not grow with the batch.
MAX_VIOLATIONS_SHOWN = 20


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
    violations = list(islice(_item_violations(items), MAX_VIOLATIONS_SHOWN))
    reason = "DIGEST_LENGTH_INVALID" if "digest" in violations[0].field else "KEY_ID_INVALID"
    raise DomainError(ErrorKind.INVALID_ARGUMENT, reason, violations[0].description, field_violations=tuple(violations))


def _item_violations(items: Sequence[DigestToSign]) -> Iterator[FieldViolation]:
    for index, item in enumerate(items):
        if not KEY_ID_PATTERN.match(item.key_id):
            yield FieldViolation(f"items[{index}].key_id", "1-128 characters of [A-Za-z0-9._:-]")
        if len(item.digest) != ecdsa.DIGEST_BYTES:
            yield FieldViolation(f"items[{index}].digest", f"must be 32 bytes, got {len(item.digest)}")


@dataclass(slots=True)
class PendingTransaction:
    """One transaction of a call on its way through the checks."""

    request: TransactionToSign
    unsigned: UnsignedTransaction | None = None
    key_ids: tuple[str, ...] = ()
    error: DomainError | None = None
    # The error refuses what the keys were asked to sign (not the request's form): it is audited
    # as a denial for each of the transaction's keys.
    error_is_denial: bool = False
    fee_satoshis: int = 0
    spend: SpendSummaries | None = None
    result: SignedTransaction | None = None


def prepare(request: TransactionToSign) -> PendingTransaction:
    """Parse and check the transaction's own fields and amounts (no database): its error, if any, is
    its answer."""
    try:
        unsigned = _parse_request(request)
    except DomainError as error:
        return PendingTransaction(request, error=error)
    pending = PendingTransaction(request, unsigned, tuple(sorted({k.key_id for k in request.input_keys})))
    try:
        pending.fee_satoshis = checked_fee(request.spent_outputs, unsigned.outputs)
    except DomainError as error:
        pending.error, pending.error_is_denial = error, True
    return pending


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


def check_ownership(item: PendingTransaction, pubkey_hashes: Mapping[str, bytes]) -> None:
    """Every listed input must spend a P2PKH output of its key."""
    request = item.request
    for input_key in request.input_keys:
        owner = p2pkh_hash(request.spent_outputs[input_key.input_index].locking_script)
        if owner != pubkey_hashes[input_key.key_id]:
            raise invalid_argument(
                "INPUT_NOT_OWNED_BY_KEY",
                f"input_keys[{input_key.input_index}]",
                f"spent output is not a P2PKH output of key {shown_key_id(input_key.key_id)}",
            )


def summarize(
    item: PendingTransaction, pubkey_hashes: Mapping[str, bytes], change_hashes: Mapping[str, frozenset[bytes]]
) -> SpendSummaries:
    """How the transaction moves money, for its answer and for each of its keys' policies."""
    assert item.unsigned is not None
    signing = {k: pubkey_hashes[k] for k in item.key_ids}
    return summarize_for_keys(item.unsigned.outputs, item.fee_satoshis, signing, change_hashes)


def transaction_fingerprint_parts(request: TransactionToSign) -> tuple[object, ...]:
    return (
        request.unsigned_tx.hex(),
        *((p.satoshis, p.locking_script.hex()) for p in request.spent_outputs),
        *((k.input_index, k.key_id) for k in request.input_keys),
    )


# Upper bounds, in bytes, of what signing adds to an answer: per signed input, its unlocking script
# (two pushes: DER + sighash byte, public key) and its Signature message without the key id; per
# transaction, the fields around the signed transaction; per refused transaction, its ItemError.
_UNLOCKING_BOUND = 1 + 73 + 1 + ecdsa.PUBLIC_KEY_BYTES + 2
_SIGNATURE_BOUND = 3 + 2 + 72 + 2 + ecdsa.PUBLIC_KEY_BYTES + 3 + 3
_SIGNED_TX_BOUND = 128
ITEM_ERROR_BOUND = 2048


def answer_bytes_bound(item: PendingTransaction) -> int:
    """At most how many bytes the signed transaction's answer takes, known before signing."""
    keys = item.request.input_keys
    per_input = _UNLOCKING_BOUND + _SIGNATURE_BOUND
    return len(item.request.unsigned_tx) + _SIGNED_TX_BOUND + sum(per_input + len(k.key_id) for k in keys)
