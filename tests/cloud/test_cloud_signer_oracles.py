"""Property tests: our signers agree with the official SDKs' signers on random requests.

The SDKs are test-only oracles (installed from the `sdk-oracles` extra); the operator package
never imports them. Each oracle is fed the same request as our signer, in its own input form.
"""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import httpx
from baidubce import utils as bce_utils
from baidubce.auth import bce_v1_signer
from baidubce.auth.bce_credentials import BceCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer as HuaweiSdkSigner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tencentcloud.common import abstract_client as tencent_abstract_client
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.credential import Credential
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from cloudinfer.cloud.baidu.signer import BaiduSigner
from cloudinfer.cloud.credentials import (
    BaiduCredentials,
    HuaweiCredentials,
    Secret,
    TencentCredentials,
)
from cloudinfer.cloud.huawei.signer import HuaweiSigner
from cloudinfer.cloud.tencent.signer import TencentSigner

EXAMPLES = 200
ORACLE_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- shared strategies -------------------------------------------------------------------

timestamps = st.integers(min_value=1_000_000_000, max_value=4_000_000_000)
key_ids = st.text(string.ascii_letters + string.digits, min_size=8, max_size=40)
secrets = st.text(string.ascii_letters + string.digits + "+/=", min_size=8, max_size=48)
hosts = st.sampled_from(
    [
        "tione.tencentcloudapi.com",
        "tione.ap-shanghai.tencentcloudapi.com",
        "modelarts.cn-north-4.myhuaweicloud.com",
        "qianfan.baidubce.com",
        "127.0.0.1:8443",
        "localhost:39863",
    ]
)
path_segments = st.text(
    string.ascii_letters + string.digits + "-_~ @:!$&'()*+,;=中文é",
    min_size=1,
    max_size=12,
).filter(lambda s: s not in {".", ".."})
paths = st.lists(path_segments, max_size=5).map(lambda segs: "/" + "/".join(segs))
query_text = st.text(string.printable.strip() + " 中é", max_size=12)
query_items = st.lists(st.tuples(query_text.filter(bool), query_text), max_size=5)
header_names = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=16)
header_values = st.text(
    string.ascii_letters + string.digits + " -_.:/;=,", min_size=1, max_size=24
).map(str.strip)
json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
bodies = st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode())


# --- Tencent TC3-HMAC-SHA256 -------------------------------------------------------------


def _tencent_sdk_authorization(
    *, secret_id: str, secret_key: str, host: str, method: str, params: dict[str, Any], ts: int
) -> RequestInternal:
    """The SDK's full request builder with `time.time` pinned
    (docs/clouds/tencent-tione.md#signing)."""
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=host, reqMethod=method))
    client = CommonClient("tione", "2021-11-11", Credential(secret_id, secret_key), "", profile)
    request = RequestInternal(host, method, "/", header={})
    with mock.patch.object(tencent_abstract_client.time, "time", return_value=float(ts)):
        client._build_req_inter("ModifyModelService", params, request)
    return request


@ORACLE_SETTINGS
@given(
    secret_id=key_ids,
    secret_key=secrets,
    host=hosts,
    method=st.sampled_from(["POST", "GET"]),
    params=st.dictionaries(
        st.text(string.ascii_letters, min_size=1, max_size=8),
        st.text(max_size=10) | st.integers(),
        max_size=4,
    ),
    ts=timestamps,
    noise=st.dictionaries(st.sampled_from(["X-TC-Region", "X-TC-Language"]), header_values),
)
def test_tencent_matches_sdk_request_builder(
    *,
    secret_id: str,
    secret_key: str,
    host: str,
    method: str,
    params: dict[str, Any],
    ts: int,
    noise: dict[str, str],
) -> None:
    sdk = _tencent_sdk_authorization(
        secret_id=secret_id, secret_key=secret_key, host=host, method=method, params=params, ts=ts
    )
    headers = {"Content-Type": sdk.header["Content-Type"], **noise}
    if method == "GET":
        request = httpx.Request("GET", f"https://{host}/?{sdk.data}", headers=headers)
    else:
        request = httpx.Request("POST", f"https://{host}/", headers=headers, content=sdk.data)
    TencentSigner(TencentCredentials(secret_id, Secret(secret_key)), clock=lambda: float(ts)).sign(
        request
    )
    assert request.headers["Authorization"] == sdk.header["Authorization"]
    assert request.headers["X-TC-Timestamp"] == sdk.header["X-TC-Timestamp"]


@ORACLE_SETTINGS
@given(
    secret_key=secrets,
    host=hosts,
    method=st.sampled_from(["POST", "PUT", "GET", "DELETE"]),
    path=paths,
    query=query_items,
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "application/octet-stream"]
    ),
    body=bodies,
    ts=timestamps,
)
def test_tencent_matches_sdk_signature_function(
    *,
    secret_key: str,
    host: str,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    content_type: str,
    body: bytes,
    ts: int,
) -> None:
    """Arbitrary paths, queries and bodies through the SDK's `_get_tc3_signature`."""
    request = httpx.Request(
        method,
        f"https://{host}{path}",
        params=query,
        headers={"Content-Type": content_type},
        content=body if method != "GET" else b"",
    )
    date = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
    TencentSigner(TencentCredentials("AKIDx", Secret(secret_key)), clock=lambda: float(ts)).sign(
        request
    )
    client = CommonClient("tione", "2021-11-11", Credential("AKIDx", secret_key), "")
    sdk_request = RequestInternal(
        host,
        method,
        request.url.raw_path.split(b"?")[0].decode(),
        header={
            "Content-Type": content_type,
            "Host": request.headers["host"],
            "X-TC-Timestamp": str(ts),
        },
        data=request.url.query.decode() if method == "GET" else body,
    )
    expected = client._get_tc3_signature({}, sdk_request, date, "tione", secret_key)
    assert request.headers["Authorization"].endswith(f"Signature={expected}")


