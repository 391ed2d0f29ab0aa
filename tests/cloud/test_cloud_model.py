"""The cloud-neutral model: changes parse by kind, invalid values are refused, and
capabilities answer per field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

from cloudinfer.cloud.model import (
    Capabilities,
    Change,
    ClearRateLimit,
    ClearSchedule,
    Cloud,
    ObservedService,
    Phase,
    RateLimitScope,
    RateLimitSetting,
    Replicas,
    Resume,
    Scale,
    ServiceField,
    SetRateLimit,
    SetSchedule,
    Stop,
    Support,
)

CHANGE = pydantic.TypeAdapter(Change)
STOP_AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

CHANGES: list[tuple[dict[str, Any], type, ServiceField]] = [
    ({"kind": "scale", "service_id": "s", "replicas": 3}, Scale, ServiceField.REPLICAS),
    (
        {"kind": "set-rate-limit", "service_id": "s", "rps": 22, "scope": "PerInstance"},
        SetRateLimit,
        ServiceField.RATE_LIMIT,
    ),
    ({"kind": "clear-rate-limit", "service_id": "s"}, ClearRateLimit, ServiceField.RATE_LIMIT),
    (
        {"kind": "set-schedule", "service_id": "s", "stop_at": "2026-12-01T16:00:00+08:00"},
        SetSchedule,
        ServiceField.SCHEDULE,
    ),
    ({"kind": "clear-schedule", "service_id": "s"}, ClearSchedule, ServiceField.SCHEDULE),
    ({"kind": "stop", "service_id": "s"}, Stop, ServiceField.STOP),
    ({"kind": "resume", "service_id": "s"}, Resume, ServiceField.RESUME),
]


@pytest.mark.parametrize(("raw", "cls", "field"), CHANGES, ids=[c[0]["kind"] for c in CHANGES])
def test_changes_parse_by_kind_and_round_trip(
    raw: dict[str, Any], cls: type, field: ServiceField
) -> None:
    change = CHANGE.validate_python(raw)
    assert type(change) is cls
    assert change.field is field
    assert CHANGE.validate_json(CHANGE.dump_json(change)) == change


def test_schedule_keeps_the_instant_across_time_zones() -> None:
    change = CHANGE.validate_python(
        {"kind": "set-schedule", "service_id": "s", "stop_at": "2026-12-01T16:00:00+08:00"}
    )
    assert isinstance(change, SetSchedule)
    assert change.stop_at == STOP_AT


@pytest.mark.parametrize(
    "raw",
    [
        {"kind": "scale", "service_id": "s", "replicas": -1},
        {"kind": "scale", "service_id": "", "replicas": 1},
        {"kind": "set-rate-limit", "service_id": "s", "rps": 0, "scope": "PerInstance"},
        {"kind": "set-rate-limit", "service_id": "s", "rps": 5, "scope": "PerPod"},
        {"kind": "set-schedule", "service_id": "s", "stop_at": "2026-12-01T16:00:00"},
        {"kind": "restart", "service_id": "s"},
        {"kind": "stop", "service_id": "s", "replicas": 0},
    ],
    ids=[
        "negative-replicas",
        "empty-service-id",
        "zero-rps",
        "unknown-scope",
        "naive-stop-time",
        "unknown-kind",
        "extra-field",
    ],
)
def test_invalid_changes_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        CHANGE.validate_python(raw)


QIANFAN_CAPABILITIES = Capabilities(
    replicas=Support.NATIVE,
    rate_limit=Support.READ_ONLY,
    schedule=Support.UNSUPPORTED,
    stop=Support.NATIVE,
    resume=Support.UNSUPPORTED,
    notes={ServiceField.RESUME: "Qianfan has no activate action"},
)


@pytest.mark.parametrize(
    ("field", "support"),
    [
        (ServiceField.REPLICAS, Support.NATIVE),
        (ServiceField.RATE_LIMIT, Support.READ_ONLY),
        (ServiceField.SCHEDULE, Support.UNSUPPORTED),
        (ServiceField.STOP, Support.NATIVE),
        (ServiceField.RESUME, Support.UNSUPPORTED),
    ],
    ids=str,
)
def test_capabilities_answer_per_field(field: ServiceField, support: Support) -> None:
    assert QIANFAN_CAPABILITIES.support(field) is support


def _observed(**overrides: Any) -> ObservedService:
    fields: dict[str, Any] = {
        "cloud": Cloud.TENCENT,
        "service_id": "ms-1-1",
        "replicas": Replicas(desired=2, ready=1),
        "rate_limit": RateLimitSetting(rps=22, scope=RateLimitScope.PER_INSTANCE),
        "scheduled_stop": STOP_AT,
        "phase": Phase.TRANSITIONING,
        "raw_status": "Waiting",
        "updated_at": datetime(2026, 11, 1, tzinfo=UTC),
        "capabilities": QIANFAN_CAPABILITIES,
    }
    return ObservedService(**(fields | overrides))


def test_observed_service_is_immutable() -> None:
    observed = _observed()
    with pytest.raises(pydantic.ValidationError):
        observed.phase = Phase.RUNNING  # type: ignore[misc]


@pytest.mark.parametrize(
    "overrides",
    [
        {"scheduled_stop": datetime(2026, 12, 1)},
        {"updated_at": datetime(2026, 12, 1)},
        {"phase": "Deploying"},
        {"replicas": {"desired": -1}},
    ],
    ids=["naive-schedule", "naive-update-time", "cloud-status-as-phase", "negative-replicas"],
)
def test_observed_service_refuses_ambiguous_values(overrides: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        _observed(**overrides)
