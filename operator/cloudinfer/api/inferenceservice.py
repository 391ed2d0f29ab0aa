"""InferenceService: the desired replicas, RPS limit and stop schedule of one cloud service."""

from __future__ import annotations

import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from cloudinfer.api.common import (
    CONDITIONS_LIST_EXTRA,
    ApiModel,
    Condition,
    LocalObjectReference,
    cel,
    validations,
)
from cloudinfer.api.timezones import TIME_ZONE_RULE

SERVICE_ID_MAX_LENGTH = 128
INSTANCE_ID_MAX_LENGTH = 128
MAX_OBSERVED_INSTANCES = 32
# Replicas: 1..128 covers ModelArts' documented instance_count range; 0 is not allowed
# because Qianfan's ScaleService deletes the compute unit at 0. Stop with `suspend`.
MIN_REPLICAS = 1
MAX_REPLICAS = 128
# Tencent's InstanceRpsLimit examples go to 1e6; nothing larger is meaningful.
MAX_REQUESTS_PER_SECOND = 1_000_000
MAX_STOP_WINDOWS = 8
MAX_SKIP_DATES = 366
NEXT_TRANSITIONS = 3
JOURNAL_MAX_ENTRIES = 10

# Five-field cron: minute hour day-of-month month day-of-week. Items may be *, numbers,
# ranges, steps and three-letter names; value ranges are checked by the operator.
_CRON_ITEM = r"(\*|[0-9]{1,2}(-[0-9]{1,2})?|[A-Za-z]{3}(-[A-Za-z]{3})?)(/[0-9]{1,2})?"
_CRON_FIELD = rf"{_CRON_ITEM}(,{_CRON_ITEM})*"
CRON_PATTERN = rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$"
CRON_MAX_LENGTH = 128

PolicyMode = Literal["Enforce", "ObserveOnly"]
DeletionPolicy = Literal["Retain", "Stop"]


# The enums below carry no class docstring: pydantic would put it into the CRD schema ahead of
# each field's own description.


class RateLimitScope(StrEnum):
    # What an RPS limit applies to; the clouds differ.

    PER_INSTANCE = "PerInstance"
    """Each instance (replica) gets the limit (TI-ONE `InstanceRpsLimit`, Qianfan `qps`)."""
    PER_SERVICE = "PerService"
    """The whole service shares it (ModelArts v2 `rate_limit`)."""


class Phase(StrEnum):
    # A cloud's service status mapped to a neutral phase; the raw status is kept beside it.

    RUNNING = "Running"
    TRANSITIONING = "Transitioning"
    STOPPED = "Stopped"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class Support(StrEnum):
    # How a cloud supports managing one field of a service (status.capabilities).

    NATIVE = "Native"
    """A dedicated API call changes it."""
    EMULATED = "Emulated"
    """The operator achieves it with other calls (e.g. stopping at the scheduled time itself)."""
    READ_ONLY = "ReadOnly"
    """It can be observed but not changed after creation (e.g. Qianfan's per-replica QPS)."""
    UNSUPPORTED = "Unsupported"
    """The cloud neither reports nor changes it."""


CronExpression = Annotated[
    str,
    Field(
        min_length=9,
        max_length=CRON_MAX_LENGTH,
        pattern=CRON_PATTERN,
        description="Five-field cron expression: minute hour day-of-month month day-of-week.",
    ),
]


RATE_LIMIT_RULES = validations(
    cel(
        "has(self.requestsPerSecond) != (has(self.unlimited) && self.unlimited)",
        "has(self.requestsPerSecond) ? 'set either requestsPerSecond or unlimited: true, not "
        "both' : 'set requestsPerSecond (with scope), or unlimited: true to turn the limit off'",
    ),
    cel(
        "has(self.requestsPerSecond) == has(self.scope)",
        "has(self.scope) ? 'scope requires requestsPerSecond' : 'requestsPerSecond requires a "
        "scope: PerInstance or PerService'",
    ),
)


class RateLimit(ApiModel):
    """Requests-per-second limit. Set `requestsPerSecond` with a `scope`, or `unlimited: true`."""

    model_config = ConfigDict(json_schema_extra=RATE_LIMIT_RULES)

    requests_per_second: float | None = Field(
        default=None,
        gt=0,
        le=MAX_REQUESTS_PER_SECOND,
        description="Maximum requests per second, applied per `scope`.",
    )
    scope: RateLimitScope | None = Field(
        default=None,
        description="PerInstance (TI-ONE InstanceRpsLimit) or PerService (ModelArts). A cloud "
        "that only supports the other scope reports UnsupportedByCloud rather than converting.",
    )
    unlimited: bool | None = Field(
        default=None, description="true removes any limit on the cloud (turns the limit off)."
    )


