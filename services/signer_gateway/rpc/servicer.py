"""SignerService over gRPC: a thin adapter over SignerGateway."""

from __future__ import annotations

from typing import Any

import grpc
from proofline.signer.v1 import signer_pb2, signer_pb2_grpc

from proofline_kit.auth import current_caller
from proofline_kit.rpc.deadlines import time_budget_s
from services.signer_gateway.domain.addresses import Network, p2pkh_address, p2pkh_script_of
from services.signer_gateway.domain.gateway import SignerGateway
from services.signer_gateway.rpc import mappers

Context = grpc.aio.ServicerContext[Any, Any]


class SignerServicer(signer_pb2_grpc.SignerServiceServicer):
    def __init__(self, gateway: SignerGateway, network: Network, default_deadline_s: float) -> None:
        self._gateway = gateway
        self._network = network
        self._default_deadline_s = default_deadline_s

    async def Sign(self, request: signer_pb2.SignRequest, context: Context) -> signer_pb2.SignResponse:
        results = await self._gateway.sign_digests(
            current_caller.get(),
            request.request_id,
            mappers.digests_from_proto(request),
            time_budget_s(context, self._default_deadline_s),
        )
        return mappers.signatures_to_proto(results)

    async def SignTransaction(
        self, request: signer_pb2.SignTransactionRequest, context: Context
    ) -> signer_pb2.SignTransactionResponse:
        result = await self._gateway.sign_transaction(
            current_caller.get(),
            request.request_id,
            mappers.transaction_from_proto(request),
            time_budget_s(context, self._default_deadline_s),
        )
        return mappers.signed_transaction_to_proto(result)

    async def SignTransactions(
        self, request: signer_pb2.SignTransactionsRequest, context: Context
    ) -> signer_pb2.SignTransactionsResponse:
        outcomes = await self._gateway.sign_transactions(
            current_caller.get(),
            request.request_id,
            mappers.transactions_from_proto(request),
            time_budget_s(context, self._default_deadline_s),
        )
        return mappers.outcomes_to_proto(outcomes)

    async def GetPublicKey(
        self, request: signer_pb2.GetPublicKeyRequest, context: Context
    ) -> signer_pb2.GetPublicKeyResponse:
        key = await self._gateway.get_key(current_caller.get(), request.key_id)
        network = mappers.network_from_proto(request.network, self._network)
        return signer_pb2.GetPublicKeyResponse(
            key=mappers.key_to_proto(key),
            network=mappers.network_to_proto(network),
            address=p2pkh_address(key.public_key, network),
            locking_script=p2pkh_script_of(key.public_key),
        )

    async def CreateKey(self, request: signer_pb2.CreateKeyRequest, context: Context) -> signer_pb2.CreateKeyResponse:
        key = await self._gateway.create_key(
            current_caller.get(),
            request.request_id,
            request.key_id,
            mappers.backend_from_proto(request.backend),
            mappers.policy_from_proto(request.policy),
            time_budget_s(context, self._default_deadline_s),
        )
        return signer_pb2.CreateKeyResponse(key=mappers.key_to_proto(key))

    async def ListKeys(self, request: signer_pb2.ListKeysRequest, context: Context) -> signer_pb2.ListKeysResponse:
        page = await self._gateway.list_keys(current_caller.get(), request.page_size, request.page_token)
        return signer_pb2.ListKeysResponse(
            keys=[mappers.key_to_proto(k) for k in page.keys], next_page_token=page.next_page_token
        )

    async def SetKeyPolicy(
        self, request: signer_pb2.SetKeyPolicyRequest, context: Context
    ) -> signer_pb2.SetKeyPolicyResponse:
        key = await self._gateway.set_key_policy(
            current_caller.get(),
            request.request_id,
            request.key_id,
            mappers.policy_from_proto(request.policy),
        )
        return signer_pb2.SetKeyPolicyResponse(key=mappers.key_to_proto(key))
