"""Condition types and reasons: the status contract GitOps tools and people switch on.

docs/gitops.md maps each reason to an Argo CD health status; the Lua health checks and their
tests cover every reason listed here.
"""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    READY = "Ready"
    """InferenceService: the cloud matches the spec and serves. CloudAccount: credentials work."""
    SYNCED = "Synced"
    """The last reconcile succeeded (every planned call was made or none was needed)."""
    DRIFTED = "Drifted"
    """True while the cloud differs from the spec; the reason says why it is not corrected yet."""


class Reason(StrEnum):
    """Machine-readable reasons, shared by all conditions."""

    # Healthy outcomes
    CONVERGED = "Converged"
    """The cloud matches the spec and the service is running."""
    CREDENTIALS_VERIFIED = "CredentialsVerified"
    """CloudAccount: a cheap read call succeeded with these credentials."""
    RECONCILED = "Reconciled"
    """Synced: the last reconcile made every call it planned (or needed none)."""
    IN_SYNC = "InSync"
    """Drifted=False: nothing differs."""
    SCALED_BY_SCHEDULE = "ScaledBySchedule"
    """Ready=True: a stop window with `replicas` is open and the service runs that tier."""
    WAKE_OVERRIDE = "WakeOverride"
    """Ready=True: the cloudinfer.dev/wake-until annotation keeps the service at
    spec.replicas through the stop windows until its time."""

    # Progressing
    CONVERGING = "Converging"
    """Changes were sent or the cloud is transitioning; waiting for the cloud to settle."""
    CLOUD_THROTTLED = "CloudThrottled"
    """The cloud throttled us; retrying within the account's rate budget."""
    CLOUD_UNREACHABLE = "CloudUnreachable"
    """Transport errors, timeouts, 5xx or malformed replies; retrying with backoff."""
    PENDING_OBSERVATION = "PendingObservation"
    """The account's observer has not listed this service yet."""

    # Degraded: needs a person
    AUTH_FAILED = "AuthFailed"
    """The cloud rejected the credentials or the signature (including clock skew)."""
    INVALID_SPEC = "InvalidSpec"
    """The spec passed the schema but cannot be acted on (e.g. a cron value out of range)."""
    UNSUPPORTED_BY_CLOUD = "UnsupportedByCloud"
    """The spec asks for something this cloud cannot do (known in advance, or the cloud
    refused the action as unsupported: held like CloudRejected); other fields are still
    managed."""
    ACCOUNT_NOT_READY = "AccountNotReady"
    """The CloudAccount is missing, not ready, or its Secret is missing."""
    SERVICE_NOT_FOUND = "ServiceNotFound"
    """The cloud has no service with this serviceId."""
    INSTANCE_NOT_FOUND = "InstanceNotFound"
    """Qianfan: the service has no compute-unit instance spec.baidu.instanceId (named in the
    message), or none at all to scale; no cloud call is made until the spec or the cloud
    changes."""
    SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 - a reason, not a password
    """CloudAccount: the credentials Secret or one of its keys is missing."""
    ENDPOINT_NOT_ALLOWED = "EndpointNotAllowed"
    """CloudAccount: the endpoint's host is outside the operator's endpoint allow-list
    (--allowed-endpoint-host); no request is sent to it."""
    CLOUD_REJECTED = "CloudRejected"
    """The cloud refused a write as invalid (held: not sent again until the spec, the
    CloudAccount or its Secret changes) or as conflicting with the service's state (retried
    with backoff)."""
    PERMISSION_DENIED = "PermissionDenied"
    """The credentials work but may not make this write (a missing CAM/IAM policy); held:
    not sent again until the spec, the CloudAccount or its Secret changes."""
    CLOUD_SERVICE_FAILED = "CloudServiceFailed"
    """The cloud reports the service as failed."""
    PLATFORM_STOPPED = "PlatformStopped"
    """The platform stopped the service (arrears, allow-list); the operator does not fight it."""
    QUOTA_EXCEEDED = "QuotaExceeded"
    """The cloud refused for quota or billing reasons."""
    SERVICE_CLAIMED = "ServiceClaimed"
    """An older InferenceService (named in the message) names the same cloud service; this one
    makes no cloud call until that one is deleted or names another service."""

    # Suspended: stopped on purpose
    SUSPENDED = "Suspended"
    """spec.suspend is true and the service is stopped (or stopping)."""
    SCHEDULED_STOP = "ScheduledStop"
    """A stop window or stopAt is in effect."""
    PAUSED = "Paused"
    """The cloudinfer.dev/paused annotation is "true": no cloud writes."""
    OBSERVE_ONLY = "ObserveOnly"
    """policy.mode is ObserveOnly and the cloud differs from the spec: reported, not changed."""
    STOPPED_OUTSIDE_OPERATOR = "StoppedOutsideOperator"
    """The service was stopped by someone else; set suspend: true to keep it so, or start it."""


PAUSED_ANNOTATION = "cloudinfer.dev/paused"
# An RFC 3339 time: the service is kept started until then, whatever its stop windows say.
WAKE_UNTIL_ANNOTATION = "cloudinfer.dev/wake-until"
# On an InferenceService with policy.onDelete=Stop, until the cloud accepted the stop (within
# bounds: main/deletion.py). Kopf used to put it on every InferenceService
# and CloudAccount for its daemons; the operator removes it where it is no longer needed.
FINALIZER = "cloudinfer.dev/finalizer"
# Kopf's, on a CloudAccount while its observer daemon runs (Kopf stops the daemon first).
OBSERVER_FINALIZER = "cloudinfer.dev/account-observer"
# On a CloudAccount, its credentials Secret and its CA ConfigMap while an InferenceService
# with policy.onDelete=Stop needs them to stop its cloud service (docs/architecture.md,
# "Deletion path"): deleting the whole namespace must not take them first.
IN_USE_FINALIZER = "cloudinfer.dev/in-use"
# On a CloudAccount that holds objects with IN_USE_FINALIZER: which ones, so that they are
# released even after the CloudAccount names others (and after a restart).
IN_USE_ANNOTATION = "cloudinfer.dev/in-use-refs"
