"""From a CloudAccount and its Secret to a cloud `Account` and a provider for it.

Pure apart from building the provider. Errors name what is missing, never a secret value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from cloudinfer.api.cloudaccount import CloudAccountSpec
from cloudinfer.api.conditions import Reason
from cloudinfer.cloud.allowlist import EndpointAllowList
from cloudinfer.cloud.baidu import limits as baidu_limits
from cloudinfer.cloud.baidu.provider import PUBLIC_ENDPOINT as BAIDU_ENDPOINT
from cloudinfer.cloud.baidu.provider import BaiduProvider, new_baidu_budgets
from cloudinfer.cloud.budget import CallRate, RateBudgets
from cloudinfer.cloud.clock import Clock
from cloudinfer.cloud.credentials import (
    BaiduCredentials,
    Credentials,
    HuaweiCredentials,
    Secret,
    TencentCredentials,
)
from cloudinfer.cloud.huawei import limits as huawei_limits
from cloudinfer.cloud.huawei.provider import HuaweiProvider, endpoint_for, new_huawei_budgets
from cloudinfer.cloud.model import Cloud
from cloudinfer.cloud.provider import Account, CloudProvider
from cloudinfer.cloud.tencent import limits as tencent_limits
from cloudinfer.cloud.tencent.provider import PUBLIC_ENDPOINT as TENCENT_ENDPOINT
from cloudinfer.cloud.tencent.provider import TencentProvider, new_tencent_budgets

# Which actions a CloudAccount's `rateBudgets.readsPerSecond` / `writesPerSecond` cover.
READ_ACTIONS: Mapping[Cloud, tuple[str, ...]] = {
    Cloud.TENCENT: (
        tencent_limits.DESCRIBE_MODEL_SERVICE,
        tencent_limits.DESCRIBE_MODEL_SERVICE_GROUP,
        tencent_limits.DESCRIBE_MODEL_SERVICE_GROUPS,
    ),
    Cloud.HUAWEI: (huawei_limits.LIST_SERVICES, huawei_limits.SHOW_SERVICE),
    Cloud.BAIDU: (baidu_limits.DESCRIBE_SERVICES, baidu_limits.DESCRIBE_SERVICE),
}
WRITE_ACTIONS: Mapping[Cloud, tuple[str, ...]] = {
    Cloud.TENCENT: (
        tencent_limits.MODIFY_MODEL_SERVICE,
        tencent_limits.MODIFY_MODEL_SERVICE_PARTIAL_CONFIG,
    ),
    Cloud.HUAWEI: (huawei_limits.UPDATE_SERVICE, huawei_limits.UPDATE_SERVICE_BY_PROPERTY),
    Cloud.BAIDU: (baidu_limits.SCALE_SERVICE, baidu_limits.DEACTIVATE_SERVICE),
}


class AccountSetupError(Exception):
    """The account cannot be used yet; `reason` goes into the Ready condition."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class AccountConfig:
    """Everything needed to talk to one account. Its repr shows no secret."""

    account: Account
    ca_bundle_pem: str | None
    budget_overrides: Mapping[str, CallRate]


def _secret_value(data: Mapping[str, str], key: str, secret_name: str) -> str:
    encoded = data.get(key)
    if encoded is None:
        raise AccountSetupError(Reason.SECRET_NOT_FOUND, f"Secret {secret_name} has no key {key!r}")
    try:
        value = base64.b64decode(encoded, validate=True).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError) as err:
        raise AccountSetupError(
            Reason.SECRET_NOT_FOUND, f"Secret {secret_name} key {key!r} is not valid base64 text"
        ) from err
    if not value:
        raise AccountSetupError(
            Reason.SECRET_NOT_FOUND, f"Secret {secret_name} key {key!r} is empty"
        )
    return value


def credentials_for(spec: CloudAccountSpec, secret_data: Mapping[str, str] | None) -> Credentials:
    """Typed credentials from the Secret's (base64) data."""
    ref = spec.credentials_secret_ref
    if secret_data is None:
        raise AccountSetupError(
            Reason.SECRET_NOT_FOUND,
            f"Secret {ref.name} not found in the CloudAccount's namespace",
        )
    key_id = _secret_value(secret_data, ref.access_key_id_key, ref.name)
    key = Secret(_secret_value(secret_data, ref.secret_access_key_key, ref.name))
    if spec.provider == "tencent":
        return TencentCredentials(secret_id=key_id, secret_key=key)
    if spec.provider == "huawei":
        assert spec.project_id is not None  # the CRD's CEL rule requires it
        return HuaweiCredentials(ak=key_id, sk=key, project_id=spec.project_id)
    return BaiduCredentials(ak=key_id, sk=key)


def budget_overrides(spec: CloudAccountSpec) -> dict[str, CallRate]:
    overrides: dict[str, CallRate] = {}
    cloud = Cloud(spec.provider)
    if spec.rate_budgets is None:
        return overrides
    if spec.rate_budgets.reads_per_second is not None:
        for action in READ_ACTIONS[cloud]:
            overrides[action] = CallRate(spec.rate_budgets.reads_per_second)
    if spec.rate_budgets.writes_per_second is not None:
        for action in WRITE_ACTIONS[cloud]:
            overrides[action] = CallRate(spec.rate_budgets.writes_per_second)
    return overrides


def effective_endpoint(spec: CloudAccountSpec) -> str:
    """The base URL the provider will call: spec.endpoint, or the cloud's public one."""
    if spec.endpoint:
        return spec.endpoint
    if spec.provider == "tencent":
        return TENCENT_ENDPOINT
    if spec.provider == "huawei":
        return endpoint_for(spec.region)
    return BAIDU_ENDPOINT


def account_config(
    name: str,
    spec: CloudAccountSpec,
    secret_data: Mapping[str, str] | None,
    ca_bundle_pem: str | None,
    allow_list: EndpointAllowList,
) -> AccountConfig:
    """Validate and assemble an account; raises AccountSetupError with a clear reason."""
    denial = allow_list.denial(effective_endpoint(spec))
    if denial is not None:
        raise AccountSetupError(Reason.ENDPOINT_NOT_ALLOWED, denial)
    if spec.ca_bundle_ref is not None and ca_bundle_pem is None:
        raise AccountSetupError(
            Reason.ACCOUNT_NOT_READY,
            f"ConfigMap {spec.ca_bundle_ref.name} key {spec.ca_bundle_ref.key!r} (caBundleRef) "
            "not found",
        )
    account = Account(
        name=name,
        cloud=Cloud(spec.provider),
        region=spec.region,
        credentials=credentials_for(spec, secret_data),
        endpoint=spec.endpoint,
    )
    return AccountConfig(account, ca_bundle_pem, budget_overrides(spec))


def new_budgets(cloud: Cloud, clock: Clock) -> RateBudgets:
    factory = {
        Cloud.TENCENT: new_tencent_budgets,
        Cloud.HUAWEI: new_huawei_budgets,
        Cloud.BAIDU: new_baidu_budgets,
    }[cloud]
    return factory(clock)


def new_provider(
    cloud: Cloud, client: httpx.AsyncClient, budgets: RateBudgets, clock: Clock
) -> CloudProvider:
    if cloud is Cloud.TENCENT:
        return TencentProvider(client, clock=clock, budgets=budgets)
    if cloud is Cloud.HUAWEI:
        return HuaweiProvider(client, clock=clock, budgets=budgets)
    return BaiduProvider(client, clock=clock, budgets=budgets)
