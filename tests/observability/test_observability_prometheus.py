"""A real Prometheus scrapes the operator while it converges services on the three simulators.

The live /metrics passes `promtool check metrics`; Prometheus loads the chart's rules as
rendered; every dashboard panel's query returns data; every alert's query returns data or is
documented as quiet in steady state, and then every series it reads must have had data during
the run (so a quiet alert is not quiet because of a misspelt metric or label); stopping the
operator makes CloudinferOperatorDown's query return data.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from harness import Kube, OperatorProcess, new_sim_account, start_simulators
from kubernetes import client
from observability_support import (
    JOB,
    alert_rules,
    dashboard_queries,
    prometheus_bin_dir,
    quiet_alerts,
    write_rules,
)

from cloudsim.server import RunningSim
from controlplane.launcher import free_port
from support import Cluster, wait_for

PROVIDERS = ("tencent", "huawei", "baidu")
SERVICES_PER_CLOUD = 2
SCRAPE_INTERVAL = "1s"


class Prometheus:
    """`prometheus` scraping the operator every second, with the chart's rules loaded."""

    def __init__(self, work: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rules = write_rules(work)
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
        }
        config_file = work / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.log = work / "prometheus.log"
        self._log = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                str(prometheus_bin_dir() / "prometheus"),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._ready, timeout=60, what="Prometheus /-/ready")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).is_success
        except httpx.HTTPError:
            return False

    def api(self, path: str, **params: str) -> Any:
        reply = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = reply.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def selectors(ast: dict[str, Any]) -> Iterator[str]:
    """Every vector selector of a parsed query (Prometheus's /api/v1/parse_query AST), as a
    selector with all its matchers (the metric name is one of them)."""
    if ast.get("type") in ("vectorSelector", "matrixSelector"):
        matchers = ", ".join(
            f"{m['name']}{m['type']}{json.dumps(m['value'])}" for m in ast["matchers"]
        )
        yield f"{{{matchers}}}"
        return
    for value in ast.values():
        if isinstance(value, dict):
            yield from selectors(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    yield from selectors(item)


@pytest.fixture
def sims() -> Iterator[dict[str, RunningSim]]:
    running = start_simulators()
    yield running
    for sim in running.values():
        sim.stop()


@pytest.fixture
def own_namespaces(core_v1: client.CoreV1Api) -> Iterator[dict[str, str]]:
    """One namespace per cloud, watched only by this test's operator."""
    names = {provider: f"o-{uuid.uuid4().hex[:10]}" for provider in PROVIDERS}
    for name in names.values():
        core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield names
    for name in names.values():
        core_v1.delete_namespace(name)


@pytest.mark.usefixtures("cloudinfer_crds")
def test_prometheus_scrapes_the_operator_and_every_panel_and_alert_query_works(
    cluster: Cluster,
    api_client: client.ApiClient,
    sims: dict[str, RunningSim],
    own_namespaces: dict[str, str],
    tmp_path: Path,
) -> None:
    kube = Kube(api_client, cluster)
    watch = [arg for namespace in own_namespaces.values() for arg in ("--namespace", namespace)]
    operator = OperatorProcess(
        cluster.kubeconfig, tmp_path / "operator.log", args=("--standalone", *watch)
    )
    operator.start()
    prometheus = Prometheus(tmp_path, f"127.0.0.1:{operator.metrics_port}")
    try:
        _converge_and_check(kube, sims, own_namespaces, operator, prometheus)
    finally:
        operator.stop()
        prometheus.stop()
        print(f"operator log: {operator.log_path}; prometheus log: {prometheus.log}")


def _converge_and_check(
    kube: Kube,
    sims: dict[str, RunningSim],
    namespaces: dict[str, str],
    operator: OperatorProcess,
    prometheus: Prometheus,
) -> None:
    # Prometheus's first scrape comes up to 5 s after it starts (target discovery is batched):
    # it must see the services converge, not only the end.
    wait_for(lambda: _value(prometheus, "up") == 1, timeout=60, what="the first scrape")
    names = [f"svc-{i}" for i in range(SERVICES_PER_CLOUD)]
    for provider, namespace in namespaces.items():
        handle = new_sim_account(sims[provider], provider)
        kube.create_account(namespace, handle)
        for name in names:
            # One replica on the cloud, two in the spec: each service is scaled once.
            service_id = handle.add_service(name=name, replicas=1)
            kube.create_service(namespace, name, {"serviceId": service_id, "replicas": 2})
    for namespace in namespaces.values():
        for name in names:
            kube.wait_condition(namespace, name, reason="Converged", timeout=120)

    # The endpoint Prometheus scrapes follows Prometheus's own naming rules.
    exposition = operator.metrics()
    check = subprocess.run(
        [str(prometheus_bin_dir() / "promtool"), "check", "metrics"],
        input=exposition, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "service_id" not in exposition and "svc-0" not in exposition, "a service in a label"

    total = len(PROVIDERS) * SERVICES_PER_CLOUD
    wait_for(
        lambda: (
            _value(prometheus, 'sum(cloudinfer_services{ready="true", reason="Converged"})')
            == total
        ),
        timeout=60,
        what=f"Prometheus sees {total} Converged services",
    )
    for cloud in PROVIDERS:
        assert _value(prometheus, f'sum(cloudinfer_services{{cloud="{cloud}"}})') == (
            SERVICES_PER_CLOUD
        )
        # Each service was scaled once: writes succeeded and the latency histogram saw them.
        assert (
            _value(
                prometheus,
                f'sum(cloudinfer_cloud_write_calls_total{{cloud="{cloud}", result="success"}})',
            )
            >= SERVICES_PER_CLOUD
        )
        # One query, so both counters come from the same scrape (two queries raced a scrape).
        assert (
            _value(
                prometheus,
                f'sum(cloudinfer_rate_budget_calls_total{{cloud="{cloud}"}}) - '
                f'sum(cloudinfer_cloud_request_duration_seconds_count{{cloud="{cloud}"}})',
            )
            >= 0
        )
        assert (
            _value(
                prometheus,
                f'sum(cloudinfer_cloud_request_duration_seconds_count{{cloud="{cloud}"}})',
            )
            > 0
        )
    assert _value(prometheus, "sum(cloudinfer_cloud_writes_in_flight)") == 0
    assert _value(
        prometheus, "max(time() - cloudinfer_observation_last_success_timestamp_seconds)"
    ) < (60), "a healthy account's observation is seconds old"

    # The rules loaded and evaluate without error.
    groups = prometheus.api("rules")["groups"]
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert set(loaded) == set(alert_rules())
    wait_for(
        lambda: all(r["health"] == "ok" for r in prometheus.api("rules")["groups"][0]["rules"]),
        timeout=30,
        what="every rule evaluated",
    )

    # Every panel's query returns data (rate() needs two scrapes in its window: wait for it).
    for title, queries in dashboard_queries().items():
        for expr in queries:
            wait_for(lambda e=expr: bool(prometheus.query(e)), timeout=60, what=f"{title}: {expr}")

    # Every alert's query returns data or is documented as quiet in steady state; either way,
    # every series it reads had data during this run.
    quiet = quiet_alerts()
    for alert, expr in alert_rules().items():
        if not prometheus.query(expr):
            assert alert in quiet, f"{alert} returned nothing and is not documented as quiet"
        for selector in set(selectors(prometheus.api("parse_query", query=expr))):
            assert prometheus.query(f"count_over_time({selector}[1h])"), (
                f"{alert} reads {selector}, which had no data"
            )

    # The operator stops: its down alert's query returns data once a scrape fails.
    operator.stop()
    down = alert_rules()["CloudinferOperatorDown"]
    wait_for(lambda: bool(prometheus.query(down)), timeout=60, what="CloudinferOperatorDown")


def _value(prometheus: Prometheus, expr: str) -> float:
    """The value of a query of one series; 0 when it has none (e.g. not scraped yet)."""
    result = prometheus.query(expr)
    assert len(result) <= 1, f"{expr}: {result}"
    return float(result[0]["value"][1]) if result else 0.0
