"""All SQL of the wallet."""

from services.wallet.store.store import MIGRATIONS, WalletStore
from services.wallet.store.unit_of_work import WalletUnitOfWork

__all__ = ["MIGRATIONS", "WalletStore", "WalletUnitOfWork"]
