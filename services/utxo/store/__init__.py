"""The UTXO pool's PostgreSQL store: all of its SQL."""

from services.utxo.store.store import MIGRATIONS, UtxoStore
from services.utxo.store.unit_of_work import UtxoUnitOfWork

__all__ = ["MIGRATIONS", "UtxoStore", "UtxoUnitOfWork"]
