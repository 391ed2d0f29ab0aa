"""The install paths against the real local control plane (no kubelet: pods never run,
but every object must be accepted by the apiserver, its admission and its RBAC)."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging_support import ARGOCD, CHART, KINDS, REPO, Helm, one, template_args

from controlplane import ControlPlane
from support import Cluster

DEPLOY = REPO / "deploy"


def docs_of(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="session")
def chart_crds(cluster: Cluster) -> None:
    """The chart's four CRDs, applied once and established. CRDs are cluster-wide and
    shared with other tests, so nothing here ever deletes them."""
    crds = str(CHART / "crds")
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", crds)
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", crds)


@pytest.fixture
def extra_namespace(cluster: Cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def server_dry_run(cluster: Cluster, manifest: str) -> str:
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input_text=manifest)
    return result.stdout


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([], id="all-namespaces"),
        pytest.param(["crds.templated=true", "serviceMonitor.enabled=false"], id="templated-crds"),
        pytest.param(["peering.enabled=false", "metrics.port=0"], id="standalone-no-metrics"),
        pytest.param(
            [
                "replicaCount=2",
                "networkPolicy.enabled=true",
                "networkPolicy.apiServer.cidrs={10.0.0.1/32,fd00::1/128}",
                "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=obs",
                "topologySpreadConstraints[0].maxSkew=1",
                "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
                "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
                "extraEnv[0].name=HTTPS_PROXY",
                "extraEnv[0].value=http://proxy:3128",
                "extraVolumes[0].name=ca",
                "extraVolumes[0].configMap.name=corp-ca",
                "extraVolumeMounts[0].name=ca",
                "extraVolumeMounts[0].mountPath=/etc/corp-ca",
                "hostNetwork=true",
                "commonLabels.team=ml",
            ],
            id="ha-networkpolicy-extras",
        ),
    ],
)
def test_template_passes_server_dry_run(
    cluster: Cluster, chart_crds: None, helm: Helm, namespace: str, values: list[str]
) -> None:
    manifest = helm(*template_args(*values, release="dry", namespace=namespace)).stdout
    out = server_dry_run(cluster, manifest)
    for kind in ("deployment.apps", "serviceaccount", "clusterrole.rbac.authorization.k8s.io"):
        assert f"{kind}/" in out, out
    if "crds.templated=true" in values:
        assert "customresourcedefinition.apiextensions.k8s.io/inferenceservices" in out


def test_namespaced_template_passes_server_dry_run(
    cluster: Cluster, chart_crds: None, helm: Helm, namespace: str, extra_namespace: str
) -> None:
    watched = f"watchNamespaces={{{namespace},{extra_namespace}}}"
    manifest = helm(*template_args(watched, release="dry", namespace=namespace)).stdout
    out = server_dry_run(cluster, manifest)
    lines = out.splitlines()
    assert (
        lines.count(
            "role.rbac.authorization.k8s.io/dry-cloudinfer-operator created (server dry run)"
        )
        == 2
    )
    assert (
        lines.count(
            "rolebinding.rbac.authorization.k8s.io/dry-cloudinfer-operator created (server dry run)"
        )
        == 2
    )
    assert out.count("kopfpeering.kopf.dev/cloudinfer-operator") == 2
    # Only the cluster-scoped companion (namespaces and CRDs, list and watch) is cluster-wide.
    cluster_wide = [line for line in lines if line.startswith("cluster")]
    discovery = "rbac.authorization.k8s.io/dry-cloudinfer-operator-discovery created"
    assert cluster_wide == [
        f"clusterrole.{discovery} (server dry run)",
        f"clusterrolebinding.{discovery} (server dry run)",
    ]


def can_i(cluster: Cluster, sa: str, verb: str, resource: str, namespace: str) -> bool:
    result = cluster.kubectl(
        "auth", "can-i", verb, resource, f"--as={sa}", "-n", namespace, check=False
    )
    return result.stdout.strip() == "yes"


def pod_from_deployment(deployment: dict[str, Any], namespace: str) -> dict[str, Any]:
    template = deployment["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "psa-probe", "namespace": namespace, **template["metadata"]},
        "spec": copy.deepcopy(template["spec"]),
    }


def test_helm_install_is_accepted_rbac_works_and_pod_is_restricted(
    cluster: Cluster, chart_crds: None, helm: Helm, namespace: str, extra_namespace: str
) -> None:
    release = f"cio-{uuid.uuid4().hex[:6]}"
    peering = f"peering-{release}"  # ClusterKopfPeering is cluster-wide: keep it unique
    kube = {"kubeconfig": cluster.kubeconfig}
    helm(
        "install", release, str(CHART), "-n", namespace, "--set", f"peering.name={peering}", **kube
    )
    try:
        status = json.loads(helm("status", release, "-n", namespace, "-o", "json", **kube).stdout)
        assert status["info"]["status"] == "deployed"
        fullname = f"{release}-cloudinfer-operator"
        deployment = json.loads(
            cluster.kubectl("get", "deployment", fullname, "-n", namespace, "-o", "json").stdout
        )
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == fullname
        cluster.kubectl("get", "clusterrole", fullname)
        cluster.kubectl("get", "clusterkopfpeering", peering)
        cluster.kubectl("get", "service", f"{fullname}-metrics", "-n", namespace)

        # The binding really grants the chart's rules to the ServiceAccount, and no more.
        sa = f"system:serviceaccount:{namespace}:{fullname}"
        for verb, resource in [
            ("watch", "inferenceservices.cloudinfer.dev"),
            ("patch", "inferenceservices.cloudinfer.dev/status"),
            ("patch", "cloudaccounts.cloudinfer.dev/status"),
            ("get", "secrets"),
            ("create", "events"),
            ("patch", "clusterkopfpeerings.kopf.dev"),
        ]:
            assert can_i(cluster, sa, verb, resource, extra_namespace), f"{verb} {resource}"
        for verb, resource in [
            ("list", "secrets"),
            ("update", "inferenceservices.cloudinfer.dev"),
            ("delete", "inferenceservices.cloudinfer.dev"),
            ("create", "cloudaccounts.cloudinfer.dev"),
            ("create", "pods"),
        ]:
            assert not can_i(cluster, sa, verb, resource, extra_namespace), f"{verb} {resource}"

        # No controller turns the Deployment into pods here, so create its pod template
        # as a Pod (dry run) in a namespace that enforces Pod Security "restricted".
        cluster.kubectl(
            "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
        )
        pod = pod_from_deployment(deployment, namespace)
        cluster.kubectl("create", "--dry-run=server", "-f", "-", input_text=json.dumps(pod))
        # Control: the same namespace refuses a pod that drops one restricted setting.
        weakened = copy.deepcopy(pod)
        del weakened["spec"]["containers"][0]["securityContext"]["capabilities"]
        refused = cluster.kubectl(
            "create", "--dry-run=server", "-f", "-", input_text=json.dumps(weakened), check=False
        )
        assert refused.returncode != 0
        assert "violates PodSecurity" in refused.stderr
    finally:
        helm("uninstall", release, "-n", namespace, "--wait", **kube)
    assert cluster.kubectl("get", "clusterrole", fullname, check=False).returncode != 0
    assert cluster.kubectl("get", "clusterkopfpeering", peering, check=False).returncode != 0
    # Helm never deletes CRDs from crds/: other releases' custom resources survive.
    cluster.kubectl("get", "crd", "inferenceservices.cloudinfer.dev", "kopfpeerings.kopf.dev")


@pytest.fixture(scope="module")
def fresh_cluster(bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A control plane of its own, without any CRD: what a new user's cluster looks like."""
    with ControlPlane(bin_dir=bin_dir, work_dir=tmp_path_factory.mktemp("fresh")) as plane:
        yield Cluster(plane.kubeconfig, bin_dir, plane)


