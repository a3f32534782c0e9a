"""signer_gateway over gRPC (proofline.signer.v1.SignerService): the wallet's keys, created with a
policy and used only in policy mode (SignTransactions)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from proofline.common.v1 import common_pb2
from proofline.signer.v1 import signer_pb2, signer_pb2_grpc

from proofline_kit.errors import DomainError
from proofline_kit.rpc.interceptors import outbound_metadata
from proofline_kit.rpc.status import from_item_error, from_rpc_error
from services.wallet.domain.ports import IssuedKey, KeyLimits, SignedTx, TxToSign

UNAVAILABLE_REASON = "SIGNER_UNAVAILABLE"


class SignerClient:
    def __init__(
        self, channel: grpc.aio.Channel, token: str | None, network: common_pb2.Network.ValueType, timeout_s: float
    ) -> None:
        self._stub = signer_pb2_grpc.SignerServiceStub(channel)
        self._token = token
        self._network = network
        self._timeout_s = timeout_s

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return outbound_metadata(self._token)

    async def create_key(self, request_id: str, key_id: str, limits: KeyLimits) -> IssuedKey:
        policy = signer_pb2.KeyPolicy(
            require_policy_mode=True,
            max_amount_per_tx_satoshis=limits.max_per_tx_satoshis,
            max_amount_per_day_satoshis=limits.max_per_day_satoshis,
        )
        if limits.change_address:
            policy.change_addresses.append(limits.change_address)
        try:
            await self._stub.CreateKey(
                signer_pb2.CreateKeyRequest(request_id=request_id, key_id=key_id, policy=policy),
                metadata=self._metadata(),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise from_rpc_error(error, "signer_gateway", UNAVAILABLE_REASON) from None
        return await self.key(key_id)

    async def key(self, key_id: str) -> IssuedKey:
        try:
            response = await self._stub.GetPublicKey(
                signer_pb2.GetPublicKeyRequest(key_id=key_id, network=self._network),
                metadata=self._metadata(),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, "signer_gateway", UNAVAILABLE_REASON) from None
        return IssuedKey(key_id, response.address, bytes(response.locking_script))

    async def sign_transactions(self, request_id: str, txs: Sequence[TxToSign]) -> list[SignedTx | DomainError]:
        request = signer_pb2.SignTransactionsRequest(
            request_id=request_id,
            transactions=[
                signer_pb2.TransactionToSign(
                    unsigned_tx=tx.unsigned_tx,
                    spent_outputs=[
                        common_pb2.SpentOutput(satoshis=c.satoshis, locking_script=c.locking_script) for c in tx.spent
                    ],
                    input_keys=[signer_pb2.InputKey(input_index=i, key_id=c.key_id) for i, c in enumerate(tx.spent)],
                )
                for tx in txs
            ],
        )
        try:
            response = await self._stub.SignTransactions(request, metadata=self._metadata(), timeout=self._timeout_s)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, "signer_gateway", UNAVAILABLE_REASON) from None
        return [
            SignedTx(bytes(r.signed.signed_tx), r.signed.txid, r.signed.fee_satoshis)
            if r.HasField("signed")
            else from_item_error(r.error)
            for r in response.results
        ]
