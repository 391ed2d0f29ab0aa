"""The user's install paths, in a real cluster: shared by the node tier (tests/node) and the
kind suite (tests/e2e_kind). Each scenario takes an `InstallTarget`, which says how this
cluster runs the image and how the operator in the pod reaches the apiserver and a simulator.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from harness import CloudAccountHandle, Kube, new_sim_account, writes
from kubernetes import client, watch
from scenarios import SCALE_ACTION, core_scenario

from cloudinfer.main.sharding import ACCOUNT_ANNOTATION, ROLE_LABEL
from cloudsim.server import RunningSim
from support import wait_for

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "cloudinfer-operator"
RESTRICTED = "pod-security.kubernetes.io/enforce"
INSTALL_YAML = ROOT / "deploy" / "install.yaml"
PEERING = "cloudinfer-operator"
# The stated bound on an HA handover: from the acting pod's deletion to the other pod's
# converged write. Kopf drops the leaving pod's peering record on SIGTERM, so the standby
# resumes at its next peering event; 90 s also covers a crash (peering lifetime 60 s).
HANDOVER_BOUND_SECONDS = 90
SHARD_TIMEOUT = 180
"""Generous waits in sharding mode: a Lease lasts 15 s, and three pods share 2 cores."""

FIGURES: list[str] = []
"""Measured times (handovers), printed at the end of the run and never asserted: a bound
that a loaded machine misses would be a timing lottery (docs/reliability.md)."""


def report_figure(scenario: str, text: str) -> None:
    FIGURES.append(f"{scenario}: {text}")
    print(f"{scenario}: {text}")


@dataclass
class InstallTarget:
    """A cluster that can run the operator image, as the scenarios need it."""

    kube: Kube
    helm_bin: Path
    # --set values beyond the chart's defaults: the image, pull policy, and how the pod
    # reaches the apiserver (host networking, extraEnv) on this cluster.
    values: dict[str, str]
    # The pod network variant (no hostNetwork), for namespaces under restricted PSS.
    pod_network_values: dict[str, str]
    # A simulator the test controls, and the endpoint the operator in the pod dials.
    sim: Callable[[bool], tuple[RunningSim, str]]
    # What a user of this cluster edits in deploy/install.yaml's Deployment (the image, and
    # how the pod reaches the apiserver).
    patch_install_yaml: Callable[[dict[str, Any]], None]
    extra_helm_args: tuple[str, ...] = field(default=())

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        return self.kube.cluster.kubectl(*args, input_text=input_text).stdout

    def helm(self, *args: str) -> str:
        result = subprocess.run(
            [str(self.helm_bin), f"--kubeconfig={self.kube.cluster.kubeconfig}", *args],
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout


def _set_args(values: dict[str, str]) -> list[str]:
    # extraEnv values are strings even when they look like numbers (a port).
    args = []
    for key, value in values.items():
        args += ["--set-string" if key.endswith(".value") else "--set", f"{key}={value}"]
    return args


def account_writes(handle: CloudAccountHandle) -> list[dict[str, Any]]:
    """Every write call (any action) by this account, from the simulator's journal."""
    journal = handle.sim.control.journal()
    return [
        entry
        for action in journal.values()
        for entry in action.get("writes", [])
        if entry.get("account") == handle.name
    ]


def operator_pods(target: InstallTarget, namespace: str) -> list[dict[str, Any]]:
    out = target.kubectl(
        "get", "pods", "-n", namespace, "-l", "app.kubernetes.io/name=cloudinfer-operator",
        "-o", "json",
    )  # fmt: skip
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def _diagnose(target: InstallTarget, namespace: str) -> str:
    described = target.kube.cluster.kubectl("describe", "pods", "-n", namespace, check=False)
    logs = target.kube.cluster.kubectl(
        "logs", "-n", namespace, "-l", "app.kubernetes.io/name=cloudinfer-operator",
        "--tail=40", "--all-containers", check=False,
    )  # fmt: skip
    # A pod refused by admission (PodSecurity) shows only in the ReplicaSet's events.
    events = target.kube.cluster.kubectl(
        "get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False
    )
    return (
        f"{described.stdout[-3000:]}\n--- events ---\n{events.stdout[-2000:]}"
        f"\n--- logs ---\n{logs.stdout}{logs.stderr}"
    )


