"""The HTTP session Kopf talks to the apiserver with: Kopf's own, with a bound on requests.

Kopf's default session opens a new TLS connection for every concurrent request. At start-up
it adds its finalizer to every InferenceService at once, so 1,000 resources meant ~1,700
connections at the same moment, each with asyncio's 256 KiB TLS read buffer (bench/README.md:
RSS of 700 MB), and far more mutating requests in flight than the apiserver admits by default
(`--max-mutating-requests-inflight=200`). Here a request waits for one of
`MAX_CONCURRENT_REQUESTS` slots, except for three kinds. Watches are long-lived (one per watched
resource and namespace), and a watch held back would stall the operator. CloudAccount
requests are few, and every service waits for its account's observer: queued behind 1,000
finalizer patches, the observer started 9 s late. Event posts hang while etcd is down, one per
resource with a cloud write: holding slots, they stalled the watches' re-lists for a minute
after etcd came back.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import aiohttp
import kopf
from aiohttp.client_middlewares import ClientHandlerType
from yarl import URL

from cloudinfer.api.common import GROUP, VERSION
from cloudinfer.reconcile.runtime import ACCOUNTS_PLURAL

MAX_CONCURRENT_REQUESTS: Final = 16
"""Non-watch requests in flight at once (a response's body is read after its slot is freed)."""


UNQUEUED_PLURALS: Final = frozenset({ACCOUNTS_PLURAL})
_API_PREFIX: Final = f"/apis/{GROUP}/{VERSION}/"


def _plural(path: str) -> str | None:
    """The resource of one of our API paths, e.g. `cloudaccounts`; None for other paths."""
    if not path.startswith(_API_PREFIX):
        return None
    parts = path.removeprefix(_API_PREFIX).split("/")
    return parts[2] if parts[0] == "namespaces" and len(parts) > 2 else parts[0]


def waits_for_a_slot(url: URL) -> bool:
    """Watches, event posts and CloudAccount requests never queue; everything else does."""
    if url.query.get("watch") == "true" or url.path.endswith("/events"):
        return False
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


@kopf.on.login()
async def login(
    *, logger: kopf.Logger, settings: kopf.OperatorSettings, **_: Any
) -> kopf.AiohttpSession | None:
    """Kopf's own login (the client library's config: in-cluster, else the kubeconfig), then
    a session with bounded concurrency. Kopf closes it when the credentials are replaced."""
    info = kopf.login_via_client(logger=logger, settings=settings)
    if info is None:
        return None
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
        aiohttp_session=bounded_session(info, RequestLimiter()),
    )
