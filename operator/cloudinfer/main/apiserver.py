"""The HTTP session Kopf talks to the apiserver with: Kopf's own, with a bound on requests.

Kopf's default session opens a new TLS connection for every concurrent request. At start-up
it adds its finalizer to every InferenceService at once, so 1,000 resources meant ~1,700
connections at the same moment, each with asyncio's 256 KiB TLS read buffer (bench/README.md:
RSS of 700 MB), and far more mutating requests in flight than the apiserver admits by default
(`--max-mutating-requests-inflight=200`). Here a request waits for one of
`MAX_CONCURRENT_REQUESTS` slots, except for four kinds. Watches are long-lived (one per watched
resource and namespace), and a watch held back would stall the operator. Paginated listings
(Kopf's first one, the start-up inventory's) are what every daemon waits for: at N = 10,000,
queued behind the finalizer patches, they held every daemon for a minute. CloudAccount
requests are few, and every service waits for its account's observer: queued behind 1,000
finalizer patches, the observer started 9 s late. Event posts hang while etcd is down, one per
resource with a cloud write: holding slots, they stalled the watches' re-lists for a minute
after etcd came back. The operator's own calls (kube.py) use the same session, and an
account's Secret and CA ConfigMap reads do not queue either, for the same reason as its
CloudAccount.

Login needs no client library (client_library.py): in a pod, the ServiceAccount token; else
the kubeconfig, read by Kopf's own loader. Only a kubeconfig user that needs more (an exec
plugin, an auth provider, a token file, relative file paths) is logged in through the
`kubernetes` library.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import kopf
import orjson
import yaml
from aiohttp.client_middlewares import ClientHandlerType
from yarl import URL

from cloudinfer.api.common import GROUP, VERSION
from cloudinfer.main import client_library
from cloudinfer.reconcile.kube_access import ACCOUNTS_PLURAL

MAX_CONCURRENT_REQUESTS: Final = 16
"""Non-watch requests in flight at once (a response's body is read after its slot is freed)."""
SLOT_SECONDS: Final = 30.0
"""How long a request holding a slot may take to get its response headers."""


UNQUEUED_PLURALS: Final = frozenset({ACCOUNTS_PLURAL})
UNQUEUED_CORE_PLURALS: Final = frozenset({"events", "secrets", "configmaps"})
_API_PREFIX: Final = f"/apis/{GROUP}/{VERSION}/"
_CORE_PREFIX: Final = "/api/v1/namespaces/"
_LEASES_PREFIX: Final = "/apis/coordination.k8s.io/"
SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def _plural(path: str) -> str | None:
    """The resource of one of our API paths, e.g. `cloudaccounts`; None for other paths."""
    if not path.startswith(_API_PREFIX):
        return None
    parts = path.removeprefix(_API_PREFIX).split("/")
    return parts[2] if parts[0] == "namespaces" and len(parts) > 2 else parts[0]


def _core_plural(path: str) -> str | None:
    """The resource of a namespaced core path, e.g. `secrets`; None for other paths."""
    if not path.startswith(_CORE_PREFIX):
        return None
    parts = path.removeprefix(_CORE_PREFIX).split("/")
    return parts[1] if len(parts) > 1 else None


def waits_for_a_slot(url: URL) -> bool:
    """Watches, paginated listings, event posts, Leases, and CloudAccount, Secret and
    ConfigMap requests never queue; everything else does. A listing (Kopf's first one, and
    the start-up inventory's) queued behind 10,000 finalizer patches held every daemon for a
    minute."""
    if url.query.get("watch") == "true" or "limit" in url.query:
        return False
    if _core_plural(url.path) in UNQUEUED_CORE_PLURALS:
        return False
    if url.path.startswith(_LEASES_PREFIX):
        return False  # a shard's renewal must not queue behind service patches (sharding.py)
    return _plural(url.path) not in UNQUEUED_PLURALS


class RequestLimiter:
    """An aiohttp client middleware: requests wait for one of `limit` slots, except those
    `waits_for_a_slot` lets through."""

    def __init__(self, limit: int = MAX_CONCURRENT_REQUESTS) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self.in_flight = 0
        self.peak_in_flight = 0

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if not waits_for_a_slot(request.url):
            return await handler(request)
        async with self._slots:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                # Timed from the slot, not from the queue: under load thousands of status
                # patches wait their turn, and a total that counted the wait failed them all.
                async with asyncio.timeout(SLOT_SECONDS):
                    return await handler(request)
            finally:
                self.in_flight -= 1


def bounded_session(info: kopf.ConnectionInfo, limiter: RequestLimiter) -> aiohttp.ClientSession:
    """What Kopf builds from `info` (kopf/_cogs/clients/auth.py), plus the limiter."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
        middlewares=(limiter,),
    )


def decode(raw: bytes) -> object:
    """A JSON reply or watch line: orjson (2.7 times the standard decoder's speed on a
    2.5 KB InferenceService, which every status write's reply and watch event carries), the
    standard decoder for what orjson refuses (an integer beyond 64 bits). An empty body is
    None, as aiohttp's `json()` had it."""
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def path_segment(value: str) -> str:
    """`value` as one URL path segment: a name with "/" in it cannot climb the path."""
    return quote(value, safe="")


async def status_message(response: aiohttp.ClientResponse) -> str:
    """The `message` of a Kubernetes Status reply, or the reason phrase."""
    try:
        body = decode(await response.read())
    except (ValueError, aiohttp.ClientError):
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        return str(body.get("message") or response.reason or "")
    return str(response.reason or "")


class ApiserverConnection:
    """The session and server of the latest login, for the operator's own requests (kube.py).

    Kopf logs in again when the apiserver refuses its credentials, and closes the old session;
    `current()` then waits for the new one."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._server = ""
        self._changed = asyncio.Event()

    def replace(self, session: aiohttp.ClientSession, server: str) -> None:
        self._session, self._server = session, server.rstrip("/")
        self._changed.set()

    async def current(self) -> tuple[aiohttp.ClientSession, str]:
        while self._session is None or self._session.closed:
            self._changed.clear()
            await self._changed.wait()
        return self._session, self._server


CONNECTION: Final = ApiserverConnection()
"""The process's connection; the login handler below keeps it current."""


def in_cluster_login(
    settings: kopf.OperatorSettings, directory: Path = SERVICE_ACCOUNT_DIR
) -> kopf.ConnectionInfo | None:
    """The pod's ServiceAccount, at the address the kubelet gives every pod (as the client
    library does). None outside a pod. Kopf logs in again (re-reading the projected token,
    which the kubelet rotates) when the apiserver answers 401."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    token_file = directory / "token"
    if not host or not port or not token_file.exists():
        return None
    namespace_file, ca_file = directory / "namespace", directory / "ca.crt"
    return kopf.ConnectionInfo(
        server=f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}",
        ca_path=str(ca_file) if ca_file.exists() else None,
        scheme="Bearer",
        token=token_file.read_text().strip(),
        default_namespace=namespace_file.read_text().strip() if namespace_file.exists() else None,
        trust_env=settings.networking.trust_env,
    )


_PATH_KEYS: Final = ("certificate-authority", "client-certificate", "client-key")


def _named(entries: list[dict[str, Any]], name: Any, key: str) -> dict[str, Any]:
    found = next((e.get(key) for e in entries if e.get("name") == name), None)
    return found if isinstance(found, dict) else {}


def needs_client_library(kubeconfigs: list[dict[str, Any]]) -> str | None:
    """Why Kopf's own loader cannot log in as the current user of these kubeconfig files
    (merged the way kubectl and Kopf merge them: the first value wins), or None if it can:
    it reads tokens, basic auth, and certificates as data or absolute paths."""

    def entries(kind: str) -> list[dict[str, Any]]:
        return [e for k in kubeconfigs for e in k.get(kind) or []]

    name = next((k["current-context"] for k in kubeconfigs if k.get("current-context")), None)
    context = _named(entries("contexts"), name, "context")
    user = _named(entries("users"), context.get("user"), "user")
    cluster = _named(entries("clusters"), context.get("cluster"), "cluster")
    if "exec" in user:
        return "an exec credential plugin"
    if "auth-provider" in user:
        return "an auth provider"
    if "tokenFile" in user:
        return "a token file"
    for key in _PATH_KEYS:
        path = user.get(key) or cluster.get(key)
        if path and not os.path.isabs(os.path.expanduser(str(path))):
            return f"a relative {key} path"
    return None


def kubeconfig_login(
    logger: kopf.Logger, settings: kopf.OperatorSettings
) -> kopf.ConnectionInfo | None:
    """The kubeconfig's current context ($KUBECONFIG, else ~/.kube/config); None if there is
    no kubeconfig."""
    variable = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    paths = [os.path.expanduser(p) for p in variable.split(os.pathsep) if p]
    kubeconfigs = []
    for path in paths:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                kubeconfigs.append(yaml.safe_load(f) or {})
    if not kubeconfigs:
        return None
    reason = needs_client_library(kubeconfigs)
    if reason is None:
        info: kopf.ConnectionInfo | None = kopf.login_with_kubeconfig(settings=settings)
        return info
    logger.info(f"The kubeconfig's user needs {reason}: logging in through the kubernetes library.")
    client_library.let_in()
    info = kopf.login_via_client(logger=logger, settings=settings)
    return info


@kopf.on.login()
async def login(
    *, logger: kopf.Logger, settings: kopf.OperatorSettings, **_: Any
) -> kopf.AiohttpSession | None:
    """The ServiceAccount in a pod, else the kubeconfig; then a session with bounded
    concurrency, which the operator's own requests share. Kopf closes it when the
    credentials are replaced."""
    info = in_cluster_login(settings) or kubeconfig_login(logger, settings)
    if info is None:
        raise kopf.PermanentError("no credentials: not in a pod, and no kubeconfig ($KUBECONFIG)")
    session = bounded_session(info, RequestLimiter())
    CONNECTION.replace(session, info.server)
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
        aiohttp_session=session,
    )
