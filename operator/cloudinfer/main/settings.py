"""The operator's one settings model, filled from flags (or CLOUDINFER_* environment variables).

The Helm chart's values use the same names (docs/install.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_PEERING_NAME = "cloudinfer-operator"
DEFAULT_HEALTH_PORT = 8080
DEFAULT_METRICS_PORT = 9090


class Settings(BaseModel):
    """How the operator runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespaces: tuple[str, ...] = Field(
        default=(), description="Namespaces to watch; empty means all namespaces."
    )
    peering_name: str = Field(
        default=DEFAULT_PEERING_NAME,
        description="Kopf peering object shared by replicas; only the highest-priority "
        "replica acts (HA).",
    )
    standalone: bool = Field(default=False, description="Disable peering (single replica).")
    priority: int = Field(default=0, description="Peering priority of this replica.")
    health_port: int = Field(
        default=DEFAULT_HEALTH_PORT, ge=0, le=65535, description="Liveness endpoint /healthz."
    )
    metrics_port: int = Field(
        default=DEFAULT_METRICS_PORT, ge=0, le=65535, description="Prometheus /metrics; 0 = off."
    )
    log_format: Literal["json", "text"] = Field(default="json", description="Log line format.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Minimum level logged."
    )

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces
