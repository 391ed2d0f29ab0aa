"""The `httpx.AsyncClient` that providers receive: TLS verified, timeouts set, no redirects."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Final

import httpx

DEFAULT_TIMEOUT: Final = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=10.0)
"""Connect fast or fail; allow 30 s for a reply (list pages of 100 full service objects)."""

DEFAULT_LIMITS: Final = httpx.Limits(max_connections=50, max_keepalive_connections=20)
"""Connection pool bounds. Rate budgets, not the pool, decide how many calls are in flight;
this only caps sockets."""


def tls_context(ca_bundle: Path | None = None) -> ssl.SSLContext:
    """A verifying TLS context: the public roots, plus `ca_bundle` (PEM) when given.

    There is deliberately no way to turn verification off.
    """
    context = httpx.create_ssl_context(verify=True)
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


def new_async_client(
    *,
    ca_bundle: Path | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    limits: httpx.Limits = DEFAULT_LIMITS,
    trust_env: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
    headers: Mapping[str, str] | None = None,
    before_send: Callable[[httpx.Request], Awaitable[None]] | None = None,
) -> httpx.AsyncClient:
    """The client for cloud calls.

    Redirects are not followed: a signed request must reach the host it was signed for.
    `trust_env` honours HTTPS_PROXY/NO_PROXY; `transport` lets tests plug in an ASGI simulator.
    `before_send` runs after signing, immediately before each request is sent; what it
    raises, the caller gets (the sharding fence).
    """
    return httpx.AsyncClient(
        verify=tls_context(ca_bundle),
        timeout=timeout,
        limits=limits,
        trust_env=trust_env,
        follow_redirects=False,
        transport=transport,
        headers=headers,
        event_hooks={"request": [before_send]} if before_send is not None else None,
    )
