"""signer_gateway over gRPC: key addresses (GetPublicKey) and policy-mode signing (SignTransaction)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from proofline.common.v1 import common_pb2
from proofline.signer.v1 import signer_pb2, signer_pb2_grpc

from proofline_kit.errors import DomainError, ErrorKind
from proofline_kit.rpc.interceptors import outbound_metadata
from services.utxo.domain.ports import KeyInfo, SignedTx

_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


class SignerClient:
    """Implements KeyDirectory and TransactionSigner. Key addresses are cached: a key id's public key
    never changes."""

    def __init__(
        self, channel: grpc.aio.Channel, token: str | None, network: common_pb2.Network.ValueType, timeout_s: float
    ) -> None:
        self._stub = signer_pb2_grpc.SignerServiceStub(channel)
        self._token = token
        self._network = network
        self._timeout_s = timeout_s
        self._keys: dict[str, KeyInfo] = {}

    async def key(self, key_id: str) -> KeyInfo:
        known = self._keys.get(key_id)
        if known is not None:
            return known
        try:
            response = await self._stub.GetPublicKey(
                signer_pb2.GetPublicKeyRequest(key_id=key_id, network=self._network),
                metadata=outbound_metadata(self._token),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            raise signer_error(error) from None
        info = KeyInfo(key_id, response.address, bytes(response.locking_script))
        self._keys[key_id] = info
        return info

    async def sign(
        self,
        request_id: str,
        unsigned_tx: bytes,
        spent: Sequence[tuple[int, bytes]],
        input_keys: Sequence[tuple[int, str]],
    ) -> SignedTx:
        try:
            response = await self._stub.SignTransaction(
                signer_pb2.SignTransactionRequest(
                    request_id=request_id,
                    unsigned_tx=unsigned_tx,
                    spent_outputs=[common_pb2.SpentOutput(satoshis=s, locking_script=script) for s, script in spent],
                    input_keys=[signer_pb2.InputKey(input_index=i, key_id=k) for i, k in input_keys],
                ),
                metadata=outbound_metadata(self._token),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            raise signer_error(error) from None
        return SignedTx(bytes(response.signed_tx), response.txid)


def signer_error(error: grpc.aio.AioRpcError) -> DomainError:
    """Unreachable signer: SIGNER_UNAVAILABLE. Anything else (POLICY_DENIED, KEY_NOT_FOUND, ...)
    passes through with the signer's code, reason and metadata."""
    code = error.code()
    if code in _TRANSIENT:
        return DomainError(
            ErrorKind.UNAVAILABLE,
            "SIGNER_UNAVAILABLE",
            f"signer_gateway: {code.name}: {error.details()}",
            retry_after_ms=1_000,
        )
    reason, metadata = code.name, {}
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
    kind = ErrorKind.__members__.get(code.name, ErrorKind.INTERNAL)
    return DomainError(kind, reason, f"signer_gateway: {error.details()}", metadata=metadata)