def test_plain_yaml_install_on_a_fresh_cluster(fresh_cluster: Cluster) -> None:
    """The documented sequence: CRDs, wait until established, then everything."""
    kubectl = fresh_cluster.kubectl
    crds = str(DEPLOY / "crds.yaml")
    kubectl("apply", "--server-side", "-f", crds)
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", crds)
    out = kubectl("apply", "--server-side", "-f", str(DEPLOY / "install.yaml")).stdout
    objects = docs_of((DEPLOY / "install.yaml").read_text())
    assert out.count("serverside-applied") == len(objects)
    for obj in objects:
        meta = obj["metadata"]
        scope = ["-n", meta["namespace"]] if "namespace" in meta else []
        got = json.loads(kubectl("get", obj["kind"], meta["name"], *scope, "-o", "json").stdout)
        assert got["metadata"]["name"] == meta["name"]
    # The Namespace enforces "restricted"; no controller makes pods here, so create the
    # Deployment's pod template as a Pod (dry run) to have admission check it.
    pod = pod_from_deployment(one(objects, "Deployment"), "cloudinfer-system")
    kubectl("create", "--dry-run=server", "-f", "-", input_text=json.dumps(pod))
    # Re-applying is a no-op that succeeds (upgrades use the same two commands).
    kubectl("apply", "--server-side", "-f", crds)
    kubectl("apply", "--server-side", "-f", str(DEPLOY / "install.yaml"))


