"""Reading Qianfan console v2 replies: `{"requestId", "result"}` on success, and
`{"requestId", "code", "message"}` (v2) or `{"error_code", "error_msg"}` (v1) on failure.

The SDK ignores a `{code, message}` body sent with HTTP 200 (docs/clouds/baidu-qianfan.md#errors);
we do not. Auth failures at the gateway may come only as
`X-Bce-Error-Code`/`X-Bce-Error-Message` headers.
"""

from __future__ import annotations

from typing import Any, Final

import httpx

from cloudinfer.cloud.baidu.errors import BAIDU_ERRORS, CREDENTIAL_NOT_FOUND
from cloudinfer.cloud.errors import (
    AuthError,
    CloudError,
    class_for_status,
    lookup,
    parse_retry_after,
)
from cloudinfer.cloud.exchange import Reply, json_object, unreadable

CLOUD: Final = "baidu"
REQUEST_ID_HEADER: Final = "x-bce-request-id"
"""BCE's request-id header [INFERRED from the BCE common conventions]; the body's `requestId`
wins when both are present."""
ERROR_CODE_HEADER: Final = "X-Bce-Error-Code"
ERROR_MESSAGE_HEADER: Final = "X-Bce-Error-Message"


def unwrap(response: httpx.Response, *, action: str) -> Reply:
    """The whole body of a successful call (`result` inside); otherwise raise the error."""
    body = json_object(response)
    request_id = _request_id(response, body)
    code, message = _code_and_message(response, body)
    if code is None and (body is None or response.is_success):
        if body is not None:
            return Reply(data=body, request_id=request_id)
        raise unreadable(response, cloud=CLOUD, action=action, request_id=request_id)
    raise _classify(code, message, response.status_code)(
        message or f"HTTP {response.status_code}",
        cloud=CLOUD,
        action=action,
        code=code,
        request_id=request_id,
        http_status=response.status_code,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def _classify(code: str | None, message: str | None, status: int) -> type[CloudError]:
    if message and CREDENTIAL_NOT_FOUND in message:
        return AuthError
    return (lookup(BAIDU_ERRORS, code) if code else None) or class_for_status(status)


def _request_id(response: httpx.Response, body: dict[str, Any] | None) -> str | None:
    if body is not None:
        for key in ("requestId", "log_id"):
            value = body.get(key)
            if value is not None and value != "":
                return str(value)
    header: str | None = response.headers.get(REQUEST_ID_HEADER)
    return header


def _code_and_message(
    response: httpx.Response, body: dict[str, Any] | None
) -> tuple[str | None, str | None]:
    if body is not None:
        for code_key, message_key in (("code", "message"), ("error_code", "error_msg")):
            code = body.get(code_key)
            if code not in (None, "", 0):
                message = body.get(message_key)
                return str(code), None if message is None else str(message)
    header_code = response.headers.get(ERROR_CODE_HEADER)
    if header_code:
        return str(header_code), response.headers.get(ERROR_MESSAGE_HEADER)
    return None, None
