"""Reading ModelArts replies: 2xx with the resource as JSON, or 4xx/5xx with
`{"error_code", "error_msg"}`, the request id in the `X-Request-Id` header
(docs/clouds/huawei-modelarts.md#errors)."""

from __future__ import annotations

from typing import Final

import httpx

from cloudinfer.cloud.errors import class_for_status, lookup, parse_retry_after
from cloudinfer.cloud.exchange import Reply, json_object, unreadable
from cloudinfer.cloud.huawei.errors import HUAWEI_ERRORS

CLOUD: Final = "huawei"
REQUEST_ID_HEADER: Final = "X-Request-Id"
ERROR_KEYS: Final = (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message"))
"""The body keys huaweicloudsdkcore's exception handler tries, in its order
(docs/clouds/huawei-modelarts.md#errors)."""


def unwrap(response: httpx.Response, *, action: str) -> Reply:
    """The JSON object of a successful call; otherwise raise the classified error.

    A 2xx reply with an empty body (v1 UpdateService may answer `{}` or nothing) is an empty
    object.
    """
    request_id = response.headers.get(REQUEST_ID_HEADER)
    body = json_object(response)
    if response.is_success:
        if body is None and not response.content.strip():
            return Reply(data={}, request_id=request_id)
        if body is None:
            raise unreadable(response, cloud=CLOUD, action=action, request_id=request_id)
        return Reply(data=body, request_id=request_id)
    if body is None:
        raise unreadable(response, cloud=CLOUD, action=action, request_id=request_id)
    code, message = _code_and_message(body)
    cls = (lookup(HUAWEI_ERRORS, code) if code else None) or class_for_status(response.status_code)
    raise cls(
        message or f"HTTP {response.status_code}",
        cloud=CLOUD,
        action=action,
        code=code,
        request_id=request_id,
        http_status=response.status_code,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def _code_and_message(body: dict[str, object]) -> tuple[str | None, str | None]:
    for code_key, message_key in ERROR_KEYS:
        code = body.get(code_key)
        if code is not None:
            message = body.get(message_key)
            return str(code), None if message is None else str(message)
    return None, None
