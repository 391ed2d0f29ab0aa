"""Builds the operator's Grafana dashboard with grafana-foundation-sdk.

Usage: python hack/dashboard.py > charts/cloudinfer-operator/files/grafana-dashboard.json
(`make dashboard`). tests/observability checks that the committed file is this script's
output and that every panel's query returns data from a real Prometheus; docs/observability.md
describes the panels.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Final

from grafana_foundation_sdk.builders import dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

UID: Final = "cloudinfer-operator"
DATASOURCE: Final = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE_WINDOW: Final = "5m"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]


def _quantiles(metric: str, by: str) -> tuple[Query, ...]:
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket[{RATE_WINDOW}])))",
            f"p{round(q * 100)} {{{{{by}}}}}",
        )
        for q in (0.5, 0.95, 0.99)
    )


ROWS: Final[tuple[tuple[str, tuple[Panel, ...]], ...]] = (
    (
        "Services",
        (
            Panel(
                "Services by phase",
                "InferenceServices per cloud and the phase the cloud reports.",
                "short",
                (Query("sum by (cloud, phase) (cloudinfer_services)", "{{cloud}} {{phase}}"),),
            ),
            Panel(
                "Services by Ready reason",
                "InferenceServices per Ready status and reason: Converged is healthy; "
                "Suspended and ScheduledStop are stopped on purpose.",
                "short",
                (
                    Query(
                        "sum by (ready, reason) (cloudinfer_services)",
                        "Ready={{ready}} {{reason}}",
                    ),
                ),
            ),
            Panel(
                "Held writes",
                "Services with a write the cloud refused for good: not sent again until the "
                "spec, the CloudAccount or its Secret changes (alert CloudinferWritesHeld).",
                "short",
                (Query("sum by (cloud, reason) (cloudinfer_writes_held)", "{{cloud}} {{reason}}"),),
            ),
        ),
    ),
    (
        "Reconciles",
        (
            Panel(
                "Reconciles by result and reason",
                "Reconcile passes per second, by result and the reason the pass ended with.",
                "ops",
                (
                    Query(
                        "sum by (result, reason) "
                        f"(rate(cloudinfer_reconcile_total[{RATE_WINDOW}]))",
                        "{{result}} {{reason}}",
                    ),
                ),
            ),
            Panel(
                "Drift detected",
                "Fields found different from the spec, per second.",
                "ops",
                (
                    Query(
                        "sum by (cloud, field) "
                        f"(rate(cloudinfer_drift_detections_total[{RATE_WINDOW}]))",
                        "{{cloud}} {{field}}",
                    ),
                ),
            ),
            Panel(
                "Reconciles in progress",
                "Reconcile passes running now, including those waiting for a rate budget.",
                "short",
                (Query("sum(workqueue_depth)", "in progress"),),
            ),
        ),
    ),
    (
        "Cloud calls",
        (
            Panel(
                "Cloud call latency",
                "Duration of each cloud API call, reads and writes, by cloud.",
                "s",
                _quantiles("cloudinfer_cloud_request_duration_seconds", "cloud"),
            ),
            Panel(
                "Cloud calls by action",
                "Cloud API calls per second (every retry counts).",
                "reqps",
                (
                    Query(
                        "sum by (cloud, action) "
                        f"(rate(cloudinfer_cloud_request_duration_seconds_count[{RATE_WINDOW}]))",
                        "{{cloud}} {{action}}",
                    ),
                ),
            ),
            Panel(
                "Cloud errors by class",
                "Failed cloud API calls per second, by error class (CloudThrottled: alert "
                "CloudinferCloudThrottling).",
                "reqps",
                (
                    Query(
                        "sum by (cloud, error_class) "
                        f"(rate(cloudinfer_cloud_request_errors_total[{RATE_WINDOW}]))",
                        "{{cloud}} {{error_class}}",
                    ),
                ),
            ),
            Panel(
                "Cloud writes by result",
                "Cloud writes per second by action and result.",
                "reqps",
                (
                    Query(
                        "sum by (cloud, action, result) "
                        f"(rate(cloudinfer_cloud_write_calls_total[{RATE_WINDOW}]))",
                        "{{cloud}} {{action}} {{result}}",
                    ),
                ),
            ),
            Panel(
                "Cloud writes in flight",
                "Writes sent (or waiting for a token) and not yet answered.",
                "short",
                (Query("sum by (cloud) (cloudinfer_cloud_writes_in_flight)", "{{cloud}}"),),
            ),
        ),
    ),
    (
        "Accounts",
        (
            Panel(
                "Rate budget use",
                "Calls per second as a fraction of the budget's configured limit, per account "
                "and action (alert CloudinferRateBudgetSaturated at 90%).",
                "percentunit",
                (
                    Query(
                        "sum by (cloud, account, action) "
                        f"(rate(cloudinfer_rate_budget_calls_total[{RATE_WINDOW}])) / "
                        "sum by (cloud, account, action) "
                        "(cloudinfer_rate_budget_limit_calls_per_second)",
                        "{{account}} {{action}}",
                    ),
                ),
            ),
            Panel(
                "Rate budget after throttling",
                "The rate a budget allows now as a fraction of its limit: below 1 after the "
                "cloud throttled (AIMD), recovering over about 25 s.",
                "percentunit",
                (
                    Query(
                        "cloudinfer_rate_budget_current_calls_per_second / "
                        "cloudinfer_rate_budget_limit_calls_per_second",
                        "{{account}} {{action}}",
                    ),
                ),
            ),
            Panel(
                "Rate budget wait",
                "Seconds per second calls spend waiting for a token (0.5: on average half a "
                "call is always queued).",
                "s",
                (
                    Query(
                        "sum by (cloud, account, action) "
                        f"(rate(cloudinfer_rate_budget_wait_seconds_total[{RATE_WINDOW}]))",
                        "{{account}} {{action}}",
                    ),
                ),
            ),
            Panel(
                "Observation age",
                "Seconds since the account's last successful observation started (alert "
                "CloudinferObservationStale).",
                "s",
                (
                    Query(
                        "time() - cloudinfer_observation_last_success_timestamp_seconds",
                        "{{account}}",
                    ),
                ),
            ),
            Panel(
                "Observation duration",
                "How long an account's batched list takes.",
                "s",
                _quantiles("cloudinfer_observe_duration_seconds", "cloud"),
            ),
            Panel(
                "Services per account",
                "Services in each account's last observation.",
                "short",
                (Query("cloudinfer_snapshot_services", "{{account}}"),),
            ),
        ),
    ),
)


def _panel(panel: Panel, panel_id: int) -> timeseries.Panel:
    built = (
        timeseries.Panel()
        .id(panel_id)
        .title(panel.title)
        .description(panel.description)
        .unit(panel.unit)
        .datasource(DATASOURCE)
        .height(8)
        .span(8)
    )
    for ref, query in zip("ABCDEFGH", panel.queries, strict=False):
        built = built.with_target(
            prometheus.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref)
        )
    return built


def build() -> dict[str, object]:
    """The dashboard as Grafana's JSON model."""
    board = (
        dashboard.Dashboard("cloudinfer-operator")
        .uid(UID)
        .description("Services, reconciles, cloud calls and rate budgets of cloudinfer-operator")
        .tags(["cloudinfer", "operator"])
        .time("now-3h", "now")
        .refresh("30s")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
    )
    panel_id = 0
    for title, panels in ROWS:
        panel_id += 1
        board = board.with_row(dashboard.Row(title).id(panel_id))
        for panel in panels:
            panel_id += 1
            board = board.with_panel(_panel(panel, panel_id))
    encoded: dict[str, object] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return encoded


def main() -> None:
    json.dump(build(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
