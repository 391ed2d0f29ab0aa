"""The operator's own apiserver calls (kube.py) and its login (apiserver.py), without the
Kubernetes client library.

The calls run against an aiohttp server on loopback that answers like the apiserver; the
end-to-end suites (tests/operator, tests/packaging/test_rbac.py) run them against the real
one. The login tests read real kubeconfig and ServiceAccount files from a temporary dir.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from aiohttp import web

from cloudinfer.main.apiserver import (
    ApiserverConnection,
    RequestLimiter,
    bounded_session,
    decode,
    in_cluster_login,
    kubeconfig_login,
    needs_client_library,
)
from cloudinfer.main.kube import KubeApiError, KubernetesAccess
from cloudinfer.reconcile.kube_access import SecretData
from support import serve_on_loopback

SECRET_VALUE = "c2VjcmV0LWNhbmFyeS0xMjM0"  # base64 of a canary


@dataclass
class FakeApiserver:
    url: str = ""
    requests: list[tuple[str, str, str | None, Any]] = field(default_factory=list)


@asynccontextmanager
async def apiserver() -> AsyncIterator[FakeApiserver]:
    server = FakeApiserver()

    fixed = {
        "/api/v1/namespaces/a/secrets/creds": {
            "kind": "Secret",
            "metadata": {"name": "creds", "resourceVersion": "4711"},
            "data": {"secretKey": SECRET_VALUE},
        },
        "/api/v1/namespaces/a/configmaps/ca": {"kind": "ConfigMap", "data": {"ca.crt": "PEM"}},
        "/api/v1/namespaces/a/configmaps/empty": {"kind": "ConfigMap"},
    }

    async def handle(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        server.requests.append((request.method, request.raw_path, request.content_type, body))
        path = request.path
        if path in fixed:
            return web.json_response(fixed[path])
        if path.startswith("/api/v1/namespaces/denied/"):
            status = {"kind": "Status", "code": 403, "message": 'secrets "x" is forbidden'}
            return web.json_response(status, status=403)
        if path.startswith("/api/v1/namespaces/html/"):
            return web.Response(text=f"<html>{SECRET_VALUE}</html>", status=500)
        if path.endswith("/status") and request.method == "PATCH" and "/gone/" not in path:
            return web.json_response({"kind": "InferenceService", "status": body["status"]})
        return web.json_response({"kind": "Status", "code": 404}, status=404)

    async with serve_on_loopback(handle) as server.url:
        yield server


def run_with_access(scenario: Any) -> Any:
    async def main() -> Any:
        async with apiserver() as server:
            info = kopf.ConnectionInfo(server=server.url, scheme="Bearer", token="t0ken")
            connection = ApiserverConnection()
            async with bounded_session(info, RequestLimiter()) as session:
                connection.replace(session, server.url + "/")
                return await scenario(KubernetesAccess(connection), server)

    return asyncio.run(main())


def test_reads_secret_data_and_configmap_keys() -> None:
    async def scenario(kube: KubernetesAccess, _: FakeApiserver) -> tuple[Any, ...]:
        return (
            await kube.read_secret("a", "creds"),
            await kube.read_secret("a", "missing"),
            await kube.read_configmap_key("a", "ca", "ca.crt"),
            await kube.read_configmap_key("a", "ca", "other"),
            await kube.read_configmap_key("a", "empty", "ca.crt"),
            await kube.read_configmap_key("a", "missing", "ca.crt"),
        )

    secret, missing, ca, other_key, empty, missing_cm = run_with_access(scenario)
    assert secret == SecretData({"secretKey": SECRET_VALUE}, "4711")
    assert SECRET_VALUE not in repr(secret)
    assert (missing, ca, other_key, empty, missing_cm) == (None, "PEM", None, None, None)


def test_patch_status_is_a_merge_patch_of_the_status_subresource() -> None:
    async def scenario(kube: KubernetesAccess, server: FakeApiserver) -> list[Any]:
        await kube.patch_status("inferenceservices", "a", "chat", {"observedGeneration": 2})
        await kube.patch_status("inferenceservices", "a", "gone", {"x": None})  # 404: no error
        return server.requests

    first, second = run_with_access(scenario)
    assert first == (
        "PATCH",
        "/apis/cloudinfer.dev/v1alpha1/namespaces/a/inferenceservices/chat/status",
        "application/merge-patch+json",
        {"status": {"observedGeneration": 2}},
    )
    assert second[3] == {"status": {"x": None}}, "null removes a field in a merge patch"


def test_refusals_name_the_call_and_status_message_but_never_the_body() -> None:
    async def scenario(kube: KubernetesAccess, _: FakeApiserver) -> list[KubeApiError]:
        errors = []
        for namespace in ("denied", "html"):
            try:
                await kube.read_secret(namespace, "x")
            except KubeApiError as err:
                errors.append(err)
        return errors

    forbidden, server_error = run_with_access(scenario)
    assert forbidden.status == 403
    assert str(forbidden) == (
        'GET /api/v1/namespaces/denied/secrets/x: HTTP 403: secrets "x" is forbidden'
    )
    assert server_error.status == 500
    assert SECRET_VALUE not in str(server_error)
    assert str(server_error).endswith("HTTP 500: Internal Server Error")


def test_names_with_odd_characters_stay_one_path_segment() -> None:
    async def scenario(kube: KubernetesAccess, server: FakeApiserver) -> str:
        await kube.read_secret("a", "x/../../y")
        return server.requests[0][1]

    assert run_with_access(scenario) == "/api/v1/namespaces/a/secrets/x%2F..%2F..%2Fy"


def test_calls_wait_for_a_login_and_move_to_the_next_session() -> None:
    """Before the first login, and after Kopf closes a replaced session, calls wait for the
    next session instead of failing."""

    async def main() -> tuple[bool, SecretData | None]:
        async with apiserver() as server:
            info = kopf.ConnectionInfo(server=server.url, token="t0ken")
            connection = ApiserverConnection()
            kube = KubernetesAccess(connection)
            waiting = asyncio.ensure_future(kube.read_secret("a", "creds"))
            await asyncio.sleep(0.1)
            waited = not waiting.done()
            old = bounded_session(info, RequestLimiter())
            connection.replace(old, server.url)
            assert await waiting == SecretData({"secretKey": SECRET_VALUE}, "4711")
            await old.close()
            waiting = asyncio.ensure_future(kube.read_secret("a", "creds"))
            await asyncio.sleep(0.1)
            waited = waited and not waiting.done()
            async with bounded_session(info, RequestLimiter()) as new:
                connection.replace(new, server.url)
                return waited, await waiting

    waited, data = asyncio.run(main())
    assert waited
    assert data == SecretData({"secretKey": SECRET_VALUE}, "4711")


# -- login -------------------------------------------------------------------------------------


def kubeconfig(user: dict[str, Any], cluster: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": "https://k:6443", **(cluster or {})}}],
        "users": [{"name": "u", "user": user}],
    }


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (kubeconfig({"token": "t"}), None),
        (kubeconfig({"client-certificate-data": "x", "client-key-data": "y"}), None),
        (kubeconfig({"client-certificate": "/abs/c.crt", "client-key": "/abs/c.key"}), None),
        (kubeconfig({"token": "t"}, {"certificate-authority": "/abs/ca.crt"}), None),
        (kubeconfig({"exec": {"command": "aws"}}), "an exec credential plugin"),
        (kubeconfig({"auth-provider": {"name": "oidc"}}), "an auth provider"),
        (kubeconfig({"tokenFile": "/abs/token"}), "a token file"),
        (kubeconfig({"token": "t"}, {"certificate-authority": "ca.crt"}), "a relative"),
        (kubeconfig({"client-certificate": "c.crt"}), "a relative client-certificate path"),
    ],
)
def test_which_kubeconfig_users_need_the_client_library(
    config: dict[str, Any], reason: str | None
) -> None:
    found = needs_client_library([config])
    assert found == reason or (reason is not None and found is not None and reason in found)


def test_kubeconfig_files_merge_first_value_wins() -> None:
    """KUBECONFIG=a:b: the context comes from the first file that sets it, the user from
    wherever it is defined first."""
    contexts_only = {
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }
    users = {"users": [{"name": "u", "user": {"exec": {"command": "gke-auth"}}}]}
    assert needs_client_library([contexts_only, users]) == "an exec credential plugin"
    shadowing = {"users": [{"name": "u", "user": {"token": "t"}}]}
    assert needs_client_library([contexts_only, shadowing, users]) is None


def test_in_cluster_login_reads_the_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = kopf.OperatorSettings()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert in_cluster_login(settings, tmp_path) is None, "no token: not in a pod"
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "namespace").write_text("ops")
    (tmp_path / "ca.crt").write_text("PEM")
    info = in_cluster_login(settings, tmp_path)
    assert info is not None
    assert (info.server, info.token, info.scheme) == ("https://10.96.0.1:443", "sa-token", "Bearer")
    assert (info.default_namespace, info.ca_path) == ("ops", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    info = in_cluster_login(settings, tmp_path)
    assert info is not None and info.server == "https://[fd00::1]:443"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert in_cluster_login(settings, tmp_path) is None


def test_the_operator_process_never_loads_the_client_library(tmp_path: Path) -> None:
    """The console script's import path (entry.py) keeps `kubernetes` out even though it is
    installed, and a kubeconfig that needs it still gets it."""
    probe = """
