"""The wallet's unit of work: every query family over one connection."""

from __future__ import annotations

from proofline_kit.idempotency import RecordedAnswers
from services.wallet.store.accounts import AccountQueries
from services.wallet.store.backups import BackupQueries
from services.wallet.store.callbacks import CallbackQueries
from services.wallet.store.deposits import DepositQueries
from services.wallet.store.identities import IdentityQueries
from services.wallet.store.ledger import LedgerQueries
from services.wallet.store.txs import TxQueries


class WalletUnitOfWork(
    RecordedAnswers,
    AccountQueries,
    LedgerQueries,
    TxQueries,
    DepositQueries,
    CallbackQueries,
    IdentityQueries,
    BackupQueries,
):
    """One database transaction of the wallet (or autocommit reads, from `WalletStore.reader`)."""
