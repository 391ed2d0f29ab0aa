"""A minimal plain-ASGI layer: exact control over status, headers and bodies, and faults
(connection reset, hang) that a framework would hide."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

# A decoded JSON document: its shape is checked where it is used.
JSONValue = Any
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Exactly this value: the Tencent SDK detects error envelopes only with this content type.
JSON_CONTENT_TYPE = "application/json"


@dataclass
class Request:
    """What a cloud handler needs from an HTTP request."""

    method: str
    path: str  # percent-decoded
    raw_path: str  # as sent on the wire
    query_string: str
    headers: dict[str, str]  # lowercased names; the last value wins
    body: bytes
    local_port: int = 0

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query_string, keep_blank_values=True)

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def json(self) -> JSONValue:
        return json.loads(self.body) if self.body else {}


@dataclass
class Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = JSON_CONTENT_TYPE


def json_response(
    status: int, payload: JSONValue, headers: list[tuple[str, str]] | None = None
) -> Response:
    # orjson: a TI-ONE list page of 100 services is ~300 KB; the stdlib encoder alone took
    # ~5 ms of it, orjson ~0.3 ms (bench/bench_sim.py).
    body = orjson.dumps(payload)
    return Response(status=status, body=body, headers=list(headers or []))


class ResetConnection(Exception):
    """Raised by a handler to drop the TCP connection without answering."""


@dataclass
class Hang:
    """Returned by a handler to hold the connection open for `seconds` and then drop it."""

    seconds: float


Handler = Callable[[Request], Awaitable[Response | Hang]]


async def read_request(scope: Scope, receive: Receive) -> Request:
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        more = bool(message.get("more_body", False))
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    raw_path = scope.get("raw_path") or scope["path"].encode()
    server = scope.get("server") or ("", 0)
    return Request(
        method=scope["method"],
        path=scope["path"],
        raw_path=raw_path.decode("latin-1"),
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        body=b"".join(chunks),
        local_port=int(server[1] or 0),
    )


def _abort(send: Send) -> None:
    """Reset the connection under the ASGI server (uvicorn keeps the transport on `send`)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ResetConnection("cannot reach the transport to reset it")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def send_response(send: Send, response: Response) -> None:
    headers = [(b"content-type", response.content_type.encode())]
    headers.append((b"content-length", str(len(response.body)).encode()))
    headers.extend((k.lower().encode(), v.encode()) for k, v in response.headers)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


class ASGIApp:
    """Adapts a `Handler` to ASGI, and carries out resets and hangs."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = await read_request(scope, receive)
        try:
            outcome = await self._handler(request)
        except ResetConnection:
            _abort(send)
            return
        if isinstance(outcome, Hang):
            try:
                await asyncio.sleep(outcome.seconds)
            finally:
                _abort(send)
            return
        await send_response(send, outcome)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
