"""Every documented error code of each cloud maps to its class (docs/clouds/tencent-tione.md#errors,
docs/clouds/huawei-modelarts.md#errors, docs/clouds/baidu-qianfan.md#errors),
and unreadable replies or transport failures become classified errors, never crashes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from cloudinfer.cloud import exchange
from cloudinfer.cloud.baidu import envelope as baidu
from cloudinfer.cloud.baidu.errors import BAIDU_ERRORS
from cloudinfer.cloud.errors import (
    AuthError,
    BusyError,
    ClockSkewError,
    CloudError,
    ConflictError,
    InvalidRequestError,
    MalformedResponseError,
    NoAnswerError,
    NotFoundError,
    PermissionDeniedError,
    QuotaError,
    Retry,
    ThrottledError,
    TransientError,
    UnsupportedActionError,
)
from cloudinfer.cloud.huawei import envelope as huawei
from cloudinfer.cloud.huawei.errors import HUAWEI_ERRORS
from cloudinfer.cloud.tencent import envelope as tencent
from cloudinfer.cloud.tencent.errors import TENCENT_ERRORS

# The spec, transcribed from docs/clouds/ (each page's #errors) independently of the code's tables.
TENCENT_SPEC: dict[type[CloudError], list[str]] = {
    ThrottledError: [
        "RequestLimitExceeded",
        "RequestLimitExceeded.UinLimitExceeded",
        "RequestLimitExceeded.GlobalRegionUinLimitExceeded",
        "RequestLimitExceeded.IPLimitExceeded",
    ],
    AuthError: [
        "AuthFailure",
        "AuthFailure.SignatureFailure",
        "AuthFailure.SecretIdNotFound",
        "AuthFailure.InvalidSecretId",
        "AuthFailure.TokenFailure",
    ],
    PermissionDeniedError: [
        "AuthFailure.UnauthorizedOperation",
        "AuthFailure.NoPermission",
        "UnauthorizedOperation",
        "UnauthorizedOperation.NoPermission",
        "FailedOperation.NoPermission",
    ],
    ClockSkewError: ["AuthFailure.SignatureExpire"],
    TransientError: [
        "AuthFailure.CamException",
        "InternalError",
        "FailedOperation",
        "FailedOperation.ApiGatewayQueryFailed",
        "FailedOperation.StsQueryFailed",
        "FailedOperation.ClusterQueryFailed",
        "FailedOperation.BillingQueryFailed",
        "FailedOperation.QueryDatabaseFail",
        "FailedOperation.ExecDatabaseFail",
        "FailedOperation.ExecTagFail",
        "FailedOperation.QueryTagFail",
        "ServerNetworkError",
        "ClientNetworkError",
    ],
    NotFoundError: ["ResourceNotFound", "FailedOperation.RecordNotFound"],
    InvalidRequestError: [
        "InvalidParameter",
        "InvalidParameter.ValidateError",
        "InvalidParameter.ModelFileInvalid",
        "InvalidParameterValue",
        "InvalidParameterValue.PageLimitExceeded",
        "MissingParameter",
        "UnknownParameter",
        "FailedOperation.UnknownInstanceType",
        "FailedOperation.UnmarshalData",
        "UnsupportedOperation",
    ],
    BusyError: ["FailedOperation.Processing", "ResourceInUse"],
    ConflictError: [
        "FailedOperation.NotAllow",
        "OperationDenied",
        "OperationDenied.NotAllow",
        "FailedOperation.DuplicateName",
    ],
    QuotaError: [
        "ResourceInsufficient",
        "ResourceInsufficient.QuotaInsufficient",
        "ResourcesSoldOut",
        "LimitExceeded",
        "OperationDenied.BalanceInsufficient",
        "FailedOperation.InsufficientWhitelistQuota",
    ],
    UnsupportedActionError: ["InvalidAction", "ActionOffline"],
}

# (code, documented HTTP status, class)
HUAWEI_SPEC: list[tuple[str, int, type[CloudError]]] = [
    ("APIGW.0308", 429, ThrottledError),
    ("ModelArts.4206", 429, ThrottledError),
    ("APIGW.0301", 401, AuthError),
    ("ModelArts.0201", 401, AuthError),
    ("ModelArts.0202", 401, AuthError),
    ("ModelArts.0203", 401, AuthError),
    ("ModelArts.0204", 401, AuthError),
    ("ModelArts.4127", 401, AuthError),
    ("ModelArts.0206", 403, AuthError),
    ("ModelArts.0210", 403, AuthError),
    ("ModelArts.0108", 403, PermissionDeniedError),
    ("APIGW.0303", 401, ClockSkewError),
    ("ModelArts.3502", 404, NotFoundError),
    ("ModelArts.3519", 400, BusyError),
    ("ModelArts.3503", 409, ConflictError),
    ("ModelArts.3520", 400, QuotaError),
    ("ModelArts.3521", 400, QuotaError),
    ("ModelArts.3522", 400, QuotaError),
    ("ModelArts.0118", 400, QuotaError),
    ("ModelArts.3952", 400, QuotaError),
    ("ModelArts.4116", 403, QuotaError),
    ("ModelArts.4118", 403, QuotaError),
    ("ModelArts.6201", 401, QuotaError),
    ("ModelArts.6203", 401, QuotaError),
    ("ModelArts.3501", 500, TransientError),
    ("ModelArts.3505", 500, TransientError),
]

BAIDU_SPEC: list[tuple[str, int, type[CloudError]]] = [
    ("AccessDenied", 403, AuthError),
    ("InvalidAccessKeyId", 403, AuthError),
    ("InvalidHTTPAuthHeader", 400, AuthError),
    ("SignatureDoesNotMatch", 403, AuthError),
    ("RequestExpired", 400, ClockSkewError),
    ("OptInRequired", 403, QuotaError),
    ("InappropriateJSON", 400, InvalidRequestError),
    ("MalformedJSON", 400, InvalidRequestError),
    ("InvalidHTTPRequest", 400, InvalidRequestError),
    ("InvalidURI", 400, InvalidRequestError),
    ("InvalidVersion", 404, UnsupportedActionError),
    ("PreconditionFailed", 412, ConflictError),
    ("InternalError", 500, TransientError),
    ("18", 200, ThrottledError),
    ("336100", 200, ThrottledError),
    ("336501", 200, ThrottledError),
    ("336502", 200, ThrottledError),
    ("500000", 200, TransientError),
    ("QPSLimitReached", 429, ThrottledError),
    ("ResourceInsufficient", 400, QuotaError),
]

TENCENT_CASES = [(code, cls) for cls, codes in TENCENT_SPEC.items() for code in codes]


def _response(
    status: int, body: Any = None, *, headers: dict[str, str] | None = None, raw: bytes = b""
) -> httpx.Response:
    content = json.dumps(body).encode() if body is not None else raw
    return httpx.Response(status, content=content, headers=headers or {})


def test_tables_hold_exactly_the_documented_codes() -> None:
    """A code added to or dropped from a table without updating the spec fails here."""
    assert set(TENCENT_ERRORS) == {code for code, _ in TENCENT_CASES}
    assert set(HUAWEI_ERRORS) == {code for code, _, _ in HUAWEI_SPEC}
    assert set(BAIDU_ERRORS) == {code for code, _, _ in BAIDU_SPEC}


@pytest.mark.parametrize(("code", "cls"), TENCENT_CASES, ids=[c for c, _ in TENCENT_CASES])
def test_tencent_code(code: str, cls: type[CloudError]) -> None:
    body = {"Response": {"Error": {"Code": code, "Message": "m"}, "RequestId": "req-tc"}}
    with pytest.raises(CloudError) as caught:
        tencent.unwrap(_response(200, body), action="ModifyModelService")
    assert type(caught.value) is cls
    assert caught.value.code == code
    assert caught.value.request_id == "req-tc"
    assert caught.value.action == "ModifyModelService"


@pytest.mark.parametrize(("code", "status", "cls"), HUAWEI_SPEC, ids=[c for c, _, _ in HUAWEI_SPEC])
def test_huawei_code(code: str, status: int, cls: type[CloudError]) -> None:
    response = _response(
        status,
        {"error_code": code, "error_msg": "m"},
        headers={"X-Request-Id": "req-hw"},
    )
    with pytest.raises(CloudError) as caught:
        huawei.unwrap(response, action="UpdateService")
    assert type(caught.value) is cls
    assert (caught.value.code, caught.value.request_id) == (code, "req-hw")
    assert caught.value.http_status == status


@pytest.mark.parametrize(("code", "status", "cls"), BAIDU_SPEC, ids=[c for c, _, _ in BAIDU_SPEC])
def test_baidu_code(code: str, status: int, cls: type[CloudError]) -> None:
    body: dict[str, Any]
    if code.isdigit():
        body = {"error_code": int(code), "error_msg": "m", "log_id": "req-bd"}
    else:
        body = {"requestId": "req-bd", "code": code, "message": "m"}
    with pytest.raises(CloudError) as caught:
        baidu.unwrap(_response(status, body), action="ScaleService")
    assert type(caught.value) is cls
    assert (caught.value.code, caught.value.request_id) == (code, "req-bd")


@pytest.mark.parametrize(
    ("cls", "retry", "reason"),
    [
        (CloudError, Retry.BACKOFF, "CloudError"),
        (ThrottledError, Retry.BACKOFF, "CloudThrottled"),
        (TransientError, Retry.BACKOFF, "CloudUnavailable"),
        (MalformedResponseError, Retry.BACKOFF, "CloudMalformedResponse"),
        (NoAnswerError, Retry.BACKOFF, "CloudNoAnswer"),
        (BusyError, Retry.BACKOFF, "CloudBusy"),
        (ConflictError, Retry.NEVER, "CloudConflict"),
        (NotFoundError, Retry.NEVER, "CloudNotFound"),
        (InvalidRequestError, Retry.NEVER, "CloudInvalidRequest"),
        (AuthError, Retry.NEVER, "CloudAuthFailed"),
        (ClockSkewError, Retry.SLOW, "CloudClockSkew"),
        (QuotaError, Retry.SLOW, "CloudQuotaOrBilling"),
        (UnsupportedActionError, Retry.NEVER, "CloudUnsupportedAction"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_each_class_has_a_retry_policy_and_reason(
    cls: type[CloudError], retry: Retry, reason: str
) -> None:
    error = cls("m", cloud="tencent")
    assert (error.retry, error.reason, error.retryable) == (retry, reason, retry != Retry.NEVER)


# --- unknown codes and the fallbacks ---------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("InvalidParameterValue.SomethingNew", InvalidRequestError),
        ("RequestLimitExceeded.NewDimension", ThrottledError),
        ("OperationDenied.SomethingElse", ConflictError),
        ("FailedOperation.NewDependencyDown", TransientError),
        ("TotallyNewCode", CloudError),
    ],
    ids=["new-sub-code-of-invalid", "new-throttle", "new-denied", "new-failed-op", "unknown"],
)
def test_tencent_unknown_codes_fall_back_to_their_parent(code: str, cls: type[CloudError]) -> None:
    body = {"Response": {"Error": {"Code": code, "Message": "m"}, "RequestId": "r"}}
    with pytest.raises(CloudError) as caught:
        tencent.unwrap(_response(200, body), action="A")
    assert type(caught.value) is cls


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidRequestError),
        (401, AuthError),
        (404, NotFoundError),
        (409, ConflictError),
        (429, ThrottledError),
        (500, TransientError),
        (503, TransientError),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_huawei_undocumented_codes_are_classified_by_status(
    status: int, cls: type[CloudError]
) -> None:
    response = _response(status, {"error_code": "ModelArts.3599", "error_msg": "x"})
    with pytest.raises(CloudError) as caught:
        huawei.unwrap(response, action="UpdateService")
    assert type(caught.value) is cls


# --- unreadable replies --------------------------------------------------------------------

HTML = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body>"

UNREADABLE = [
    ("tencent-502-html", tencent.unwrap, 502, HTML, {}, NoAnswerError, None),
    ("tencent-503-html", tencent.unwrap, 503, HTML, {}, TransientError, None),
    ("tencent-200-not-json", tencent.unwrap, 200, b"OK", {}, MalformedResponseError, None),
    ("tencent-200-json-array", tencent.unwrap, 200, b"[1]", {}, MalformedResponseError, None),
    (
        "tencent-200-without-Response",
        tencent.unwrap,
        200,
        b'{"RequestId": "x"}',
        {},
        MalformedResponseError,
        None,
    ),
    (
        "tencent-error-without-code",
        tencent.unwrap,
        200,
        b'{"Response": {"Error": "boom", "RequestId": "req-9"}}',
        {},
        MalformedResponseError,
        "req-9",
    ),
    (
        "tencent-429-text",
        tencent.unwrap,
        429,
        b"slow down",
        {"Retry-After": "3"},
        ThrottledError,
        None,
    ),
    (
        "huawei-502-html-keeps-request-id",
        huawei.unwrap,
        502,
        HTML,
        {"X-Request-Id": "req-hw", "Content-Type": "text/html"},
        NoAnswerError,
        "req-hw",
    ),
    (
        "huawei-429-empty-body",
        huawei.unwrap,
        429,
        b"",
        {"X-Request-Id": "req-hw"},
        ThrottledError,
        "req-hw",
    ),
    (
        "huawei-404-text",
        huawei.unwrap,
        404,
        b"not here",
        {"X-Request-Id": "req-hw"},
        MalformedResponseError,
        "req-hw",
    ),
    (
        "huawei-200-html",
        huawei.unwrap,
        200,
        HTML,
        {"X-Request-Id": "req-hw"},
        MalformedResponseError,
        "req-hw",
    ),
    (
        "baidu-504-html",
        baidu.unwrap,
        504,
        HTML,
        {"x-bce-request-id": "req-bd"},
        NoAnswerError,
        "req-bd",
    ),
    (
        "baidu-200-truncated-json",
        baidu.unwrap,
        200,
        b'{"requestId": "r", "res',
        {"x-bce-request-id": "req-bd"},
        MalformedResponseError,
        "req-bd",
    ),
]


@pytest.mark.parametrize(
    ("unwrap", "status", "raw", "headers", "cls", "request_id"),
    [case[1:] for case in UNREADABLE],
    ids=[case[0] for case in UNREADABLE],
)
def test_unreadable_replies_are_classified_with_the_request_id(
    *,
    unwrap: Any,
    status: int,
    raw: bytes,
    headers: dict[str, str],
    cls: type[CloudError],
    request_id: str | None,
) -> None:
    with pytest.raises(CloudError) as caught:
        unwrap(_response(status, raw=raw, headers=headers), action="Describe")
    assert type(caught.value) is cls
    assert caught.value.request_id == request_id
    assert caught.value.http_status == status


def test_html_error_page_is_quoted_briefly_and_named() -> None:
    with pytest.raises(TransientError) as caught:
        tencent.unwrap(_response(502, raw=HTML * 50), action="DescribeModelService")
    message = str(caught.value)
    assert "an HTML page" in message
    assert "502 Bad Gateway" in message
    assert len(caught.value.message) < 250


def test_retry_after_is_kept_on_throttling() -> None:
    with pytest.raises(ThrottledError) as caught:
        huawei.unwrap(
            _response(
                429, {"error_code": "APIGW.0308", "error_msg": "x"}, headers={"Retry-After": "7"}
            ),
            action="ListServices",
        )
    assert caught.value.retry_after == 7.0


# --- replies that look like success but are not ----------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body", "cls"),
    [
        ({}, {"requestId": "r", "code": "AccessDenied", "message": "x"}, AuthError),
        (
            {"X-Bce-Error-Code": "SignatureDoesNotMatch", "X-Bce-Error-Message": "no"},
            None,
            AuthError,
        ),
        (
            {
                "X-Bce-Error-Code": "NotFound",
                "X-Bce-Error-Message": "NotFound, cause: Could not find credential.",
            },
            None,
            AuthError,
        ),
    ],
    ids=["v2-code-with-http-200", "gateway-header-only", "unknown-ak-is-auth-not-not-found"],
)
def test_baidu_errors_the_sdk_would_miss(
    headers: dict[str, str], body: dict[str, Any] | None, cls: type[CloudError]
) -> None:
    status = 200 if body is not None else 403
    with pytest.raises(CloudError) as caught:
        baidu.unwrap(_response(status, body, headers=headers, raw=b""), action="ScaleService")
    assert type(caught.value) is cls


@pytest.mark.parametrize(
    ("unwrap", "response", "data", "request_id"),
    [
        (
            tencent.unwrap,
            _response(200, {"Response": {"Service": {"ServiceId": "ms-1"}, "RequestId": "r1"}}),
            {"Service": {"ServiceId": "ms-1"}, "RequestId": "r1"},
            "r1",
        ),
        (
            huawei.unwrap,
            _response(200, {"service_id": "s"}, headers={"X-Request-Id": "r2"}),
            {"service_id": "s"},
            "r2",
        ),
        (huawei.unwrap, _response(204, headers={"X-Request-Id": "r3"}), {}, "r3"),
        (
            baidu.unwrap,
            _response(200, {"requestId": "r4", "result": True}),
            {"requestId": "r4", "result": True},
            "r4",
        ),
    ],
    ids=["tencent", "huawei", "huawei-empty-2xx", "baidu"],
)
def test_success_returns_payload_and_request_id(
    unwrap: Any, response: httpx.Response, data: dict[str, Any], request_id: str
) -> None:
    reply = unwrap(response, action="A")
    assert (reply.data, reply.request_id) == (data, request_id)


# --- transport failures ------------------------------------------------------------------------


class _NoAuth(httpx.Auth):
    pass


@pytest.mark.parametrize(
    ("failure", "cls"),
    [
        # Before the request left: nothing can have been carried out.
        (httpx.ConnectTimeout("t"), TransientError),
        (httpx.PoolTimeout("t"), TransientError),
        (httpx.ConnectError("refused"), TransientError),
        (httpx.ProxyError("refused"), TransientError),
        # After: the cloud may have carried it out.
        (httpx.ReadTimeout("t"), NoAnswerError),
        (httpx.WriteTimeout("t"), NoAnswerError),
        (httpx.ReadError("reset"), NoAnswerError),
        (httpx.WriteError("broken pipe"), NoAnswerError),
        (httpx.RemoteProtocolError("bad"), NoAnswerError),
        (httpx.DecodingError("gzip"), MalformedResponseError),
        (httpx.UnsupportedProtocol("ftp"), InvalidRequestError),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v.__name__,
)
def test_transport_failures_are_classified(failure: Exception, cls: type[CloudError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    async def call() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            request = client.build_request("POST", "https://tione.tencentcloudapi.com/")
            await exchange.send(client, request, auth=_NoAuth(), cloud="tencent", action="A")

    with pytest.raises(CloudError) as caught:
        asyncio.run(call())
    assert type(caught.value) is cls
    assert caught.value.action == "A"
    assert caught.value.may_have_applied is (cls in (NoAnswerError, MalformedResponseError))
