"""Reading fields out of a cloud's JSON payload; a surprise becomes a MalformedResponseError.

Providers parse replies with a `Payload` so that a missing or mistyped field names itself and
carries the call's request id, instead of surfacing as a KeyError or TypeError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudinfer.cloud.errors import MalformedResponseError


@dataclass(frozen=True, slots=True)
class Payload:
    """A JSON object from a reply, with the context to blame it precisely."""

    data: dict[str, Any]
    cloud: str
    action: str
    request_id: str | None
    path: str = ""

    def _fail(self, key: str, expected: str) -> MalformedResponseError:
        where = f"{self.path}.{key}" if self.path else key
        value = self.data.get(key, "<missing>")
        return MalformedResponseError(
            f"{where} should be {expected}, got {value!r}"[:200],
            cloud=self.cloud,
            action=self.action,
            request_id=self.request_id,
        )

    def _child(self, key: str, data: dict[str, Any]) -> Payload:
        path = f"{self.path}.{key}" if self.path else key
        return Payload(data, self.cloud, self.action, self.request_id, path)

    def object(self, key: str) -> Payload:
        value = self.data.get(key)
        if not isinstance(value, dict):
            raise self._fail(key, "an object")
        return self._child(key, value)

    def optional_object(self, key: str) -> Payload | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._fail(key, "an object or null")
        return self._child(key, value)

    def objects(self, key: str, *, optional: bool = False) -> list[Payload]:
        raw = self.object_list(key, optional=optional)
        return [self.element(key, i, item) for i, item in enumerate(raw)]

    def object_list(self, key: str, *, optional: bool = False) -> list[dict[str, Any]]:
        """The list's objects unwrapped, checked as `objects` checks them: `element` wraps
        one when it is read (a list cache reads only the items that changed)."""
        value = self.data.get(key)
        if value is None and optional:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self._fail(key, "a list of objects")
        return value

    def element(self, key: str, index: int, item: dict[str, Any]) -> Payload:
        """Item `index` of the list `key`, as `objects` would have wrapped it."""
        return self._child(f"{key}[{index}]", item)

    def string(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str) or not value:
            raise self._fail(key, "a non-empty string")
        return value

    def optional_string(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self._fail(key, "a string")
        return value

    def integer(self, key: str, *, minimum: int | None = None) -> int:
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, "an integer")
        if minimum is not None and value < minimum:
            raise self._fail(key, f"an integer of at least {minimum}")
        return value

    def optional_integer(self, key: str, *, minimum: int | None = None) -> int | None:
        if self.data.get(key) is None:
            return None
        return self.integer(key, minimum=minimum)

    def number(self, key: str, *, minimum: float | None = None) -> float:
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, "a number")
        if minimum is not None and not value >= minimum:  # also refuses NaN
            raise self._fail(key, f"a number of at least {minimum:g}")
        return float(value)

    def optional_number(self, key: str, *, minimum: float | None = None) -> float | None:
        if self.data.get(key) is None:
            return None
        return self.number(key, minimum=minimum)

    def boolean(self, key: str, *, default: bool | None = None) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, "a boolean")
        return value

    def optional_iso_time(self, key: str) -> datetime | None:
        """An ISO-8601 instant (`Z` or an offset); naive times are read as UTC."""
        text = self.optional_string(key)
        if text is None:
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise self._fail(key, "an ISO-8601 time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def optional_epoch_ms(self, key: str) -> datetime | None:
        """Milliseconds since the epoch, as a number or a numeric string (ModelArts)."""
        value = self.data.get(key)
        if value is None or value == "":
            return None
        try:
            millis = float(value)
        except (TypeError, ValueError):
            raise self._fail(key, "epoch milliseconds") from None
        return datetime.fromtimestamp(millis / 1000, UTC)
