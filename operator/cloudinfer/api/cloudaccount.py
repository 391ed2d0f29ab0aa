"""CloudAccount: credentials for one cloud, used by the InferenceServices in its namespace."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from cloudinfer.api.common import (
    CONDITIONS_LIST_EXTRA,
    ApiModel,
    Condition,
    DataKey,
    ObjectName,
    cel,
    validations,
)

Provider = Literal["tencent", "huawei", "baidu"]

# Poll intervals bound the observer's list-call rate; see docs/api.md for the reasoning.
DEFAULT_POLL_INTERVAL_SECONDS = 30
MIN_POLL_INTERVAL_SECONDS = 5
MAX_POLL_INTERVAL_SECONDS = 3600
DEFAULT_ACTIVE_POLL_INTERVAL_SECONDS = 3
MIN_ACTIVE_POLL_INTERVAL_SECONDS = 1
MAX_RATE_PER_SECOND = 1000
ENDPOINT_MAX_LENGTH = 2048
REGION_MAX_LENGTH = 64


class CredentialsSecretRef(ApiModel):
    """The Secret holding the access key pair. Credentials are never written inline."""

    name: ObjectName = Field(description="Name of a Secret in the CloudAccount's namespace.")
    access_key_id_key: DataKey = Field(
        default="accessKeyId",
        description="Key in the Secret's data holding the access key ID "
        "(Tencent SecretId, Huawei AK, Baidu AK).",
    )
    secret_access_key_key: DataKey = Field(
        default="secretAccessKey",
        description="Key in the Secret's data holding the secret key "
        "(Tencent SecretKey, Huawei SK, Baidu SK).",
    )


class CaBundleRef(ApiModel):
    """A ConfigMap with PEM certificates to trust for the endpoint, besides the system roots."""

    name: ObjectName = Field(description="Name of a ConfigMap in the CloudAccount's namespace.")
    key: DataKey = Field(
        default="ca.crt", description="Key in the ConfigMap holding the PEM bundle."
    )


class RateBudgets(ApiModel):
    """Overrides of the per-account call budgets. Unset values use each cloud's documented limit."""

    reads_per_second: float | None = Field(
        default=None,
        gt=0,
        le=MAX_RATE_PER_SECOND,
        description="Budget for list and describe calls, per second. Defaults: TI-ONE 20 "
        "(list) and 50 (describe), ModelArts 10, Qianfan 10; see docs/api-design.md.",
    )
    writes_per_second: float | None = Field(
        default=None,
        gt=0,
        le=MAX_RATE_PER_SECOND,
        description="Budget for modify, scale, start and stop calls, per second. Defaults: "
        "TI-ONE 20, ModelArts 5, Qianfan 5; see docs/api-design.md.",
    )


CLOUD_ACCOUNT_SPEC_RULES = validations(
    cel(
        "self.provider != 'huawei' || has(self.projectId)",
        "'projectId is required when provider is huawei'",
    ),
    {
        "rule": "self.activePollIntervalSeconds <= self.pollIntervalSeconds",
        # A static message: string(int) in a messageExpression blows the CEL cost budget.
        "message": "activePollIntervalSeconds must not exceed pollIntervalSeconds",
    },
)


class CloudAccountSpec(ApiModel):
    """Desired configuration of a cloud account connection."""

    model_config = ConfigDict(json_schema_extra=CLOUD_ACCOUNT_SPEC_RULES)

    provider: Annotated[
        Provider,
        Field(
            description="Which cloud: tencent (TI-ONE), huawei (ModelArts) or baidu (Qianfan). "
            "Immutable.",
            json_schema_extra=validations(
                cel(
                    "self == oldSelf",
                    "'provider is immutable (was ' + oldSelf + '); create a new CloudAccount "
                    "for another cloud'",
                )
            ),
        ),
    ]
    region: str = Field(
        min_length=1,
        max_length=REGION_MAX_LENGTH,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Cloud region, e.g. ap-guangzhou, cn-north-4 or bj.",
    )
    endpoint: str | None = Field(
        default=None,
        max_length=ENDPOINT_MAX_LENGTH,
        description="Override of the API endpoint URL (scheme and host, optional port), e.g. "
        "for a private link or a simulator. Defaults to the cloud's public endpoint. Its host "
        "must be on the operator's endpoint allow-list (--allowed-endpoint-host), or the "
        "account gets Ready=False, reason EndpointNotAllowed.",
        json_schema_extra=validations(
            cel(
                "isURL(self) && url(self).getScheme() in ['http', 'https'] "
                "&& url(self).getHostname() != ''",
                "'endpoint must be an absolute http(s) URL, got: ' + self",
            )
        ),
    )
    project_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Huawei Cloud project ID (required for provider huawei, unused otherwise).",
    )
    credentials_secret_ref: CredentialsSecretRef = Field(
        description="Where the access key pair is stored."
    )
    ca_bundle_ref: CaBundleRef | None = Field(
        default=None,
        description="Extra CA certificates to trust for the endpoint's TLS. TLS verification "
        "is always on.",
    )
    rate_budgets: RateBudgets | None = Field(
        default=None, description="Overrides of the documented per-account rate limits."
    )
    poll_interval_seconds: int = Field(
        default=DEFAULT_POLL_INTERVAL_SECONDS,
        ge=MIN_POLL_INTERVAL_SECONDS,
        le=MAX_POLL_INTERVAL_SECONDS,
        description="Seconds between batched observations in steady state.",
    )
    active_poll_interval_seconds: int = Field(
        default=DEFAULT_ACTIVE_POLL_INTERVAL_SECONDS,
        ge=MIN_ACTIVE_POLL_INTERVAL_SECONDS,
        le=MAX_POLL_INTERVAL_SECONDS,
        description="Seconds between observations while a service is transitioning or has a "
        "change in flight on the cloud; while writes wait for rate budget, at least ten times as "
        "long as the last list took; never longer than pollIntervalSeconds.",
    )


class CloudAccountStatus(ApiModel):
    """Observed state of the account connection."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the status reflects."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Ready: credentials verified by one cheap read call.",
        json_schema_extra=CONDITIONS_LIST_EXTRA,
    )
    services_seen: int | None = Field(
        default=None, ge=0, description="Number of cloud services the last observation listed."
    )
