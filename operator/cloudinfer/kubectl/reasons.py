"""Every condition reason the operator writes: what it means and what to do about it.

The one source of `kubectl cloudinfer why` and of docs/reasons.md, which is generated from it
(`python -m cloudinfer.kubectl.reasons > docs/reasons.md`; tests/kubectl/test_reasons.py checks
that the file is current and that every `Reason` has a row).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cloudinfer.api.conditions import Reason


class Kind(StrEnum):
    HEALTHY = "healthy"
    PROGRESSING = "progressing"
    NEEDS_A_PERSON = "needs a person"
    STOPPED_ON_PURPOSE = "stopped on purpose"


@dataclass(frozen=True)
class Explanation:
    kind: Kind
    where: str
    """Which conditions carry it."""
    meaning: str
    action: str
    """What to do about it."""


_ANY = "Ready, Synced"
EXPLANATIONS: dict[Reason, Explanation] = {
    Reason.CONVERGED: Explanation(
        Kind.HEALTHY, "Ready",
        "The cloud matches the spec and the service is running.",
        "Nothing.",
    ),
    Reason.SCALED_BY_SCHEDULE: Explanation(
        Kind.HEALTHY, "Ready",
        "A stop window with `replicas` is open: the service runs that many replicas (the "
        "lowest count of the open windows), not spec.replicas. `kubectl cloudinfer get NAME` "
        "shows when the window closes; `kubectl cloudinfer wake NAME --for 2h` runs it at "
        "spec.replicas for a while.",
        "Nothing.",
    ),
    Reason.WAKE_OVERRIDE: Explanation(
        Kind.HEALTHY, "Ready",
        "The cloudinfer.dev/wake-until annotation keeps the service at spec.replicas through "
        "its stop windows until that time (status.wakeOverride); it expires by itself, and "
        "`kubectl cloudinfer wake NAME --clear` ends it now.",
        "Nothing.",
    ),
    Reason.CREDENTIALS_VERIFIED: Explanation(
        Kind.HEALTHY, "CloudAccount Ready",
        "A cheap read call succeeded with the account's credentials.",
        "Nothing.",
    ),
    Reason.RECONCILED: Explanation(
        Kind.HEALTHY, "Synced",
        "The last reconcile made every cloud call it planned, or needed none.",
        "Nothing.",
    ),
    Reason.IN_SYNC: Explanation(
        Kind.HEALTHY, "Drifted",
        "Every managed field on the cloud equals the spec.",
        "Nothing.",
    ),
    Reason.CONVERGING: Explanation(
        Kind.PROGRESSING, "Ready, Drifted, Synced",
        "Changes were sent, a write is in flight or backing off, or the cloud is transitioning "
        "(starting, stopping, scaling, or busy with another change); the operator waits for "
        "the cloud to settle.",
        "Wait. `kubectl cloudinfer get NAME` shows the write ledger and `plan NAME` what is "
        "still to send. Converging for more than 30 minutes: look at the service in the "
        "cloud's console, it may be stuck transitioning.",
    ),
    Reason.CLOUD_THROTTLED: Explanation(
        Kind.PROGRESSING, "Synced, Ready, CloudAccount Ready",
        "The cloud throttled a call; it is retried with backoff within the account's rate "
        "budget, which shrinks after each throttle (AIMD).",
        "Nothing if it passes. If it lasts, `kubectl cloudinfer status` shows the budgets "
        "and throttles: lower the CloudAccount's spec.rateBudgets, or find the other callers "
        "using the same credentials.",
    ),
    Reason.CLOUD_UNREACHABLE: Explanation(
        Kind.PROGRESSING, "Ready, Synced, CloudAccount Ready",
        "Transport errors, timeouts, 5xx or malformed replies from the cloud; retried with "
        "backoff.",
        "Check the CloudAccount's endpoint and region, egress from the operator's pod "
        "(NetworkPolicy, proxy) and its caBundleRef, and the cloud's status page.",
    ),
    Reason.PENDING_OBSERVATION: Explanation(
        Kind.PROGRESSING, _ANY,
        "The account's observer has not listed this service yet (or another CloudAccount "
        "naming the same cloud service has not, and an older InferenceService may own it).",
        "Wait one poll interval. If it stays, check the CloudAccount's Ready condition "
        "(`kubectl cloudinfer status`) and that an operator runs and watches this namespace.",
    ),
    Reason.AUTH_FAILED: Explanation(
        Kind.NEEDS_A_PERSON, "Ready, Synced, CloudAccount Ready",
        "The cloud rejected the credentials or the signature, or the request time (clock "
        "skew); retried every 15 s.",
        "Check that the Secret holds this account's key pair for this cloud (and the "
        "CloudAccount's region and projectId), and that the node's clock is right. A fixed "
        "Secret is read at the next poll.",
    ),
    Reason.INVALID_SPEC: Explanation(
        Kind.NEEDS_A_PERSON, "Ready, Synced, CloudAccount Ready",
        "The spec passed the schema but cannot be acted on, e.g. a cron value out of range, "
        "or a Qianfan service with several instances and no spec.baidu.instanceId.",
        "Read the message and fix the spec; no cloud call is made until then.",
    ),
    Reason.UNSUPPORTED_BY_CLOUD: Explanation(
        Kind.NEEDS_A_PERSON, "Ready, Synced, Drifted",
        "The spec asks for something this cloud cannot do (known in advance, or the cloud "
        "refused the action as unsupported, which is held); the other fields are still "
        "managed.",
        "Remove or change that field (e.g. rateLimit.scope to the scope the cloud applies); "
        "`kubectl cloudinfer get NAME` shows the capabilities.",
    ),
    Reason.ACCOUNT_NOT_READY: Explanation(
        Kind.NEEDS_A_PERSON, _ANY,
        "The CloudAccount named by spec.accountRef is missing or not Ready, or its Secret is "
        "missing.",
        "`kubectl cloudinfer status -n NS` shows the account's Ready reason. Create the "
        "CloudAccount and its Secret in the service's namespace, or fix spec.accountRef.name.",
    ),
    Reason.SERVICE_NOT_FOUND: Explanation(
        Kind.NEEDS_A_PERSON, _ANY,
        "The cloud has no service with this serviceId in this account and region (or a write "
        "was answered not found; retried with backoff).",
        "Check spec.serviceId, and that the CloudAccount's region (and projectId) is the "
        "service's. serviceId is immutable: to manage another service, create another "
        "InferenceService.",
    ),
    Reason.INSTANCE_NOT_FOUND: Explanation(
        Kind.NEEDS_A_PERSON, _ANY,
        "Qianfan: the service has no compute-unit instance spec.baidu.instanceId (named in the "
        "message), or none at all to scale; no cloud call is made.",
        "Set spec.baidu.instanceId to one of the instances `kubectl cloudinfer get NAME` "
        "lists under observed.",
    ),
    Reason.SECRET_NOT_FOUND: Explanation(
        Kind.NEEDS_A_PERSON, "CloudAccount Ready",
        "The credentials Secret, or one of its keys, is missing.",
        "Create the Secret named by spec.credentialsSecretRef.name in the CloudAccount's "
        "namespace, with the keys accessKeyIdKey and secretAccessKeyKey name.",
    ),
    Reason.ENDPOINT_NOT_ALLOWED: Explanation(
        Kind.NEEDS_A_PERSON, "CloudAccount Ready",
        "The host of spec.endpoint (or the cloud's public endpoint) is outside the operator's "
        "endpoint allow-list; no request is sent to it. Its InferenceServices show "
        "AccountNotReady.",
        "Point spec.endpoint at an allowed host, or have whoever runs the operator add the "
        "host to --allowed-endpoint-host (chart value allowedEndpointHosts; "
        "docs/security.md#endpoint-allow-list).",
    ),
    Reason.CLOUD_REJECTED: Explanation(
        Kind.NEEDS_A_PERSON, "Ready, Synced, Drifted",
        "The cloud refused a write as invalid (held: not sent again until the spec, the "
        "CloudAccount or its Secret changes) or as conflicting with the service's state "
        "(retried with backoff).",
        "`kubectl cloudinfer get NAME` shows the refused call and the cloud's error. Invalid: "
        "change the spec, or touch the Secret (add an annotation) to send it once more as it "
        "is. A conflict usually passes once the service's state changes.",
    ),
    Reason.PERMISSION_DENIED: Explanation(
        Kind.NEEDS_A_PERSON, "Ready, Synced, Drifted",
        "The credentials work but may not make this write (a missing CAM or IAM policy); "
        "held until the spec, the CloudAccount or its Secret changes.",
        "Grant the policy for the action the ledger names (`kubectl cloudinfer get NAME`), "
        "then touch the Secret (add an annotation) to lift the hold.",
    ),
    Reason.CLOUD_SERVICE_FAILED: Explanation(
        Kind.NEEDS_A_PERSON, "Ready, Drifted",
        "The cloud reports the service as failed.",
        "Look at the service in the cloud's console; observed.message carries the cloud's "
        "reason. The operator does not recreate services.",
    ),
    Reason.PLATFORM_STOPPED: Explanation(
        Kind.NEEDS_A_PERSON, "Ready, Drifted",
        "The platform stopped the service (arrears, an allow-list, a frozen account); the "
        "operator does not fight it.",
        "Resolve it in the cloud's console (pay the bill, ask for the allow-list). The "
        "operator does not start it again by itself.",
    ),
    Reason.QUOTA_EXCEEDED: Explanation(
        Kind.NEEDS_A_PERSON, _ANY,
        "The cloud refused for quota, capacity or billing reasons; retried slowly (from 60 s "
        "to 30 minutes).",
        "Raise the quota, free capacity or settle the bill, or lower spec.replicas.",
    ),
    Reason.SERVICE_CLAIMED: Explanation(
        Kind.NEEDS_A_PERSON, _ANY,
        "An older InferenceService (named in the message) names the same cloud service; this "
        "one makes no cloud call.",
        "Delete one of the two, or point this one at another service (a new InferenceService: "
        "serviceId is immutable).",
    ),
    Reason.SUSPENDED: Explanation(
        Kind.STOPPED_ON_PURPOSE, "Ready, Drifted",
        "spec.suspend is true and the service is stopped (or stopping).",
        "Set spec.suspend to false to start it again.",
    ),
    Reason.SCHEDULED_STOP: Explanation(
        Kind.STOPPED_ON_PURPOSE, "Ready, Drifted",
        "A stop window or spec.stopSchedule.stopAt is in effect.",
        "Nothing; `kubectl cloudinfer get NAME` shows the next transitions. `kubectl "
        "cloudinfer wake NAME --for 2h` keeps it started for a while.",
    ),
    Reason.PAUSED: Explanation(
        Kind.STOPPED_ON_PURPOSE, "Ready, Drifted",
        "The cloudinfer.dev/paused annotation is \"true\": the operator observes but makes no "
        "cloud write; the message says what it would send.",
        "`kubectl cloudinfer resume NAME` when writes may go out again.",
    ),
    Reason.OBSERVE_ONLY: Explanation(
        Kind.STOPPED_ON_PURPOSE, "Ready, Drifted",
        "spec.policy.mode is ObserveOnly and the cloud differs from the spec: reported, not "
        "changed.",
        "`kubectl cloudinfer plan NAME` shows what Enforce would send; set spec.policy.mode "
        "to Enforce to let it.",
    ),
    Reason.STOPPED_OUTSIDE_OPERATOR: Explanation(
        Kind.STOPPED_ON_PURPOSE, "Ready, Drifted",
        "Someone else stopped the service; the operator starts only what it stopped itself "
        "(or what a stop window owns).",
        "Set spec.suspend to true to keep it stopped, or start it in the cloud's console.",
    ),
}  # fmt: skip


def explain(reason: str) -> Explanation | None:
    """The row of a reason as found in status; None for one this version does not know."""
    try:
        return EXPLANATIONS.get(Reason(reason))
    except ValueError:
        return None


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """docs/reasons.md."""
    lines = [
        "<!-- Generated from operator/cloudinfer/kubectl/reasons.py by",
        "     `python -m cloudinfer.kubectl.reasons > docs/reasons.md`. Do not edit. -->",
        "# Condition reasons",
        "",
        "Every reason the operator writes into a condition of an InferenceService or a",
        "CloudAccount, what it means and what to do about it. `kubectl cloudinfer why NAME`",
        "prints the row of each of a service's conditions ([cli.md](cli.md)). How Argo CD",
        "shows each one is in [gitops.md](gitops.md); how a cloud error becomes a reason, in",
        "[architecture.md](architecture.md#errors-and-retries).",
        "",
        "| reason | kind | conditions | what it means | what to do |",
        "|---|---|---|---|---|",
    ]
    for reason, row in EXPLANATIONS.items():
        lines.append(
            f"| `{reason}` | {row.kind} | {row.where} | {_cell(row.meaning)} | "
            f"{_cell(row.action)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
