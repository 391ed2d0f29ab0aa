"""SDK-HMAC-SHA256 (Huawei Cloud API gateway), as huaweicloudsdkcore's Signer signs."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from cloudsim.signing import AuthError, AuthReason

ALGORITHM = "SDK-HMAC-SHA256"
# The gateway rejects an X-Sdk-Date more than 15 minutes from its clock (APIGW.0303).
MAX_SKEW_SECONDS = 15 * 60
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Algorithm:
    """One of `HttpConfig.signing_algorithm`'s HMAC choices: its hash and its payload header."""

    name: str
    hash_name: str
    content_header: str


# The HMAC algorithms `huaweicloudsdkcore` offers (signer/signer.py: Signer, SM3Signer).
ALGORITHMS = {
    a.name: a
    for a in (
        Algorithm(ALGORITHM, "sha256", "x-sdk-content-sha256"),
        Algorithm("SDK-HMAC-SM3", "sm3", "x-sdk-content-sm3"),
    )
}
# The SDK's other choices sign with a key pair derived from the AK/SK, or with a key derived
# per region and service; the simulator refuses them by name (docs/simulators.md).
NOT_SIMULATED = frozenset({"SDK-ECDSA-P256-SHA256", "SDK-SM2-SM3", "V11-HMAC-SHA256"})

_AUTH_RE = re.compile(
    r"^(?P<alg>SDK-HMAC-SHA256|SDK-HMAC-SM3)\s+Access=(?P<ak>[^,\s]+),"
    r"\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


def _hash_hex(algorithm: Algorithm, data: bytes) -> str:
    return hashlib.new(algorithm.hash_name, data).hexdigest()


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
    algorithm: Algorithm = ALGORITHMS[ALGORITHM],
) -> str:
    lines = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed_headers)
    # As Signer._process_hash_payload: an empty body hashes as empty whatever the headers say
    # (an UNSIGNED-PAYLOAD header comes with any non-JSON Content-Type, even on a GET).
    payload = _hash_hex(algorithm, b"")
    if body:
        payload = headers.get(algorithm.content_header) or _hash_hex(algorithm, body)
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


def signature(
    secret_key: str, sdk_date: str, canonical: str, algorithm: Algorithm = ALGORITHMS[ALGORITHM]
) -> str:
    to_sign = f"{algorithm.name}\n{sdk_date}\n{_hash_hex(algorithm, canonical.encode('utf-8'))}"
    key = secret_key.encode("utf-8")
    return hmac.new(key, to_sign.encode("utf-8"), algorithm.hash_name).hexdigest()


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
    named = auth.strip().split(" ", 1)[0]
    if named in NOT_SIMULATED:
        raise AuthError(
            AuthReason.MALFORMED,
            f"Incorrect IAM authentication information: the simulator does not verify {named}.",
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
    algorithm = ALGORITHMS[match["alg"]]
    canonical = canonical_request(
        method=method,
        path=raw_path,
        query=query,
        headers=headers,
        signed_headers=signed,
        body=body,
        algorithm=algorithm,
    )
    if not hmac.compare_digest(signature(secret, raw_date, canonical, algorithm), match["sig"]):
        raise AuthError(
            AuthReason.BAD_SIGNATURE,
            "Incorrect IAM authentication information: verify aksk signature fail",
        )
    return access_key
