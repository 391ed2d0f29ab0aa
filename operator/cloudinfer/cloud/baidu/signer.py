"""bce-auth-v1 request signing for Baidu AI Cloud (Qianfan console API), as an `httpx.Auth`.

The algorithm follows `baidubce.auth.bce_v1_signer.sign` in bce-python-sdk 0.9.79, as qianfan
0.4.12.3 calls it from `iam_sign` (docs/clouds/baidu-qianfan.md#signing). The body is not signed.
"""

from __future__ import annotations

import hashlib
import hmac
import string
import time
from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from typing import Final

import httpx

from cloudinfer.cloud.clock import WallClock
from cloudinfer.cloud.credentials import BaiduCredentials

AUTH_VERSION: Final = "bce-auth-v1"
DATE_HEADER: Final = "x-bce-date"
DATE_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
BCE_HEADER_PREFIX: Final = "x-bce-"
"""Headers with this prefix are always canonicalised, listed or not (`_get_canonical_headers`)."""

QIANFAN_EXPIRATION_SECONDS: Final = 300
"""Qianfan's `IAM_SIGN_EXPIRATION_SEC` default; the bce client's own default is 1800
(docs/clouds/baidu-qianfan.md#signing)."""

DEFAULT_HEADERS_TO_SIGN: Final = ("content-type", "host", DATE_HEADER)
"""What we sign by default: the headers that identify the target and the time. The body is
never signed by bce-auth-v1, so signing content-length would add nothing."""

_UNRESERVED: Final = frozenset((string.ascii_letters + string.digits + ".~-_").encode())


def normalize(text: str, *, encode_slash: bool = True) -> str:
    """RFC 3986 percent-encoding of UTF-8 bytes, leaving only `A-Za-z0-9-._~` as is.

    Mirrors `baidubce.utils.normalize_string` (upper-case hex escapes).
    """
    out: list[str] = []
    for byte in text.encode():
        if byte in _UNRESERVED or (byte == ord("/") and not encode_slash):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


class BaiduSigner(httpx.Auth):
    """Sign requests with bce-auth-v1.

    Adds `x-bce-date` and `Authorization`. The headers named in `headers_to_sign` (and every
    `x-bce-*` header) are signed; their order in the Authorization header is the order given.
    """

    requires_request_body = False

    def __init__(
        self,
        credentials: BaiduCredentials,
        *,
        expiration_seconds: int = QIANFAN_EXPIRATION_SECONDS,
        headers_to_sign: Sequence[str] = DEFAULT_HEADERS_TO_SIGN,
        clock: WallClock = time.time,
    ) -> None:
        self._credentials = credentials
        self._expiration_seconds = expiration_seconds
        self._headers_to_sign = tuple(name.lower() for name in headers_to_sign)
        self._clock = clock

    def __repr__(self) -> str:
        return f"BaiduSigner(ak={self._credentials.ak!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        """Add the `x-bce-date` and Authorization headers to `request` in place."""
        stamp = datetime.fromtimestamp(int(self._clock()), UTC).strftime(DATE_FORMAT)
        request.headers[DATE_HEADER] = stamp
        prefix = f"{AUTH_VERSION}/{self._credentials.ak}/{stamp}/{self._expiration_seconds}"
        signing_key = hmac.new(
            self._credentials.sk.reveal().encode(), prefix.encode(), hashlib.sha256
        ).hexdigest()
        string_to_sign = self.string_to_sign(request)
        signature = hmac.new(
            signing_key.encode(), string_to_sign.encode(), hashlib.sha256
        ).hexdigest()
        request.headers["Authorization"] = f"{prefix}/{';'.join(self._headers_to_sign)}/{signature}"

    def string_to_sign(self, request: httpx.Request) -> str:
        """METHOD, canonical URI, canonical query and canonical headers, one per line."""
        path = request.url.path
        query = "&".join(
            sorted(
                f"{normalize(key)}={normalize(value)}"
                for key, value in request.url.params.multi_items()
            )
        )
        return "\n".join(
            (
                request.method.upper(),
                normalize(path, encode_slash=False),
                query,
                self._canonical_headers(request),
            )
        )

    def _canonical_headers(self, request: httpx.Request) -> str:
        lines = []
        for name, value in request.headers.multi_items():
            lowered = name.strip().lower()
            stripped = value.strip()
            # Headers with empty values are skipped, as in `_get_canonical_headers`.
            if not stripped:
                continue
            if lowered.startswith(BCE_HEADER_PREFIX) or lowered in self._headers_to_sign:
                lines.append(f"{normalize(lowered)}:{normalize(stripped)}")
        return "\n".join(sorted(lines))
