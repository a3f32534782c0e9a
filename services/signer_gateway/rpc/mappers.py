"""Translation between signer protos and domain objects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from google.protobuf.timestamp_pb2 import Timestamp
from proofline.common.v1 import common_pb2
from proofline.signer.v1 import signer_pb2

from proofline_kit.errors import DomainError
from proofline_kit.rpc.status import to_item_error
from services.signer_gateway.domain.addresses import Network
from services.signer_gateway.domain.models import (
    Backend,
    DigestToSign,
    InputKey,
    KeyPolicy,
    KeyRecord,
    SignatureResult,
    SignedTransaction,
    SpentOutput,
    TransactionOutcome,
    TransactionToSign,
)

_BACKENDS = {
    signer_pb2.KEY_BACKEND_LOCAL: Backend.LOCAL,
    signer_pb2.KEY_BACKEND_EXTERNAL_KMS: Backend.EXTERNAL_KMS,
}
_BACKENDS_OUT = {v: k for k, v in _BACKENDS.items()}
_NETWORKS = {
    common_pb2.NETWORK_MAINNET: Network.MAINNET,
    common_pb2.NETWORK_TESTNET: Network.TESTNET,
    common_pb2.NETWORK_REGTEST: Network.REGTEST,
}
_NETWORKS_OUT = {v: k for k, v in _NETWORKS.items()}
ERROR_DOMAIN = "proofline.signer"


def backend_from_proto(value: int) -> Backend | None:
    return _BACKENDS.get(cast(signer_pb2.KeyBackend.ValueType, value))


def network_from_proto(value: int, default: Network) -> Network:
    return _NETWORKS.get(cast(common_pb2.Network.ValueType, value), default)


def network_to_proto(network: Network) -> common_pb2.Network.ValueType:
    return _NETWORKS_OUT[network]


def policy_from_proto(policy: signer_pb2.KeyPolicy) -> KeyPolicy:
    return KeyPolicy(
        require_policy_mode=policy.require_policy_mode,
        allowed_destinations=tuple(policy.allowed_destinations),
        max_amount_per_tx_satoshis=policy.max_amount_per_tx_satoshis,
        max_amount_per_day_satoshis=policy.max_amount_per_day_satoshis,
        max_fee_satoshis=policy.max_fee_satoshis,
        change_addresses=tuple(policy.change_addresses),
    )


def policy_to_proto(policy: KeyPolicy) -> signer_pb2.KeyPolicy:
    return signer_pb2.KeyPolicy(
        require_policy_mode=policy.require_policy_mode,
        allowed_destinations=list(policy.allowed_destinations),
        max_amount_per_tx_satoshis=policy.max_amount_per_tx_satoshis,
        max_amount_per_day_satoshis=policy.max_amount_per_day_satoshis,
        max_fee_satoshis=policy.max_fee_satoshis,
        change_addresses=list(policy.change_addresses),
    )


def key_to_proto(key: KeyRecord) -> signer_pb2.Key:
    created, updated = Timestamp(), Timestamp()
    created.FromDatetime(key.created_at)
    updated.FromDatetime(key.updated_at)
    return signer_pb2.Key(
        key_id=key.key_id,
        backend=_BACKENDS_OUT[key.backend],
        public_key=key.public_key,
        policy=policy_to_proto(key.policy),
        create_time=created,
        update_time=updated,
    )


def digests_from_proto(request: signer_pb2.SignRequest) -> list[DigestToSign]:
    return [DigestToSign(item.key_id, item.digest) for item in request.items]


def signature_to_proto(result: SignatureResult) -> signer_pb2.Signature:
    return signer_pb2.Signature(key_id=result.key_id, signature_der=result.signature_der, public_key=result.public_key)


def signatures_to_proto(results: Sequence[SignatureResult]) -> signer_pb2.SignResponse:
    response = signer_pb2.SignResponse()
    add = response.signatures.add
    for key_id, signature_der, public_key in results:
        add(key_id=key_id, signature_der=signature_der, public_key=public_key)
    return response


def transaction_from_proto(
    request: signer_pb2.SignTransactionRequest | signer_pb2.TransactionToSign,
) -> TransactionToSign:
    return TransactionToSign(
        unsigned_tx=request.unsigned_tx,
        spent_outputs=tuple(SpentOutput(o.satoshis, o.locking_script) for o in request.spent_outputs),
        input_keys=tuple(InputKey(k.input_index, k.key_id) for k in request.input_keys),
    )


def signed_transaction_to_proto(result: SignedTransaction) -> signer_pb2.SignTransactionResponse:
    return signer_pb2.SignTransactionResponse(
        signed_tx=result.raw_tx,
        txid=result.txid,
        fee_satoshis=result.fee_satoshis,
        sent_satoshis=result.sent_satoshis,
        signatures=[signature_to_proto(s) for s in result.signatures],
    )


def transactions_from_proto(request: signer_pb2.SignTransactionsRequest) -> list[TransactionToSign]:
    return [transaction_from_proto(t) for t in request.transactions]


def outcomes_to_proto(outcomes: Sequence[TransactionOutcome]) -> signer_pb2.SignTransactionsResponse:
    return signer_pb2.SignTransactionsResponse(
        results=[
            signer_pb2.SignTransactionResult(error=to_item_error(o, ERROR_DOMAIN))
            if isinstance(o, DomainError)
            else signer_pb2.SignTransactionResult(signed=signed_transaction_to_proto(o))
            for o in outcomes
        ]
    )
