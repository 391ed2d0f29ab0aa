"""No repr, str, log line or error of ours reveals a secret key or a session token."""

from __future__ import annotations

import asyncio
import pickle
import traceback
from collections.abc import Callable

import httpx
import pytest

from cloudinfer.cloud import exchange
from cloudinfer.cloud.baidu import envelope as baidu_envelope
from cloudinfer.cloud.baidu.signer import BaiduSigner
from cloudinfer.cloud.credentials import (
    REDACTED,
    BaiduCredentials,
    HuaweiCredentials,
    Secret,
    TencentCredentials,
)
from cloudinfer.cloud.errors import CloudError
from cloudinfer.cloud.huawei import envelope as huawei_envelope
from cloudinfer.cloud.huawei.signer import HuaweiSigner
from cloudinfer.cloud.model import Cloud
from cloudinfer.cloud.provider import Account
from cloudinfer.cloud.redaction import describe_request
from cloudinfer.cloud.tencent import envelope as tencent_envelope
from cloudinfer.cloud.tencent.signer import TencentSigner

SECRET_KEY = "SKsuper-secret-key-0123456789"
TOKEN = "TOKENsession-token-abcdefghij"
SECRETS = (SECRET_KEY, TOKEN)

TENCENT = TencentCredentials("AKIDpublic", Secret(SECRET_KEY), token=Secret(TOKEN))
HUAWEI = HuaweiCredentials("HWAKpublic", Secret(SECRET_KEY), "p" * 32, Secret(TOKEN))
BAIDU = BaiduCredentials("ALTAKpublic", Secret(SECRET_KEY))

RENDERINGS: list[tuple[str, Callable[[object], str]]] = [
    ("repr", repr),
    ("str", str),
    ("format", lambda o: f"{o}"),
    ("format-spec", lambda o: f"{o!s:>10}"),
    ("percent-s", lambda o: "%s" % (o,)),  # noqa: UP031 (the old style is what loggers use)
    ("percent-r", lambda o: "%r" % (o,)),  # noqa: UP031
]

OBJECTS: list[tuple[str, object]] = [
    ("secret", Secret(SECRET_KEY)),
    ("tencent-credentials", TENCENT),
    ("huawei-credentials", HUAWEI),
    ("baidu-credentials", BAIDU),
    ("account", Account("ns/acct", Cloud.TENCENT, "ap-guangzhou", TENCENT)),
    ("tencent-signer", TencentSigner(TENCENT)),
    ("huawei-signer", HuaweiSigner(HUAWEI)),
    ("baidu-signer", BaiduSigner(BAIDU)),
]


def _assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
        assert secret[:12] not in text, "not even a prefix"


@pytest.mark.parametrize(("name", "obj"), OBJECTS, ids=[n for n, _ in OBJECTS])
@pytest.mark.parametrize(("how", "render"), RENDERINGS, ids=[h for h, _ in RENDERINGS])
def test_objects_never_render_secrets(
    name: str, obj: object, how: str, render: Callable[[object], str]
) -> None:
    _assert_clean(render(obj))


def test_secret_reveals_only_on_request_and_refuses_pickling() -> None:
    secret = Secret(SECRET_KEY)
    assert secret.reveal() == SECRET_KEY
    assert str(secret) == REDACTED
    assert secret == Secret(SECRET_KEY)
    assert secret != Secret("other")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(TENCENT)


def test_empty_secret_is_rejected() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        Secret("")


SIGNERS = [
    ("tencent", TencentSigner(TENCENT), "https://tione.tencentcloudapi.com/"),
    ("huawei", HuaweiSigner(HUAWEI), "https://modelarts.cn-north-4.myhuaweicloud.com/v1/p/s"),
    ("baidu", BaiduSigner(BAIDU), "https://qianfan.baidubce.com/v2/service?Action=X"),
]


@pytest.mark.parametrize(("cloud", "signer", "url"), SIGNERS, ids=[c for c, _, _ in SIGNERS])
def test_signed_requests_log_without_secrets(cloud: str, signer: httpx.Auth, url: str) -> None:
    request = httpx.Request(
        "POST", url, content=b"{}", headers={"Content-Type": "application/json"}
    )
    signer.sign(request)  # type: ignore[attr-defined]
    assert request.headers["Authorization"]
    for rendering in (repr(request), describe_request(request)):
        _assert_clean(rendering)
        assert request.headers["Authorization"] not in rendering
    assert REDACTED in describe_request(request)


def _send(
    signer: httpx.Auth, url: str, handler: Callable[[httpx.Request], httpx.Response]
) -> CloudError:
    unwrap = {
        "tione": tencent_envelope.unwrap,
        "modelarts": huawei_envelope.unwrap,
        "qianfan": baidu_envelope.unwrap,
    }[httpx.URL(url).host.split(".")[0]]

    async def call() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            request = client.build_request("POST", url, content=b"{}")
            response = await exchange.send(client, request, auth=signer, cloud="c", action="A")
            unwrap(response, action="A")

    with pytest.raises(CloudError) as caught:
        asyncio.run(call())
    return caught.value


def _rendered_error(error: CloudError) -> str:
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


@pytest.mark.parametrize(("cloud", "signer", "url"), SIGNERS, ids=[c for c, _, _ in SIGNERS])
def test_transport_errors_carry_no_secrets(cloud: str, signer: httpx.Auth, url: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"connection refused to {request.url}", request=request)

    _assert_clean(_rendered_error(_send(signer, url, refuse)))


@pytest.mark.parametrize(("cloud", "signer", "url"), SIGNERS, ids=[c for c, _, _ in SIGNERS])
def test_a_proxy_echoing_the_request_cannot_leak_it_into_errors(
    cloud: str, signer: httpx.Auth, url: str
) -> None:
    """A broken proxy answers 502 with an HTML dump of our headers; the error quotes the page."""

    def echo(request: httpx.Request) -> httpx.Response:
        # Tokens first, so that they fall inside the quoted excerpt.
        headers = sorted(request.headers.multi_items(), key=lambda kv: "token" not in kv[0])
        dump = "".join(f"<li>{k}: {v}</li>" for k, v in headers)
        return httpx.Response(502, html=f"<html><body><ul>{dump}</ul></body></html>")

    error = _send(signer, url, echo)
    rendered = _rendered_error(error)
    _assert_clean(rendered)
    assert "HTML page" in rendered


def test_cloud_error_replies_carry_no_secrets() -> None:
    def deny(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "Response": {"Error": {"Code": "AuthFailure", "Message": "no"}, "RequestId": "r"}
            },
        )

    error = _send(TencentSigner(TENCENT), "https://tione.tencentcloudapi.com/", deny)
    assert error.code == "AuthFailure"
    _assert_clean(_rendered_error(error))
