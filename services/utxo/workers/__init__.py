"""Background loops of the utxo service."""

from services.utxo.workers.loops import maintenance_loop, metrics_loop, reaper_loop
from services.utxo.workers.metrics import PoolMetrics

__all__ = ["PoolMetrics", "maintenance_loop", "metrics_loop", "reaper_loop"]
