"""TC3-HMAC-SHA256 request signing for Tencent Cloud APIs, as an `httpx.Auth`.

The algorithm follows `AbstractClient._build_req_with_tc3_signature` and `_get_tc3_signature`
in tencentcloud-sdk-python-common 3.1.195 and `Sign.sign_tc3`
(docs/clouds/tencent-tione.md#signing).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Final

import httpx

from cloudinfer.cloud.clock import WallClock
from cloudinfer.cloud.credentials import TencentCredentials

ALGORITHM: Final = "TC3-HMAC-SHA256"
TIONE_SERVICE: Final = "tione"
"""The credential-scope service: the host prefix of `tione.tencentcloudapi.com`
(docs/clouds/tencent-tione.md#signing)."""
SIGNED_HEADERS: Final = "content-type;host"
"""Only these two are signed; X-TC-Action/-Region/-Version are not
(docs/clouds/tencent-tione.md#signing)."""
DEFAULT_CONTENT_TYPE: Final = "application/json"
"""JSON bodies require TC3 signing (docs/clouds/tencent-tione.md#endpoint)."""

TIMESTAMP_HEADER: Final = "X-TC-Timestamp"
TOKEN_HEADER: Final = "X-TC-Token"  # noqa: S105 (a header name)


def _hmac_sha256(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


class TencentSigner(httpx.Auth):
    """Sign requests with TC3-HMAC-SHA256.

    The caller sets `X-TC-Action`, `X-TC-Version` and `X-TC-Region`; the signer adds
    `X-TC-Timestamp`, `X-TC-Token` (temporary credentials only) and `Authorization`.
    It hashes the exact body bytes that go on the wire.
    """

    requires_request_body = True

    def __init__(
        self,
        credentials: TencentCredentials,
        *,
        service: str = TIONE_SERVICE,
        clock: WallClock = time.time,
    ) -> None:
        self._credentials = credentials
        self._service = service
        self._clock = clock

    def __repr__(self) -> str:
        return (
            f"TencentSigner(secret_id={self._credentials.secret_id!r}, service={self._service!r})"
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        """Add the timestamp, token and Authorization headers to `request` in place."""
        timestamp = int(self._clock())
        date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
        if "content-type" not in request.headers:
            request.headers["Content-Type"] = DEFAULT_CONTENT_TYPE
        request.headers[TIMESTAMP_HEADER] = str(timestamp)
        if self._credentials.token is not None:
            request.headers[TOKEN_HEADER] = self._credentials.token.reveal()
        string_to_sign = self.string_to_sign(request, timestamp=timestamp, date=date)
        signature = hmac.new(
            self._signing_key(date), string_to_sign.encode(), hashlib.sha256
        ).hexdigest()
        scope = f"{date}/{self._service}/tc3_request"
        request.headers["Authorization"] = (
            f"{ALGORITHM} Credential={self._credentials.secret_id}/{scope}, "
            f"SignedHeaders={SIGNED_HEADERS}, Signature={signature}"
        )

    def string_to_sign(self, request: httpx.Request, *, timestamp: int, date: str) -> str:
        """The TC3 string to sign for `request` at `timestamp` (exposed for diagnostics)."""
        canonical = canonical_request(request)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        return f"{ALGORITHM}\n{timestamp}\n{date}/{self._service}/tc3_request\n{digest}"

    def _signing_key(self, date: str) -> bytes:
        secret = self._credentials.secret_key.reveal()
        k_date = _hmac_sha256(f"TC3{secret}".encode(), date)
        k_service = _hmac_sha256(k_date, self._service)
        return _hmac_sha256(k_service, "tc3_request")


def canonical_request(request: httpx.Request) -> str:
    """The TC3 canonical request.

    For GET the URL query is the canonical query and the payload is empty; for every other
    method the canonical query is empty and the payload is the body
    (docs/clouds/tencent-tione.md#signing).
    """
    method = request.method.upper()
    if method == "GET":
        query = request.url.query.decode("ascii")
        payload = b""
    else:
        query = ""
        payload = request.content
    headers = f"content-type:{request.headers['content-type']}\nhost:{request.headers['host']}\n"
    path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
    payload_hash = hashlib.sha256(payload).hexdigest()
    return f"{method}\n{path}\n{query}\n{headers}\n{SIGNED_HEADERS}\n{payload_hash}"
