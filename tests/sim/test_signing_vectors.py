"""The simulators' verifiers reproduce the SDKs' known-answer signatures (tests/data copy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloudsim.signing import AuthError, AuthReason, bce, sdk_hmac, tc3

VECTORS = json.loads(
    (Path(__file__).parents[1] / "data" / "signing-vectors.json").read_text(encoding="utf-8")
)


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [f"{c.get('method', 'POST')}-{c.get('action', c.get('path', ''))}" for c in cases]


@pytest.mark.parametrize("vec", VECTORS["tencent_tc3"], ids=_ids(VECTORS["tencent_tc3"]))
def test_tc3_verifier_accepts_sdk_signature(vec: dict[str, Any]) -> None:
    body = vec["body"].encode()
    headers = {"content-type": vec["content_type"], "host": vec["host"]}
    canonical = tc3.canonical_request("POST", "", headers, ["content-type", "host"], body)
    to_sign = tc3.string_to_sign(vec["timestamp"], vec["service"], canonical)
    sig = tc3.signature(vec["secret_key"], "2023-11-14", vec["service"], to_sign)
    expected = vec.get("signature") or vec["authorization"].rsplit("Signature=", 1)[1]
    assert sig == expected
    auth = (
        f"TC3-HMAC-SHA256 Credential={vec['secret_id']}/2023-11-14/tione/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={sig}"
    )
    if "authorization" in vec:
        assert auth == vec["authorization"]
    request_headers = {**headers, "authorization": auth, "x-tc-timestamp": str(vec["timestamp"])}
    verified = tc3.verify(
        method="POST",
        query_string="",
        headers=request_headers,
        body=body,
        service="tione",
        now=vec["timestamp"] + 10,
        secret_for={vec["secret_id"]: vec["secret_key"]}.get,
    )
    assert verified == vec["secret_id"]
    with pytest.raises(AuthError) as err:
        tc3.verify(
            method="POST",
            query_string="",
            headers=request_headers,
            body=body + b" ",
            service="tione",
            now=vec["timestamp"],
            secret_for={vec["secret_id"]: vec["secret_key"]}.get,
        )
    assert err.value.reason is AuthReason.BAD_SIGNATURE


@pytest.mark.parametrize(
    "vec", VECTORS["huawei_sdk_hmac_sha256"], ids=_ids(VECTORS["huawei_sdk_hmac_sha256"])
)
def test_sdk_hmac_verifier_accepts_sdk_signature(vec: dict[str, Any]) -> None:
    headers = {k.lower(): v for k, v in vec["headers"].items()}
    headers["host"] = vec["host"]
    headers["x-sdk-date"] = vec["x_sdk_date"]
    signed = sorted(headers)
    query = [(k, v) for k, v in vec["query"]]
    canonical = sdk_hmac.canonical_request(
        method=vec["method"],
        path=vec["path"],
        query=query,
        headers=headers,
        signed_headers=signed,
        body=vec["body"].encode(),
    )
    sig = sdk_hmac.signature(vec["sk"], vec["x_sdk_date"], canonical)
    expected = vec.get("signature") or vec["authorization"].rsplit("Signature=", 1)[1]
    assert sig == expected
    headers["authorization"] = (
        f"SDK-HMAC-SHA256 Access={vec['ak']}, SignedHeaders={';'.join(signed)}, Signature={sig}"
    )
    assert (
        sdk_hmac.verify(
            method=vec["method"],
            raw_path=vec["path"],
            query=query,
            headers=headers,
            body=vec["body"].encode(),
            now=1700000000 + 60,
            secret_for={vec["ak"]: vec["sk"]}.get,
        )
        == vec["ak"]
    )


@pytest.mark.parametrize(
    "vec", VECTORS["baidu_bce_auth_v1"], ids=["qianfan-headers", "bce-three-headers"]
)
def test_bce_verifier_accepts_sdk_signature_in_any_header_order(vec: dict[str, Any]) -> None:
    headers = {k.lower(): v for k, v in vec["headers"].items()}
    prefix = f"bce-auth-v1/{vec['ak']}/2023-11-14T22:13:20Z/{vec['expiration_seconds']}"
    if "signing_key" in vec:
        assert bce.signing_key(vec["sk"], prefix) == vec["signing_key"]
    query = list(vec["query"].items())
    sig = bce.signature(
        secret_key=vec["sk"],
        auth_prefix=prefix,
        method="POST",
        path=vec["path"],
        query=query,
        headers=headers,
        signed=set(vec["headers_to_sign"]),
    )
    assert vec["authorization"].endswith("/" + sig)
    for order in (vec["headers_to_sign"], list(reversed(vec["headers_to_sign"]))):
        headers["authorization"] = f"{prefix}/{';'.join(order)}/{sig}"
        assert (
            bce.verify(
                method="POST",
                path=vec["path"],
                query=query,
                headers=headers,
                now=vec["timestamp"] + 5,
                secret_for={vec["ak"]: vec["sk"]}.get,
            )
            == vec["ak"]
        )


@pytest.mark.parametrize(
    ("now_offset", "reason"),
    [(299, None), (301, AuthReason.EXPIRED), (-301, AuthReason.EXPIRED)],
    ids=["within-5min", "stale-over-5min", "future-over-5min"],
)
def test_tc3_clock_window(now_offset: int, reason: AuthReason | None) -> None:
    vec = VECTORS["tencent_tc3"][0]
    headers = {
        "content-type": "application/json",
        "host": vec["host"],
        "authorization": vec["authorization"],
        "x-tc-timestamp": str(vec["timestamp"]),
    }

    def check() -> str:
        return tc3.verify(
            method="POST",
            query_string="",
            headers=headers,
            body=vec["body"].encode(),
            service="tione",
            now=vec["timestamp"] + now_offset,
            secret_for={vec["secret_id"]: vec["secret_key"]}.get,
        )

    if reason is None:
        assert check() == vec["secret_id"]
    else:
        with pytest.raises(AuthError) as err:
            check()
        assert err.value.reason is reason