STOP_WINDOW_RULES = validations(
    cel(
        "self.stop != self.start",
        "'stop and start must differ, both are \"' + self.stop + '\"'",
    ),
)


class StopWindow(ApiModel):
    """A recurring window during which the service is stopped (or runs fewer replicas), e.g.
    weekday nights."""

    model_config = ConfigDict(json_schema_extra=STOP_WINDOW_RULES)

    stop: CronExpression = Field(
        description="When the window opens and the service stops, or scales to `replicas` (cron)."
    )
    start: CronExpression = Field(
        description="When the window closes and the service returns to spec.replicas (cron)."
    )
    replicas: int | None = Field(
        default=None,
        ge=0,
        le=MAX_REPLICAS,
        description="During the window the service runs this many replicas instead of "
        "stopping (a tier, at most spec.replicas, which must be set). 0 or unset: stopped. "
        "Where windows overlap, the lowest count wins.",
        json_schema_extra={"format": "int32"},
    )


# YYYY-MM-DD, or a range YYYY-MM-DD/YYYY-MM-DD (ISO 8601 interval), both ends included.
SKIP_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(/[0-9]{4}-[0-9]{2}-[0-9]{2})?$"
SKIP_DATE_RULES = validations(
    cel(
        f"self.matches('{SKIP_DATE_PATTERN}') && "
        "!format.date().validate(self.substring(0, 10)).hasValue() && "
        "(size(self) == 10 || !format.date().validate(self.substring(11)).hasValue())",
        "'\"' + self + '\" is not a date (YYYY-MM-DD) or a range of dates (YYYY-MM-DD/YYYY-MM-DD)'",
    ),
    cel(
        "size(self) != 21 || self.substring(0, 10) <= self.substring(11)",
        "'the range \"' + self + '\" ends before it starts'",
    ),
)


def parse_skip_date(text: str) -> tuple[datetime.date, datetime.date]:
    """The first and last day of a skip date or range; ValueError names what is wrong."""
    first, _, last = text.partition("/")
    try:
        start = datetime.date.fromisoformat(first)
        end = datetime.date.fromisoformat(last) if last else start
    except ValueError as err:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or a range of dates") from err
    if end < start:
        raise ValueError(f"the range {text!r} ends before it starts")
    return start, end


def _check_skip_date(text: str) -> str:
    parse_skip_date(text)
    return text


SkipDate = Annotated[
    str,
    AfterValidator(_check_skip_date),
    Field(
        min_length=10,
        max_length=21,
        description="A date (YYYY-MM-DD) or a range (YYYY-MM-DD/YYYY-MM-DD, both included).",
        json_schema_extra=SKIP_DATE_RULES,
    ),
]


class StopSchedule(ApiModel):
    """When the service should stop. Present but empty means: no scheduled stop on the cloud."""

    stop_at: datetime.datetime | None = Field(
        default=None,
        description="One-shot stop time (RFC 3339). Uses the cloud's native schedule where one "
        "exists (TI-ONE ScheduledAction, ModelArts schedule); otherwise the operator stops the "
        "service itself at that time.",
    )
    windows: list[StopWindow] | None = Field(
        default=None,
        max_length=MAX_STOP_WINDOWS,
        description="Recurring stop windows, evaluated in `timeZone`. The operator stops the "
        "service (or scales it to the window's `replicas`) when a window opens and returns it "
        "to spec.replicas when the window closes. The annotation cloudinfer.dev/wake-until "
        "(an RFC 3339 time) keeps the service running at spec.replicas until then.",
    )
    skip_dates: list[SkipDate] | None = Field(
        default=None,
        max_length=MAX_SKIP_DATES,
        description="Dates or ranges of dates in `timeZone` (e.g. holidays) on which no window "
        "opens. A window that opened the day before closes as scheduled.",
    )
    time_zone: str = Field(
        default="UTC",
        max_length=64,
        description="IANA time zone for `windows`, e.g. Asia/Shanghai.",
        json_schema_extra=TIME_ZONE_RULE,
    )


