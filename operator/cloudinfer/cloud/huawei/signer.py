"""SDK-HMAC-SHA256 request signing for Huawei Cloud API Gateway (APIG), as an `httpx.Auth`.

The algorithm follows `huaweicloudsdkcore.signer.signer.Signer.sign` in huaweicloudsdkcore
3.1.219, with the `X-Project-Id`/`X-Security-Token` headers that `BasicCredentials.sign_request`
adds before signing (docs/clouds/huawei-modelarts.md#signing).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote, unquote

import httpx

from cloudinfer.cloud.clock import WallClock
from cloudinfer.cloud.credentials import HuaweiCredentials

ALGORITHM: Final = "SDK-HMAC-SHA256"
DATE_HEADER: Final = "X-Sdk-Date"
DATE_FORMAT: Final = "%Y%m%dT%H%M%SZ"
CONTENT_SHA256_HEADER: Final = "X-Sdk-Content-Sha256"
UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"
PROJECT_ID_HEADER: Final = "X-Project-Id"
SECURITY_TOKEN_HEADER: Final = "X-Security-Token"  # noqa: S105 (a header name)
EMPTY_BODY_SHA256: Final = hashlib.sha256(b"").hexdigest()

SIGNED_PAYLOAD_CONTENT_TYPES: Final = ("application/json", "application/bson")
"""Bodies of other content types are sent with an UNSIGNED-PAYLOAD hash
(docs/clouds/huawei-modelarts.md#signing, step 1)."""

UNSIGNED_HEADERS: Final = frozenset(
    {
        # Hop-by-hop headers (RFC 9110 §7.6.1) may be rewritten by proxies on the way.
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        # The SDK signs before its HTTP library adds Content-Length, so it never signs it.
        "content-length",
        "authorization",
    }
)
"""Headers we leave out of SignedHeaders. The SDK signs every header present at signing time
whose name has no `_` (docs/clouds/huawei-modelarts.md#signing, step 3); httpx adds transport
headers before the auth flow runs, and these must not be signed."""


class HuaweiSigner(httpx.Auth):
    """Sign requests with SDK-HMAC-SHA256.

    Adds `X-Project-Id`, `X-Security-Token` (temporary credentials only), `X-Sdk-Date` and
    `Authorization`. Every other header already on the request (except transport headers and
    names containing `_`) is signed, so set headers before the auth flow runs.
    """

    requires_request_body = True

    def __init__(self, credentials: HuaweiCredentials, *, clock: WallClock = time.time) -> None:
        self._credentials = credentials
        self._clock = clock

    def __repr__(self) -> str:
        return f"HuaweiSigner(ak={self._credentials.ak!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        """Add the date, project, token and Authorization headers to `request` in place."""
        credentials = self._credentials
        if PROJECT_ID_HEADER.lower() not in request.headers:
            request.headers[PROJECT_ID_HEADER] = credentials.project_id
        if credentials.security_token is not None:
            request.headers[SECURITY_TOKEN_HEADER] = credentials.security_token.reveal()
        content_type = request.headers.get("content-type")
        if content_type and not content_type.startswith(SIGNED_PAYLOAD_CONTENT_TYPES):
            request.headers[CONTENT_SHA256_HEADER] = UNSIGNED_PAYLOAD
        stamp = datetime.fromtimestamp(int(self._clock()), UTC).strftime(DATE_FORMAT)
        request.headers[DATE_HEADER] = stamp

        signed = signed_headers(request)
        canonical = canonical_request(request, signed)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        string_to_sign = f"{ALGORITHM}\n{stamp}\n{digest}"
        signature = hmac.new(
            credentials.sk.reveal().encode(), string_to_sign.encode(), hashlib.sha256
        ).hexdigest()
        request.headers["Authorization"] = (
            f"{ALGORITHM} Access={credentials.ak}, SignedHeaders={';'.join(signed)}, "
            f"Signature={signature}"
        )


def signed_headers(request: httpx.Request) -> list[str]:
    """Lower-cased, sorted names of the headers that will be signed."""
    names = {name.lower() for name in request.headers}
    return sorted(name for name in names if "_" not in name and name not in UNSIGNED_HEADERS)


def _encode(text: str) -> str:
    return quote(text, safe="~")


def canonical_request(request: httpx.Request, signed: list[str]) -> str:
    """The SDK-HMAC-SHA256 canonical request for `request` over the `signed` headers."""
    raw_path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
    segments = unquote(raw_path).split("/")
    uri = "/".join(_encode(segment) for segment in segments)
    if not uri.endswith("/"):
        # The SDK always signs a trailing slash although the URL sent has none
        # (docs/clouds/huawei-modelarts.md#signing).
        uri += "/"
    query = "&".join(
        f"{_encode(key)}={_encode(value)}"
        for key, value in sorted(request.url.params.multi_items())
    )
    headers = "".join(f"{name}:{_header_value(request, name)}\n" for name in signed)
    return (
        f"{request.method.upper()}\n{uri}\n{query}\n{headers}\n{';'.join(signed)}\n"
        f"{_payload_hash(request)}"
    )


def _header_value(request: httpx.Request, name: str) -> str:
    return ",".join(value.strip() for value in request.headers.get_list(name))


def _payload_hash(request: httpx.Request) -> str:
    if not request.content:
        return EMPTY_BODY_SHA256
    preset: str | None = request.headers.get(CONTENT_SHA256_HEADER)
    if preset:
        return preset
    return hashlib.sha256(request.content).hexdigest()
