"""The UTXO pool's PostgreSQL store: all of its SQL."""

from services.utxo.store.unit_of_work import UtxoUnitOfWork
from services.utxo.store.utxo_store import MIGRATIONS, UtxoStore

__all__ = ["MIGRATIONS", "UtxoStore", "UtxoUnitOfWork"]
