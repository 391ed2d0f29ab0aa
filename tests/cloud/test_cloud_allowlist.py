"""Endpoint allow-list matching (docs/security.md#endpoint-allow-list)."""

from __future__ import annotations

import pytest

from cloudinfer.api.cloudaccount import CloudAccountSpec
from cloudinfer.api.conditions import Reason
from cloudinfer.cloud.allowlist import DEFAULT_ALLOW_LIST, EndpointAllowList, HostPattern
from cloudinfer.reconcile.accounts import AccountSetupError, account_config, effective_endpoint


@pytest.mark.parametrize(
    ("patterns", "url", "allowed"),
    [
        (["*.baidubce.com"], "https://qianfan.baidubce.com", True),
        (["*.baidubce.com"], "https://a.b.baidubce.com:8443/x", True),
        (["*.baidubce.com"], "https://baidubce.com", False),  # the apex is not a subdomain
        (["*.baidubce.com"], "https://evilbaidubce.com", False),
        (["*.baidubce.com"], "https://qianfan.baidubce.com.evil.example", False),
        (["*.baidubce.com"], "https://QIANFAN.BaiduBCE.com.", True),  # case, trailing dot
        (["*.BAIDUBCE.com"], "https://qianfan.baidubce.com", True),
        (["tione.tencentcloudapi.com"], "https://tione.tencentcloudapi.com", True),
        (["tione.tencentcloudapi.com"], "https://x.tione.tencentcloudapi.com", False),
        (["127.0.0.1"], "http://127.0.0.1:34567", True),
        (["127.0.0.1"], "http://127.0.0.2:34567", False),
        (["127.0.0.1"], "http://localhost:34567", False),  # names are never resolved
        (["127.0.0.1:8443"], "http://127.0.0.1:8443", True),
        (["127.0.0.1:8443"], "http://127.0.0.1:8444", False),
        (["example.com:443"], "https://example.com", True),  # the scheme's port
        (["example.com:443"], "http://example.com", False),
        (["::1"], "http://[::1]:80", True),
        (["[::1]:80"], "http://[::1]", True),
        (["[0:0::1]"], "http://[::1]", True),  # compared in the compressed form
        (["*"], "https://anything.example:1", True),
        (["*:443"], "https://anything.example:1", False),
        (["qianfan.baidubce.com"], "https://evil.example@qianfan.baidubce.com", True),
        (["qianfan.baidubce.com"], "https://qianfan.baidubce.com@evil.example", False),
        (["qianfan.baidubce.com"], "https://qianfan.baidubce.com#@evil.example", True),
        ([], "https://qianfan.baidubce.com", False),
    ],
)
def test_matching(patterns: list[str], url: str, allowed: bool) -> None:
    denial = EndpointAllowList.of(patterns).denial(url)
    assert (denial is None) == allowed, denial


@pytest.mark.parametrize(
    "pattern",
    ["", "https://x.example", "x.example/path", "x.example:0", "x.example:65536", "a..b",
     "*.", "**.x", "x.*.example", "user@x.example", "[::1", "[::1]x", "bad_.-host-"],
)  # fmt: skip
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"host|port|'\['|':PORT'"):
        HostPattern.parse(pattern)


@pytest.mark.parametrize(
    ("provider", "region", "endpoint"),
    [
        ("tencent", "ap-guangzhou", "https://tione.tencentcloudapi.com"),
        ("huawei", "cn-north-4", "https://modelarts.cn-north-4.myhuaweicloud.com"),
        ("huawei", "ap-southeast-1", "https://modelarts.ap-southeast-1.myhuaweicloud.cn"),
        ("baidu", "bj", "https://qianfan.baidubce.com"),
    ],
)
def test_default_list_allows_every_public_endpoint(
    provider: str, region: str, endpoint: str
) -> None:
    spec = CloudAccountSpec.model_validate(
        {"provider": provider, "region": region, "projectId": "p" * 32,
         "credentialsSecretRef": {"name": "creds"}}
    )  # fmt: skip
    assert effective_endpoint(spec) == endpoint
    assert DEFAULT_ALLOW_LIST.denial(endpoint) is None


def test_refused_before_the_secret_is_read() -> None:
    """The endpoint check comes first: a Secret that is also missing does not hide it."""
    spec = CloudAccountSpec.model_validate(
        {"provider": "baidu", "region": "bj", "endpoint": "http://10.0.0.8:8080",
         "credentialsSecretRef": {"name": "creds"}}
    )  # fmt: skip
    with pytest.raises(AccountSetupError) as refused:
        account_config("ns/acct", spec, None, None, DEFAULT_ALLOW_LIST)
    assert refused.value.reason is Reason.ENDPOINT_NOT_ALLOWED
    assert "10.0.0.8:8080" in refused.value.message
    allowed = EndpointAllowList.of(["10.0.0.8"])
    with pytest.raises(AccountSetupError) as missing:
        account_config("ns/acct", spec, None, None, allowed)
    assert missing.value.reason is Reason.SECRET_NOT_FOUND
