"""chainsim: an offline BSV chain that speaks ARC and WhatsOnChain (issue 3, arc-woc.md §6)."""

from services.chainsim.app import ChainSim
from services.chainsim.settings import Settings, settings_from_env

__all__ = ["ChainSim", "Settings", "settings_from_env"]
