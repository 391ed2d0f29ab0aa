"""Prometheus metrics: what docs/observability.md lists, and nothing that names a service.

Counters and histograms are updated where things happen (observer, executor, reconciler, and
every cloud call through `RateBudgets.record_calls_with`). The state of accounts and services
(budgets, the last observation, services by phase and readiness, held writes) is kept here as
plain values and turned into gauges when Prometheus scrapes, so a deleted resource leaves no
stale series. Labels are bounded: cloud, action (an API name), error class, phase, reason, and
the CloudAccount (`namespace/name`; an operator serves a handful of accounts, never one per
service). Service names and IDs are never labels.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cloudinfer.cloud.budget import CallRecorder, RateBudgets
from cloudinfer.cloud.errors import CloudError
from cloudinfer.cloud.model import Cloud
from cloudinfer.reconcile.outcomes import HOLD_REASONS, OUTCOMES

CLOUDS: Final = tuple(cloud.value for cloud in Cloud)
ERROR_CLASSES: Final = tuple(dict.fromkeys(cls.reason for cls, _ in OUTCOMES))
"""The error classes every cloud's error counter starts at 0 with, so that a rate() over
them has data before the first error (alerts and dashboard panels alike)."""
EVENT_DROP_REASONS: Final = ("queue_full", "refused", "unavailable", "shutdown")
CALL_SECONDS_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Cloud calls take tens of milliseconds to seconds; the HTTP client times out at 30 s."""


@dataclass(frozen=True, slots=True)
class AccountState:
    """What an account's observer last reported."""

    cloud: str
    last_success: float | None
    """Unix time at which the last successful list started; None before the first."""
    poll_interval: float
    """The CloudAccount's pollIntervalSeconds: staleness is judged against it."""
    budgets: RateBudgets | None


@dataclass(frozen=True, slots=True)
class ServiceState:
    """What a service's reconciler last wrote to its status."""

    cloud: str
    phase: str
    ready: bool
    reason: str
    held: str | None = None
    """The reason of a write held until the spec or the account changes, if one is."""


@dataclass
class Metrics:
    """One set of collectors per registry (tests use a private registry)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self._lock = threading.Lock()  # the scrape runs on the HTTP server's thread
        self._accounts: dict[str, AccountState] = {}
        self._services: dict[str, ServiceState] = {}
        self.reconciles = Counter(
            "controller_runtime_reconcile_total",
            "Reconciles per controller and result (success, error, requeue).",
            ["controller", "result"],
            registry=r,
        )
        self.reconcile_reasons = Counter(
            "cloudinfer_reconcile_total",
            "Reconcile passes per result and the reason the pass ended with (Synced's reason "
            "on an error, Ready's otherwise).",
            ["result", "reason"],
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
            "Cloud writes refused for throttling (every call: cloudinfer_cloud_request_errors_"
            'total{error_class="CloudThrottled"}).',
            ["cloud"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "cloudinfer_cloud_request_duration_seconds",
            "Duration of each cloud API call (reads and writes, each retry on its own), from "
            "after its rate-budget token to the parsed reply or error.",
            ["cloud", "action"],
            buckets=CALL_SECONDS_BUCKETS,
            registry=r,
        )
        self.request_errors = Counter(
            "cloudinfer_cloud_request_errors_total",
            "Failed cloud API calls per cloud and error class.",
            ["cloud", "error_class"],
            registry=r,
        )
        self.writes_in_flight = Gauge(
            "cloudinfer_cloud_writes_in_flight",
            "Cloud writes started and not yet answered (including those waiting for a token).",
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
        self.shard_accounts_held = Gauge(
            "cloudinfer_shard_accounts_held",
            "CloudAccounts whose Lease this replica holds (sharding mode).",
            registry=r,
        )
        self.shard_members = Gauge(
            "cloudinfer_shard_members", "Live replicas this replica sees (sharding mode).",
            registry=r,
        )  # fmt: skip
        self.shard_handovers = Counter(
            "cloudinfer_shard_handovers_total",
            "CloudAccounts this replica gained or lost (direction), sharding mode.",
            ["direction"],
            registry=r,
        )
        self.events_dropped = Counter(
            "cloudinfer_events_dropped_total",
            "Kubernetes Events the operator did not post, per reason: queue_full (the "
            "apiserver took them slower than they came), refused (4xx, e.g. a namespace being "
            "deleted), unavailable (no answer after every retry), shutdown (left at exit).",
            ["reason"],
            registry=r,
        )
        for reason in EVENT_DROP_REASONS:
            self.events_dropped.labels(reason)
        for cloud in CLOUDS:
            self.writes_in_flight.labels(cloud)
            for error_class in ERROR_CLASSES:
                self.request_errors.labels(cloud, error_class)
        r.register(_StateCollector(self))

    # -- cloud calls ------------------------------------------------------------------------

    def call_recorder(self, cloud: str) -> CallRecorder:
        """For `RateBudgets.record_calls_with`: every call's duration and error class."""
        durations = self.request_seconds
        errors = self.request_errors

        def record(action: str, seconds: float, error: CloudError | None) -> None:
            durations.labels(cloud, action).observe(seconds)
            if error is not None:
                errors.labels(cloud, error.reason).inc()

        return record

    def count_dropped_events(self, reason: str, events: int) -> None:
        """For the event poster (cloudinfer.main.events)."""
        self.events_dropped.labels(reason).inc(events)

    # -- state turned into gauges at scrape time ---------------------------------------------

    def account_state(self, account: str, state: AccountState) -> None:
        with self._lock:
            self._accounts[account] = state

    def forget_account(self, account: str) -> None:
        with self._lock:
            self._accounts.pop(account, None)
        with contextlib.suppress(KeyError):  # never observed successfully
            self.snapshot_services.remove(account)

    def service_state(self, resource: str, state: ServiceState) -> None:
        """`resource` is the InferenceService's namespace/name: a key here, never a label."""
        with self._lock:
            self._services[resource] = state

    def forget_service(self, resource: str) -> None:
        with self._lock:
            self._services.pop(resource, None)

    def states(self) -> tuple[list[tuple[str, AccountState]], list[ServiceState]]:
        with self._lock:
            return list(self._accounts.items()), list(self._services.values())


