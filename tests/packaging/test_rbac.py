"""The chart's RBAC against the real operator, run as the chart's ServiceAccount.

Sufficiency: the operator process, holding only a bearer token of the ServiceAccount the
chart creates, bound by the Role (or ClusterRole) the chart renders, runs a full
reconcile scenario against a simulator: Ready, one scale call, the in-use finalizers, Stop
on delete, events.
Minimality: the same scenario with any single (apiGroup, resource, verb) grant of the
rendered roles taken away breaks at a known step, or (for the grants that only feed Kopf's
background watches) fills the operator's log with 403 errors while Kopf gives up a
capability. A grant whose removal breaks nothing does not belong in the chart: that is
how `get` on our kinds and on peerings, `patch` on Events and the whole events.k8s.io rule
left it.

Operators here only watch p-* namespaces (the session operator of tests/operator owns t-*).
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import GROUP, VERSION, Kube, OperatorProcess, new_sim_account, writes
from kubernetes import client
from kubernetes.client.rest import ApiException
from packaging_support import Helm, by_kind, one, render

from cloudsim.server import RunningSim
from support import Cluster, wait_for

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)
RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
FINALIZER = "cloudinfer.dev/finalizer"
OBSERVER_FINALIZER = "cloudinfer.dev/account-observer"
"""Kopf's, on a CloudAccount while its observer daemon runs."""
IN_USE = "cloudinfer.dev/in-use"
# A 403 in an error or status, not the milliseconds of a timestamp ("12:00:01,403").
FORBIDDEN = re.compile(r"(?<![,.])\b403\b|forbidden", re.IGNORECASE)


@dataclass(frozen=True)
class Timeouts:
    start: float  # the first step (the peering keep-alive) also waits for Kopf to start
    ready: float
    change: float
    delete: float


FULL = Timeouts(start=60, ready=60, change=60, delete=60)
# A healthy run passes each step in a few seconds; a broken grant is proven by waiting a
# bounded time, so these stay well above the healthy times but keep the variants short.
# Kopf's start (login, discovery, namespaces, peers) gets longer: with six operators
# starting at once on a loaded 2-core box it has taken over 20 s (two full-suite runs failed
# at 'peering' with nothing refused yet). It must stay under the ~54 s for which Kopf retries
# a refused namespace list before it starts without one (see the namespaces grant below).
SHORT = Timeouts(start=40, ready=20, change=20, delete=15)


# -- rendering the chart's RBAC -------------------------------------------------------------


def chart_objects(helm: Helm, namespace: str, *, cluster_wide: bool) -> list[dict[str, Any]]:
    """The chart rendered into `namespace`, with a name unique to it (ClusterRoles are
    cluster-scoped), watching that namespace unless `cluster_wide`."""
    values = [f"fullnameOverride=rbac-{namespace}"]
    if not cluster_wide:
        values.append(f"watchNamespaces={{{namespace}}}")
    return render(helm, *values, release="rbac", namespace=namespace)


def roles_of(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return by_kind(objects, "Role") + by_kind(objects, "ClusterRole")


def chart_grants(objects: list[dict[str, Any]]) -> list[Grant]:
    """Every grant of the chart's Role and ClusterRole (no grant appears in both)."""
    found = [g for role in roles_of(objects) for g in grants_of(role["rules"])]
    assert len(found) == len(set(found)), found
    return found


def grants_of(rules: list[dict[str, Any]]) -> list[Grant]:
    """Every (apiGroup, resource, verb) a list of rules allows, in rule order."""
    found = []
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule  # no names, no URLs
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                found += [(group, resource, verb) for verb in rule["verbs"]]
    return found


def rules_without(rules: list[dict[str, Any]], drop: Grant) -> list[dict[str, Any]]:
    """The same rules minus one grant, one rule per (apiGroup, resource)."""
    kept: dict[tuple[str, str], list[str]] = {}
    for group, resource, verb in grants_of(rules):
        if (group, resource, verb) != drop:
            kept.setdefault((group, resource), []).append(verb)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": verbs}
        for (group, resource), verbs in kept.items()
    ]


