"""Dev-only: a demo wallet account with a deposit address, so that the stack's banner can print the
money side's calls as they are: create the account, fund its address on chainsim, mine, read the
balance, send.

Runs once the wallet is SERVING, and only against the stack's own chainsim. The account is created
with a fixed request_id, so the printed CreateAccount replays it on a restarted stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from proofline.wallet.v1 import wallet_pb2, wallet_pb2_grpc

DEMO_EXTERNAL_ID = "make-run-demo"
DEMO_REQUEST_ID = "devstack-demo-account"
# A testnet address nobody in the stack holds: the demo send's recipient.
DEMO_RECIPIENT = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"
DEMO_DEPOSIT_SATOSHIS = 100_000
DEMO_SEND_SATOSHIS = 10_000
_CALL_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class DemoWallet:
    account_id: str
    deposit_address: str
    min_confirmations: int


async def prepare_wallet_demo(wallet_address: str, admin_token: str) -> DemoWallet:
    metadata = (("authorization", f"Bearer {admin_token}"),)
    async with grpc.aio.insecure_channel(wallet_address) as channel:
        stub = wallet_pb2_grpc.WalletServiceStub(channel)
        created = await stub.CreateAccount(
            wallet_pb2.CreateAccountRequest(request_id=DEMO_REQUEST_ID, external_id=DEMO_EXTERNAL_ID),
            metadata=metadata,
            timeout=_CALL_TIMEOUT_S,
        )
        account_id = created.account.account_id
        address = await stub.NewDepositAddress(
            wallet_pb2.NewDepositAddressRequest(request_id="devstack-demo-address", account_id=account_id),
            metadata=metadata,
            timeout=_CALL_TIMEOUT_S,
        )
        balance = await stub.GetBalance(
            wallet_pb2.GetBalanceRequest(account_id=account_id), metadata=metadata, timeout=_CALL_TIMEOUT_S
        )
    return DemoWallet(account_id, address.deposit_address.address, balance.balance.min_confirmations)


def wallet_demo_lines(demo: DemoWallet, wallet_address: str, chain_url: str, bearer: str) -> list[str]:
    call = f"grpcurl -plaintext -H 'authorization: Bearer {bearer}'"
    service = "proofline.wallet.v1.WalletService"
    send = (
        f'{{"request_id":"demo-send-1","account_id":"{demo.account_id}","to_address":"{DEMO_RECIPIENT}",'
        f'"amount_satoshis":"{DEMO_SEND_SATOSHIS}","wait_for":"TRANSACTION_STATUS_UNCONFIRMED"}}'
    )
    return [
        "",
        f"  wallet (demo account {demo.account_id}, deposit address {demo.deposit_address}):",
        f"""    {call} -d '{{"request_id":"{DEMO_REQUEST_ID}","external_id":"{DEMO_EXTERNAL_ID}"}}'"""
        f" {wallet_address} {service}/CreateAccount",
        f"""    curl -s -XPOST {chain_url}/_sim/fund -d '{{"address":"{demo.deposit_address}","""
        f""""satoshis":{DEMO_DEPOSIT_SATOSHIS},"confirm":false}}'""",
        f"""    curl -s -XPOST {chain_url}/_sim/mine -d '{{"blocks":{demo.min_confirmations}}}'"""
        f"   # {demo.min_confirmations} confirmations: the deposit becomes available",
        f"""    {call} -d '{{"account_id":"{demo.account_id}"}}' {wallet_address} {service}/GetBalance""",
        f"    {call} -d '{send}' {wallet_address} {service}/Send",
    ]


SIGN_UP_EMAIL = "newcomer@example.com"


def sign_up_lines(wallet_address: str, mail_folder: Path, bearer: str) -> list[str]:
    """Sign-up by email against the stack's own SMTP server: start, read the code from the mail,
    complete (the <...> parts come from the two answers before)."""
    call = f"grpcurl -plaintext -H 'authorization: Bearer {bearer}'"
    service = "proofline.wallet.v1.WalletService"
    return [
        "",
        f"  sign-up by email (the stack's SMTP server keeps the mail in {mail_folder}):",
        f"""    {call} -d '{{"email":"{SIGN_UP_EMAIL}"}}' {wallet_address} {service}/StartSignUp""",
        f"    grep -oE '[0-9]{{6}}' {mail_folder}/latest.eml | head -1   # the code in the mail",
        f"""    {call} -d '{{"signup_id":"<signup_id>","code":"<code>"}}' {wallet_address} {service}/CompleteSignUp""",
    ]
