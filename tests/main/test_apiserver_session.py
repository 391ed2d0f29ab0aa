"""The apiserver session: non-watch requests are bounded, watches never wait.

Against a real aiohttp server on loopback that counts the requests it is serving at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import kopf
import pytest
from aiohttp import web
from yarl import URL

from cloudinfer.main.apiserver import RequestLimiter, bounded_session, waits_for_a_slot
from support import serve_on_loopback


@dataclass
class Server:
    url: str
    serving: int = 0
    peak: int = 0
    release_watches: asyncio.Event = field(default_factory=asyncio.Event)


@asynccontextmanager
async def apiserver() -> AsyncIterator[Server]:
    server = Server(url="")

    async def handle(request: web.Request) -> web.Response:
        server.serving += 1
        server.peak = max(server.peak, server.serving)
        try:
            if request.query.get("watch") == "true":
                await server.release_watches.wait()
            else:
                await asyncio.sleep(0.02)
            auth = request.headers.get("Authorization")
            return web.json_response({"kind": "Status", "auth": auth})
        finally:
            server.serving -= 1

    async with serve_on_loopback(handle) as server.url:
        try:
            yield server
        finally:
            server.release_watches.set()


def _info(server: Server) -> kopf.ConnectionInfo:
    return kopf.ConnectionInfo(server=server.url, scheme="Bearer", token="t0ken")


@pytest.mark.parametrize("limit", [1, 4, 32])
def test_concurrent_requests_never_exceed_the_limit(limit: int) -> None:
    async def scenario() -> tuple[int, int, list[str | None]]:
        async with apiserver() as server:
            limiter = RequestLimiter(limit)
            async with bounded_session(_info(server), limiter) as session:

                async def patch(i: int) -> str | None:
                    async with session.patch(f"{server.url}/apis/x/v1/things/t{i}") as resp:
                        resp.raise_for_status()
                        body = await resp.json()
                        return body["auth"]  # type: ignore[no-any-return]

                auths = await asyncio.gather(*(patch(i) for i in range(100)))
            return server.peak, limiter.peak_in_flight, auths

    server_peak, limiter_peak, auths = asyncio.run(scenario())
    assert server_peak <= limit
    assert limiter_peak == limit, "100 requests at once should fill every slot"
    assert set(auths) == {"Bearer t0ken"}, "the session must carry Kopf's credentials"


def test_watches_do_not_take_slots_and_never_wait() -> None:
    """With more open watches than slots, other requests still go through."""

    async def scenario() -> int:
        async with apiserver() as server:
            limiter = RequestLimiter(2)
            async with bounded_session(_info(server), limiter) as session:

                async def watch(i: int) -> None:
                    url = f"{server.url}/apis/x/v1/namespaces/n{i}/things"
                    async with session.get(url, params={"watch": "true"}) as resp:
                        await resp.read()

                watches = [asyncio.ensure_future(watch(i)) for i in range(5)]
                await asyncio.sleep(0.2)
                assert server.serving == 5, "every watch is open at once"
                async with asyncio.timeout(5):
                    async with session.get(f"{server.url}/apis/x/v1/things") as resp:
                        status = resp.status
                server.release_watches.set()
                await asyncio.gather(*watches)
            return status

    assert asyncio.run(scenario()) == 200


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RequestLimiter(0)


API = "https://k8s:6443/apis/cloudinfer.dev/v1alpha1"


@pytest.mark.parametrize(
    ("url", "waits"),
    [
        (f"{API}/namespaces/a/inferenceservices/s1", True),
        (f"{API}/namespaces/a/inferenceservices/s1/status", True),
        ("https://k8s:6443/api/v1/namespaces/a/events", False),
        ("https://k8s:6443/api/v1/namespaces/a/secrets/creds", False),  # an account's Secret
        ("https://k8s:6443/api/v1/namespaces/a/configmaps/ca", False),  # and its CA bundle
        ("https://k8s:6443/api/v1/namespaces/secrets", True),  # a namespace, not a Secret
        ("https://k8s:6443/api/v1/secrets", True),
        ("https://k8s:6443/api/v1/namespaces/a/pods", True),
        ("https://k8s:6443/api/v1/namespaces/a/cloudaccounts", True),  # not our group
        (f"{API}/namespaces/a/cloudaccounts/acct", False),
        (f"{API}/namespaces/a/cloudaccounts/acct/status", False),
        (f"{API}/cloudaccounts", False),
        (f"{API}/inferenceservices?watch=true&resourceVersion=1", False),
        (f"{API}/namespaces/a/inferenceservices?limit=500", False),  # a page of a listing
        (f"{API}/namespaces/a/inferenceservices", True),
        (f"{API}/namespaces/cloudaccounts/inferenceservices/x", True),  # a namespace's name
    ],
)
def test_which_requests_queue(url: str, waits: bool) -> None:
    assert waits_for_a_slot(URL(url)) is waits
