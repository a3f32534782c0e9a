"""The wallet's background loops."""

from services.wallet.workers.loops import wallet_loops

__all__ = ["wallet_loops"]
