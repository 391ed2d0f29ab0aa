"""Secret safety, TLS verification and namespace isolation, with the operator as users run it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from harness import FAST_SIM, GROUP, VERSION, Kube, writes
from invariants import leak_violations
from kubernetes import client
from scenario import LeakRegistry, Scenario, wait_until

from cloudsim.core import Settings as SimSettings
from cloudsim.server import RunningSim, bind, make_sim, serve_in_thread
from controlplane.certs import TinyCA


@dataclass
class TlsSim:
    """One simulator served twice: plain HTTP (control API, and the account set-up) and HTTPS
    with a certificate from a private CA (what the operator talks to)."""

    plain: RunningSim
    https_url: str
    ca_pem: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.plain.stop()


@pytest.fixture
def tls_sim(tmp_path: Path) -> Iterator[TlsSim]:
    ca = TinyCA("cloudinfer-test-ca")
    serving = ca.issue_serving(["127.0.0.1", "localhost"])
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(serving.cert_pem)
    key.write_bytes(serving.key_pem)
    sim = make_sim("tencent", seed=5, settings=SimSettings(**FAST_SIM))
    plain = serve_in_thread(sim)
    sock = bind()
    config = uvicorn.Config(
        sim.asgi(), lifespan="off", log_level="critical", access_log=False, http="h11",
        ssl_certfile=str(cert), ssl_keyfile=str(key),
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    running = TlsSim(
        plain, f"https://127.0.0.1:{sock.getsockname()[1]}", ca.keypair.cert_pem.decode(),
        server, thread,
    )  # fmt: skip
    yield running
    running.stop()


def test_tls_is_verified_and_a_private_ca_is_trusted_only_via_ca_bundle_ref(
    scenario: Scenario, tls_sim: TlsSim
) -> None:
    handle = scenario.account("tencent", sim=tls_sim.plain, create=False)
    service_id = handle.add_service(name="chat", replicas=1)
    scenario.kube.create_secret(scenario.ns, "acct-creds", handle.key_id, handle.secret)
    account = {
        "provider": "tencent", "region": "ap-guangzhou", "endpoint": tls_sim.https_url,
        "credentialsSecretRef": {"name": "acct-creds"},
        "pollIntervalSeconds": 5, "activePollIntervalSeconds": 1,
    }  # fmt: skip
    scenario.kube.custom.create_namespaced_custom_object(
        GROUP, VERSION, scenario.ns, "cloudaccounts",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CloudAccount",
         "metadata": {"name": "acct"}, "spec": account},
    )  # fmt: skip
    scenario.service("chat", {"serviceId": service_id, "replicas": 2})
    scenario.operator()

    refused = scenario.kube.wait_condition(
        scenario.ns, "acct", status="False", reason="CloudUnreachable", plural="cloudaccounts",
        timeout=30,
    )  # fmt: skip
    # Names the host and OpenSSL's reason, so a missing caBundleRef is obvious.
    assert (
        "TLS certificate verification failed for 127.0.0.1: unable to get local issuer certificate"
        in refused["message"]
    ), refused
    assert handle.sim.control.journal() == {} or not writes(handle, "ModifyModelService")

    scenario.kube.core.create_namespaced_config_map(
        scenario.ns,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="ca"), data={"ca.crt": tls_sim.ca_pem}
        ),
    )
    scenario.edit(
        "acct", {"spec": {"caBundleRef": {"name": "ca", "key": "ca.crt"}}}, plural="cloudaccounts"
    )
    scenario.kube.wait_condition(
        scenario.ns, "acct", reason="CredentialsVerified", plural="cloudaccounts", timeout=30
    )
    scenario.finish({"chat": "Converged"})
    assert len(writes(handle, "ModifyModelService")) == 1


def test_an_account_in_another_namespace_cannot_be_used(scenario: Scenario, rkube: Kube) -> None:
    other = f"z-{uuid.uuid4().hex[:10]}"
    rkube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        handle = scenario.account("baidu")  # CloudAccount "acct" in the scenario's namespace
        service_id = handle.add_service(name="chat", replicas=1)
        rkube.create_service(other, "thief", {"serviceId": service_id, "replicas": 3})
        created = rkube.get(other, "thief")
        scenario.service("owner", {"serviceId": service_id, "replicas": 1})
        scenario.operator("--namespace", other)
        blocked = rkube.wait_condition(
            other, "thief", status="False", reason="AccountNotReady", timeout=30
        )
        assert f"not found in namespace {other}" in blocked["message"], blocked
        scenario.finish({"owner": "Converged"})
        time.sleep(2)
        assert rkube.condition(other, "thief")["reason"] == "AccountNotReady"
        assert writes(handle, "ScaleService") == [], "a foreign namespace's spec reached the cloud"
        # The scenario's invariants watch its own namespace; the other one gets the same checks.
        thief = rkube.get(other, "thief")
        assert (thief["metadata"]["generation"], thief["spec"]) == (
            created["metadata"]["generation"],
            created["spec"],
        ), thief
        assert thief["status"]["observedGeneration"] == created["metadata"]["generation"], thief
        other_events = "\n".join(
            f"{e.reason} {e.message} {e.involved_object.name}" for e in rkube.events(other)
        )
        texts = {"thief": json.dumps(thief), "events in the other namespace": other_events}
        assert leak_violations([handle.secret], texts) == []
    finally:
        # The operator still runs: it releases its finalizer, then the namespace can go.
        rkube.custom.delete_namespaced_custom_object(
            GROUP, VERSION, other, "inferenceservices", "thief"
        )
        wait_until(lambda: not _exists(rkube, other, "thief"), what="thief released")
        rkube.core.delete_namespace(other)


def _exists(kube: Kube, namespace: str, name: str) -> bool:
    try:
        kube.get(namespace, name)
    except client.ApiException:
        return False
    return True


def test_no_credential_value_appears_in_any_captured_text(
    scenario: Scenario, leak_registry: LeakRegistry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Errors that quote requests and replies (wrong keys, a gateway echoing its input) are
    where secrets leak; provoke them, then sweep every log of the session's scenarios."""
    handle = scenario.account("huawei", create=False)
    handle.add_service(name="chat", replicas=1)
    real = handle.secret
    handle.secret = f"sk{uuid.uuid4().hex}canarywrong"  # rejected: AuthFailed, with messages
    leak_registry.secrets.add(handle.secret)
    scenario.kube.create_account(scenario.ns, handle, secret_name="acct-creds")
    handle.secret = real
    echo = scenario.account("tencent", name="echo")
    echo.sim.control.inject("*", kind="html", count=3, account=echo.name)
    scenario.operator("--log-level", "debug")
    scenario.kube.wait_condition(
        scenario.ns, "acct", status="False", reason="AuthFailed", plural="cloudaccounts"
    )
    time.sleep(3)
    found = scenario.violations({})
    assert found["no credential leak"] == []
    texts = {p.name: p.read_text(errors="replace") for p in leak_registry.logs if p.exists()}
    assert texts, "no operator log was captured"
    assert leak_violations(sorted(leak_registry.secrets), texts) == []
    # The session operator of tests/operator (when the whole suite runs, before us): its
    # accounts' secrets are gone with their namespaces, but every harness secret carries the
    # literal "canary", which nothing else in a log does.
    session_logs = sorted(tmp_path_factory.getbasetemp().glob("operator*/operator.log"))
    for log in session_logs:
        assert "canary" not in log.read_text(errors="replace"), f"a credential in {log}"
    # The canary check is exact: the same sweep finds a value that is there.
    planted = {"planted": f"x {next(iter(leak_registry.secrets))} y"}
    assert leak_violations(leak_registry.secrets, planted)
