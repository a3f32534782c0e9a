"""The pool's refusals, each with its stable reason (docs/api.md)."""

from __future__ import annotations

from proofline_kit.errors import DomainError, ErrorKind
from proofline_kit.wire import Outpoint
from services.utxo.domain.models import Purpose


def lease_not_found(lease_id: str) -> DomainError:
    return DomainError(ErrorKind.NOT_FOUND, "LEASE_NOT_FOUND", f"no lease {lease_id}", metadata={"leaseId": lease_id})


def lease_not_owned(lease_id: str, caller_id: str) -> DomainError:
    return DomainError(
        ErrorKind.PERMISSION_DENIED,
        "LEASE_NOT_OWNED",
        f"lease {lease_id} belongs to another caller",
        metadata={"leaseId": lease_id, "callerId": caller_id},
    )


def lease_closed(lease_id: str) -> DomainError:
    return DomainError(
        ErrorKind.FAILED_PRECONDITION,
        "LEASE_CLOSED",
        f"lease {lease_id} holds no outpoints any more (committed, released or taken over)",
        metadata={"leaseId": lease_id},
    )


def fencing_token_stale(lease_id: str, fencing_token: int, outpoint: Outpoint | None = None) -> DomainError:
    metadata = {"leaseId": lease_id, "fencingToken": str(fencing_token)}
    if outpoint is not None:
        metadata["outpoint"] = str(outpoint)
    where = f" on {outpoint}" if outpoint is not None else ""
    return DomainError(
        ErrorKind.ABORTED,
        "FENCING_TOKEN_STALE",
        f"lease {lease_id} (token {fencing_token}) no longer holds its outpoints{where}; lease again and restart",
        metadata=metadata,
    )


def pool_exhausted(purpose: Purpose, count: int, satoshis: int, wanted: str) -> DomainError:
    return DomainError(
        ErrorKind.FAILED_PRECONDITION,
        "POOL_EXHAUSTED",
        f"not enough AVAILABLE {purpose.value} UTXOs for {wanted}: {count} available, {satoshis} sat",
        metadata={"availableCount": str(count), "availableSatoshis": str(satoshis), "purpose": purpose.value},
    )


def utxo_not_in_lease(lease_id: str, outpoint: Outpoint) -> DomainError:
    return DomainError(
        ErrorKind.FAILED_PRECONDITION,
        "UTXO_NOT_IN_LEASE",
        f"{outpoint} was never reserved by lease {lease_id}",
        metadata={"leaseId": lease_id, "outpoint": str(outpoint)},
    )


def already_spent(outpoint: Outpoint, spent_by_txid: str) -> DomainError:
    return DomainError(
        ErrorKind.FAILED_PRECONDITION,
        "ALREADY_SPENT",
        f"{outpoint} is already spent by {spent_by_txid}",
        metadata={"outpoint": str(outpoint), "spentByTxid": spent_by_txid},
    )


def utxo_not_found(outpoint: Outpoint, missing_count: int | None = None) -> DomainError:
    """`missing_count`: how many of the request's outpoints are unknown, when it names several."""
    metadata = {"outpoint": str(outpoint)}
    others = ""
    if missing_count is not None:
        metadata["missingCount"] = str(missing_count)
        others = f" ({missing_count} unknown outpoints in all)" if missing_count > 1 else ""
    return DomainError(ErrorKind.NOT_FOUND, "UTXO_NOT_FOUND", f"the pool does not know {outpoint}{others}", metadata)


def utxo_mismatch(outpoint: Outpoint, purpose: Purpose, owner_key_id: str, mismatch_count: int) -> DomainError:
    """An outpoint named by a lease of exact outpoints that is not of the lease's purpose or owner key
    (`purpose` and `owner_key_id` are the outpoint's own)."""
    return DomainError(
        ErrorKind.FAILED_PRECONDITION,
        "UTXO_MISMATCH",
        f"{outpoint} is not of the purpose or owner key the request names ({mismatch_count} such outpoints in all)",
        metadata={
            "outpoint": str(outpoint),
            "purpose": purpose.value,
            "ownerKeyId": owner_key_id,
            "mismatchCount": str(mismatch_count),
        },
    )


def utxo_not_available(outpoint: Outpoint, unavailable_count: int) -> DomainError:
    return DomainError(
        ErrorKind.FAILED_PRECONDITION,
        "UTXO_NOT_AVAILABLE",
        f"{outpoint} cannot be leased now ({unavailable_count} of the outpoints in all); select again",
        metadata={"outpoint": str(outpoint), "unavailableCount": str(unavailable_count)},
    )


def utxo_not_spendable(outpoint: Outpoint, status: str) -> DomainError:
    return DomainError(
        ErrorKind.FAILED_PRECONDITION,
        "UTXO_NOT_SPENDABLE",
        f"{outpoint} is {status}: nothing can have tried to spend it through the pool",
        metadata={"outpoint": str(outpoint), "status": status},
    )


def utxo_already_exists(outpoint: Outpoint) -> DomainError:
    return DomainError(
        ErrorKind.ALREADY_EXISTS,
        "UTXO_ALREADY_EXISTS",
        f"{outpoint} is already tracked with different satoshis, script, owner or purpose",
        metadata={"outpoint": str(outpoint)},
    )


def role_required(role: str, caller_id: str) -> DomainError:
    return DomainError(
        ErrorKind.PERMISSION_DENIED,
        "ROLE_REQUIRED",
        f"caller {caller_id} needs the {role} role",
        metadata={"role": role, "callerId": caller_id},
    )
