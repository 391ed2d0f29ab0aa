"""Tencent Cloud API signature v1 (HmacSHA1 / HmacSHA256), as the tencentcloud SDK signs it.

`ClientProfile(signMethod="HmacSHA256")` sends every parameter, the common ones included
(`Action`, `Version`, `Region`, `Timestamp`, `Nonce`, `SecretId`, `SignatureMethod`,
`Signature`, optionally `Token` and `Language`), form-encoded: in the query string for GET, in
an `application/x-www-form-urlencoded` body for POST. The signature is the base64 HMAC of
`METHOD + host + path + "?" + k=v&...` over the parameters sorted by name, values as sent and
not encoded (docs/clouds/tencent-tione.md#signing).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable

from cloudsim.signing import AuthError, AuthReason

METHODS: dict[str, str] = {"HmacSHA1": "sha1", "HmacSHA256": "sha256"}  # -> hashlib name
DEFAULT_METHOD = "HmacSHA1"  # the v1 default when SignatureMethod is absent
MAX_SKEW_SECONDS = 300  # [UNVERIFIED] for v1: assumed the same window as TC3


def string_to_sign(method: str, host: str, path: str, params: list[tuple[str, str]]) -> str:
    """The SDK replaces `_` by `.` in names before sorting (`_format_sign_string`)."""
    items = sorted((k.replace("_", "."), v) for k, v in params if k != "Signature")
    return f"{method}{host}{path}?" + "&".join(f"{k}={v}" for k, v in items)


def signature(secret_key: str, to_sign: str, sign_method: str) -> str:
    digest = hmac.new(secret_key.encode(), to_sign.encode(), METHODS[sign_method]).digest()
    return base64.b64encode(digest).decode()


def verify(
    *,
    method: str,
    host: str,
    path: str,
    params: list[tuple[str, str]],
    now: float,
    secret_for: Callable[[str], str | None],
    max_skew: float = MAX_SKEW_SECONDS,
) -> str:
    """Check a v1 signature; return the SecretId, or raise AuthError."""
    values = dict(params)
    sig, secret_id = values.get("Signature", ""), values.get("SecretId", "")
    if not sig or not secret_id:
        raise AuthError(AuthReason.MISSING, "The request has no SecretId or Signature.")
    sign_method = values.get("SignatureMethod", DEFAULT_METHOD)
    if sign_method not in METHODS:
        raise AuthError(AuthReason.MALFORMED, f"SignatureMethod {sign_method!r} is not supported.")
    raw_ts = values.get("Timestamp", "")
    if not raw_ts.isdigit():
        raise AuthError(AuthReason.MALFORMED, "Timestamp is missing or not a number.")
    secret_key = secret_for(secret_id)
    if secret_key is None:
        raise AuthError(AuthReason.UNKNOWN_KEY, f"The SecretId {secret_id} is not found.")
    if abs(now - int(raw_ts)) > max_skew:
        raise AuthError(
            AuthReason.EXPIRED,
            f"Signature expired. Timestamp {raw_ts}, server time {int(now)}, "
            f"allowed skew {int(max_skew)} seconds.",
        )
    expected = signature(secret_key, string_to_sign(method, host, path, params), sign_method)
    if not hmac.compare_digest(expected, sig):
        raise AuthError(
            AuthReason.BAD_SIGNATURE,
            "The provided credentials could not be validated. "
            "Please check your signature is correct.",
        )
    return secret_id
