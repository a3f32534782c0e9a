"""`utxo-manager` and `sweep-change` against a running service, in dry-run and real mode."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from proofline.utxo.v1 import utxo_pb2

from services.utxo.cli import sweep_change, utxo_manager
from tests.utxo.chain_stack import CHANGE, FUNDING, Stack, chain_stack, list_of


def use_service(monkeypatch: pytest.MonkeyPatch, stack: Stack) -> None:
    monkeypatch.setenv("UTXO_TARGET", f"127.0.0.1:{stack.utxo.running.port}")
    monkeypatch.setenv("UTXO_ADMIN_TOKEN", "admin-token-0001")


async def test_utxo_manager_dry_run_then_real(
    database_url: str,
    redis_url: str,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with chain_stack(database_url, redis_url) as stack:
        use_service(monkeypatch, stack)
        await stack.fund(FUNDING, 50_000)
        monkeypatch.setenv("SPLIT_DRY_RUN", "1")
        assert await asyncio.to_thread(utxo_manager.main, []) == 0
        out = capsys.readouterr().out
        assert "[1/1] pass (dry run)" in out and "reap_leases: NOTHING_TO_DO (dry run)" in out
        assert "sync: DONE (dry run)" in out and "split: DONE (dry run)" in out and "tx 1/1 planned" in out
        assert await db.fetchval("SELECT count(*) FROM utxos") == 0, "a dry run changes nothing"

        monkeypatch.delenv("SPLIT_DRY_RUN")
        assert await asyncio.to_thread(utxo_manager.main, []) == 0
        out = capsys.readouterr().out
        assert "[1/3] reap_leases" in out and "[3/3] split" in out
        assert "split: DONE - split into 10 outputs of 1000 sat: accepted" in out
        assert "ACCEPTED" in out
        assert len(await list_of(stack, utxo_pb2.UTXO_STATUS_UNCONFIRMED, purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH)) == 10

        monkeypatch.setenv("UTXO_ADMIN_TOKEN", "wrong-token-000")
        assert await asyncio.to_thread(utxo_manager.main, ["--dry-run"]) == 1
        assert "UNAUTHENTICATED" in capsys.readouterr().err


async def test_sweep_change_dry_run_then_real(
    database_url: str,
    redis_url: str,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with chain_stack(database_url, redis_url) as stack:
        use_service(monkeypatch, stack)
        await stack.fund(CHANGE, 900, count=5)
        await stack.admin.SyncFromChain(
            utxo_pb2.SyncFromChainRequest(request_id="s1"), metadata=(("authorization", "Bearer admin-token-0001"),)
        )
        args = [
            "--changeAddress",
            stack.addresses[CHANGE],
            "--changeKeyId",
            CHANGE,
            "--destinationAddress",
            stack.addresses[FUNDING],
            "--maxInputs",
            "2",
            "--maxTransactions",
            "2",
        ]
        assert await asyncio.to_thread(sweep_change.main, [*args, "--dryRun"]) == 0
        out = capsys.readouterr().out
        assert "sweep: DONE (dry run)" in out and out.count("planned") == 2
        assert len(await list_of(stack, utxo_pb2.UTXO_STATUS_AVAILABLE, owner=CHANGE)) == 5

        assert await asyncio.to_thread(sweep_change.main, args) == 0
        out = capsys.readouterr().out
        assert "sweep round 1" in out and "sweep round 2" in out and "NOTHING_TO_DO" in out
        assert out.count("ACCEPTED") == 3, "5 coins, 2 per transaction"
        assert await list_of(stack, utxo_pb2.UTXO_STATUS_AVAILABLE, owner=CHANGE) == []


def test_sweep_change_refuses_a_private_key(capsys: pytest.CaptureFixture[str]) -> None:
    wif = "cNYfRxoekNKKt3Lku4rV3wYbrcKWVzmzWZWnaqCjSAghFqQ2M5Xu"
    with pytest.raises(SystemExit) as exited:
        sweep_change.main(["--changeAddress", "a", "--changeKeyId", wif, "--destinationAddress", "b"])
    assert exited.value.code == 2
    assert "looks like a private key" in capsys.readouterr().err