def wait_available(target: InstallTarget, namespace: str) -> dict[str, Any]:
    """The release's Deployment Available and its pods Ready (the readiness probe passed)."""
    deployment = target.kubectl("get", "deployments", "-n", namespace, "-o", "name").split()
    assert len(deployment) == 1, deployment
    deployment = deployment[0].removeprefix("deployment.apps/")
    try:
        target.kubectl(
            "rollout", "status", "-n", namespace, f"deployment/{deployment}", "--timeout=100s"
        )
        target.kubectl(
            "wait", "-n", namespace, "--for=condition=Available", "--timeout=60s",
            f"deployment/{deployment}",
        )  # fmt: skip
    except AssertionError as err:
        raise AssertionError(f"{err}\n{_diagnose(target, namespace)}") from None
    pods = operator_pods(target, namespace)
    assert pods, "no operator pod"
    for pod in pods:
        ready = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", pod["status"]
    return pods[0]


def assert_no_restarts(target: InstallTarget, namespace: str) -> None:
    """The kubelet's liveness probe passed: no container was restarted."""
    for pod in operator_pods(target, namespace):
        restarts = [s["restartCount"] for s in pod["status"].get("containerStatuses", [])]
        assert restarts == [0] * len(restarts), _diagnose(target, namespace)


def converge_in(target: InstallTarget, namespace: str, *, pod_network: bool) -> CloudAccountHandle:
    """The operator in the pod converges a service on the simulator (core scenario)."""
    sim, endpoint = target.sim(pod_network)
    handle = new_sim_account(sim, "huawei")
    target.kube.core.create_namespace(
        {"metadata": {"name": namespace}}  # type: ignore[arg-type]
    )
    core_scenario(target.kube, handle, namespace, endpoint=endpoint)
    return handle


def helm_install(
    target: InstallTarget, release: str, namespace: str, *, pod_network: bool = False,
    extra: dict[str, str] | None = None, create_namespace: bool = True,
) -> None:  # fmt: skip
    values = {**(target.pod_network_values if pod_network else target.values), **(extra or {})}
    target.helm(
        "install", release, str(CHART), "--namespace", namespace,
        *(["--create-namespace"] if create_namespace else []), *_set_args(values),
        *target.extra_helm_args,
    )  # fmt: skip


def restricted_namespace_converges(target: InstallTarget) -> None:
    """Under `restricted` PodSecurity the pod is admitted (no hostNetwork: the pod network)
    and converges a service."""
    namespace = "cloudinfer-restricted"
    target.kube.core.create_namespace(
        {"metadata": {"name": namespace, "labels": {RESTRICTED: "restricted"}}}  # type: ignore[arg-type]
    )
    helm_install(target, "restricted", namespace, pod_network=True, create_namespace=False)
    with _uninstalled_on_failure(target, "restricted", namespace):
        wait_available(target, namespace)
        converge_in(target, "restricted-services", pod_network=True)
        assert_no_restarts(target, namespace)
        target.helm("uninstall", "restricted", "--namespace", namespace, "--wait")


def _best_effort(target: InstallTarget, *argv: str) -> None:
    """Clean-up after a failed scenario, so that the next one starts from a known cluster."""
    binary = target.helm_bin if argv[0] == "helm" else target.helm_bin.parent / "kubectl"
    subprocess.run(
        [str(binary), f"--kubeconfig={target.kube.cluster.kubeconfig}", *argv[1:]],
        capture_output=True, check=False, timeout=180,
    )  # fmt: skip


