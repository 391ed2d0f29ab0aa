"""SDK-HMAC-SHA256 (Huawei Cloud API gateway), as huaweicloudsdkcore's Signer signs."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from cloudsim.signing import AuthError, AuthReason

ALGORITHM = "SDK-HMAC-SHA256"
# The gateway rejects an X-Sdk-Date more than 15 minutes from its clock (APIGW.0303).
MAX_SKEW_SECONDS = 15 * 60
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_AUTH_RE = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=(?P<ak>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


def canonical_uri(path: str) -> str:
    """Each segment of the decoded path re-encoded; a trailing slash is always added."""
    segments = unquote(path).split("/")
    uri = "/".join(quote(seg, safe="~") for seg in segments)
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(pairs))


def canonical_request(
    *,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: list[str],
    body: bytes,
) -> str:
    lines = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed_headers)
    payload = headers.get("x-sdk-content-sha256") or hashlib.sha256(body).hexdigest()
    return "\n".join(
        [
            method,
            canonical_uri(path),
            canonical_query(query),
            lines,
            ";".join(signed_headers),
            payload,
        ]
    )


def signature(secret_key: str, sdk_date: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    to_sign = f"{ALGORITHM}\n{sdk_date}\n{digest}"
    return hmac.new(secret_key.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def verify(
    *,
    method: str,
    raw_path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    secret_for: Callable[[str], str | None],
    max_skew: float = MAX_SKEW_SECONDS,
) -> str:
    """Check an SDK-HMAC-SHA256 signature; return the access key, or raise AuthError."""
    auth = headers.get("authorization", "")
    if not auth:
        raise AuthError(
            AuthReason.MISSING, "Incorrect IAM authentication information: no credentials."
        )
    match = _AUTH_RE.match(auth.strip())
    if match is None:
        raise AuthError(
            AuthReason.MALFORMED,
            "Incorrect IAM authentication information: bad Authorization header.",
        )
    raw_date = headers.get("x-sdk-date", "")
    try:
        stamp = datetime.strptime(raw_date, DATE_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise AuthError(
            AuthReason.MALFORMED, "Incorrect app authentication information: X-Sdk-Date is invalid."
        ) from None
    if abs(now - stamp) > max_skew:
        raise AuthError(
            AuthReason.EXPIRED,
            "Incorrect app authentication information: request expired (X-Sdk-Date is more than "
            "15 minutes from the server time).",
        )
    access_key = match["ak"]
    secret = secret_for(access_key)
    if secret is None:
        raise AuthError(
            AuthReason.UNKNOWN_KEY,
            f"Incorrect IAM authentication information: ak {access_key} not exist",
        )
    signed = match["signed"].split(";")
    canonical = canonical_request(
        method=method,
        path=raw_path,
        query=query,
        headers=headers,
        signed_headers=signed,
        body=body,
    )
    if not hmac.compare_digest(signature(secret, raw_date, canonical), match["sig"]):
        raise AuthError(
            AuthReason.BAD_SIGNATURE,
            "Incorrect IAM authentication information: verify aksk signature fail",
        )
    return access_key
