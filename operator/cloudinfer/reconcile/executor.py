"""The one place a cloud write happens: the call, its journal entry, metric, event and log.

The service reconciler sends its planned changes through `WriteExecutor.execute`, and so can
deletion (`policy.onDelete: Stop`): every write then leaves the same trace.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudinfer.api.conditions import Reason
from cloudinfer.cloud.errors import CloudError, ThrottledError
from cloudinfer.cloud.model import Change, ObservedService
from cloudinfer.reconcile.kube_access import KubeAccess
from cloudinfer.reconcile.ledger import LedgerEntry, target_of
from cloudinfer.reconcile.metrics import Metrics
from cloudinfer.reconcile.observer import Snapshot
from cloudinfer.reconcile.outcomes import error_message, error_reason
from cloudinfer.reconcile.planner import FAILED_WRITE_BACKOFF

logger = logging.getLogger("cloudinfer")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _generation(body: Mapping[str, Any]) -> int:
    return int(body.get("metadata", {}).get("generation", 0))


def resource_name(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata", {})
    return f"{meta.get('namespace')}/{meta.get('name')}"


class Warnings:
    """Warning events of one resource: a new reason posts one, a repeat posts nothing."""

    def __init__(self, kube: KubeAccess, body: Mapping[str, Any]) -> None:
        self._kube = kube
        self._body = body
        self._last_reason: str | None = None

    def post(self, reason: Reason | str, message: str) -> None:
        if str(reason) != self._last_reason:
            self._kube.event(self._body, "Warning", str(reason), message)
            self._last_reason = str(reason)

    def clear(self) -> None:
        """Something went right: the next failure is news again."""
        self._last_reason = None


@dataclass(frozen=True)
class WriteOutcome:
    """One write's result and its ledger entry (to be added to status.journal)."""

    change: Change
    entry: LedgerEntry
    error: CloudError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def reason(self) -> Reason:
        return Reason.RECONCILED if self.error is None else error_reason(self.error)

    @property
    def message(self) -> str:
        described = f"{self.change.kind}: {self.change.reason}"
        return described if self.error is None else f"{described}: {error_message(self.error)}"


class WriteExecutor:
    """Makes one change through the account's provider, and records it."""

    def __init__(self, kube: KubeAccess, metrics: Metrics) -> None:
        self._kube = kube
        self._metrics = metrics

    async def execute(
        self,
        body: Mapping[str, Any],
        snapshot: Snapshot,
        observed: ObservedService,
        change: Change,
        *,
        warnings: Warnings | None = None,
    ) -> WriteOutcome:
        """Send `change` for the resource `body`, planned from `observed` in `snapshot`.
        A refusal posts a Warning event (through `warnings`, which drops repeats), a
        success a `CloudWrite` event; either way the outcome carries the journal entry."""
        if snapshot.provider is None or snapshot.config is None:
            raise ValueError("the snapshot has no provider: the account was never observed")
        warnings = warnings or Warnings(self._kube, body)
        described = f"{change.kind}: {change.reason}"
        try:
            result = await snapshot.provider.apply(
                snapshot.config.account, change, observed=observed
            )
        except CloudError as err:
            return self._refused(body, observed, change, err, warnings)
        # The journal time is when the call returned, not when it was queued: a list that
        # started before this instant may predate the write (duplicate-write guard).
        now = _now()
        cloud = observed.cloud.value
        self._metrics.cloud_calls.labels(cloud, result.call, "success").inc()
        note = f" ({result.note})" if result.note else ""
        name = resource_name(body)
        logger.info(
            "cloud write: %s %s %s (request %s)", name, result.call, described, result.request_id,
            extra={"resource": name, "cloud": cloud, "action": result.call,
                   "request_id": result.request_id, "change": described},
        )  # fmt: skip
        self._kube.event(
            body, "Normal", "CloudWrite",
            f"{result.call} {described}{note} (request {result.request_id or 'n/a'})",
        )  # fmt: skip
        warnings.clear()
        entry = LedgerEntry(
            at=now, field=change.field, kind=change.kind, target=target_of(change),
            action=result.call, why=change.reason, note=result.note,
            request_id=result.request_id, generation=_generation(body),
        )  # fmt: skip
        return WriteOutcome(change, entry)

    def _refused(
        self,
        body: Mapping[str, Any],
        observed: ObservedService,
        change: Change,
        err: CloudError,
        warnings: Warnings,
    ) -> WriteOutcome:
        now = _now()
        cloud = observed.cloud.value
        reason = error_reason(err)
        described = f"{change.kind}: {change.reason}"
        name = resource_name(body)
        self._metrics.cloud_calls.labels(cloud, err.action or change.kind, "error").inc()
        if isinstance(err, ThrottledError):
            self._metrics.throttles.labels(cloud).inc()
        logger.warning(
            "cloud write failed: %s %s: %s", name, described, error_message(err),
            extra={"resource": name, "cloud": cloud, "action": err.action,
                   "request_id": err.request_id, "reason": str(reason)},
        )  # fmt: skip
        warnings.post(reason, f"{described} failed: {error_message(err)}")
        entry = LedgerEntry(
            at=now, field=change.field, kind=change.kind, target=target_of(change),
            succeeded=False, action=err.action or change.kind, why=change.reason,
            request_id=err.request_id, error_class=err.reason, error=error_message(err),
            generation=_generation(body), retry_at=now + FAILED_WRITE_BACKOFF,
        )  # fmt: skip
        return WriteOutcome(change, entry, err)
