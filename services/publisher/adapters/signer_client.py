"""signer_gateway over gRPC (proofline.signer.v1.SignerService) as the TxSigner: SignTransactions (policy
mode) by default, Sign for the opt-in blind batch mode."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from proofline.common.v1 import common_pb2
from proofline.signer.v1 import signer_pb2, signer_pb2_grpc

from proofline_kit.errors import DomainError
from proofline_kit.rpc.interceptors import outbound_metadata
from proofline_kit.rpc.status import from_item_error, from_rpc_error
from services.publisher.domain.ports import SignedTx, TxToSign

UNAVAILABLE_REASON = "SIGNER_UNAVAILABLE"


class SignerClient:
    """Locking scripts are cached per key id (a key's public key never changes)."""

    def __init__(self, channel: grpc.aio.Channel, token: str | None, timeout_s: float) -> None:
        self._stub = signer_pb2_grpc.SignerServiceStub(channel)
        self._token = token
        self._timeout_s = timeout_s
        self._scripts: dict[str, bytes] = {}

    async def sign_transactions(self, request_id: str, txs: Sequence[TxToSign]) -> list[SignedTx | DomainError]:
        request = signer_pb2.SignTransactionsRequest(
            request_id=request_id,
            transactions=[
                signer_pb2.TransactionToSign(
                    unsigned_tx=tx.unsigned_tx,
                    spent_outputs=[
                        common_pb2.SpentOutput(satoshis=tx.spent.satoshis, locking_script=tx.spent.locking_script)
                    ],
                    input_keys=[signer_pb2.InputKey(input_index=0, key_id=tx.key_id)],
                )
                for tx in txs
            ],
        )
        try:
            response = await self._stub.SignTransactions(
                request, metadata=outbound_metadata(self._token), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, "signer_gateway", UNAVAILABLE_REASON) from None
        return [
            SignedTx(bytes(r.signed.signed_tx), r.signed.txid) if r.HasField("signed") else from_item_error(r.error)
            for r in response.results
        ]

    async def sign_digests(self, request_id: str, items: Sequence[tuple[str, bytes]]) -> list[tuple[bytes, bytes]]:
        try:
            response = await self._stub.Sign(
                signer_pb2.SignRequest(
                    request_id=request_id,
                    items=[signer_pb2.SignItem(key_id=key_id, digest=digest) for key_id, digest in items],
                ),
                metadata=outbound_metadata(self._token),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, "signer_gateway", UNAVAILABLE_REASON) from None
        return [(bytes(s.signature_der), bytes(s.public_key)) for s in response.signatures]

    async def locking_script(self, key_id: str) -> bytes:
        known = self._scripts.get(key_id)
        if known is not None:
            return known
        try:
            response = await self._stub.GetPublicKey(
                signer_pb2.GetPublicKeyRequest(key_id=key_id),
                metadata=outbound_metadata(self._token),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, "signer_gateway", UNAVAILABLE_REASON) from None
        script = bytes(response.locking_script)
        self._scripts[key_id] = script
        return script