@pytest.fixture
def empty_cluster(bin_dir: Path, tmp_path: Path) -> Iterator[Cluster]:
    """A control plane of this test's own, without any CRD, whose controller manager also
    runs the Deployment and ReplicaSet controllers, so that `helm install --wait` can see a
    Deployment (of zero replicas: no kubelet here) become ready."""
    more = ("deployment-controller", "replicaset-controller")
    with ControlPlane(
        bin_dir=bin_dir, work_dir=tmp_path / "plane", extra_controllers=more
    ) as plane:
        yield Cluster(plane.kubeconfig, bin_dir, plane)


@pytest.mark.parametrize(
    ("values", "peering"),
    [
        pytest.param([], ("clusterkopfpeering", []), id="all-namespaces"),
        pytest.param(
            ["watchNamespaces={team-a}"], ("kopfpeering", ["-n", "team-a"]), id="namespaced"
        ),
    ],
)
def test_templated_crds_install_with_skip_crds_on_a_fresh_cluster(
    empty_cluster: Cluster, helm: Helm, values: list[str], peering: tuple[str, list[str]]
) -> None:
    """The documented path: --skip-crds with crds.templated=true, and --wait. Helm maps every
    object before creating any, so the peering object cannot be in the same batch as its CRD:
    it is a post-install hook, which --wait holds back until the CRDs are established (without
    it the hook raced their establishment, about one install in twenty here)."""
    kubectl, kube = empty_cluster.kubectl, {"kubeconfig": empty_cluster.kubeconfig}
    assert kubectl("get", "crd", "-o", "name").stdout == ""
    kubectl("create", "namespace", "cio")
    kubectl("create", "namespace", "team-a")
    # No kubelet here: zero replicas, so that --wait waits for the CRDs, not for a pod.
    sets = [
        word
        for value in ["crds.templated=true", "replicaCount=0", *values]
        for word in ("--set", value)
    ]
    helm("install", "cio", str(CHART), "-n", "cio", "--skip-crds", "--wait", *sets, **kube)
    kind, scope = peering
    kubectl("get", kind, "cloudinfer-operator", *scope)
    for crd in ("inferenceservices.cloudinfer.dev", "clusterkopfpeerings.kopf.dev"):
        annotations = json.loads(kubectl("get", "crd", crd, "-o", "json").stdout)["metadata"][
            "annotations"
        ]
        assert annotations["helm.sh/resource-policy"] == "keep"
        assert annotations["meta.helm.sh/release-name"] == "cio"
    # The next upgrade finds the CRDs and takes the peering object into the release...
    helm("upgrade", "cio", str(CHART), "-n", "cio", *sets, **kube)
    manifest = helm("get", "manifest", "cio", "-n", "cio", **kube).stdout
    kinds = [d["kind"] for d in docs_of(manifest)]
    assert kinds.count("ClusterKopfPeering" if kind == "clusterkopfpeering" else "KopfPeering") == 1
    # ...so uninstalling deletes it, and keeps the CRDs.
    helm("uninstall", "cio", "-n", "cio", "--wait", **kube)
    assert kubectl("get", kind, "cloudinfer-operator", *scope, check=False).returncode != 0
    kubectl("get", "crd", "inferenceservices.cloudinfer.dev", "kopfpeerings.kopf.dev")