class _StateCollector(Collector):
    """The gauges computed from the accounts' and services' last reported state."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return list(self._families([], []))

    def collect(self) -> Iterable[Metric]:
        accounts, services = self._metrics.states()
        return list(self._families(accounts, services))

    @staticmethod
    def _families(
        accounts: list[tuple[str, AccountState]], services: list[ServiceState]
    ) -> Iterator[Metric]:
        last = GaugeMetricFamily(
            "cloudinfer_observation_last_success_timestamp_seconds",
            "Unix time at which the account's last successful observation (list) started.",
            labels=["cloud", "account"],
        )
        interval = GaugeMetricFamily(
            "cloudinfer_observation_poll_interval_seconds",
            "The account's pollIntervalSeconds: the longest a healthy observation is apart.",
            labels=["cloud", "account"],
        )
        labels = ["cloud", "account", "action"]
        limit = GaugeMetricFamily(
            "cloudinfer_rate_budget_limit_calls_per_second",
            "The configured call rate of an account's budget for one action.",
            labels=labels,
        )
        rate = GaugeMetricFamily(
            "cloudinfer_rate_budget_current_calls_per_second",
            "The rate the budget allows now: the limit, or less after throttling (AIMD).",
            labels=labels,
        )
        calls = CounterMetricFamily(
            "cloudinfer_rate_budget_calls",
            "Tokens taken from the budget: one per call, retries included.",
            labels=labels,
        )
        waited = CounterMetricFamily(
            "cloudinfer_rate_budget_wait_seconds",
            "Seconds calls spent waiting for a token, summed over calls.",
            labels=labels,
        )
        for account, state in accounts:
            if state.last_success is not None:
                last.add_metric([state.cloud, account], state.last_success)
            interval.add_metric([state.cloud, account], state.poll_interval)
            if state.budgets is None:
                continue
            for bucket_account, action, bucket in state.budgets.buckets():
                if bucket_account != account:
                    continue
                stats = bucket.stats()
                key = [state.cloud, account, action]
                limit.add_metric(key, stats.limit_per_second)
                rate.add_metric(key, stats.rate_per_second)
                calls.add_metric(key, stats.calls)
                waited.add_metric(key, stats.waited_seconds)
        yield from (last, interval, limit, rate, calls, waited)

        counts: dict[tuple[str, str, str, str], int] = {}
        held: dict[tuple[str, str], int] = {
            (cloud, str(reason)): 0 for cloud in CLOUDS for reason in HOLD_REASONS
        }
        for service in services:
            key4 = (service.cloud, service.phase, str(service.ready).lower(), service.reason)
            counts[key4] = counts.get(key4, 0) + 1
            if service.held is not None:
                held[service.cloud, service.held] = held.get((service.cloud, service.held), 0) + 1
        by_state = GaugeMetricFamily(
            "cloudinfer_services",
            "InferenceServices per cloud, observed phase, Ready status and Ready reason.",
            labels=["cloud", "phase", "ready", "reason"],
        )
        for key4, count in sorted(counts.items()):
            by_state.add_metric(list(key4), count)
        held_family = GaugeMetricFamily(
            "cloudinfer_writes_held",
            "InferenceServices with a write held after a terminal refusal (not sent again "
            "until the spec, the CloudAccount or its Secret changes), per cloud and reason.",
            labels=["cloud", "reason"],
        )
        for key2, count in sorted(held.items()):
            held_family.add_metric(list(key2), count)
        yield from (by_state, held_family)