@contextlib.contextmanager
def _uninstalled_on_failure(target: InstallTarget, release: str, namespace: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        _best_effort(target, "helm", "uninstall", release, "--namespace", namespace, "--wait")
        raise


def _scale_writes(handle: CloudAccountHandle) -> int:
    return len(writes(handle, SCALE_ACTION[handle.provider]))


def _rescale(target: InstallTarget, namespace: str, replicas: int, timeout: float = 120) -> None:
    target.kube.patch_service(namespace, "core", {"spec": {"replicas": replicas}})
    wait_for(
        lambda: (
            target.kube.get(namespace, "core").get("status", {}).get("observed", {}).get("replicas")
            == replicas
            and target.kube.condition(namespace, "core").get("reason") == "Converged"
        ),
        timeout=timeout,
        what=f"the service converged at {replicas} replicas",
    )


def install_yaml_converges(target: InstallTarget) -> None:
    """`kubectl apply -f deploy/install.yaml` on a fresh cluster (only the image and the
    apiserver address edited, as a user would) is Available, converges, and deletes cleanly."""
    crds = target.kubectl("get", "crd", "-o", "name")
    assert "cloudinfer.dev" not in crds, f"not a fresh cluster: {crds}"
    docs = [d for d in yaml.safe_load_all(INSTALL_YAML.read_text()) if d]
    for doc in docs:
        if doc["kind"] == "Deployment":
            target.patch_install_yaml(doc)
    manifest = yaml.safe_dump_all(docs)
    # As docs/install.md says: the CRDs first, so that the ClusterKopfPeering can be created.
    crds_yaml = str(INSTALL_YAML.parent / "crds.yaml")
    try:
        target.kubectl("apply", "--server-side", "-f", crds_yaml)
        target.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", crds_yaml)
        target.kubectl("apply", "--server-side", "-f", "-", input_text=manifest)
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        namespace = deployment["metadata"]["namespace"]
        wait_available(target, namespace)
        # Its namespace enforces restricted PodSecurity: the pod network, no hostNetwork.
        converge_in(target, "yaml-services", pod_network=True)
        assert_no_restarts(target, namespace)
    finally:
        # The services go first, while the operator can still release its finalizers.
        _best_effort(target, "kubectl", "delete", "namespace", "yaml-services", "--timeout=100s")
        _best_effort(target, "kubectl", "delete", "-f", INSTALL_YAML.as_posix(), "--timeout=100s")
        _best_effort(
            target,
            "kubectl",
            "wait",
            "--for=delete",
            "namespace/cloudinfer-system",
            "--timeout=120s",
        )


def helm_upgrade_rolls_without_duplicate_write(target: InstallTarget) -> None:
    """`helm install`, converge; `helm upgrade` with a changed value rolls the pod and the new
    one takes over without repeating a write; `helm uninstall` leaves CRDs, services and the
    cloud alone."""
    helm_install(target, "cloudinfer", "cloudinfer-system")
    with _uninstalled_on_failure(target, "cloudinfer", "cloudinfer-system"):
        old_pod = wait_available(target, "cloudinfer-system")["metadata"]["name"]
        handle = converge_in(target, "helm-default", pod_network=False)
        assert_no_restarts(target, "cloudinfer-system")

        journal = len(account_writes(handle))
        target.helm(
            "upgrade", "cloudinfer", str(CHART), "--namespace", "cloudinfer-system",
            "--reuse-values", "--set", "logLevel=debug",
        )  # fmt: skip
        wait_for(
            lambda: (
                [p["metadata"]["name"] for p in operator_pods(target, "cloudinfer-system")]
                not in ([], [old_pod])
            ),
            timeout=120,
            what="a new operator pod after helm upgrade",
        )
        new_pod = wait_available(target, "cloudinfer-system")
        assert new_pod["metadata"]["name"] != old_pod
        assert "debug" in json.dumps(new_pod["spec"]["containers"]), new_pod["spec"]["containers"]
        # The new pod read the converged service and the cloud, and had nothing to write.
        wait_for(lambda: len(operator_pods(target, "cloudinfer-system")) == 1, timeout=120,
                 what="the old pod gone")  # fmt: skip
        assert len(account_writes(handle)) == journal, "the new pod repeated a write"
        scale = _scale_writes(handle)
        _rescale(target, "helm-default", 4)
        assert _scale_writes(handle) == scale + 1

        journal = len(account_writes(handle))
        target.helm("uninstall", "cloudinfer", "--namespace", "cloudinfer-system", "--wait")
        wait_for(lambda: not operator_pods(target, "cloudinfer-system"), timeout=120,
                 what="the operator pod gone after helm uninstall")  # fmt: skip
        crds = target.kubectl("get", "crd", "-o", "name")
        for crd in ("inferenceservices.cloudinfer.dev", "cloudaccounts.cloudinfer.dev"):
            assert crd in crds, crds
        assert target.kube.get("helm-default", "core")["spec"]["replicas"] == 4
        assert handle.sim.control.service(
            target.kube.get("helm-default", "core")["spec"]["serviceId"]
        ), "the cloud service is gone"
        assert len(account_writes(handle)) == journal, "uninstall wrote to the cloud"


def acting_pod(target: InstallTarget, pods: list[str]) -> str:
    """The replica Kopf lets act: the highest priority in the peering object."""
    peering = json.loads(target.kubectl("get", "clusterkopfpeering", PEERING, "-o", "json"))
    peers = {identity: info["priority"] for identity, info in (peering.get("status") or {}).items()}
    matched = {pod: prio for pod in pods for ident, prio in peers.items() if pod in ident}
    assert len(matched) == len(pods), f"peers {peers} vs pods {pods}"
    assert len(set(matched.values())) == len(pods), f"replicas share a priority: {matched}"
    return max(matched, key=lambda pod: matched[pod])


def _delete_and_watch_exit(target: InstallTarget, namespace: str, pod: str) -> dict[str, Any]:
    """Delete a pod and return its container's last terminated state (exit code), from a
    watch that starts before the deletion, so no status update between is missed."""
    core = target.kube.core
    version = core.read_namespaced_pod(pod, namespace).metadata.resource_version
    core.delete_namespaced_pod(pod, namespace)
    last: dict[str, Any] = {}
    stream = watch.Watch().stream(
        core.list_namespaced_pod, namespace, field_selector=f"metadata.name={pod}",
        resource_version=version, timeout_seconds=120,
    )  # fmt: skip
    for event in stream:
        for status in event["object"].status.container_statuses or []:
            if status.state and status.state.terminated:
                last = {"exitCode": status.state.terminated.exit_code,
                        "reason": status.state.terminated.reason}  # fmt: skip
        if event["type"] == "DELETED":
            return last
    raise AssertionError(f"pod {pod} still there 120 s after its deletion (last: {last})")


def ha_one_acts_and_hands_over(target: InstallTarget) -> None:
    """replicaCount=2: exactly one pod acts; deleting it hands over within
    HANDOVER_BOUND_SECONDS with no duplicate write; a pod deleted mid-convergence exits
    cleanly (exit code 0, before the kubelet's SIGKILL at terminationGracePeriodSeconds)."""
    namespace = "cloudinfer-ha"
    helm_install(target, "ha", namespace, pod_network=True, extra={"replicaCount": "2"})
    with _uninstalled_on_failure(target, "ha", namespace):
        wait_available(target, namespace)
        pods = [p["metadata"]["name"] for p in operator_pods(target, namespace)]
        assert len(pods) == 2, pods
        # Exactly one acts: the core scenario asserts one write per change.
        handle = converge_in(target, "ha-services", pod_network=True)
        wait_for(lambda: len(json.loads(target.kubectl(
            "get", "clusterkopfpeering", PEERING, "-o", "json")).get("status") or {}) >= 2,
            timeout=60, what="both replicas in the peering object")  # fmt: skip
        acting = acting_pod(target, pods)

        scale = _scale_writes(handle)
        target.kubectl("delete", "pod", "-n", namespace, acting, "--wait=false")
        _rescale(target, "ha-services", 4, timeout=HANDOVER_BOUND_SECONDS)
        assert _scale_writes(handle) == scale + 1

        wait_available(target, namespace)
        wait_for(lambda: len(operator_pods(target, namespace)) == 2, timeout=120,
                 what="two replicas again")  # fmt: skip
        pods = [p["metadata"]["name"] for p in operator_pods(target, namespace)]
        wait_for(lambda: all(p in target.kubectl("get", "clusterkopfpeering", PEERING, "-o",
                                                 "json") for p in pods),
                 timeout=60, what="both replicas in the peering object")  # fmt: skip
        acting = acting_pod(target, pods)
        # Mid-convergence: the scale write is out and the cloud is still scaling.
        target.kube.patch_service("ha-services", "core", {"spec": {"replicas": 5}})
        wait_for(lambda: _scale_writes(handle) == scale + 2, timeout=60, what="the scale to 5 sent")
        terminated = _delete_and_watch_exit(target, namespace, acting)
        assert terminated.get("exitCode") == 0, f"not a clean shutdown: {terminated}"
        _rescale(target, "ha-services", 5, timeout=HANDOVER_BOUND_SECONDS)
        assert _scale_writes(handle) == scale + 2, "the scale to 5 was sent twice"
        target.helm("uninstall", "ha", "--namespace", namespace, "--wait")


def _replica_of(entry: dict[str, Any]) -> str:
    """The replica that sent a cloud call: its User-Agent names it in sharding mode."""
    return str(entry.get("client") or "").partition(" replica/")[2]


def _ok_writes(handle: CloudAccountHandle) -> list[dict[str, Any]]:
    """The account's successful writes, oldest first (the journal groups them by action)."""
    ok = [e for e in account_writes(handle) if e.get("error_code") is None]
    return sorted(ok, key=lambda e: float(e["time"]))


def _holders(target: InstallTarget, namespace: str) -> dict[str, str]:
    """CloudAccount name -> the replica holding its Lease ("" while it is released)."""
    leases = client.CoordinationV1Api(target.kube.api).list_namespaced_lease(
        namespace, label_selector=f"{ROLE_LABEL}=account"
    )
    return {
        (lease.metadata.annotations or {}).get(ACCOUNT_ANNOTATION, "").partition("/")[2]: (
            lease.spec.holder_identity or ""
        )
        for lease in leases.items
    }


def _pod_of(identity: str, pods: list[str]) -> str | None:
    """A replica's identity is its pod (host) name and its process ID."""
    return next((pod for pod in pods if identity.startswith(f"{pod}-")), None)


def _wait_one_account_per_pod(
    target: InstallTarget, namespace: str, accounts: list[str], what: str
) -> dict[str, str]:
    """Every account held, each by a different one of the live pods (three accounts, three
    pods: the bounded-load assignment gives each pod exactly one)."""
    last: dict[str, str] = {}

    def spread() -> bool:
        nonlocal last
        pods = [p["metadata"]["name"] for p in operator_pods(target, namespace)]
        last = _holders(target, namespace)
        owners = {_pod_of(last.get(account, ""), pods) for account in accounts}
        return len(pods) == len(accounts) and owners == set(pods)

    try:
        wait_for(spread, timeout=SHARD_TIMEOUT, interval=1, what=what)
    except AssertionError as err:
        raise AssertionError(f"{err}: holders {last}\n{_diagnose(target, namespace)}") from None
    return {account: last[account] for account in accounts}


def _scale_all(target: InstallTarget, namespace: str, accounts: list[str], replicas: int) -> None:
    for account in accounts:
        target.kube.patch_service(namespace, account, {"spec": {"replicas": replicas}})


def _wait_all_converged(
    target: InstallTarget, namespace: str, accounts: list[str], replicas: int
) -> None:
    def converged(service: str) -> bool:
        observed = (target.kube.get(namespace, service).get("status") or {}).get("observed") or {}
        return (
            observed.get("replicas") == replicas
            and target.kube.condition(namespace, service).get("reason") == "Converged"
        )

    wait_for(lambda: all(converged(s) for s in accounts), timeout=SHARD_TIMEOUT, interval=1,
             what=f"every service Converged at {replicas} replicas")  # fmt: skip


def sharded_replicas_split_accounts_and_hand_over(target: InstallTarget) -> None:
    """replicaCount=3 with sharding.enabled, pods on the pod network: each pod holds the
    Lease of one of three CloudAccounts, and each account's cloud writes come from its holder
    alone (the simulator journals each call's User-Agent, which names the replica). The pod
    holding one account is deleted while that account's scale is in flight: another pod
    takes the account over and the write is not repeated; once the Deployment's new pod has
    joined, each account's next write comes from its new holder alone."""
    namespace, services = "cloudinfer-shard", "shard-services"
    target.kube.core.create_namespace(
        {"metadata": {"name": services}}  # type: ignore[arg-type]
    )
    sharded = {
        "replicaCount": "3", "sharding.enabled": "true", "peering.enabled": "false",
        # Only its own namespace: the services other scenarios left are not its accounts.
        "watchNamespaces": "{" + services + "}",
    }  # fmt: skip
    helm_install(target, "shard", namespace, pod_network=True, extra=sharded)
    with _uninstalled_on_failure(target, "shard", namespace):
        wait_available(target, namespace)
        sim, endpoint = target.sim(True)
        handles: dict[str, CloudAccountHandle] = {}
        for i in range(3):
            handles[f"acct{i}"] = new_sim_account(sim, "huawei")
            target.kube.create_account(
                services, handles[f"acct{i}"], secret_name=f"creds{i}", name=f"acct{i}",
                endpoint=endpoint,
            )  # fmt: skip
        accounts = sorted(handles)
        holders = _wait_one_account_per_pod(
            target, namespace, accounts, "each of the 3 pods to hold one account's Lease"
        )
        # One service per account, named after it.
        for account, handle in handles.items():
            service_id = handle.add_service(name="svc", replicas=1)
            target.kube.create_service(
                services, account,
                {"accountRef": {"name": account}, "serviceId": service_id, "replicas": 2},
            )  # fmt: skip
        _wait_all_converged(target, services, accounts, 2)
        writers = {a: {_replica_of(e) for e in _ok_writes(h)} for a, h in handles.items()}
        assert writers == {a: {holders[a]} for a in accounts}, (writers, holders)

        # Delete the pod holding acct0 once its scale to 3 is sent, before the cloud is done.
        victim = holders["acct0"]
        victim_pod = _pod_of(
            victim, [p["metadata"]["name"] for p in operator_pods(target, namespace)]
        )
        assert victim_pod is not None, (victim, holders)
        marks = {a: len(_ok_writes(h)) for a, h in handles.items()}
        _scale_all(target, services, accounts, 3)
        scale = SCALE_ACTION["huawei"]
        wait_for(lambda: len(writes(handles["acct0"], scale)) == 2, timeout=SHARD_TIMEOUT,
                 interval=0.5, what="acct0's scale to 3 sent")  # fmt: skip
        assert _holders(target, namespace)["acct0"] == victim, "acct0 moved before the deletion"
        deleted = time.monotonic()
        target.kubectl("delete", "pod", "-n", namespace, victim_pod, "--wait=false")
        wait_for(lambda: _holders(target, namespace).get("acct0", victim) not in ("", victim),
                 timeout=SHARD_TIMEOUT, what="another pod to hold acct0")  # fmt: skip
        taken_over = time.monotonic() - deleted
        _wait_all_converged(target, services, accounts, 3)
        converged = time.monotonic() - deleted
        after = {a: _ok_writes(h)[marks[a] :] for a, h in handles.items()}
        assert {a: len(w) for a, w in after.items()} == dict.fromkeys(accounts, 1), after
        # acct0's write was the deleted pod's, and no other account's was.
        assert {a: [_replica_of(w) == victim for w in after[a]] for a in accounts} == {
            a: [a == "acct0"] for a in accounts
        }, after

        # The Deployment's new pod joins: the accounts spread over the three pods again, and
        # each account's writes follow its new holder; the deleted pod holds nothing.
        moved = _wait_one_account_per_pod(
            target, namespace, accounts, "the new pod to join and hold one account"
        )
        joined = time.monotonic() - deleted
        assert victim not in moved.values(), moved
        marks = {a: len(_ok_writes(h)) for a, h in handles.items()}
        _scale_all(target, services, accounts, 4)
        _wait_all_converged(target, services, accounts, 4)
        followed = {
            a: [_replica_of(e) for e in _ok_writes(h)[marks[a] :]] for a, h in handles.items()
        }
        assert followed == {a: [moved[a]] for a in accounts}, (followed, moved)
        report_figure(
            "sharded pod deleted",
            f"its account held by another pod {taken_over:.1f} s after the deletion, its "
            f"service Converged after {converged:.1f} s, the new pod holding an account after "
            f"{joined:.1f} s",
        )
        target.helm("uninstall", "shard", "--namespace", namespace, "--wait")


SCENARIOS = (
    install_yaml_converges,  # first: it needs the fresh cluster
    helm_upgrade_rolls_without_duplicate_write,
    restricted_namespace_converges,
    ha_one_acts_and_hands_over,
    sharded_replicas_split_accounts_and_hand_over,
)
"""Every install scenario, in the order the node tier and the kind suite run them."""