def test_longest_release_name_installs(
    cluster: Cluster, chart_crds: None, helm: Helm, namespace: str, extra_namespace: str
) -> None:
    """Helm allows 53 characters; every name the chart derives stays a valid DNS label."""
    release = f"r{uuid.uuid4().hex[:9]}{'x' * 43}"
    assert len(release) == 53
    kube = {"kubeconfig": cluster.kubeconfig}
    values = [
        f"watchNamespaces={{{extra_namespace}}}",
        f"peering.name=p-{release[:10]}",
        "grafanaDashboard.enabled=true",
    ]
    sets = [word for value in values for word in ("--set", value)]
    helm("install", release, str(CHART), "-n", namespace, *sets, **kube)
    try:
        manifest = helm("get", "manifest", release, "-n", namespace, **kube).stdout
        objects = docs_of(manifest)
        assert {"Service", "Deployment", "ClusterRole", "Role", "ConfigMap"} <= {
            o["kind"] for o in objects
        }
        for obj in objects:
            meta = obj["metadata"]
            assert len(meta["name"]) <= 63, meta["name"]
            assert all(len(v) <= 63 for v in meta.get("labels", {}).values()), meta["labels"]
            scope = ["-n", meta["namespace"]] if "namespace" in meta else []
            cluster.kubectl("get", obj["kind"], meta["name"], *scope)
        service = one(objects, "Service")["metadata"]["name"]
        assert service.endswith("-metrics")
    finally:
        helm("uninstall", release, "-n", namespace, "--wait", **kube)


def test_argocd_cm_snippet_merges_into_an_existing_config_map(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """The documented `kubectl patch --type merge --patch-file` keeps existing keys."""
    cluster.kubectl(
        "create", "configmap", "argocd-cm", "-n", namespace, "--from-literal=url=https://cd"
    )
    snippet = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    snippet["metadata"]["namespace"] = namespace
    patch = tmp_path / "argocd-cm.yaml"
    patch.write_text(yaml.safe_dump(snippet))
    cluster.kubectl(
        "patch", "configmap", "argocd-cm", "-n", namespace, "--type", "merge",
        "--patch-file", str(patch),
    )  # fmt: skip
    data = json.loads(
        cluster.kubectl("get", "configmap", "argocd-cm", "-n", namespace, "-o", "json").stdout
    )["data"]
    assert data.pop("url") == "https://cd"
    assert set(data) == {f"resource.customizations.health.cloudinfer.dev_{k}" for k in KINDS}
    for kind in KINDS:
        lua = ARGOCD / "resource_customizations" / "cloudinfer.dev" / kind / "health.lua"
        assert data[f"resource.customizations.health.cloudinfer.dev_{kind}"] == lua.read_text()


def test_custom_resources_are_accepted_next_to_the_chart(
    cluster: Cluster, chart_crds: None
) -> None:
    """The CRDs from the chart serve the repository's examples (server dry run)."""
    for example in sorted((REPO / "examples").glob("*.yaml")):
        result = cluster.kubectl(
            "apply", "--dry-run=server", "-n", "default", "-f", str(example), check=False
        )
        assert result.returncode == 0, f"{example.name}: {result.stderr}"
        assert "inferenceservice.cloudinfer.dev/" in result.stdout