class DeletionAndModePolicy(ApiModel):
    """How the operator acts on the cloud."""

    mode: PolicyMode = Field(
        default="Enforce",
        description="Enforce makes the cloud match the spec; ObserveOnly reports the plan in "
        "status and calls nothing that writes.",
    )
    on_delete: DeletionPolicy = Field(
        default="Retain",
        description="Retain leaves the cloud service untouched when this resource is deleted; "
        "Stop sends it one stop first: a finalizer holds the resource until the cloud accepts "
        "the stop (or the service is already stopped, or another InferenceService manages "
        "it), and the finalizer cloudinfer.dev/in-use keeps its CloudAccount, Secret and CA "
        "ConfigMap until then, also when the whole namespace is deleted. A stop the cloud "
        "refuses for 30 s (or a service still transitioning after 5 minutes) is given up: the "
        "resource is released with a ReleasedWithoutStop Warning event.",
    )


class BaiduOptions(ApiModel):
    """Qianfan-specific settings."""

    instance_id: str = Field(
        min_length=1,
        max_length=INSTANCE_ID_MAX_LENGTH,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The compute-unit instance (算力单元实例) of the service that ScaleService "
        "acts on; spec.replicas is then that instance's deploymentReplicasCount, and no other "
        "instance is touched. spec.baidu may be left out while the service has one instance: "
        "the operator then scales that one; with several instances and spec.replicas set it "
        "reports InvalidSpec and makes no call. An instance the service does not have gives "
        "Ready=False with reason InstanceNotFound and no cloud call.",
    )


SPEC_RULES = validations(
    cel(
        "!has(self.stopSchedule) || !has(self.stopSchedule.windows) || "
        "self.stopSchedule.windows.all(w, !has(w.replicas) || w.replicas == 0 || "
        "(has(self.replicas) && w.replicas <= self.replicas))",
        # No string(self.replicas): string(int) in a messageExpression blows the cost budget.
        "has(self.replicas) ? 'stopSchedule.windows[].replicas must not exceed spec.replicas: "
        "a window runs fewer replicas, not more' : "
        "'stopSchedule.windows[].replicas needs spec.replicas: the count the service returns "
        "to when the window closes'",
        field_path=".stopSchedule.windows",
    ),
)


class InferenceServiceSpec(ApiModel):
    """What the cloud service should look like. Only fields that are set are managed."""

    model_config = ConfigDict(json_schema_extra=SPEC_RULES)

    account_ref: LocalObjectReference = Field(
        description="The CloudAccount (same namespace) whose credentials reach the service."
    )
    service_id: Annotated[
        str,
        Field(
            min_length=1,
            max_length=SERVICE_ID_MAX_LENGTH,
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
            description="The cloud's service ID (TI-ONE ms-…, ModelArts UUID, Qianfan svco-…). "
            "Immutable.",
            json_schema_extra=validations(
                cel(
                    "self == oldSelf",
                    "'serviceId is immutable (was ' + oldSelf + '); delete and recreate the "
                    "InferenceService to manage another service'",
                )
            ),
        ),
    ]
    replicas: int | None = Field(
        default=None,
        ge=MIN_REPLICAS,
        le=MAX_REPLICAS,
        description="Desired replica count (1-128). Unset: replicas are not managed. 0 is not "
        "allowed; use suspend to stop the service. On Qianfan, the replicas of one "
        "compute-unit instance (see baidu.instanceId).",
        json_schema_extra={"format": "int32"},
    )
    rate_limit: RateLimit | None = Field(
        default=None,
        description="Requests-per-second limit. Unset: the limit is not managed.",
    )
    stop_schedule: StopSchedule | None = Field(
        default=None,
        description="Scheduled stops. Unset: the cloud's schedule is not managed.",
    )
    suspend: bool = Field(
        default=False, description="true stops the service now and keeps it stopped."
    )
    policy: DeletionAndModePolicy = Field(
        default_factory=DeletionAndModePolicy,
        description="Enforce or observe only, and what deletion does.",
        # The server fills mode and onDelete, so `kubectl get -o yaml` shows the policy in force.
        json_schema_extra={"default": {}},
    )
    baidu: BaiduOptions | None = Field(
        default=None,
        description="Qianfan-specific settings. May be left out for a service with one "
        "compute-unit instance; ignored on other clouds.",
    )

    @model_validator(mode="after")
    def _tiers_fit(self) -> InferenceServiceSpec:
        # The schema's CEL rule says the same; this covers objects stored before it.
        windows = (self.stop_schedule.windows if self.stop_schedule else None) or []
        for index, window in enumerate(windows):
            tier = window.replicas or 0
            if tier and (self.replicas is None or tier > self.replicas):
                limit = "unset" if self.replicas is None else str(self.replicas)
                raise ValueError(
                    f"stopSchedule.windows[{index}].replicas is {tier}; it must not exceed "
                    f"spec.replicas ({limit})"
                )
        return self


