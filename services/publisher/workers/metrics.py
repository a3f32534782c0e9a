"""Prometheus figures of the publishing pipeline (the PipelineObserver port)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.stage_seconds = Histogram(
            "publisher_pipeline_stage_seconds",
            "Time per batch stage (collect, lease, sign, store, commit, broadcast, settle).",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=registry,
        )
        self.stage_jobs = Counter(
            "publisher_pipeline_stage_jobs_total", "Jobs that went through each stage.", ["stage"], registry=registry
        )
        self.outcomes = Counter(
            "publisher_broadcast_outcomes_total",
            "Broadcast outcomes by kind (accepted, double_spend, missing_inputs, fee_too_low, invalid, unavailable).",
            ["kind"],
            registry=registry,
        )
        self.moves = Counter(
            "publisher_job_moves_total", "Job status changes made by the pipeline.", ["to", "reason"], registry=registry
        )
        self.loop_errors = Counter(
            "publisher_worker_errors_total", "Unexpected errors in the background loops.", ["loop"], registry=registry
        )
        self.callbacks = Counter(
            "publisher_callbacks_total", "ARC callbacks received, by result.", ["result"], registry=registry
        )

    def stage(self, name: str, seconds: float, jobs: int) -> None:
        self.stage_seconds.labels(name).observe(seconds)
        self.stage_jobs.labels(name).inc(jobs)

    def outcome(self, kind: str, count: int = 1) -> None:
        self.outcomes.labels(kind).inc(count)

    def moved(self, target: str, reason: str, count: int = 1) -> None:
        if count:
            self.moves.labels(target, reason).inc(count)
