"""Keeping secrets out of logs and errors.

Credentials redact themselves (`credentials.Secret`). What remains are the headers a signed
request carries: the Authorization value and the session tokens. httpx masks only
`Authorization` in `repr(headers)`, so log requests through `describe_request`.
"""

from __future__ import annotations

from typing import Final

import httpx

from cloudinfer.cloud.credentials import REDACTED

SENSITIVE_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-tc-token",  # Tencent STS token (docs/clouds/tencent-tione.md#endpoint)
        "x-security-token",  # Huawei STS token (docs/clouds/huawei-modelarts.md#signing)
        # Huawei IAM token, the seed's auth scheme (docs/clouds/huawei-modelarts.md#signing)
        "x-auth-token",
    }
)


def redacted_headers(headers: httpx.Headers) -> dict[str, str]:
    """The headers as a dict, with every sensitive value replaced."""
    return {
        name: REDACTED if name.lower() in SENSITIVE_HEADERS else value
        for name, value in headers.multi_items()
    }


def describe_request(request: httpx.Request) -> str:
    """A one-line description of `request` that is safe to log."""
    return f"{request.method} {request.url} headers={redacted_headers(request.headers)}"


def sensitive_values(request: httpx.Request) -> list[str]:
    """The values of `request`'s sensitive headers, longest first."""
    values = [
        value
        for name, value in request.headers.multi_items()
        if name.lower() in SENSITIVE_HEADERS and value
    ]
    return sorted(values, key=len, reverse=True)


def scrub(text: str, request: httpx.Request | None) -> str:
    """`text` with any sensitive header value of `request` cut out (for echoed bodies)."""
    if request is None:
        return text
    for value in sensitive_values(request):
        text = text.replace(value, REDACTED)
    return text