import sys
from cloudinfer.main import client_library
client_library.keep_out()
import cloudinfer.main.cli
loaded = [m for m in sys.modules if m.split(".")[0] in client_library.LIBRARIES
          and sys.modules[m] is not None]
print(len(loaded))
client_library.let_in()
import kubernetes.config
print(kubernetes.config.__name__)
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == ["0", "kubernetes.config"]


def test_kubeconfig_round_trip_through_kopfs_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token kubeconfig (what the tests and the demo run with) is read without the client
    library, server and token intact; no kubeconfig at all is no credentials."""
    logger = logging.getLogger("test")
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig({"token": "tok"})))
    monkeypatch.setenv("KUBECONFIG", str(path))
    info = kubeconfig_login(logger, kopf.OperatorSettings())
    assert info is not None
    assert (info.server, info.token) == ("https://k:6443", "tok")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    assert kubeconfig_login(logger, kopf.OperatorSettings()) is None


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        (b'{"kind": "Status", "code": 410}', {"kind": "Status", "code": 410}),
        (b'{"n": 18446744073709551616}', {"n": 18446744073709551616}),  # orjson refuses it
        (b'{"name": "caf\\u00e9"}', {"name": "café"}),
        (b"[]", []),
        (b"", None),
        (b" \n", None),
    ],
    ids=["object", "integer-beyond-64-bits", "escaped-unicode", "array", "empty", "blank"],
)
def test_replies_and_watch_lines_decode_as_the_standard_decoder_would(
    raw: bytes, decoded: object
) -> None:
    assert decode(raw) == decoded


def test_a_reply_that_is_not_json_raises() -> None:
    with pytest.raises(ValueError):
        decode(b"<html>gateway</html>")
