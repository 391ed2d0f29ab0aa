"""Types shared by both kinds: the API group, references and the metav1.Condition shape."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "cloudinfer.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Kubernetes object names (RFC 1123 subdomain) and keys of a Secret's data.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_SUBDOMAIN_MAX = 253
DATA_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"

ObjectName = Annotated[
    str,
    Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX, pattern=DNS_SUBDOMAIN_PATTERN),
]
DataKey = Annotated[
    str, Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX, pattern=DATA_KEY_PATTERN)
]


def cel(
    rule: str,
    message_expression: str,
    *,
    reason: str | None = None,
    field_path: str | None = None,
) -> dict[str, Any]:
    """One `x-kubernetes-validations` entry; messageExpression explains the failure to people,
    and `field_path` (e.g. `.stopSchedule.windows`) names the field it is about."""
    entry: dict[str, Any] = {"rule": rule, "messageExpression": message_expression}
    if reason is not None:
        entry["reason"] = reason
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


def validations(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


class ApiModel(BaseModel):
    """Base for every CRD type: camelCase on the wire, unknown fields rejected in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class LocalObjectReference(ApiModel):
    """A reference to an object in the same namespace."""

    name: ObjectName = Field(description="Name of the object, in the same namespace.")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One aspect of the object's state, in the metav1.Condition shape."""

    type: str = Field(
        description="Condition type, e.g. Ready or Synced.",
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="Machine-readable CamelCase reason for the last transition.",
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    )
    message: str = Field(description="Human-readable details.", max_length=32768)
    last_transition_time: datetime.datetime = Field(description="When the status last changed.")
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The .metadata.generation this condition was computed from.",
    )


CONDITIONS_LIST_EXTRA: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}
