"""`get` (one service: spec and observed side by side, conditions, write ledger, next
transitions) and `why` (what its reasons mean and what to do, from reasons.py)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from cloudinfer.api.conditions import PAUSED_ANNOTATION, WAKE_UNTIL_ANNOTATION
from cloudinfer.kubectl.reasons import explain
from cloudinfer.kubectl.text import BOLD, Painter, cut, table, when

JsonDict = dict[str, Any]
NOT_MANAGED = "(not managed)"


def _rate(limit: Mapping[str, Any] | None, *, spec: bool) -> str:
    if limit is None:
        return NOT_MANAGED if spec else "unlimited"
    if limit.get("unlimited") or limit.get("requestsPerSecond") is None:
        return "unlimited"
    return f"{limit['requestsPerSecond']:g}/s {limit.get('scope', '')}".strip()


def _fields(spec: Mapping[str, Any], observed: Mapping[str, Any]) -> list[JsonDict]:
    schedule = spec.get("stopSchedule") or {}
    replicas = observed.get("replicas")
    have = "-" if replicas is None else str(replicas)
    if observed.get("readyReplicas") is not None:
        have += f" ({observed['readyReplicas']} ready)"
    rows = [
        {"field": "replicas", "spec": str(spec.get("replicas", NOT_MANAGED)), "observed": have},
        {
            "field": "rateLimit",
            "spec": _rate(spec.get("rateLimit"), spec=True),
            "observed": _rate(observed.get("rateLimit"), spec=False) if observed else "-",
        },
        {
            "field": "stopAt",
            "spec": str(schedule.get("stopAt", NOT_MANAGED if not schedule else "none")),
            "observed": str(observed.get("scheduledStop", "none")) if observed else "-",
        },
        {
            "field": "suspend",
            "spec": str(spec.get("suspend", False)).lower(),
            "observed": (
                f"{observed.get('phase')} ({observed.get('cloudStatus', '?')})" if observed else "-"
            ),
        },
    ]
    for i, window in enumerate(schedule.get("windows") or []):
        rows.append({
            "field": f"windows[{i}]",
            "spec": f"stop {window.get('stop')}, start {window.get('start')} "
            f"({schedule.get('timeZone', 'UTC')})",
            "observed": "-",
        })  # fmt: skip
    for unit in observed.get("instances") or []:
        rows.append({
            "field": f"instance {unit.get('instanceId')}", "spec": "-",
            "observed": f"{unit.get('replicas', '?')} replicas",
        })  # fmt: skip
    return rows


def transitions(status: Mapping[str, Any]) -> list[JsonDict]:
    """status.nextTransitions, or the older single nextTransition."""
    many = status.get("nextTransitions")
    if many:
        return [dict(t) for t in many]
    one = status.get("nextTransition")
    return [dict(one)] if one else []


def get_report(obj: Mapping[str, Any]) -> JsonDict:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    status = obj.get("status") or {}
    annotations = meta.get("annotations") or {}
    observed = status.get("observed") or {}
    return {
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "account": (spec.get("accountRef") or {}).get("name"),
        "provider": status.get("provider"),
        "serviceId": spec.get("serviceId"),
        "mode": (spec.get("policy") or {}).get("mode", "Enforce"),
        "onDelete": (spec.get("policy") or {}).get("onDelete", "Retain"),
        "paused": str(annotations.get(PAUSED_ANNOTATION, "")).lower() == "true",
        "wakeUntil": annotations.get(WAKE_UNTIL_ANNOTATION),
        "wakeOverride": status.get("wakeOverride"),
        "generation": meta.get("generation"),
        "observedGeneration": status.get("observedGeneration"),
        "fields": _fields(spec, observed),
        "observed": observed,
        "capabilities": status.get("capabilities"),
        "conditions": status.get("conditions") or [],
        "journal": status.get("journal") or [],
        "nextTransitions": transitions(status),
    }


def _target(entry: Mapping[str, Any]) -> str:
    target = entry.get("target") or {}
    if "replicas" in target:
        return f"replicas={target['replicas']}"
    if "requestsPerSecond" in target:
        return f"{target['requestsPerSecond']:g}/s {target.get('scope', '')}".strip()
    if "stopAt" in target:
        return f"stopAt={target['stopAt']}"
    return "-"


def _error(entry: Mapping[str, Any]) -> str:
    if entry.get("result") != "Failed":
        return ""
    text = f"{entry.get('errorClass', 'error')}: {entry.get('error', '')}"
    retry = entry.get("retryAt")
    return cut(text + (f" (retry at {retry})" if retry else " (held)"), 80)


def get_text(data: Mapping[str, Any], paint: Painter, now: datetime.datetime) -> str:
    head = f"{data['namespace']}/{data['name']}"
    out = [
        paint(f"InferenceService {head}", BOLD),
        f"  {data['provider'] or '?'} service {data['serviceId']} through CloudAccount "
        f"{data['account']}; mode {data['mode']}, onDelete {data['onDelete']}",
    ]
    if data["paused"]:
        out.append(f"  paused: {PAUSED_ANNOTATION}=true (no cloud writes)")
    if data["wakeUntil"]:
        override = data.get("wakeOverride") or {}
        state = f", {override['state']}" if override.get("state") else ""
        out.append(f"  awake until {when(data['wakeUntil'], now)}{state}")
    if data["observedGeneration"] != data["generation"]:
        out.append(
            f"  status is of generation {data['observedGeneration']}, the spec is at "
            f"{data['generation']}: the operator has not processed the last change yet"
        )
    out += ["", paint("SPEC AND OBSERVED", BOLD)]
    out.append(table(["FIELD", "SPEC", "OBSERVED"],
                     [[f["field"], f["spec"], f["observed"]] for f in data["fields"]]))  # fmt: skip
    if data["capabilities"]:
        caps = ", ".join(f"{k} {v}" for k, v in data["capabilities"].items())
        out.append(f"capabilities: {caps}")
    out += ["", paint("CONDITIONS", BOLD)]
    if data["conditions"]:
        rows = [
            [c["type"], paint.status(c["status"]), c["reason"],
             when(c.get("lastTransitionTime"), now), cut(c.get("message", ""), 90)]
            for c in data["conditions"]
        ]  # fmt: skip
        out.append(table(["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], rows))
    else:
        out.append("none yet: the operator has not written a status")
    out += ["", paint("WRITE LEDGER", BOLD) + " (newest last)"]
    if data["journal"]:
        rows = [
            [e.get("time", "-"), e.get("field", "-"), e.get("kind", "-"), _target(e),
             e.get("result", "-"),
             e.get("requestId", "-"), _error(e)]
            for e in data["journal"]
        ]  # fmt: skip
        headers = ["TIME", "FIELD", "KIND", "TARGET", "RESULT", "REQUEST ID", "ERROR"]
        out.append(table(headers, rows))
    else:
        out.append("no cloud writes")
    out += ["", paint("NEXT TRANSITIONS", BOLD)]
    if data["nextTransitions"]:
        rows = [
            [t.get("action", "?"), when(t.get("at"), now),
             "-" if t.get("replicas") is None else str(t["replicas"])]
            for t in data["nextTransitions"]
        ]  # fmt: skip
        out.append(table(["ACTION", "AT", "REPLICAS"], rows))
    else:
        out.append("none scheduled")
    return "\n".join(out)


def why_report(obj: Mapping[str, Any]) -> JsonDict:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    conditions = []
    for c in status.get("conditions") or []:
        row = explain(str(c.get("reason")))
        conditions.append({
            "type": c.get("type"), "status": c.get("status"), "reason": c.get("reason"),
            "message": c.get("message"),
            "kind": row.kind.value if row else None,
            "meaning": row.meaning if row else None,
            "whatToDo": row.action if row else None,
        })  # fmt: skip
    return {"namespace": meta.get("namespace"), "name": meta.get("name"), "conditions": conditions}


def why_text(data: Mapping[str, Any], paint: Painter) -> str:
    head = f"{data['namespace']}/{data['name']}"
    if not data["conditions"]:
        return (
            f"{head} has no conditions yet: the operator has not written its status. Is an "
            "operator running and watching this namespace?"
        )
    out = []
    explained = set()
    # A healthy condition gets one line; the others their explanation, once per reason.
    for c in data["conditions"]:
        line = f"{paint(head, BOLD)} {c['type']}={paint.status(str(c['status']))} {c['reason']}"
        out.append(line + (f": {c['message']}" if c.get("message") else ""))
        if c["kind"] is None:
            out.append("  This reason is not in this plugin's table (a newer operator?).")
        elif c["kind"] != "healthy" and c["reason"] not in explained:
            explained.add(c["reason"])
            out.append(f"  What it means: {c['meaning']}")
            out.append(f"  What to do:    {c['whatToDo']}")
    return "\n".join(out)
