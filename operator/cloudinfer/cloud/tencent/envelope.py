"""Reading TI-ONE replies: HTTP 200 with `{"Response": {..., "RequestId"}}` or
`{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`
(docs/clouds/tencent-tione.md#errors)."""

from __future__ import annotations

import hashlib
import re
from typing import Final

import httpx

from cloudinfer.cloud.errors import CloudError, MalformedResponseError, lookup
from cloudinfer.cloud.exchange import Reply, json_object, unreadable
from cloudinfer.cloud.tencent.errors import TENCENT_ERRORS

CLOUD: Final = "tencent"

_TRAILING_REQUEST_ID: Final = re.compile(rb'"RequestId"\s*:\s*"([-0-9A-Za-z_.:]*)"\s*}\s*}\s*\Z')
_TAIL_BYTES: Final = 512


def body_key(response: httpx.Response) -> tuple[bytes, str] | None:
    """A digest of the body but for the value of the `RequestId` it ends with, and that
    value; None if it does not end so. Two bodies with one key differ at most in a string of
    the same plain characters that is the last member of the body's last object: the request
    id, or a member no reply is read from. So a list page with the key of one read before
    reads as that one did (the simulator and the cloud put `RequestId` last)."""
    content = response.content
    found = _TRAILING_REQUEST_ID.search(content, max(0, len(content) - _TAIL_BYTES))
    if found is None:
        return None
    start, end = found.span(1)
    digest = hashlib.sha256(start.to_bytes(8, "big"))
    view = memoryview(content)
    digest.update(view[:start])
    digest.update(view[end:])
    return digest.digest(), found.group(1).decode("ascii")


def unwrap(response: httpx.Response, *, action: str) -> Reply:
    """The `Response` object of a successful call; otherwise raise the classified error."""
    body = json_object(response)
    inner = body.get("Response") if body is not None else None
    if not isinstance(inner, dict):
        raise unreadable(response, cloud=CLOUD, action=action, request_id=None)
    request_id = inner.get("RequestId")
    request_id = request_id if isinstance(request_id, str) else None
    error = inner.get("Error")
    if error is not None:
        raise _error(error, response=response, action=action, request_id=request_id)
    if not response.is_success:
        raise unreadable(response, cloud=CLOUD, action=action, request_id=request_id)
    return Reply(data=inner, request_id=request_id)


def _error(
    error: object, *, response: httpx.Response, action: str, request_id: str | None
) -> CloudError:
    if not isinstance(error, dict) or not isinstance(error.get("Code"), str):
        return MalformedResponseError(
            f"Response.Error has no Code: {error!r}"[:200],
            cloud=CLOUD,
            action=action,
            request_id=request_id,
            http_status=response.status_code,
        )
    code: str = error["Code"]
    cls = lookup(TENCENT_ERRORS, code) or CloudError
    return cls(
        str(error.get("Message", "")),
        cloud=CLOUD,
        action=action,
        code=code,
        request_id=request_id,
        http_status=response.status_code,
    )
