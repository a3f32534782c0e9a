"""Everything chain-specific behind one small seam: a chain is one module implementing ChainRules."""

from services.wallet.domain.chains.bsv import BSV
from services.wallet.domain.chains.rules import ChainRules, TxSizes

__all__ = ["BSV", "ChainRules", "TxSizes"]
