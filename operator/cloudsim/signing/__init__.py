"""Server-side verification of the three clouds' request signatures.

Written from the SDK algorithms described in docs/clouds/ (each page's #signing section,
e.g. docs/clouds/tencent-tione.md#signing); each module is tested against
tests/data/signing-vectors.json and against the official SDKs as clients.
"""

from __future__ import annotations

from enum import StrEnum


class AuthReason(StrEnum):
    MISSING = "missing"  # no credentials at all
    MALFORMED = "malformed"  # an Authorization header we cannot parse
    UNKNOWN_KEY = "unknown_key"  # access key / SecretId not registered
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"  # the request time is outside the allowed window


class AuthError(Exception):
    """A request failed authentication; each cloud maps `reason` to its own error code."""

    def __init__(self, reason: AuthReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
