"""Our signers reproduce every known answer in tests/data/signing-vectors.json exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudinfer.cloud.baidu.signer import BaiduSigner
from cloudinfer.cloud.credentials import (
    BaiduCredentials,
    HuaweiCredentials,
    Secret,
    TencentCredentials,
)
from cloudinfer.cloud.huawei.signer import HuaweiSigner
from cloudinfer.cloud.tencent.signer import TencentSigner

VECTORS = json.loads(
    (Path(__file__).resolve().parent.parent / "data" / "signing-vectors.json").read_text()
)


def _signature(authorization: str) -> str:
    return authorization.rsplit("Signature=", 1)[-1].rsplit("/", 1)[-1]


def _ids(cases: list[dict[str, Any]], *keys: str) -> list[str]:
    return ["-".join(str(case.get(key, "")) for key in keys) for case in cases]


@pytest.mark.parametrize("case", VECTORS["tencent_tc3"], ids=_ids(VECTORS["tencent_tc3"], "action"))
def test_tencent_tc3_vector(case: dict[str, Any]) -> None:
    signer = TencentSigner(
        TencentCredentials(case["secret_id"], Secret(case["secret_key"])),
        service=case["service"],
        clock=lambda: float(case["timestamp"]),
    )
    request = httpx.Request(
        "POST",
        f"https://{case['host']}/",
        content=case["body"].encode(),
        headers={
            "Content-Type": case["content_type"],
            "X-TC-Action": case["action"],
            "X-TC-Region": case["region"],
            "X-TC-Version": "2021-11-11",
        },
    )
    signer.sign(request)
    authorization = request.headers["Authorization"]
    if "authorization" in case:
        assert authorization == case["authorization"]
    else:
        assert _signature(authorization) == case["signature"]
    assert request.headers["X-TC-Timestamp"] == str(case["timestamp"])


@pytest.mark.parametrize(
    "case",
    VECTORS["huawei_sdk_hmac_sha256"],
    ids=_ids(VECTORS["huawei_sdk_hmac_sha256"], "method", "body"),
)
def test_huawei_sdk_hmac_sha256_vector(case: dict[str, Any]) -> None:
    when = datetime.strptime(case["x_sdk_date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    project_id = case["headers"]["X-Project-Id"]
    signer = HuaweiSigner(
        HuaweiCredentials(case["ak"], Secret(case["sk"]), project_id),
        clock=when.timestamp,
    )
    request = httpx.Request(
        case["method"],
        f"https://{case['host']}{case['path']}",
        params=case["query"],
        headers=case["headers"],
        content=case["body"].encode(),
    )
    signer.sign(request)
    authorization = request.headers["Authorization"]
    if "authorization" in case:
        assert authorization == case["authorization"]
    else:
        assert _signature(authorization) == case["signature"]
    assert request.headers["X-Sdk-Date"] == case["x_sdk_date"]


@pytest.mark.parametrize(
    "case",
    VECTORS["baidu_bce_auth_v1"],
    ids=_ids(VECTORS["baidu_bce_auth_v1"], "headers_to_sign"),
)
def test_baidu_bce_auth_v1_vector(case: dict[str, Any]) -> None:
    signer = BaiduSigner(
        BaiduCredentials(case["ak"], Secret(case["sk"])),
        expiration_seconds=case["expiration_seconds"],
        headers_to_sign=case["headers_to_sign"],
        clock=lambda: float(case["timestamp"]),
    )
    headers = {k: v for k, v in case["headers"].items() if k.lower() != "x-bce-date"}
    request = httpx.Request(
        case["method"],
        f"https://{case['headers']['Host']}{case['path']}",
        params=case["query"],
        headers=headers,
        content=case.get("body_not_signed", "").encode(),
    )
    signer.sign(request)
    assert request.headers["Authorization"] == case["authorization"]
    assert request.headers["x-bce-date"] == case["headers"]["x-bce-date"]


def test_baidu_body_is_not_signed() -> None:
    """bce-auth-v1 leaves the body out: two bodies at the same second sign identically."""
    case = VECTORS["baidu_bce_auth_v1"][0]
    signer = BaiduSigner(
        BaiduCredentials(case["ak"], Secret(case["sk"])),
        clock=lambda: float(case["timestamp"]),
    )
    signatures = set()
    for body in (b'{"a": 1}', b'{"a": 2}'):
        request = httpx.Request("POST", "https://qianfan.baidubce.com/v2/service", content=body)
        signer.sign(request)
        signatures.add(request.headers["Authorization"])
    assert len(signatures) == 1


def test_tencent_action_header_is_not_signed() -> None:
    """Only content-type and host are signed: the action can change, the signature does not."""
    case = VECTORS["tencent_tc3"][0]
    signer = TencentSigner(
        TencentCredentials(case["secret_id"], Secret(case["secret_key"])),
        clock=lambda: float(case["timestamp"]),
    )
    signatures = set()
    for action in ("ModifyModelService", "ModifyModelServicePartialConfig"):
        request = httpx.Request(
            "POST",
            f"https://{case['host']}/",
            content=case["body"].encode(),
            headers={"Content-Type": "application/json", "X-TC-Action": action},
        )
        signer.sign(request)
        signatures.add(request.headers["Authorization"])
    assert signatures == {case["authorization"]}
