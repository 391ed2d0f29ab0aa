"""TC3-HMAC-SHA256 (Tencent Cloud API 3.0), as the tencentcloud SDK signs."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from cloudsim.signing import AuthError, AuthReason

ALGORITHM = "TC3-HMAC-SHA256"
# Tencent rejects an X-TC-Timestamp more than 5 minutes off (AuthFailure.SignatureExpire).
MAX_SKEW_SECONDS = 300
# `ClientProfile.unsignedPayload`: the header names it, and the literal's hash replaces the body's.
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_AUTH_RE = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/"
    r"(?P<service>[^/]+)/tc3_request,"
    r"\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def canonical_request(
    method: str,
    canonical_query: str,
    headers: Mapping[str, str],
    signed_headers: list[str],
    body: bytes,
) -> str:
    """`headers` has lowercased names; header names and values are lowercased and stripped.

    For GET the caller passes the query string and an empty body; with
    `X-TC-Content-SHA256: UNSIGNED-PAYLOAD` the payload is that literal, not the body.
    """
    lines = "".join(f"{name}:{headers.get(name, '').strip().lower()}\n" for name in signed_headers)
    unsigned = headers.get("x-tc-content-sha256", "").strip() == UNSIGNED_PAYLOAD
    payload = hashlib.sha256(UNSIGNED_PAYLOAD.encode() if unsigned else body).hexdigest()
    return f"{method}\n/\n{canonical_query}\n{lines}\n{';'.join(signed_headers)}\n{payload}"


def string_to_sign(timestamp: int, service: str, canonical: str) -> str:
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{digest}"


def signature(secret_key: str, date: str, service: str, to_sign: str) -> str:
    k_date = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    k_service = _hmac(k_date, service)
    k_signing = _hmac(k_service, "tc3_request")
    return hmac.new(k_signing, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def verify(
    *,
    method: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    service: str,
    now: float,
    secret_for: Callable[[str], str | None],
    max_skew: float = MAX_SKEW_SECONDS,
) -> str:
    """Check a request's TC3 signature; return the SecretId, or raise AuthError."""
    auth = headers.get("authorization", "")
    if not auth:
        raise AuthError(AuthReason.MISSING, "The request has no Authorization header.")
    match = _AUTH_RE.match(auth.strip())
    if match is None:
        raise AuthError(AuthReason.MALFORMED, "The Authorization header is malformed.")
    raw_ts = headers.get("x-tc-timestamp", "")
    if not raw_ts.isdigit():
        raise AuthError(AuthReason.MALFORMED, "X-TC-Timestamp is missing or not a number.")
    timestamp = int(raw_ts)
    # The unknown key is reported before the time window (docs/clouds/tencent-tione.md#signing).
    secret_id = match["id"]
    secret_key = secret_for(secret_id)
    if secret_key is None:
        raise AuthError(AuthReason.UNKNOWN_KEY, f"The SecretId {secret_id} is not found.")
    if abs(now - timestamp) > max_skew:
        raise AuthError(
            AuthReason.EXPIRED,
            f"Signature expired. Timestamp {timestamp}, server time {int(now)}, "
            f"allowed skew {int(max_skew)} seconds.",
        )
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    if match["date"] != date or match["service"] != service:
        raise AuthError(
            AuthReason.BAD_SIGNATURE, "The credential scope does not match the request."
        )
    signed = match["signed"].split(";")
    if "content-type" not in signed or "host" not in signed:
        raise AuthError(
            AuthReason.BAD_SIGNATURE, "SignedHeaders must include content-type and host."
        )
    canonical_query = query_string if method == "GET" else ""
    canonical = canonical_request(method, canonical_query, headers, signed, body)
    expected = signature(secret_key, date, service, string_to_sign(timestamp, service, canonical))
    if not hmac.compare_digest(expected, match["sig"]):
        raise AuthError(
            AuthReason.BAD_SIGNATURE,
            "The provided credentials could not be validated. "
            "Please check your signature is correct.",
        )
    return secret_id
