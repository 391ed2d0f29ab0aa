"""Prometheus metrics, named after controller-runtime's where a counterpart exists."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class Metrics:
    """One set of collectors per registry (tests use a private registry)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.reconciles = Counter(
            "controller_runtime_reconcile_total",
            "Reconciles per controller and result (success, error, requeue).",
            ["controller", "result"],
            registry=r,
        )
        self.cloud_calls = Counter(
            "cloudinfer_cloud_write_calls_total",
            "Cloud write calls per cloud, action and result.",
            ["cloud", "action", "result"],
            registry=r,
        )
        self.throttles = Counter(
            "cloudinfer_cloud_throttled_total",
            "Cloud calls refused for throttling.",
            ["cloud"],
            registry=r,
        )
        self.observe_errors = Counter(
            "cloudinfer_observe_errors_total",
            "Failed batched observations per reason.",
            ["cloud", "reason"],
            registry=r,
        )
        self.observe_seconds = Histogram(
            "cloudinfer_observe_duration_seconds",
            "Duration of one batched observation.",
            ["cloud"],
            registry=r,
        )
        self.drift = Counter(
            "cloudinfer_drift_detections_total",
            "Fields found different from the spec.",
            ["cloud", "field"],
            registry=r,
        )
        self.stops_on_delete = Counter(
            "cloudinfer_stop_on_delete_total",
            "InferenceServices with policy.onDelete=Stop released, per result: stopped (one "
            "STOP sent), not_needed (already stopped or gone), skipped (another InferenceService "
            "manages the cloud service), abandoned (no STOP could be sent within the bound: "
            "the cloud service may still run).",
            ["result"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "workqueue_depth", "Services waiting to be reconciled.", ["name"], registry=r
        )
        self.snapshot_services = Gauge(
            "cloudinfer_snapshot_services", "Services in an account's observation snapshot.",
            ["account"], registry=r,
        )  # fmt: skip
