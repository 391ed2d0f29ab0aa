"""What the plugin reads from the operator's /metrics (docs/observability.md), and where from.

Status carries what is true of one resource; the operator's in-memory state (writes in flight,
rate budgets and their use, throttles, when each account was last listed) is only in its
metrics. By default they are read through the apiserver's service proxy from the chart's
metrics Service, so nothing but kubectl access is needed; `--metrics-url` reads them from a
URL instead (a port-forward, or an operator run outside the cluster). docs/cli.md says why.
"""

from __future__ import annotations

import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from cloudinfer.kubectl.cluster import METRICS_SERVICE_LABELS, Cluster
from cloudinfer.kubectl.errors import PluginError

THROTTLED = "CloudThrottled"


@dataclass(frozen=True)
class Budget:
    action: str
    limit: float
    """calls/s configured."""
    allowed: float
    """calls/s allowed now (below the limit after throttling)."""
    calls: float
    """Tokens taken since the operator started."""
    used: float | None = None
    """calls/s over the sampling interval; None with a single scrape."""


@dataclass(frozen=True)
class Sample:
    """One scrape, parsed."""

    at: float
    """Unix time of the scrape."""
    last_observation: dict[str, float] = field(default_factory=dict)
    """account (namespace/name) -> unix time its last successful list started."""
    poll_interval: dict[str, float] = field(default_factory=dict)
    budgets: dict[str, list[Budget]] = field(default_factory=dict)
    """account -> its budgets, by action."""
    writes_in_flight: dict[str, float] = field(default_factory=dict)
    """cloud -> writes sent or waiting for a token."""
    throttled: dict[str, float] = field(default_factory=dict)
    """cloud -> calls refused for throttling since the operator started."""


@dataclass(frozen=True)
class OperatorMetrics:
    source: str
    """Where they were read, for people."""
    sample: Sample


def parse(text: str, at: float) -> Sample:
    last: dict[str, float] = {}
    interval: dict[str, float] = {}
    limits: dict[tuple[str, str], float] = {}
    allowed: dict[tuple[str, str], float] = {}
    calls: dict[tuple[str, str], float] = {}
    in_flight: dict[str, float] = defaultdict(float)
    throttled: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = s.labels
            key = (labels.get("account", ""), labels.get("action", ""))
            if s.name == "cloudinfer_observation_last_success_timestamp_seconds":
                last[labels["account"]] = s.value
            elif s.name == "cloudinfer_observation_poll_interval_seconds":
                interval[labels["account"]] = s.value
            elif s.name == "cloudinfer_rate_budget_limit_calls_per_second":
                limits[key] = s.value
            elif s.name == "cloudinfer_rate_budget_current_calls_per_second":
                allowed[key] = s.value
            elif s.name == "cloudinfer_rate_budget_calls_total":
                calls[key] = s.value
            elif s.name == "cloudinfer_cloud_writes_in_flight":
                in_flight[labels["cloud"]] += s.value
            elif (
                s.name == "cloudinfer_cloud_request_errors_total"
                and labels.get("error_class") == THROTTLED
            ):
                throttled[labels["cloud"]] += s.value
    budgets: dict[str, list[Budget]] = defaultdict(list)
    for (account, action), limit in sorted(limits.items()):
        budgets[account].append(
            Budget(
                action,
                limit,
                allowed.get((account, action), limit),
                calls.get((account, action), 0.0),
            )
        )
    return Sample(at, last, interval, dict(budgets), dict(in_flight), dict(throttled))


def with_use(first: Sample, second: Sample) -> Sample:
    """`second` with each budget's use: the calls between the two scrapes per second."""
    seconds = second.at - first.at
    if seconds <= 0:
        return second
    before = {(a, b.action): b.calls for a, bs in first.budgets.items() for b in bs}
    budgets = {
        account: [
            Budget(b.action, b.limit, b.allowed, b.calls,
                   max(0.0, b.calls - before.get((account, b.action), b.calls)) / seconds)
            for b in bs
        ]
        for account, bs in second.budgets.items()
    }  # fmt: skip
    return Sample(
        second.at, second.last_observation, second.poll_interval, budgets,
        second.writes_in_flight, second.throttled,
    )  # fmt: skip


def _merge(samples: list[Sample]) -> Sample:
    """Several operators (one per namespace set) are one fleet: their accounts are disjoint,
    their per-cloud counts add up."""
    merged = Sample(at=max(s.at for s in samples))
    for s in samples:
        merged.last_observation.update(s.last_observation)
        merged.poll_interval.update(s.poll_interval)
        merged.budgets.update(s.budgets)
        for cloud, value in s.writes_in_flight.items():
            merged.writes_in_flight[cloud] = merged.writes_in_flight.get(cloud, 0.0) + value
        for cloud, value in s.throttled.items():
            merged.throttled[cloud] = merged.throttled.get(cloud, 0.0) + value
    return merged


def _fetch_url(url: str) -> str:
    # The CLI accepts only http(s) URLs for --metrics-url.
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
        body: bytes = response.read()
    return body.decode()


class MetricsUnavailableError(Exception):
    """Why the metrics could not be read: one line, printed as a note."""


def read(
    cluster: Cluster, url: str | None, operator_namespace: str | None, sample_seconds: float
) -> OperatorMetrics:
    """The operator's metrics, scraped twice `sample_seconds` apart for the budgets' use (once
    when it is 0). Raises MetricsUnavailableError."""
    fetchers: list[tuple[str, Callable[[], str]]]
    if url:
        fetchers = [(url, lambda: _fetch_url(url))]
    else:
        try:
            services = cluster.metrics_services(operator_namespace)
        except PluginError as err:
            raise MetricsUnavailableError(
                f"cannot look for the operator's metrics Service ({err.message})"
            ) from None
        if not services:
            where = f"namespace {operator_namespace}" if operator_namespace else "any namespace"
            raise MetricsUnavailableError(
                f"no operator metrics Service in {where} (labels {METRICS_SERVICE_LABELS}); pass "
                "--metrics-url or --operator-namespace"
            )
        fetchers = [
            (f"service/{name} in {ns} (apiserver proxy)",
             lambda ns=ns, name=name: cluster.proxy_metrics(ns, name))  # type: ignore[misc]
            for ns, name in services
        ]  # fmt: skip

    def scrape() -> Sample:
        samples = []
        for source, fetch in fetchers:
            try:
                text = fetch()
            except (OSError, PluginError) as err:
                detail = err.message if isinstance(err, PluginError) else str(err)
                raise MetricsUnavailableError(f"cannot read {source}: {detail}") from None
            samples.append(parse(text, time.time()))
        return _merge(samples)

    first = scrape()
    sample = first
    if sample_seconds > 0:
        time.sleep(sample_seconds)
        sample = with_use(first, scrape())
    return OperatorMetrics(", ".join(source for source, _ in fetchers), sample)
