"""bce-auth-v1 (Baidu AI Cloud), as baidubce's bce_v1_signer signs. The body is not signed."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

from cloudsim.signing import AuthError, AuthReason

PREFIX = "bce-auth-v1"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Headers signed when the Authorization names none (the bce client's default set).
DEFAULT_SIGNED_HEADERS = frozenset({"host", "content-md5", "content-length", "content-type"})
# A signature dated in the future is accepted up to this much ahead of the server clock.
# The reference documents only the expiration window; this tolerance is [UNVERIFIED].
FUTURE_TOLERANCE_SECONDS = 300


def normalize(value: str, *, keep_slash: bool = False) -> str:
    """RFC 3986: only A-Za-z0-9-._~ stay unencoded (and '/' when asked)."""
    return quote(value, safe="/~" if keep_slash else "~")


def canonical_query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(
        sorted(f"{normalize(k)}={normalize(v)}" for k, v in pairs if k.lower() != "authorization")
    )


def canonical_headers(headers: Mapping[str, str], signed: set[str]) -> str:
    names = signed or DEFAULT_SIGNED_HEADERS
    lines = []
    for name, raw in headers.items():
        value = raw.strip()
        if not value:
            continue
        if name.startswith("x-bce-") or name in names:
            lines.append(f"{normalize(name)}:{normalize(value)}")
    return "\n".join(sorted(lines))


def signing_key(secret_key: str, auth_prefix: str) -> str:
    return hmac.new(secret_key.encode(), auth_prefix.encode(), hashlib.sha256).hexdigest()


def signature(
    *,
    secret_key: str,
    auth_prefix: str,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    signed: set[str],
) -> str:
    to_sign = "\n".join([method, path, canonical_query(query), canonical_headers(headers, signed)])
    key = signing_key(secret_key, auth_prefix)
    return hmac.new(key.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def verify(
    *,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    now: float,
    secret_for: Callable[[str], str | None],
) -> str:
    """Check a bce-auth-v1 Authorization; return the access key, or raise AuthError.

    `headers` has lowercased names. The signedHeaders segment may come in any order (qianfan
    passes a Python set), so it is compared as a set.
    """
    auth = headers.get("authorization", "")
    if not auth:
        raise AuthError(AuthReason.MISSING, "The request has no Authorization header.")
    parts = auth.strip().split("/")
    if len(parts) != 6 or parts[0] != PREFIX:
        raise AuthError(AuthReason.MALFORMED, "The Authorization header is malformed.")
    _, access_key, stamp, expiration, signed_raw, sig = parts
    try:
        issued = datetime.strptime(stamp, DATE_FORMAT).replace(tzinfo=UTC).timestamp()
        window = int(expiration)
    except ValueError:
        raise AuthError(AuthReason.MALFORMED, "The Authorization header is malformed.") from None
    # The unknown key is reported before the time window (docs/clouds/baidu-qianfan.md#signing).
    secret = secret_for(access_key)
    if secret is None:
        raise AuthError(AuthReason.UNKNOWN_KEY, "NotFound, cause: Could not find credential.")
    if now > issued + window or issued - now > FUTURE_TOLERANCE_SECONDS:
        raise AuthError(
            AuthReason.EXPIRED, f"Request has expired. Timestamp date is {stamp}, window {window}s."
        )
    signed = {h.strip().lower() for h in signed_raw.split(";") if h.strip()}
    prefix = f"{PREFIX}/{access_key}/{stamp}/{expiration}"
    expected = signature(
        secret_key=secret,
        auth_prefix=prefix,
        method=method,
        path=path,
        query=query,
        headers=headers,
        signed=signed,
    )
    if not hmac.compare_digest(expected, sig):
        raise AuthError(
            AuthReason.BAD_SIGNATURE,
            "SignatureDoesNotMatch, cause: Fail to authn user: Signature does not match",
        )
    return access_key
