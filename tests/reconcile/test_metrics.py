"""The metrics' state gauges: computed at scrape time, bounded labels, gone with the resource."""

from __future__ import annotations

from prometheus_client import generate_latest

from cloudinfer.cloud.budget import CallRate, RateBudgets
from cloudinfer.cloud.clock import SystemClock
from cloudinfer.cloud.errors import ThrottledError
from cloudinfer.reconcile.metrics import ERROR_CLASSES, AccountState, Metrics, ServiceState


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_services_are_counted_by_state_and_forgotten_with_their_resource() -> None:
    metrics = Metrics()
    converged = ServiceState("tencent", "Running", True, "Converged")
    metrics.service_state("ns/a", converged)
    metrics.service_state("ns/b", converged)
    metrics.service_state("ns/c", ServiceState("tencent", "Running", False, "CloudRejected",
                                               held="CloudRejected"))  # fmt: skip
    labels = {"cloud": "tencent", "phase": "Running", "ready": "true", "reason": "Converged"}
    assert sample(metrics, "cloudinfer_services", **labels) == 2
    assert sample(metrics, "cloudinfer_writes_held", cloud="tencent", reason="CloudRejected") == 1
    assert sample(metrics, "cloudinfer_writes_held", cloud="huawei", reason="CloudRejected") == 0
    metrics.forget_service("ns/c")
    assert sample(metrics, "cloudinfer_writes_held", cloud="tencent", reason="CloudRejected") == 0
    metrics.forget_service("ns/a")
    metrics.forget_service("ns/b")
    assert sample(metrics, "cloudinfer_services", **labels) is None
    exposition = generate_latest(metrics.registry).decode()
    assert "ns/a" not in exposition, "a service name is never a label"


def test_account_budgets_and_observation_time_are_read_at_scrape_time() -> None:
    metrics = Metrics()
    budgets = RateBudgets({"List": CallRate(20)}, default=CallRate(5), clock=SystemClock())
    budgets.record_calls_with(metrics.call_recorder("huawei"))
    bucket = budgets.bucket("ns/acct", "List")
    metrics.account_state("ns/acct", AccountState("huawei", 1_700_000_000.0, 60.0, budgets))
    key = {"cloud": "huawei", "account": "ns/acct", "action": "List"}
    assert sample(metrics, "cloudinfer_rate_budget_limit_calls_per_second", **key) == 20
    assert sample(metrics, "cloudinfer_rate_budget_calls_total", **key) == 0
    bucket.record(0.2, ThrottledError("slow down", cloud="huawei"))
    bucket.on_throttled()
    assert sample(metrics, "cloudinfer_rate_budget_current_calls_per_second", **key) == 10
    assert sample(metrics, "cloudinfer_cloud_request_errors_total", cloud="huawei",
                  error_class="CloudThrottled") == 1  # fmt: skip
    assert sample(metrics, "cloudinfer_cloud_request_duration_seconds_count", cloud="huawei",
                  action="List") == 1  # fmt: skip
    assert sample(metrics, "cloudinfer_observation_last_success_timestamp_seconds",
                  cloud="huawei", account="ns/acct") == 1_700_000_000.0  # fmt: skip
    metrics.snapshot_services.labels("ns/acct").set(3)
    metrics.forget_account("ns/acct")
    assert sample(metrics, "cloudinfer_rate_budget_limit_calls_per_second", **key) is None
    assert sample(metrics, "cloudinfer_snapshot_services", account="ns/acct") is None
    metrics.forget_account("ns/never-listed")  # no error for an account never observed


def test_every_error_class_starts_at_zero_for_every_cloud() -> None:
    metrics = Metrics()
    assert "CloudThrottled" in ERROR_CLASSES
    for cloud in ("tencent", "huawei", "baidu"):
        for error_class in ERROR_CLASSES:
            assert sample(metrics, "cloudinfer_cloud_request_errors_total", cloud=cloud,
                          error_class=error_class) == 0  # fmt: skip
        assert sample(metrics, "cloudinfer_cloud_writes_in_flight", cloud=cloud) == 0


def test_dropped_events_start_at_zero_for_every_reason_and_count_events() -> None:
    metrics = Metrics()
    for reason in ("queue_full", "refused", "unavailable", "shutdown"):
        assert sample(metrics, "cloudinfer_events_dropped_total", reason=reason) == 0
    metrics.count_dropped_events("queue_full", 3)
    metrics.count_dropped_events("queue_full", 1)
    assert sample(metrics, "cloudinfer_events_dropped_total", reason="queue_full") == 4
    assert sample(metrics, "cloudinfer_events_dropped_total", reason="refused") == 0