class ObservedRateLimit(ApiModel):
    """The RPS limit the cloud reports."""

    requests_per_second: float | None = Field(
        default=None, description="The limit, or absent when unlimited."
    )
    scope: RateLimitScope | None = Field(default=None, description="Scope the cloud applies.")


class ObservedInstance(ApiModel):
    """The replicas on one compute-unit instance of a Qianfan service."""

    instance_id: str = Field(
        max_length=INSTANCE_ID_MAX_LENGTH, description="The compute-unit instance ID."
    )
    replicas: int | None = Field(
        default=None, description="Its deploymentReplicasCount, as the cloud reports it."
    )


class ObservedState(ApiModel):
    """What the cloud reported at the last change of observation."""

    replicas: int | None = Field(
        default=None,
        description="Desired replicas on the cloud. On Qianfan, those of the instance "
        "spec.baidu.instanceId names (or the only one); the service's total otherwise.",
    )
    ready_replicas: int | None = Field(default=None, description="Ready replicas, if reported.")
    instances: list[ObservedInstance] | None = Field(
        default=None,
        max_length=MAX_OBSERVED_INSTANCES,
        description=f"Qianfan: the replicas on each compute-unit instance of the service, in "
        f"the cloud's order (the first {MAX_OBSERVED_INSTANCES}).",
    )
    rate_limit: ObservedRateLimit | None = Field(default=None, description="Current RPS limit.")
    scheduled_stop: datetime.datetime | None = Field(
        default=None, description="Pending one-shot stop time on the cloud."
    )
    phase: Phase | None = Field(default=None, description="Cloud state, mapped to a neutral phase.")
    cloud_status: str | None = Field(default=None, description="The cloud's raw status string.")
    message: str | None = Field(default=None, description="The cloud's status message or reason.")
    update_time: datetime.datetime | None = Field(
        default=None, description="When the cloud last changed the service."
    )


class SpecCapabilities(ApiModel):
    """How this cloud lets the operator manage each spec field (derived from the cloud's
    per-operation `cloud.model.Capabilities`)."""

    replicas: Support | None = Field(default=None, description="Replica count.")
    rate_limit: Support | None = Field(default=None, description="RPS limit.")
    stop_at: Support | None = Field(default=None, description="One-shot scheduled stop.")
    stop_windows: Support | None = Field(default=None, description="Recurring stop windows.")
    suspend: Support | None = Field(default=None, description="Stop and resume.")


class ScheduledTransition(ApiModel):
    """A stop, start or scale the operator will perform for recurring windows."""

    action: Literal["Stop", "Start", "Scale"] = Field(
        description="Stop, Start (to `replicas`), or Scale (to a window's tier or back)."
    )
    at: datetime.datetime = Field(description="When.")
    replicas: int | None = Field(
        default=None,
        description="The replicas the service runs after it: 0 for Stop; absent when "
        "spec.replicas is unset (replicas not managed).",
    )


class WakeOverride(ApiModel):
    """The cloudinfer.dev/wake-until annotation, as the operator reads it."""

    value: str = Field(max_length=64, description="The annotation's value (cut to 64 characters).")
    state: Literal["Active", "Expired", "Invalid"] = Field(
        description="Active: the service runs at spec.replicas until `until`, whatever the "
        "windows say. Expired or Invalid (not an RFC 3339 time with an offset): ignored."
    )
    until: datetime.datetime | None = Field(default=None, description="The time it ends.")


WrittenField = Literal["replicas", "rateLimit", "schedule", "stop", "resume"]
ChangeKind = Literal[
    "scale", "set-rate-limit", "clear-rate-limit", "set-schedule", "clear-schedule", "stop",
    "resume",
]  # fmt: skip


