"""Typed credentials for each cloud. Secrets are wrapped so that no repr or str reveals them.

Credentials are handed to a signer per client or per call; nothing here is global.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Final

REDACTED: Final = "**********"


class Secret:
    """A secret string. Only `reveal()` returns the value; repr, str and format do not."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value:
            raise ValueError("a secret must not be empty")
        self._value = value

    def reveal(self) -> str:
        """The secret itself. Call it only where the value is used, never to log it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, format_spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> str | tuple[object, ...]:
        # Pickling would copy the value into a byte stream that may be logged or stored.
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True, slots=True)
class TencentCredentials:
    """A Tencent Cloud API key pair (SecretId/SecretKey), optionally with an STS token."""

    secret_id: str
    secret_key: Secret
    token: Secret | None = None


@dataclass(frozen=True, slots=True)
class HuaweiCredentials:
    """A Huawei Cloud AK/SK pair, the project the calls act on, and an optional STS token.

    The project id is sent as `X-Project-Id`, as `BasicCredentials` in huaweicloudsdkcore does
    (docs/clouds/huawei-modelarts.md#signing).
    """

    ak: str
    sk: Secret
    project_id: str
    security_token: Secret | None = None


@dataclass(frozen=True, slots=True)
class BaiduCredentials:
    """A Baidu AI Cloud access key pair (AK/SK) for bce-auth-v1."""

    ak: str
    sk: Secret


Credentials = TencentCredentials | HuaweiCredentials | BaiduCredentials
