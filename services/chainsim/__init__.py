"""chainsim: an offline BSV chain that speaks ARC and WhatsOnChain (issue 3, arc-woc.md §6)."""

from services.chainsim.app import ChainSim
from services.chainsim.settings import ChainsimSettings, read_chainsim_settings

__all__ = ["ChainSim", "ChainsimSettings", "read_chainsim_settings"]
