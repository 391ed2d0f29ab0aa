"""Prometheus and promtool from hack/build-prometheus.sh, the chart's rendered rules and
dashboard, and the alerts docs/observability.md documents as quiet in steady state."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane import find_bin_dir

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "cloudinfer-operator"
DASHBOARD = CHART / "files" / "grafana-dashboard.json"
OBSERVABILITY_DOC = REPO / "docs" / "observability.md"
PROMETHEUS_BIN_ENV = "CLOUDINFER_PROMETHEUS_BIN"
RELEASE = "cio"
JOB = f"{RELEASE}-cloudinfer-operator-metrics"
"""The job a ServiceMonitor gives the operator of release `cio`: its metrics Service's name."""


def prometheus_bin_dir() -> Path:
    """The directory with prometheus and promtool, or a failure that says how to build them."""
    where = os.environ.get(PROMETHEUS_BIN_ENV)
    directions = (
        "Build prometheus and promtool from Go modules with `make prometheus` (or "
        f"`hack/build-prometheus.sh`, which prints the directory) and export {PROMETHEUS_BIN_ENV}"
        " with that directory; `make test` does both."
    )
    if not where:
        pytest.fail(f"{PROMETHEUS_BIN_ENV} is not set. {directions}")
    bin_dir = Path(where)
    missing = [b for b in ("prometheus", "promtool") if not os.access(bin_dir / b, os.X_OK)]
    if missing:
        pytest.fail(f"{bin_dir} lacks {', '.join(missing)}. {directions}")
    return bin_dir


def helm_template(*values: str) -> list[dict[str, Any]]:
    """The chart rendered as release `cio` with these `--set` values."""
    helm = find_bin_dir() / "helm"
    args = [str(helm), "template", RELEASE, str(CHART), "--namespace", "cio-system"]
    args += ["--kube-version", "1.37.2"]
    for value in values:
        args += ["--set", value]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def rendered_rules() -> dict[str, Any]:
    """The PrometheusRule's spec (a Prometheus rule file: `groups`) as the chart renders it."""
    (rule,) = [
        o for o in helm_template("prometheusRule.enabled=true") if o["kind"] == "PrometheusRule"
    ]
    spec: dict[str, Any] = rule["spec"]
    return spec


def write_rules(directory: Path) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(rendered_rules(), sort_keys=False))
    return path


def alert_rules() -> dict[str, str]:
    """{alert name: expression} of every alert the chart ships."""
    return {
        rule["alert"]: rule["expr"]
        for group in rendered_rules()["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def dashboard_queries() -> dict[str, list[str]]:
    """{panel title: its queries} of every panel of the committed dashboard."""
    board = json.loads(DASHBOARD.read_text())
    return {
        panel["title"]: [target["expr"] for target in panel["targets"]]
        for panel in board["panels"]
        if panel["type"] != "row"
    }


def quiet_alerts() -> set[str]:
    """Alerts docs/observability.md's alert table marks as quiet in steady state."""
    table = OBSERVABILITY_DOC.read_text().split("## Alerts", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| \[`(\w+)`\]\(#\w+\) \|.*\| quiet \|$", table, re.MULTILINE))