# --- Huawei SDK-HMAC-SHA256 --------------------------------------------------------------


@ORACLE_SETTINGS
@given(
    ak=key_ids,
    sk=secrets,
    project_id=st.text("0123456789abcdef", min_size=32, max_size=32),
    host=hosts,
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH"]),
    path=paths,
    query=query_items,
    headers=st.dictionaries(
        header_names | header_names.map(lambda n: f"x_{n}"), header_values, max_size=4
    ),
    content_type=st.sampled_from(
        [None, "application/json", "application/json;charset=utf-8", "text/plain"]
    ),
    body=bodies,
    ts=timestamps,
)
def test_huawei_matches_sdk_signer(
    *,
    ak: str,
    sk: str,
    project_id: str,
    host: str,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    content_type: str | None,
    body: bytes,
    ts: int,
) -> None:
    headers = {
        name: value
        for name, value in headers.items()
        if name not in {"host", "content-type", "content-length", "x-sdk-date", "x-project-id"}
        and name not in {"connection", "te", "trailer", "upgrade", "keep-alive"}
        and name not in {"transfer-encoding", "x-sdk-content-sha256", "proxy-connection"}
    }
    if content_type is not None:
        headers["Content-Type"] = content_type
    request = httpx.Request(
        method, f"https://{host}{path}", params=query, headers=headers, content=body
    )
    HuaweiSigner(HuaweiCredentials(ak, Secret(sk), project_id), clock=lambda: float(ts)).sign(
        request
    )

    x_sdk_date = datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%SZ")
    sdk_request = SdkRequest(
        method=method,
        schema="https",
        host=request.url.netloc.decode(),
        resource_path=request.url.raw_path.split(b"?")[0].decode(),
        query_params=list(query),
        header_params={**headers, "X-Project-Id": project_id, "X-Sdk-Date": x_sdk_date},
        body=body,
    )
    HuaweiSdkSigner(SimpleNamespace(ak=ak, sk=sk)).sign(sdk_request)
    assert request.headers["Authorization"] == sdk_request.header_params["Authorization"]


# --- Baidu bce-auth-v1 -------------------------------------------------------------------

signable = ["host", "content-type", "x-bce-date", "request-source", "content-md5", "x-custom"]


@ORACLE_SETTINGS
@given(
    ak=key_ids,
    sk=secrets,
    host=hosts,
    method=st.sampled_from(["POST", "GET", "PUT", "DELETE"]),
    path=paths,
    query=st.dictionaries(query_text.filter(bool), query_text, max_size=5),
    headers=st.dictionaries(
        header_names | header_names.map(lambda n: f"x-bce-{n}"), header_values, max_size=4
    ),
    extra=st.dictionaries(st.sampled_from(signable[3:]), header_values, max_size=3),
    headers_to_sign=st.permutations(signable).flatmap(
        lambda names: st.integers(1, len(names)).map(lambda n: names[:n])
    ),
    expiration=st.sampled_from([300, 1800, 3600]),
    body=bodies,
    ts=timestamps,
)
def test_baidu_matches_sdk_signer(
    *,
    ak: str,
    sk: str,
    host: str,
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    extra: dict[str, str],
    headers_to_sign: list[str],
    expiration: int,
    body: bytes,
    ts: int,
) -> None:
    headers = {
        name: value
        for name, value in {**headers, **extra}.items()
        if name not in {"host", "content-length", "x-bce-date", "authorization"}
    }
    headers["Content-Type"] = "application/json"
    request = httpx.Request(
        method, f"https://{host}{path}", params=query, headers=headers, content=body
    )
    BaiduSigner(
        BaiduCredentials(ak, Secret(sk)),
        expiration_seconds=expiration,
        headers_to_sign=headers_to_sign,
        clock=lambda: float(ts),
    ).sign(request)

    sdk_headers = {
        **{name.encode(): value for name, value in headers.items()},
        b"Host": request.headers["host"],
        b"x-bce-date": bce_utils.get_canonical_time(ts).decode(),
    }
    expected = bce_v1_signer.sign(
        BceCredentials(ak, sk),
        method.encode(),
        bce_utils.normalize_string(path, False),
        sdk_headers,
        {key.encode(): value for key, value in query.items()},
        timestamp=ts,
        expiration_in_seconds=expiration,
        headers_to_sign=[name.encode() for name in headers_to_sign],
    ).decode()
    assert request.headers["Authorization"] == expected


def test_tencent_oracle_query_is_what_the_sdk_sends() -> None:
    """Guard for the GET oracle: the SDK's query is `urlencode(params)` and httpx keeps it."""
    params = {"A": "x y", "B": "ü"}
    request = httpx.Request("GET", f"https://h/?{urlencode(params)}")
    assert request.url.query.decode() == urlencode(params)
