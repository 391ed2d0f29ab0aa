"""The chart's monitoring objects: ServiceMonitor, PrometheusRule and the Grafana dashboard.

Rendered with all three enabled, every object passes kubernetes-validate (built-in kinds) or
the Prometheus Operator's own CRD schema (tests/data/prometheus-operator, source named there),
strictly: a field the schema does not know is an error, not pruned in silence.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from packaging_support import CHART, KUBE_VERSION, REPO, Helm, by_kind, one, render, template_args

MONITORING = ("serviceMonitor.enabled=true", "prometheusRule.enabled=true")
ALL_ON = (*MONITORING, "grafanaDashboard.enabled=true")
CRD_DIR = REPO / "tests" / "data" / "prometheus-operator"
DASHBOARD = CHART / "files" / "grafana-dashboard.json"


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD schema with unknown fields refused where the apiserver would prune them."""
    schema = dict(schema)
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and "(?i)" in pattern[1:]:
        # Go's regexp takes a flag group anywhere; Python's only at the start.
        schema["pattern"] = "(?i)" + pattern.replace("(?i)", "")
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        schema.setdefault("additionalProperties", False)
    for key in ("properties", "patternProperties"):
        if key in schema:
            schema[key] = {name: _strict(sub) for name, sub in schema[key].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = _strict(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            schema[key] = [_strict(sub) for sub in schema[key]]
    return schema


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """{(apiVersion, kind): the strict openAPIV3Schema} of the vendored CRDs and the chart's
    own (Kopf's peering kinds)."""
    schemas = {}
    for path in sorted([*CRD_DIR.glob("*.yaml"), *(CHART / "crds").glob("*.yaml")]):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            # apiVersion, kind and metadata (ObjectMeta) are the apiserver's, whatever the
            # CRD's schema says of them.
            schema["properties"].update(
                apiVersion={"const": f"{group}/{version['name']}"},
                kind={"const": kind},
                metadata={"type": "object"},
            )
            schemas[f"{group}/{version['name']}", kind] = schema
    return schemas


def _validate(obj: dict[str, Any], crd_schemas: dict[tuple[str, str], dict[str, Any]]) -> None:
    key = (obj["apiVersion"], obj["kind"])
    if key in crd_schemas:
        jsonschema.validate(obj, crd_schemas[key])
    else:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_monitoring_objects_are_off_by_default(helm: Helm) -> None:
    objects = render(helm)
    assert by_kind(objects, "ServiceMonitor") == []
    assert by_kind(objects, "PrometheusRule") == []
    assert by_kind(objects, "ConfigMap") == []


def test_rendered_chart_with_monitoring_passes_kubernetes_validate_and_the_crd_schemas(
    helm: Helm,
) -> None:
    crd_schemas = _crd_schemas()
    assert {"ServiceMonitor", "PrometheusRule"} <= {kind for _, kind in crd_schemas}
    objects = render(helm, *ALL_ON)
    kinds = {o["kind"] for o in objects}
    assert {"ServiceMonitor", "PrometheusRule", "ConfigMap", "Deployment"} <= kinds
    for obj in objects:
        _validate(obj, crd_schemas)


def test_the_crd_schema_check_catches_a_misspelt_field(helm: Helm) -> None:
    crd_schemas = _crd_schemas()
    monitor = one(render(helm, *MONITORING), "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        _validate(monitor, crd_schemas)


def test_values_with_monitoring_on_pass_the_values_schema(helm: Helm) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for section in ("serviceMonitor", "prometheusRule", "grafanaDashboard"):
        values[section]["enabled"] = True
    values["prometheusRule"]["job"] = "operator"
    values["grafanaDashboard"]["namespace"] = "monitoring"
    jsonschema.validate(values, schema)
    helm(*template_args(*ALL_ON, "prometheusRule.job=operator"))  # helm checks it too


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("grafanaDashboard.namespace=Not_A_Namespace", "/grafanaDashboard/namespace"),
        ('prometheusRule.job=a"b', "/prometheusRule/job"),
        ("prometheusRule.severity=page", "prometheusRule"),
        ("grafanaDashboard.enabled=yes", "/grafanaDashboard/enabled"),
    ],
)
def test_schema_rejects_bad_monitoring_values(helm: Helm, value: str, complaint: str) -> None:
    result = helm(*template_args(value), check=False)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


def test_prometheus_rule_names_the_metrics_service_as_the_job(helm: Helm) -> None:
    objects = render(helm, *MONITORING)
    service = one(objects, "Service")["metadata"]["name"]
    rule = one(objects, "PrometheusRule")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert f'up{{job="{service}"}}' in " ".join(exprs)
    chosen = one(
        render(helm, "prometheusRule.enabled=true", "prometheusRule.job=ops"), "PrometheusRule"
    )
    assert 'up{job="ops"}' in json.dumps(chosen["spec"]).replace('\\"', '"')


def test_dashboard_configmap_carries_the_sidecar_label_and_the_generated_json(helm: Helm) -> None:
    (config_map,) = by_kind(render(helm, "grafanaDashboard.enabled=true"), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["cloudinfer-operator.json"]) == json.loads(
        DASHBOARD.read_text()
    )
    moved = one(
        render(helm, "grafanaDashboard.enabled=true", "grafanaDashboard.namespace=monitoring"),
        "ConfigMap",
    )
    assert moved["metadata"]["namespace"] == "monitoring"


def test_committed_dashboard_is_the_generator_output() -> None:
    generated = subprocess.run(
        [sys.executable, str(REPO / "hack" / "dashboard.py")],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert DASHBOARD.read_text() == generated, "stale dashboard: run `make dashboard`"


def test_vendored_crds_name_their_source() -> None:
    readme = (CRD_DIR / "README.md").read_text()
    assert "github.com/prometheus-operator/prometheus-operator" in readme
    for path in CRD_DIR.glob("*.yaml"):
        assert path.name in {
            "monitoring.coreos.com_servicemonitors.yaml",
            "monitoring.coreos.com_prometheusrules.yaml",
        }
    assert Path(CRD_DIR / "monitoring.coreos.com_servicemonitors.yaml").exists()
