"""ReportAccepted: the network accepted committed transactions, so their change is spendable at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from structlog.typing import FilteringBoundLogger

from proofline_kit.auth import Caller
from proofline_kit.idempotency import check_request_id, request_fingerprint
from services.utxo.domain import codec
from services.utxo.domain import validation as check
from services.utxo.domain.models import AcceptedResult
from services.utxo.domain.pool_access import require_pool
from services.utxo.domain.ports import Store

if TYPE_CHECKING:
    from services.utxo.domain.pool import PoolConfig


class AcceptanceUseCases:
    """Part of UtxoPool (which sets these attributes)."""

    _store: Store
    _log: FilteringBoundLogger
    _config: PoolConfig

    async def report_accepted(self, caller: Caller, request_id: str, txids: Sequence[str]) -> AcceptedResult:
        """The tracked UNCONFIRMED outputs of each txid that is a committed spend still alive (every
        input SPENT by it) become AVAILABLE at unconfirmed_depth 1 + the deepest input's, up to
        UTXO_MAX_UNCONFIRMED_DEPTH (0: the feature is off); deeper ones stay UNCONFIRMED. Txids that
        are no such spend are skipped. One statement for the batch; the answer is recorded."""
        require_pool(caller)
        check_request_id(request_id)
        check.txids(txids, "txids", "TXIDS_INVALID")
        fingerprint = request_fingerprint("ReportAccepted", list(txids))
        async with self._store.unit_of_work() as uow:
            replay = await uow.find_answer(caller.caller_id, "ReportAccepted", request_id, fingerprint)
            if replay is not None:
                return codec.accepted_from_json(replay)
            available, alive = await uow.accept_spends(txids, self._config.max_unconfirmed_depth, caller.caller_id)
            result = AcceptedResult(tuple(available), tuple(t for t in txids if t not in alive))
            await uow.record_answer(
                caller.caller_id, "ReportAccepted", request_id, fingerprint, codec.accepted_to_json(result)
            )
        self._log.info("spends.accepted", txids=len(txids), available=len(available), skipped=len(result.skipped_txids))
        return result
