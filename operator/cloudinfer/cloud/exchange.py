"""One HTTP exchange with a cloud: send, map transport failures, and read the JSON body.

Nothing here knows a cloud's envelope; `<cloud>/envelope.py` builds on these pieces. Whatever
comes back (a timeout, a reset connection, an HTML page from a gateway), the caller gets a
`CloudError`, never a crash.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

import httpx
import orjson

from cloudinfer.cloud.errors import (
    CloudError,
    InvalidRequestError,
    MalformedResponseError,
    NoAnswerError,
    ThrottledError,
    TransientError,
    parse_retry_after,
)
from cloudinfer.cloud.redaction import scrub

EXCERPT_CHARS: Final = 120
"""How much of an unreadable body an error quotes: enough to recognise a gateway page."""

SCAN_BYTES: Final = 64 * 1024
"""How much of an unreadable body is scanned for echoed secrets before quoting it."""

JSONObject = dict[str, Any]

NOT_SENT: Final = (httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ConnectError, httpx.ProxyError)
"""Transport failures that happen before any byte of the request reaches the cloud; every
other one may come after the cloud got it."""

GATEWAY_GAVE_UP: Final = (HTTPStatus.BAD_GATEWAY, HTTPStatus.GATEWAY_TIMEOUT)
"""A gateway's own error page for these says the cloud behind it did not answer in time."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful call: the payload the cloud returned and its request id."""

    data: JSONObject
    request_id: str | None


async def send(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    auth: httpx.Auth,
    cloud: str,
    action: str,
) -> httpx.Response:
    """Send `request`, turning every transport failure into a `TransientError`: a
    `NoAnswerError` once the request may have reached the cloud. The response is read whole
    and freed by reference counting (`_unbind`)."""
    try:
        return _unbind(await client.send(request, auth=auth))
    except httpx.UnsupportedProtocol as exc:
        # A misconfigured endpoint (e.g. "ftp://..."): retrying cannot fix it.
        raise InvalidRequestError(
            f"unsupported URL scheme in {request.url.scheme!r}", cloud=cloud, action=action
        ) from exc
    except httpx.DecodingError as exc:
        raise MalformedResponseError(
            "the response body could not be decoded", cloud=cloud, action=action
        ) from exc
    except httpx.TransportError as exc:
        name = type(exc).__name__
        refused = certificate_error(exc)
        if refused is not None:
            # Retried like any transport error (a certificate may be fixed or rotated), but
            # named, so that a missing caBundleRef is obvious from the condition.
            raise TransientError(
                f"TLS certificate verification failed for {request.url.host}: {refused} ({name})",
                cloud=cloud,
                action=action,
            ) from exc
        if isinstance(exc, NOT_SENT):
            what = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
            raise TransientError(
                f"the connection {what} before the request was sent ({name})",
                cloud=cloud,
                action=action,
            ) from exc
        what = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
        raise NoAnswerError(
            f"the exchange {what} after the request was sent ({name}); the cloud may have "
            "carried it out",
            cloud=cloud,
            action=action,
        ) from exc


def certificate_error(exc: BaseException) -> str | None:
    """The verifier's reason if `exc` was caused by a rejected server certificate."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return str(current.verify_message or current.reason or "certificate rejected")
        current = current.__cause__ or current.__context__
    return None


def excerpt(response: httpx.Response) -> str:
    """A short, single-line quote of the body, for errors about bodies we cannot read.

    A misbehaving proxy may echo the request; any sensitive header value it echoes is cut out
    before the quote is truncated, so not even a prefix of a token survives.
    """
    text = response.content[:SCAN_BYTES].decode("utf-8", errors="replace")
    text = scrub(text, _request_of(response))
    return " ".join(text.split())[:EXCERPT_CHARS]


def _unbind(response: httpx.Response) -> httpx.Response:
    """The response with its body as a plain stream. httpx binds the response and its stream
    to each other, a reference cycle that only the cyclic collector frees, and a response
    that waited for its body has usually been promoted to the oldest generation by then: at
    10,000 services the list pages (~300 KB each) of responses already dropped made up a
    third of a sharded replica's peak RSS (bench/README.md, session 8). The body has been
    read and the stream closed; a plain stream of the same bytes keeps the response usable."""
    response.stream = httpx.ByteStream(response.content)
    return response


def _request_of(response: httpx.Response) -> httpx.Request | None:
    try:
        return response.request
    except RuntimeError:  # a Response built by hand has no request
        return None


def looks_like_html(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "")
    head = response.content[:64].lstrip().lower()
    return "html" in content_type or head.startswith((b"<!doctype", b"<html"))


class NonFiniteNumber(float):
    """NaN or an infinity, which JSON has not but the standard decoder reads: a float as
    before, of its own type so that no list item digest (cloud/listcache.py) takes it for the
    null orjson would encode it as."""


def json_object(response: httpx.Response) -> JSONObject | None:
    """The body as a JSON object, or None if it is not one."""
    try:
        # orjson: twice as fast on a list page of 300 KB (bench/bench_list_decode.py). What it
        # refuses and the standard decoder reads (NaN, a BOM, UTF-16, lone surrogates) is
        # read as before; an integer beyond 64 bits becomes a float (no field holds one).
        body = orjson.loads(response.content)
    except ValueError:
        try:
            body = json.loads(response.content, parse_constant=NonFiniteNumber)
        except ValueError:
            return None
    return body if isinstance(body, dict) else None


def unreadable(
    response: httpx.Response, *, cloud: str, action: str, request_id: str | None
) -> CloudError:
    """The error for a reply whose body is not the cloud's JSON envelope.

    Only the status can be trusted then: 429 is throttling, 5xx and 408 are transient, and
    anything else is a malformed response.
    """
    status = response.status_code
    kind = "an HTML page" if looks_like_html(response) else "a body that is not a JSON object"
    message = f"HTTP {status} with {kind}: {excerpt(response)!r}"
    details: dict[str, Any] = {
        "cloud": cloud,
        "action": action,
        "request_id": request_id,
        "http_status": status,
        "retry_after": parse_retry_after(response.headers.get("retry-after")),
    }
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return ThrottledError(message, **details)
    if status in GATEWAY_GAVE_UP:
        return NoAnswerError(message, **details)
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR or status == HTTPStatus.REQUEST_TIMEOUT:
        return TransientError(message, **details)
    return MalformedResponseError(message, **details)
