"""The pool's figures as Prometheus gauges, refreshed on an interval from the health snapshot."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.utxo.domain.models import PoolHealth, PruneResult, Purpose, UtxoStatus


class PoolMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.utxos = Gauge(
            "proofline_utxo_pool_utxos",
            "Outpoints in the pool by purpose and status.",
            ["purpose", "status"],
            registry=registry,
        )
        self.satoshis = Gauge(
            "proofline_utxo_pool_satoshis",
            "Satoshis in the pool by purpose and status.",
            ["purpose", "status"],
            registry=registry,
        )
        self.leases = Gauge(
            "proofline_utxo_leases", "Leases holding outpoints, by state.", ["state"], registry=registry
        )
        self.leased_utxos = Gauge(
            "proofline_utxo_leased_utxos", "RESERVED outpoints by lease state.", ["state"], registry=registry
        )
        self.runway_ready = Gauge(
            "proofline_utxo_runway_ready_publishes",
            "AVAILABLE publish UTXOs that can pay one publish now.",
            registry=registry,
        )
        self.runway_funded = Gauge(
            "proofline_utxo_runway_funded_publishes",
            "Publishes the publish pool pays for at the current fee.",
            registry=registry,
        )
        self.runway_funded_with_funding = Gauge(
            "proofline_utxo_runway_funded_publishes_with_funding",
            "Publishes the publish and funding coins pay for at the current fee.",
            registry=registry,
        )
        self.runway_seconds = Gauge(
            "proofline_utxo_runway_seconds",
            "Funded publishes at the last hour's rate (-1 when idle).",
            registry=registry,
        )
        self.fee_rate = Gauge(
            "proofline_utxo_fee_rate_satoshis_per_kb", "Fee rate the pool plans with.", registry=registry
        )
        self.spends_last_hour = Gauge(
            "proofline_utxo_publish_spends_last_hour", "Publish spends committed in the last hour.", registry=registry
        )
        self.below_low_water = Gauge(
            "proofline_utxo_below_low_water",
            "1 while AVAILABLE publish UTXOs are below MIN_UTXO_COUNT.",
            registry=registry,
        )
        self.last_run = Gauge(
            "proofline_utxo_maintenance_last_run_timestamp_seconds",
            "Last maintenance run by action.",
            ["action"],
            registry=registry,
        )

        self.pruned_rows = Counter(
            "proofline_utxo_pruned_rows",
            "Rows deleted by retention (UTXO_RETENTION_MS), by table.",
            ["table"],
            registry=registry,
        )
        for table in ("utxos", "utxo_events", "leases"):
            self.pruned_rows.labels(table)

    def pruned(self, result: PruneResult) -> None:
        self.pruned_rows.labels("utxos").inc(result.utxos)
        self.pruned_rows.labels("utxo_events").inc(result.events)
        self.pruned_rows.labels("leases").inc(result.leases)

    def update(self, health: PoolHealth) -> None:
        seen = {(b.purpose, b.status): b for b in health.buckets}
        for purpose in Purpose:
            for status in UtxoStatus:
                bucket = seen.get((purpose, status))
                self.utxos.labels(purpose.value, status.value).set(bucket.count if bucket else 0)
                self.satoshis.labels(purpose.value, status.value).set(bucket.satoshis if bucket else 0)
        self.leases.labels("live").set(health.leases.live_leases)
        self.leases.labels("expired").set(health.leases.expired_leases)
        self.leased_utxos.labels("live").set(health.leases.live_reserved_utxos)
        self.leased_utxos.labels("expired").set(health.leases.expired_reserved_utxos)
        runway = health.runway
        self.runway_ready.set(runway.ready_publishes)
        self.runway_funded.set(runway.funded_publishes)
        self.runway_funded_with_funding.set(runway.funded_publishes_with_funding)
        remaining = runway.estimated_remaining
        self.runway_seconds.set(remaining.total_seconds() if remaining is not None else -1)
        self.fee_rate.set(runway.fee_rate_satoshis_per_kb)
        self.spends_last_hour.set(runway.spends_last_hour)
        self.below_low_water.set(1 if health.maintenance.below_low_water else 0)
        for action, at in (
            ("sync", health.maintenance.last_sync_at),
            ("split", health.maintenance.last_split_at),
            ("sweep", health.maintenance.last_sweep_at),
        ):
            if at is not None:
                self.last_run.labels(action).set(at.timestamp())
