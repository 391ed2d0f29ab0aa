"""The client providers receive: TLS verification always on, a custom CA honoured, timeouts set,
redirects never followed."""

from __future__ import annotations

import asyncio
import gc
import ssl
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from cloudinfer.cloud import exchange
from cloudinfer.cloud.errors import TransientError
from cloudinfer.cloud.http_client import DEFAULT_TIMEOUT, new_async_client
from controlplane.certs import TinyCA

REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@asynccontextmanager
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """An HTTPS server on loopback with a certificate from a fresh CA; yields (port, CA file)."""
    ca = TinyCA("cloudinfer-test-ca")
    serving = ca.issue_serving(["127.0.0.1"])
    (tmp_path / "ca.pem").write_bytes(ca.keypair.cert_pem)
    (tmp_path / "tls.crt").write_bytes(serving.cert_pem)
    (tmp_path / "tls.key").write_bytes(serving.key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(REPLY)
            await writer.drain()
        except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, tmp_path / "ca.pem"
    finally:
        server.close()


def _run(tmp_path: Path, body: Callable[[int, Path], Awaitable[None]]) -> None:
    async def main() -> None:
        async with tls_server(tmp_path) as (port, ca_file):
            await body(port, ca_file)

    asyncio.run(main())


def test_custom_ca_is_trusted(tmp_path: Path) -> None:
    async def body(port: int, ca_file: Path) -> None:
        async with new_async_client(ca_bundle=ca_file, trust_env=False) as client:
            response = await client.get(f"https://127.0.0.1:{port}/")
            assert response.json() == {}

    _run(tmp_path, body)


def test_unknown_ca_is_refused_as_a_transient_error(tmp_path: Path) -> None:
    """Verification is on by default: a certificate from an unknown CA fails the call."""

    async def body(port: int, ca_file: Path) -> None:
        async with new_async_client(trust_env=False) as client:
            request = client.build_request("GET", f"https://127.0.0.1:{port}/")
            with pytest.raises(TransientError, match="ConnectError"):
                await exchange.send(client, request, auth=httpx.Auth(), cloud="c", action="A")

    _run(tmp_path, body)


def test_timeouts_are_set_and_redirects_are_not_followed() -> None:
    def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "https://elsewhere.example/"})

    async def main() -> None:
        client = new_async_client(transport=httpx.MockTransport(redirect))
        async with client:
            assert client.timeout == DEFAULT_TIMEOUT
            assert all(
                value is not None
                for value in (
                    client.timeout.connect,
                    client.timeout.read,
                    client.timeout.write,
                    client.timeout.pool,
                )
            )
            response = await client.get("https://tione.tencentcloudapi.com/")
            assert response.status_code == 302

    asyncio.run(main())


def test_httpcore_finds_asyncio_through_sniffio_and_requests_go_out(tmp_path: Path) -> None:
    """sniffio is a dependency: without it httpcore searched sys.path for it on every request
    (8 % of a steady list's CPU). Its detection must say asyncio."""
    import sniffio  # noqa: PLC0415 - the dependency itself is what is checked
    from httpcore._synchronization import current_async_library  # noqa: PLC0415

    async def body(port: int, ca_file: Path) -> None:
        assert sniffio.current_async_library() == "asyncio"
        assert current_async_library() == "asyncio"
        async with new_async_client(ca_bundle=ca_file) as client:
            assert (await client.get(f"https://127.0.0.1:{port}/")).status_code == 200

    _run(tmp_path, body)


def test_a_response_is_freed_by_reference_counting(tmp_path: Path) -> None:
    """httpx binds a response and its stream to each other; only the cyclic collector freed
    that pair, so list pages of responses already dropped piled up until a full collection
    (a third of a sharded replica's peak RSS). `exchange.send` returns the response unbound,
    with its body and status intact."""

    async def body(port: int, ca_file: Path) -> None:
        url = f"https://127.0.0.1:{port}/"
        async with new_async_client(ca_bundle=ca_file) as client:  # the server answers once
            bound = await client.send(client.build_request("GET", url))
        async with new_async_client(ca_bundle=ca_file) as client:
            response = await exchange.send(
                client, client.build_request("GET", url), auth=httpx.Auth(), cloud="tencent",
                action="Describe",
            )  # fmt: skip
        assert (response.status_code, response.content, response.json()) == (200, b"{}", {})
        unbound_ref, bound_ref = weakref.ref(response), weakref.ref(bound)
        gc.disable()
        try:
            del response, bound
            assert unbound_ref() is None
            assert bound_ref() is not None  # httpx's own: the cycle this guards against
        finally:
            gc.enable()

    _run(tmp_path, body)
