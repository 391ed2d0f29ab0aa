"""The operator's one settings model: each field is a flag, a CLOUDINFER_* variable, a chart value.

A field's environment variable is `CLOUDINFER_` plus its name in capitals (pydantic-settings
reads it); its flags and its Helm chart value are declared beside it (`Option`). The CLI
(`cli.py`) builds its parser from these fields, and tests/main/test_settings.py checks that
every field reaches the operator from all three places. Precedence: a flag given on the command
line, then the environment, then the default (docs/install.md).
"""

from __future__ import annotations

import os
import socket
import zlib
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cloudinfer.cloud.allowlist import DEFAULT_PATTERNS, EndpointAllowList, HostPattern

ENV_PREFIX = "CLOUDINFER_"
AUTO_PRIORITY = "auto"
AUTO_PRIORITY_RANGE = 10_000


@dataclass(frozen=True)
class Option:
    """How one setting is given on the command line and in the Helm chart."""

    flags: tuple[str, ...]
    """Its flags, short forms first; the last one is the long form shown in docs."""
    chart: str
    """The chart value that sets it (charts/cloudinfer-operator/values.yaml)."""
    chart_negates: bool = False
    """The chart value is the setting's opposite (`peering.enabled: false` is --standalone)."""
    reset_flags: tuple[str, ...] = ()
    """Flags that set the default explicitly, e.g. --all-namespaces."""
    shown_default: str | None = None
    """The default as people write it, when the field's own default is computed."""
    metavar: str | None = None
    """The value's name in --help; default: the field name's last word."""

    @property
    def flag(self) -> str:
        return self.flags[-1]


POD_NAME_ENV = "POD_ID"
"""The pod's name, from the downward API (the chart sets it). Kopf reads the same variable
for its peering identity."""


def pod_name() -> str:
    """This pod's name: POD_ID, else the host name, which is the pod's name unless the pod
    shares the node's network (then every such pod on the node has the node's name)."""
    return os.environ.get(POD_NAME_ENV) or socket.gethostname()


def auto_priority() -> int:
    """A peering priority derived from the pod name: distinct per pod with overwhelming
    likelihood, and stable across restarts."""
    return zlib.crc32(pod_name().encode()) % AUTO_PRIORITY_RANGE + 1


class Settings(BaseSettings):
    """How the operator runs."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,  # CLOUDINFER_NAMESPACES= means unset, as it always did
        frozen=True,
        extra="forbid",
    )

    namespaces: Annotated[
        tuple[str, ...],
        NoDecode,  # CLOUDINFER_NAMESPACES=a,b, not JSON
        Option(
            ("-n", "--namespace"),
            "watchNamespaces",
            reset_flags=("-A", "--all-namespaces"),
            metavar="NS",
        ),
    ] = Field(
        default=(),
        description="Watch this namespace (the flag is repeatable, the variable comma-separated; "
        "Kopf's globs such as t-* work); empty watches all namespaces.",
    )
    peering: Annotated[str, Option(("--peering",), "peering.name", metavar="NAME")] = Field(
        default="cloudinfer-operator",
        min_length=1,
        description="Kopf peering name shared by replicas for HA; only the highest-priority "
        "replica acts.",
    )
    standalone: Annotated[
        bool, Option(("--standalone",), "peering.enabled", chart_negates=True)
    ] = Field(default=False, description="Disable peering (a single replica).")
    priority: Annotated[
        int, Option(("--priority",), "peering.priority", shown_default=AUTO_PRIORITY)
    ] = Field(
        default_factory=auto_priority,
        description="Peering priority of this replica: an integer, or 'auto' for a stable number "
        "derived from the host (pod) name. Kopf pauses every peer that shares the highest "
        "priority, so replicas must differ; the highest one acts, the others wait.",
    )
    shard: Annotated[bool, Option(("--shard",), "sharding.enabled")] = Field(
        default=False,
        description="Sharding: every replica is active, and the CloudAccounts are split "
        "between them through Leases (each account served by one replica); implies no "
        "peering.",
    )
    shard_namespace: Annotated[
        str,
        Option(
            ("--shard-namespace",),
            "sharding.leaseNamespace",
            metavar="NS",
            shown_default="(the pod's namespace)",
        ),
    ] = Field(
        default="",
        description="Namespace of the sharding Leases; empty: the pod's own namespace.",
    )
    health_port: Annotated[int, Option(("--health-port",), "healthPort")] = Field(
        default=8080,
        ge=0,
        le=65535,
        description="Serve the liveness probe at :PORT/healthz; 0: off.",
    )
    metrics_port: Annotated[int, Option(("--metrics-port",), "metrics.port")] = Field(
        default=9090,
        ge=0,
        le=65535,
        description="Serve Prometheus metrics at :PORT/metrics; 0: off.",
    )
    log_format: Annotated[Literal["json", "text"], Option(("--log-format",), "logFormat")] = Field(
        default="json", description="Log line format: json or text."
    )
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"], Option(("--log-level",), "logLevel")
    ] = Field(
        default="info",
        description=(
            "Minimum level logged: debug, info, warning or error (the HTTP client's line "
            "per cloud request only at debug)."
        ),
    )

    allowed_endpoint_hosts: Annotated[
        tuple[str, ...],
        NoDecode,  # CLOUDINFER_ALLOWED_ENDPOINT_HOSTS=a,b, not JSON
        Option(("--allowed-endpoint-host",), "allowedEndpointHosts", metavar="PATTERN"),
    ] = Field(
        default=DEFAULT_PATTERNS,
        min_length=1,
        description="Cloud requests go only to hosts matching one of these patterns (the flag "
        "is repeatable and replaces the default list, the variable comma-separated): a host, "
        "*.DOMAIN, an IP address or *, each optionally with :PORT. A CloudAccount whose "
        "endpoint is outside the list gets Ready=False, reason EndpointNotAllowed, and no "
        "request.",
    )

    @field_validator("namespaces", "allowed_endpoint_hosts", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(n.strip() for n in value.split(",") if n.strip())
        return value

    @field_validator("allowed_endpoint_hosts")
    @classmethod
    def _parse_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            HostPattern.parse(pattern)  # ValueError names the bad pattern
        return value

    @field_validator("priority", mode="before")
    @classmethod
    def _resolve_priority(cls, value: object) -> object:
        if value == AUTO_PRIORITY:
            return auto_priority()
        if isinstance(value, str) and not value.strip().lstrip("+-").isdigit():
            raise ValueError(f"expected an integer or '{AUTO_PRIORITY}'")
        return value

    @property
    def peered(self) -> bool:
        """Kopf peering applies: one active replica. Sharding runs every replica active."""
        return not self.standalone and not self.shard

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def endpoint_allow_list(self) -> EndpointAllowList:
        return EndpointAllowList.of(self.allowed_endpoint_hosts)

    @staticmethod
    def option(name: str) -> Option:
        (option,) = (m for m in Settings.model_fields[name].metadata if isinstance(m, Option))
        return option

    @staticmethod
    def metavar(name: str) -> str:
        return Settings.option(name).metavar or name.upper().rsplit("_", 1)[-1]

    @staticmethod
    def env_var(name: str) -> str:
        return f"{ENV_PREFIX}{name.upper()}"


def shown_default(name: str) -> str:
    """A field's default as a flag or variable would spell it."""
    field: FieldInfo = Settings.model_fields[name]
    shown = Settings.option(name).shown_default
    if shown is not None:
        return shown
    default = field.get_default(call_default_factory=True)
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, tuple):
        return ",".join(default) or "(all)"
    return str(default)
