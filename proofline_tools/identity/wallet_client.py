"""The wallet's backup RPCs from the client tool: register the key, upload the service's 2 shares,
and fetch them back after a mailed one-time code (blocking gRPC; the tool is a console script)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import grpc
from proofline.wallet.v1 import wallet_pb2, wallet_pb2_grpc

from proofline_tools.signed_intents import IdentityKey, intent_body

REGISTER_RECORD_TYPE = "proofline.identity.register"


class WalletCallError(Exception):
    """The wallet refused a call, or could not be reached (code and message, never a share)."""


def _request_id(kind: str, account_id: str, pubkey: bytes) -> str:
    """Follows from account and key: a retried upload replays the wallet's answer."""
    return f"{kind}-{hashlib.sha256(f'{account_id}:{pubkey.hex()}'.encode()).hexdigest()[:48]}"


class WalletBackupClient:
    """One account's calls with a bearer token; `upload` makes it a `ShareUploader`."""

    def __init__(self, address: str, account_id: str, token: str, timeout_s: float = 15.0) -> None:
        self._channel = grpc.insecure_channel(address)
        self._stub = wallet_pb2_grpc.WalletServiceStub(self._channel)
        self._account_id = account_id
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"WalletBackupClient(account_id={self._account_id!r})"

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: str, request: object) -> object:
        try:
            return getattr(self._stub, method)(request, metadata=self._metadata, timeout=self._timeout_s)
        except grpc.RpcError as error:
            code = error.code().name if isinstance(error, grpc.Call) else "UNKNOWN"
            detail = error.details() if isinstance(error, grpc.Call) else ""
            raise WalletCallError(f"{method}: {code}: {detail}") from None

    def register(self, key: IdentityKey, label: str) -> None:
        """RegisterIdentity with the key's consent proof (the wallet keeps shares only of its keys)."""
        proof = key.intent(intent_body({"accountId": self._account_id, "type": REGISTER_RECORD_TYPE}))
        self._call(
            "RegisterIdentity",
            wallet_pb2.RegisterIdentityRequest(
                request_id=_request_id("reg", self._account_id, key.pubkey),
                account_id=self._account_id,
                pubkey=key.pubkey,
                label=label,
                proof=proof,
            ),
        )

    def upload(self, pubkey: bytes, shares: Sequence[str]) -> None:
        self._call(
            "StoreBackupShares",
            wallet_pb2.StoreBackupSharesRequest(
                request_id=_request_id("bkp", self._account_id, pubkey),
                account_id=self._account_id,
                pubkey=pubkey,
                shares=list(shares),
            ),
        )

    def begin_recovery(self, pubkey: bytes) -> str:
        answer = self._call(
            "BeginRecovery", wallet_pb2.BeginRecoveryRequest(account_id=self._account_id, pubkey=pubkey)
        )
        assert isinstance(answer, wallet_pb2.BeginRecoveryResponse)
        return answer.recovery_id

    def complete_recovery(self, recovery_id: str, code: str) -> list[str]:
        answer = self._call("CompleteRecovery", wallet_pb2.CompleteRecoveryRequest(recovery_id=recovery_id, code=code))
        assert isinstance(answer, wallet_pb2.CompleteRecoveryResponse)
        return list(answer.shares)