def operator_args(objects: list[dict[str, Any]], namespace: str, *, peering: bool) -> list[str]:
    """The Deployment's container args, minus ports and log format (the harness sets them),
    always confined to `namespace`: a cluster-wide operator would also act on t-* objects."""
    deployment = one(objects, "Deployment")
    args = list(deployment["spec"]["template"]["spec"]["containers"][0]["args"])
    args = [a for a in args if not a.startswith(("--health-port", "--metrics-port", "--log-"))]
    args = [f"--namespace={namespace}" if a == "--all-namespaces" else a for a in args]
    if not peering:
        args = [a for a in args if not a.startswith(("--peering", "--priority"))]
        args.append("--standalone")
    assert any(a.startswith("--namespace") for a in args), args
    return args


def sa_kubeconfig(cluster: Cluster, namespace: str, sa: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount with a freshly minted token,
    against the same server and CA as the admin kubeconfig."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    token = cluster.kubectl("create", "token", sa, "-n", namespace, "--duration=1h").stdout
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": server["cluster"]}],
        "users": [{"name": sa, "user": {"token": token.strip()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": sa}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def cluster_ca_pem(cluster: Cluster) -> str:
    """A real CA certificate (the control plane's) to use as a caBundleRef."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    return base64.b64decode(admin["clusters"][0]["cluster"]["certificate-authority-data"]).decode()


# -- running the operator as the chart's ServiceAccount --------------------------------------


@dataclass
class Run:
    namespace: str
    operator: OperatorProcess


@contextlib.contextmanager
def operator_as_chart_sa(
    cluster: Cluster, kube: Kube, helm: Helm, tmp: Path, *,
    cluster_wide: bool = False, peering: bool = False, drop: Grant | None = None,
) -> Iterator[Run]:  # fmt: skip
    """A fresh p-* namespace, the chart's RBAC objects (less `drop`) applied, and the
    operator started with the Deployment's args and a token of the chart's ServiceAccount."""
    namespace = f"p-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", namespace)
    objects = chart_objects(helm, namespace, cluster_wide=cluster_wide)
    applied = [o for o in objects if o["kind"] in RBAC_KINDS]
    if drop is not None:
        assert drop in chart_grants(applied), drop
        for role in roles_of(applied):
            role["rules"] = rules_without(role["rules"], drop)
    if peering:
        applied += by_kind(objects, "KopfPeering")
    if cluster_wide:
        applied += confinement_rbac(namespace, one(objects, "ServiceAccount"))
    cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(applied))
    sa = one(applied, "ServiceAccount")["metadata"]["name"]
    kubeconfig = sa_kubeconfig(cluster, namespace, sa, tmp / f"{namespace}.kubeconfig")
    args = operator_args(objects, namespace, peering=peering)
    operator = OperatorProcess(kubeconfig, tmp / f"{namespace}.log", args=tuple(args))
    try:
        operator.start()
        yield Run(namespace, operator)
    finally:
        operator.stop()
        release_leftovers(kube, namespace)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")
        for kind in ("ClusterRoleBinding", "ClusterRole"):  # cluster-scoped: not in the ns
            for obj in by_kind(applied, kind):
                cluster.kubectl("delete", kind, obj["metadata"]["name"], "--ignore-not-found")


def confinement_rbac(namespace: str, sa: dict[str, Any]) -> list[dict[str, Any]]:
    """Test scaffolding, not the chart: a cluster-wide install runs --all-namespaces and
    never lists namespaces, but here the operator must stay out of the session operator's
    t-* namespaces, so it runs with --namespace, for which Kopf lists and watches them."""
    name = f"confine-{namespace}"
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": name},
         "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                       "namespace": namespace}]},
    ]  # fmt: skip


def release_leftovers(kube: Kube, namespace: str) -> None:
    """Drop finalizers the stopped operator can no longer remove, so the namespace goes."""
    for plural in ("inferenceservices", "cloudaccounts"):
        items = kube.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
        for item in items["items"]:
            if item["metadata"].get("finalizers"):
                with contextlib.suppress(ApiException):
                    kube.custom.patch_namespaced_custom_object(
                        GROUP, VERSION, namespace, plural, item["metadata"]["name"],
                        {"metadata": {"finalizers": None}},
                    )  # fmt: skip
    unblock = {"metadata": {"finalizers": None}}
    for secret in kube.core.list_namespaced_secret(namespace).items:
        if secret.metadata.finalizers:
            kube.core.patch_namespaced_secret(secret.metadata.name, namespace, unblock)
    for config_map in kube.core.list_namespaced_config_map(namespace).items:
        if config_map.metadata.finalizers:
            kube.core.patch_namespaced_config_map(config_map.metadata.name, namespace, unblock)


# -- the scenario ----------------------------------------------------------------------------


@dataclass
class Outcome:
    passed: list[str] = field(default_factory=list)
    failed: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        return f"passed {self.passed}; failed {self.failed!r}: {self.detail}"


def _gone(kube: Kube, namespace: str, name: str) -> bool:
    try:
        kube.get(namespace, name)
    except ApiException as err:
        return err.status == 404
    return False


def _events(kube: Kube, namespace: str, kind: str, name: str, reason: str) -> list[Any]:
    return [
        e
        for e in kube.events(namespace)
        if e.involved_object.kind == kind and e.involved_object.name == name and e.reason == reason
    ]


def scenario(
    kube: Kube, cluster: Cluster, sim: RunningSim, namespace: str, t: Timeouts, *,
    peering: bool = False,
) -> Outcome:  # fmt: skip
    """Secret + CA ConfigMap + CloudAccount + InferenceService (onDelete: Stop) against the
    Tencent simulator; then a replicas change; then a delete. Stops at the first step that
    fails and says which one."""
    outcome = Outcome()
    handle = new_sim_account(sim, "tencent")
    service_id = handle.add_service(name="chat", replicas=2)
    kube.create_secret(namespace, "creds", handle.key_id, handle.secret)
    kube.core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="cloud-ca"), data={"ca.crt": cluster_ca_pem(cluster)}
        ),
    )
    kube.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "cloudaccounts",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CloudAccount", "metadata": {"name": "acct"},
         "spec": {"provider": "tencent", "region": "ap-guangzhou", "endpoint": sim.base_url,
                  "credentialsSecretRef": {"name": "creds"},
                  "caBundleRef": {"name": "cloud-ca", "key": "ca.crt"},
                  "pollIntervalSeconds": 5, "activePollIntervalSeconds": 1}},
    )  # fmt: skip
    kube.create_service(
        namespace, "chat", {"serviceId": service_id, "replicas": 2, "policy": {"onDelete": "Stop"}}
    )

    def peering_keepalive() -> None:
        def alive() -> bool:
            peering_obj = kube.custom.get_namespaced_custom_object(
                "kopf.dev", "v1", namespace, "kopfpeerings", "cloudinfer-operator"
            )
            return bool(peering_obj.get("status"))

        wait_for(alive, timeout=t.start, what="our keep-alive in the KopfPeering's status")

    def account_ready() -> None:
        kube.wait_condition(
            namespace, "acct", reason="CredentialsVerified", plural="cloudaccounts",
            timeout=t.ready,
        )  # fmt: skip

    def account_event() -> None:
        wait_for(
            lambda: bool(_events(kube, namespace, "CloudAccount", "acct", "CredentialsVerified")),
            timeout=t.change, what="a CredentialsVerified Event on the CloudAccount",
        )  # fmt: skip

    def account_finalizer() -> None:
        wait_for(
            lambda: OBSERVER_FINALIZER
            in (kube.get(namespace, "acct", "cloudaccounts")["metadata"].get("finalizers") or []),
            timeout=t.change, what="the operator's finalizer on the CloudAccount",
        )  # fmt: skip

    def service_ready() -> None:
        kube.wait_condition(namespace, "chat", reason="Converged", timeout=t.ready)
        assert kube.get(namespace, "chat")["status"]["observedGeneration"] == 1

    def finalizer() -> None:
        wait_for(
            lambda: FINALIZER in (kube.get(namespace, "chat")["metadata"].get("finalizers") or []),
            timeout=t.change, what="the Stop-on-delete finalizer on the InferenceService",
        )  # fmt: skip

    def secret_held() -> None:
        wait_for(
            lambda: IN_USE
            in (kube.core.read_namespaced_secret("creds", namespace).metadata.finalizers or []),
            timeout=t.change, what="the in-use finalizer on the Secret",
        )  # fmt: skip

    def ca_held() -> None:
        wait_for(
            lambda: IN_USE
            in (
                kube.core.read_namespaced_config_map("cloud-ca", namespace).metadata.finalizers
                or []
            ),
            timeout=t.change, what="the in-use finalizer on the CA ConfigMap",
        )  # fmt: skip

    def scale() -> None:
        kube.patch_service(namespace, "chat", {"spec": {"replicas": 3}})
        wait_for(
            lambda: kube.get(namespace, "chat")["status"]["observedGeneration"] == 2,
            timeout=t.change, what="generation 2 observed",
        )  # fmt: skip
        kube.wait_condition(namespace, "chat", reason="Converged", timeout=t.change)
        calls = writes(handle, "ModifyModelService")
        assert [(c["params"]["ServiceAction"], c["params"]["Replicas"]) for c in calls] == [
            ("SCALE", 3)
        ], calls

    def scale_event() -> None:
        wait_for(
            lambda: bool(_events(kube, namespace, "InferenceService", "chat", "CloudWrite")),
            timeout=t.change, what="a CloudWrite Event on the InferenceService",
        )  # fmt: skip

    def delete_stops_then_releases() -> None:
        kube.custom.delete_namespaced_custom_object(
            GROUP, VERSION, namespace, "inferenceservices", "chat"
        )
        wait_for(lambda: _gone(kube, namespace, "chat"), timeout=t.delete, what="the release")
        stops = [
            w
            for w in writes(handle, "ModifyModelService")
            if w["params"]["ServiceAction"] == "STOP"
        ]
        assert len(stops) == 1, stops

    def released() -> None:
        def unheld() -> bool:
            secret = kube.core.read_namespaced_secret("creds", namespace).metadata
            ca = kube.core.read_namespaced_config_map("cloud-ca", namespace).metadata
            account = kube.get(namespace, "acct", "cloudaccounts")["metadata"]
            return all(IN_USE not in (f or []) for f in (
                secret.finalizers, ca.finalizers, account.get("finalizers")
            ))  # fmt: skip

        wait_for(unheld, timeout=t.change, what="the in-use finalizers removed")

    steps: list[tuple[str, Callable[[], None]]] = []
    if peering:
        steps.append(("peering", peering_keepalive))
    steps += [
        ("account-ready", account_ready),
        ("account-event", account_event),
        ("account-finalizer", account_finalizer),
        ("service-ready", service_ready),
        ("finalizer", finalizer),
        ("secret-held", secret_held),
        ("ca-held", ca_held),
        ("scale", scale),
        ("scale-event", scale_event),
        ("delete-stop", delete_stops_then_releases),
        ("released", released),
    ]
    for name, step in steps:
        try:
            step()
        except (AssertionError, ApiException, KeyError) as err:
            outcome.failed, outcome.detail = name, str(err)[:500]
            return outcome
        outcome.passed.append(name)
    return outcome


def forbidden_lines(operator: OperatorProcess) -> list[str]:
    text = operator.log_path.read_text(errors="replace")
    return [line for line in text.splitlines() if FORBIDDEN.search(line)]


# -- sufficiency ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kube(api_client: client.ApiClient, cluster: Cluster, all_chart_crds: Path) -> Kube:
    return Kube(api_client, cluster)


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param({"cluster_wide": False, "peering": True}, id="namespaced-role-with-peering"),
        pytest.param({"cluster_wide": True, "peering": False}, id="clusterrole-standalone"),
    ],
)
def test_operator_as_the_chart_service_account_runs_the_full_scenario(
    kube: Kube, helm: Helm, packaging_sims: dict[str, RunningSim], tmp_path: Path,
    mode: dict[str, bool],
) -> None:  # fmt: skip
    cluster = kube.cluster
    with operator_as_chart_sa(cluster, kube, helm, tmp_path, **mode) as run:
        # The operator's credentials really are the ServiceAccount's, and confined.
        def as_sa(*args: str) -> str:
            as_operator = f"--kubeconfig={run.operator.kubeconfig}"
            return cluster.kubectl(as_operator, *args, check=False).stdout.strip()

        username = as_sa("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
        assert username == f"system:serviceaccount:{run.namespace}:rbac-{run.namespace}"
        assert (
            as_sa("auth", "can-i", "patch", "inferenceservices.cloudinfer.dev", "-n", run.namespace)
            == "yes"
        )
        for verb, resource in [("list", "secrets"), ("update", "cloudaccounts.cloudinfer.dev")]:
            assert as_sa("auth", "can-i", verb, resource, "-n", run.namespace) == "no"

        outcome = scenario(
            kube, cluster, packaging_sims["tencent"], run.namespace, FULL,
            peering=mode["peering"],
        )  # fmt: skip
        assert outcome.failed is None, f"{outcome}\noperator log:\n{run.operator.log_tail()}"
        assert forbidden_lines(run.operator) == []


# -- minimality -------------------------------------------------------------------------------

LOG_ONLY = "forbidden-in-log"
# Every grant of the namespaced install (the Role, its cluster-scoped companion, peering on)
# and what breaks without it: the scenario step that fails, or LOG_ONLY where the scenario
# still passes but the operator logs 403 errors for a minute of retries and then carries on
# without a capability (Kopf's own words: "changes ... will not be noticed").
BREAKS_WITHOUT: dict[Grant, str | tuple[str, ...]] = {
    # No daemon, CloudAccounts' included, acts until every InferenceService is listed (the
    # start-up inventory, main/inventory.py), so without this the account never gets Ready.
    ("cloudinfer.dev", "inferenceservices", "list"): "account-ready",
    # Later changes go unnoticed: the service itself when it was created after the start-up
    # listing, else its edit (the listing got it Ready). Which one is a race.
    ("cloudinfer.dev", "inferenceservices", "watch"): ("service-ready", "scale"),
    ("cloudinfer.dev", "inferenceservices", "patch"): "finalizer",
    ("cloudinfer.dev", "cloudaccounts", "list"): "account-ready",
    ("cloudinfer.dev", "cloudaccounts", "watch"): "account-ready",
    ("cloudinfer.dev", "cloudaccounts", "patch"): "account-finalizer",
    ("cloudinfer.dev", "inferenceservices/status", "patch"): "service-ready",
    ("cloudinfer.dev", "cloudaccounts/status", "patch"): "account-ready",
    ("", "secrets", "get"): "account-ready",
    ("", "configmaps", "get"): "account-ready",
    # The in-use finalizer that keeps them for a Stop on delete (namespace deletion).
    ("", "secrets", "patch"): "secret-held",
    ("", "configmaps", "patch"): "ca-held",
    ("", "events", "create"): "account-event",
    # Kopf keeps every handler paused until it has listed the peers.
    ("kopf.dev", "kopfpeerings", "list"): "account-ready",
    # Other operators' keep-alives (a higher-priority peer) would go unnoticed.
    ("kopf.dev", "kopfpeerings", "watch"): LOG_ONLY,
    ("kopf.dev", "kopfpeerings", "patch"): "peering",
    # CRDs created or changed after startup would go unnoticed.
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"): LOG_ONLY,
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"): LOG_ONLY,
    # Kopf resolves --namespace against the namespace list before it starts any watch:
    # nothing runs for about a minute (the peering keep-alive is the first thing to stall).
    ("", "namespaces", "list"): "peering",
    # A watched namespace that does not exist yet when the operator starts would never be
    # served: Kopf adds it when its namespace watch sees it created.
    ("", "namespaces", "watch"): LOG_ONLY,
}


def test_minimality_table_covers_exactly_the_chart_grants(helm: Helm) -> None:
    namespaced = chart_objects(helm, "p-static", cluster_wide=False)
    assert sorted(chart_grants(namespaced)) == sorted(BREAKS_WITHOUT)


def test_cluster_role_holds_the_same_rules_as_the_namespaced_install(helm: Helm) -> None:
    """Minimality is shown on the namespaced install; the cluster-wide ClusterRole is the
    same rules, with the cluster-scoped peering kind and no namespaces rule (Kopf lists
    namespaces only to resolve --namespace)."""
    namespaced = set(chart_grants(chart_objects(helm, "p-static", cluster_wide=False)))
    cluster_wide = set(chart_grants(chart_objects(helm, "p-static", cluster_wide=True)))
    assert [r["kind"] for r in roles_of(chart_objects(helm, "p", cluster_wide=True))] == [
        "ClusterRole"
    ]

    def peering_as_cluster(grant: Grant) -> Grant:
        group, resource, verb = grant
        return (group, "clusterkopfpeerings" if resource == "kopfpeerings" else resource, verb)

    expected = {peering_as_cluster(g) for g in namespaced if g[1] != "namespaces"}
    assert cluster_wide == expected


@dataclass
class VariantResult:
    outcome: Outcome
    forbidden: list[str]
    seconds: float
    log_tail: str = ""

    def __str__(self) -> str:
        return f"{self.outcome} ({self.seconds:.0f} s)\noperator log:\n{self.log_tail}"


@pytest.fixture(scope="module")
def minimality_results(
    cluster: Cluster, kube: Kube, helm: Helm, packaging_sims: dict[str, RunningSim],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[Grant, VariantResult]:  # fmt: skip
    """Each grant of BREAKS_WITHOUT dropped in turn, in parallel: one namespace, role,
    token, simulator account and operator process each, with short step timeouts."""
    tmp = tmp_path_factory.mktemp("minimality")

    def run(drop: Grant) -> VariantResult:
        start = time.monotonic()
        with operator_as_chart_sa(cluster, kube, helm, tmp, peering=True, drop=drop) as run:
            outcome = scenario(
                kube, cluster, packaging_sims["tencent"], run.namespace, SHORT, peering=True
            )
            return VariantResult(
                outcome, forbidden_lines(run.operator), time.monotonic() - start,
                run.operator.log_tail(40),
            )  # fmt: skip

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        futures = {grant: pool.submit(run, grant) for grant in BREAKS_WITHOUT}
        return {grant: future.result() for grant, future in futures.items()}


@pytest.mark.parametrize(
    ("grant", "breaks"),
    [pytest.param(g, b, id="-".join(p for p in g if p)) for g, b in BREAKS_WITHOUT.items()],
)
def test_removing_any_grant_breaks_something(
    minimality_results: dict[Grant, VariantResult], grant: Grant, breaks: str | tuple[str, ...]
) -> None:
    result = minimality_results[grant]
    # The operator says why: the apiserver refused it exactly what was taken away.
    assert result.forbidden, f"no 403 logged without {grant}; {result}"
    resource = grant[1].split("/")[0]
    assert any(resource in line for line in result.forbidden) or breaks != LOG_ONLY, (
        result.forbidden[:3]
    )
    if breaks == LOG_ONLY:
        assert result.outcome.failed is None, str(result)
    else:
        assert result.outcome.failed in ((breaks,) if isinstance(breaks, str) else breaks), str(
            result
        )
