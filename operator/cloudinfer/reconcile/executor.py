"""The one place a cloud write happens: the call, its journal entry, metric, event and log.

The service reconciler sends its planned changes through `WriteExecutor.execute`, and so can
deletion (`policy.onDelete: Stop`): every write then leaves the same trace.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cloudinfer.api.conditions import Reason
from cloudinfer.cloud.errors import CloudError, NoAnswerError, ThrottledError
from cloudinfer.cloud.model import Change, ObservedService
from cloudinfer.reconcile.fence import WriteFence, answer_deadline
from cloudinfer.reconcile.kube_access import Key, KubeAccess
from cloudinfer.reconcile.ledger import LedgerEntry, describe, entry_of
from cloudinfer.reconcile.metrics import Metrics
from cloudinfer.reconcile.observer import Snapshot
from cloudinfer.reconcile.outcomes import Outcome, error_message, outcome_of

logger = logging.getLogger("cloudinfer")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _generation(body: Mapping[str, Any]) -> int:
    return int(body.get("metadata", {}).get("generation", 0))


def account_key(body: Mapping[str, Any]) -> Key:
    """The CloudAccount an InferenceService names."""
    meta, spec = body.get("metadata", {}), body.get("spec") or {}
    return str(meta.get("namespace") or ""), str((spec.get("accountRef") or {}).get("name", ""))


def _loop_time(monotonic_deadline: float | None) -> float | None:
    """A time.monotonic() instant on the event loop's clock (None: no deadline)."""
    if monotonic_deadline is None:
        return None
    return asyncio.get_running_loop().time() + (monotonic_deadline - time.monotonic())


def resource_name(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata", {})
    return f"{meta.get('namespace')}/{meta.get('name')}"


class Warnings:
    """Warning events of one resource: a new reason posts one, a repeat posts nothing."""

    def __init__(
        self, kube: KubeAccess, body: Mapping[str, Any] | Callable[[], Mapping[str, Any]]
    ) -> None:
        self._kube = kube
        self._body = body
        """The resource, or where to get its latest body (a reconciler's: no stale copy kept)."""
        self._last_reason: str | None = None

    def post(self, reason: Reason | str, message: str, *, always: bool = False) -> None:
        """`always`: post even a repeat (a write that is held, so that each hold has one)."""
        if always or str(reason) != self._last_reason:
            body = self._body() if callable(self._body) else self._body
            self._kube.event(body, "Warning", str(reason), message)
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
    def outcome(self) -> Outcome | None:
        """The error policy for a refusal (outcomes.py); None after a success."""
        return None if self.error is None else outcome_of(self.error)

    @property
    def reason(self) -> Reason:
        return Reason.RECONCILED if self.error is None else outcome_of(self.error).reason

    @property
    def message(self) -> str:
        described = describe(self.change)
        return described if self.error is None else f"{described}: {error_message(self.error)}"


class WriteExecutor:
    """Makes one change through the account's provider, and records it."""

    def __init__(
        self,
        kube: KubeAccess,
        metrics: Metrics,
        rng: random.Random | None = None,
        *,
        fence: WriteFence | None = None,
    ) -> None:
        self._kube = kube
        self._metrics = metrics
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self._fence = fence
        self._busy: Counter[Key] = Counter()

    def busy(self, account: Key) -> bool:
        """A write for the account is in flight (sharding waits for it before a handover)."""
        return self._busy[account] > 0

    async def execute(
        self,
        body: Mapping[str, Any],
        snapshot: Snapshot,
        observed: ObservedService,
        change: Change,
        *,
        refusals_in_a_row: int = 0,
        warnings: Warnings | None = None,
    ) -> WriteOutcome:
        """Send `change` for the resource `body`, planned from `observed` in `snapshot`.

        A success posts a `CloudWrite` event. A refusal posts a Warning event (through
        `warnings`, which drops a repeat of the last reason, except for a held write) and
        gets its retry time from the error policy; `refusals_in_a_row` (earlier refusals of
        this field since its last success) sets the backoff. Either way the outcome carries
        the ledger entry, stamped with the generation of `body` and the account fingerprint
        of `snapshot`, which the caller adds to status.journal.
        """
        if snapshot.provider is None or snapshot.config is None:
            raise ValueError("the snapshot has no provider: the account was never observed")
        warnings = warnings or Warnings(self._kube, body)
        described = describe(change)
        account = account_key(body)
        # Sharding: not sent at all unless this replica holds the account; cancelled if not
        # answered before another replica could take it (the client checks again just
        # before the request leaves: observer.py).
        answer_by = answer_deadline(self._fence, account) if self._fence is not None else None
        in_flight = self._metrics.writes_in_flight.labels(observed.cloud.value)
        in_flight.inc()
        self._busy[account] += 1
        try:
            try:
                async with asyncio.timeout_at(_loop_time(answer_by)):
                    result = await snapshot.provider.apply(
                        snapshot.config.account, change, observed=observed
                    )
            except TimeoutError as err:
                # The cloud may have applied it: recorded as a refusal that backs off, so the
                # same write waits for an observation instead of going out again at once.
                raise NoAnswerError(
                    "no answer before this replica's hold on the account could lapse; the "
                    "cloud may have applied it", cloud=observed.cloud.value, action=change.kind,
                ) from err  # fmt: skip
        except CloudError as err:
            entry = self._refused(body, snapshot, observed, change, err, refusals_in_a_row)
            held = entry.retry_at is None
            hold = "; not sent again until the spec, the CloudAccount or its Secret changes"
            warnings.post(
                outcome_of(err).reason,
                f"{described} failed: {error_message(err)}{hold if held else ''}",
                always=held,
            )
            return WriteOutcome(change, entry, err)
        finally:
            in_flight.dec()
            self._busy[account] -= 1
            if not self._busy[account]:
                del self._busy[account]
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
        entry = entry_of(
            change, at=now, action=result.call, why=change.reason, note=result.note,
            request_id=result.request_id, generation=_generation(body), account=snapshot.account,
        )  # fmt: skip
        return WriteOutcome(change, entry)

    def _refused(  # noqa: PLR0917 - the refused write and its context
        self,
        body: Mapping[str, Any],
        snapshot: Snapshot,
        observed: ObservedService,
        change: Change,
        err: CloudError,
        refusals_in_a_row: int,
    ) -> LedgerEntry:
        """Metrics, the log line and the ledger entry of a refused write."""
        now = _now()
        cloud = observed.cloud.value
        outcome = outcome_of(err)
        described = describe(change)
        name = resource_name(body)
        self._metrics.cloud_calls.labels(cloud, err.action or change.kind, "error").inc()
        if isinstance(err, ThrottledError):
            self._metrics.throttles.labels(cloud).inc()
        retry_at = outcome.retry_at(now, refusals_in_a_row, self._rng, err.retry_after)
        logger.warning(
            "cloud write failed: %s %s: %s (%s)", name, described, error_message(err),
            "held until the spec or the account changes" if retry_at is None
            else f"retry after {retry_at.isoformat(timespec='seconds')}",
            extra={"resource": name, "cloud": cloud, "action": err.action,
                   "request_id": err.request_id, "reason": str(outcome.reason),
                   "retry": str(outcome.retry)},
        )  # fmt: skip
        return entry_of(
            change, at=now, succeeded=False, action=err.action or change.kind, why=change.reason,
            request_id=err.request_id, error_class=err.reason, error=error_message(err),
            generation=_generation(body), account=snapshot.account, retry_at=retry_at,
        )  # fmt: skip