class WriteTarget(ApiModel):
    """The value a write set; empty for a clear, a stop or a resume."""

    replicas: int | None = Field(default=None, description="The replica count set.")
    requests_per_second: float | None = Field(default=None, description="The RPS limit set.")
    scope: RateLimitScope | None = Field(default=None, description="The RPS limit's scope.")
    stop_at: datetime.datetime | None = Field(
        default=None, description="The one-shot stop time set."
    )


class JournalEntry(ApiModel):
    """One cloud write call made by the operator: an entry of the write ledger.

    The operator reads `field`, `kind`, `target`, `time`, `result`, `errorClass`,
    `generation`, `account` and `retryAt` back (no duplicate writes, no retry of a refused
    change before its time); `change` is for people only.
    """

    time: datetime.datetime = Field(description="When the call returned, with milliseconds.")
    action: str = Field(max_length=128, description="Cloud API action, e.g. ModifyModelService.")
    change: str = Field(
        max_length=512,
        description="What the call changed, for people, e.g. scale: replicas 2 -> 3.",
    )
    request_id: str | None = Field(
        default=None, max_length=256, description="The cloud's request ID."
    )
    result: Literal["Succeeded", "Failed"] = Field(description="Outcome of the call.")
    field: WrittenField | None = Field(
        default=None, description="The field written. Absent only in entries of operator "
        "versions before the typed ledger.",
    )  # fmt: skip
    kind: ChangeKind | None = Field(
        default=None, description="The kind of change (the first, for a call that changed "
        "several fields).",
    )  # fmt: skip
    kinds: list[Annotated[ChangeKind, Field(description="The kind of one change.")]] | None = Field(
        default=None, min_length=2, max_length=5,
        description="For one call that changed several fields (a TI-ONE "
        "ModifyModelServicePartialConfig setting the RPS limit and the scheduled stop "
        "together): the kind of each change, in order; the first is `kind`, and `field` is "
        "its field. Absent for a call that changed one field.",
    )  # fmt: skip
    target: WriteTarget | None = Field(default=None, description="The value the call set.")
    error_class: str | None = Field(
        default=None, max_length=64,
        description="For a failed call: the error class, e.g. CloudInvalidRequest or "
        "CloudThrottled (docs/architecture.md, \"Errors and retries\").",
    )  # fmt: skip
    error: str | None = Field(
        default=None, max_length=512, description="For a failed call: the cloud's message."
    )
    generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation the change was planned from."
    )
    account: str | None = Field(
        default=None, max_length=256,
        description="The CloudAccount's uid and generation and its Secret's resourceVersion at "
        "the call. A change refused as invalid, unsupported or not permitted is not sent again "
        "until the generation or this changes.",
    )  # fmt: skip
    retry_at: datetime.datetime | None = Field(
        default=None, description="For a failed call that is retried: not before this time."
    )


class InferenceServiceStatus(ApiModel):
    """Observed state. Written only when something changed."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the status reflects."
    )
    provider: str | None = Field(default=None, description="The account's cloud.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Ready (the cloud matches the spec and serves), Synced (the last reconcile "
        "succeeded) and Drifted (the cloud differs from the spec).",
        json_schema_extra=CONDITIONS_LIST_EXTRA,
    )
    observed: ObservedState | None = Field(default=None, description="What the cloud reports.")
    capabilities: SpecCapabilities | None = Field(
        default=None, description="What the operator can manage on this cloud, and how."
    )
    next_transition: ScheduledTransition | None = Field(
        default=None,
        description="Next stop, start or scale from stopSchedule.windows (the first of "
        "nextTransitions; kept for compatibility).",
    )
    next_transitions: list[ScheduledTransition] | None = Field(
        default=None,
        max_length=NEXT_TRANSITIONS,
        description=f"The next {NEXT_TRANSITIONS} stops, starts or scales from "
        "stopSchedule.windows, skipDates and the wake override, soonest first.",
    )
    wake_override: WakeOverride | None = Field(
        default=None,
        description="The cloudinfer.dev/wake-until annotation, while the resource has one.",
    )
    journal: list[JournalEntry] = Field(
        default_factory=list,
        max_length=JOURNAL_MAX_ENTRIES,
        description=f"The last cloud write calls (at most {JOURNAL_MAX_ENTRIES}), newest last; "
        "the last call of each field is kept even when older.",
    )
