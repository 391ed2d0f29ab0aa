"""The endpoint allow-list (--allowed-endpoint-host): a CloudAccount whose endpoint is outside it
gets Ready=False, EndpointNotAllowed, and the cloud sees no request at all."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from harness import Kube, OperatorProcess, eventually, new_sim_account
from kubernetes import client

from cloudsim.server import RunningSim
from support import Cluster


@pytest.fixture
def own_namespace(kube: Kube) -> Iterator[str]:
    """A namespace outside the session operator's t-* pattern."""
    name = f"e-{uuid.uuid4().hex[:10]}"
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    kube.core.delete_namespace(name)


def requests_by(sim: RunningSim, account: str) -> int:
    """Every call the simulator journaled for `account`, reads and writes."""
    journal = sim.control.journal(entries=True)
    return sum(
        1
        for log in journal.values()
        for entry in log.get("entries", log.get("writes", []))
        if entry.get("account") == account
    )


def test_an_endpoint_outside_the_allow_list_gets_no_request(
    kube: Kube, sims: dict[str, RunningSim], own_namespace: str, cluster: Cluster, tmp_path: Path
) -> None:
    sim = sims["huawei"]
    handle = new_sim_account(sim, "huawei")
    service_id = handle.add_service(name="chat", replicas=1)
    kube.create_account(own_namespace, handle)
    kube.create_service(own_namespace, "chat", {"serviceId": service_id, "replicas": 2})
    args = ("--standalone", "--namespace", own_namespace)
    port = urlsplit(sim.base_url).port

    # The default list: only the clouds' public hosts.
    public_only = OperatorProcess(
        cluster.kubeconfig, tmp_path / "default.log", args=args, allowed_endpoint_hosts=()
    )
    public_only.start()
    try:
        ready = kube.wait_condition(
            own_namespace, "acct", status="False", reason="EndpointNotAllowed",
            plural="cloudaccounts", timeout=60,
        )  # fmt: skip
        assert f"127.0.0.1:{port} is not in the operator's endpoint allow-list" in ready["message"]
        assert "*.myhuaweicloud.com" in ready["message"]
        service = kube.wait_condition(
            own_namespace, "chat", status="False", reason="AccountNotReady", timeout=60
        )
        assert "endpoint allow-list" in service["message"]
    finally:
        public_only.stop()
    assert requests_by(sim, handle.name) == 0, "a request went to a host outside the list"

    # Another port of the same host is still outside a list that names a port.
    other_port = OperatorProcess(
        cluster.kubeconfig, tmp_path / "port.log", args=args,
        allowed_endpoint_hosts=(f"127.0.0.1:{port + 1}",),
    )  # fmt: skip
    other_port.start()
    try:
        eventually(
            lambda: f"allow-list (127.0.0.1:{port + 1})"
            in kube.condition(own_namespace, "acct", plural="cloudaccounts").get("message", ""),
            timeout=60, what="the account refused by this operator's list",
        )  # fmt: skip
    finally:
        other_port.stop()
    assert requests_by(sim, handle.name) == 0

    # Allowed (host and port): the same account works.
    allowed = OperatorProcess(
        cluster.kubeconfig, tmp_path / "allowed.log", args=args,
        allowed_endpoint_hosts=(f"127.0.0.1:{port}",),
    )  # fmt: skip
    allowed.start()
    try:
        kube.wait_condition(
            own_namespace, "acct", reason="CredentialsVerified", plural="cloudaccounts",
            timeout=60,
        )  # fmt: skip
        kube.wait_condition(own_namespace, "chat", reason="Converged", timeout=60)
    finally:
        allowed.stop()
    assert requests_by(sim, handle.name) > 0
