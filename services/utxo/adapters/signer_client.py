"""signer_gateway over gRPC: key addresses (GetPublicKey) and policy-mode signing (SignTransaction)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from proofline.common.v1 import common_pb2
from proofline.signer.v1 import signer_pb2, signer_pb2_grpc

from proofline_kit.rpc.interceptors import outbound_metadata
from proofline_kit.rpc.status import from_rpc_error
from services.utxo.domain.ports import KeyInfo, SignedTx


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
            raise from_rpc_error(error, "signer_gateway", "SIGNER_UNAVAILABLE") from None
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
            raise from_rpc_error(error, "signer_gateway", "SIGNER_UNAVAILABLE") from None
        return SignedTx(bytes(response.signed_tx), response.txid)
