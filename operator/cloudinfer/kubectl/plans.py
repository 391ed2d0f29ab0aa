"""`plan`: the planner's answer for each service, as data and as text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cloudinfer.cloud.model import Change
from cloudinfer.kubectl.planning import ServicePlan
from cloudinfer.kubectl.text import BOLD, Painter, cut, table
from cloudinfer.reconcile.ledger import precise_timestamp

JsonDict = dict[str, Any]


def _change(change: Change) -> JsonDict:
    data: JsonDict = change.model_dump(mode="json", by_alias=True)
    # A combined write (one TI-ONE PartialConfig for the RPS limit and the schedule) changes
    # several fields: "rateLimit, schedule".
    data["field"] = ", ".join(field.value for field in change.fields)
    return data


def _describe(change: Mapping[str, Any]) -> str:
    return f"{change['kind']}: {change.get('reason') or change['field']}"


def report(plans: Sequence[ServicePlan]) -> JsonDict:
    items = []
    for p in plans:
        item: JsonDict = {
            "namespace": p.namespace, "name": p.name, "mode": p.mode, "paused": p.paused,
            "notPlanned": p.not_planned, "notes": p.notes,
        }  # fmt: skip
        if p.plan is not None:
            plan = p.plan
            item |= {
                "sends": [_change(c) for c in plan.changes],
                "wouldSend": [_change(c) for c in plan.proposed],
                "waiting": plan.waiting,
                "drift": [
                    {"field": d.field.value, "desired": d.desired, "observed": d.observed}
                    for d in plan.drift
                ],
                "blocked": [
                    {"field": b.field.value, "reason": str(b.reason), "message": b.message}
                    for b in plan.blocked
                ],
                "verdict": {
                    "ready": plan.ready,
                    "reason": str(plan.reason),
                    "message": plan.message,
                },
                "replanAt": precise_timestamp(plan.wake_at) if plan.wake_at else None,
            }
        items.append(item)
    return {"services": items}


def _summary(item: Mapping[str, Any]) -> str:
    if item["notPlanned"]:
        return f"nothing: {item['notPlanned']}"
    if item["sends"]:
        return "; ".join(_describe(c) for c in item["sends"])
    if item["wouldSend"]:
        why = "ObserveOnly" if item["mode"] == "ObserveOnly" else "paused"
        return f"nothing ({why}); would send " + "; ".join(_describe(c) for c in item["wouldSend"])
    if item["waiting"]:
        return "nothing now (waiting for the cloud or a write in flight)"
    return "nothing"


def text(data: Mapping[str, Any], paint: Painter) -> str:
    items = data["services"]
    if not items:
        return "No InferenceServices."
    if len(items) > 1:
        rows = [
            [f"{i['namespace']}/{i['name']}", i["mode"] + (" (paused)" if i["paused"] else ""),
             cut(_summary(i), 110)]
            for i in items
        ]  # fmt: skip
        return table(["SERVICE", "MODE", "SENDS NOW"], rows)
    item = items[0]
    out = [paint(f"Plan for {item['namespace']}/{item['name']}", BOLD) + f" (mode {item['mode']}"
           + (", paused" if item["paused"] else "") + ")"]  # fmt: skip
    if item["notPlanned"]:
        out.append(f"Sends nothing: {item['notPlanned']}")
        return "\n".join(out)
    if item["sends"]:
        out.append("Sends now:")
        out += [f"  {_describe(c)}" for c in item["sends"]]
    elif item["wouldSend"]:
        why = "observe only" if item["mode"] == "ObserveOnly" else "paused by annotation"
        out.append(f"Sends nothing ({why}). In Enforce mode it would send:")
        out += [f"  {_describe(c)}" for c in item["wouldSend"]]
    else:
        out.append("Sends nothing now.")
    if item["waiting"]:
        out.append("Waiting: the cloud is transitioning, or a write is in flight or backing off.")
    if item["drift"]:
        out.append("Drift (observed -> desired):")
        out += [f"  {d['field']}: {d['observed']} -> {d['desired']}" for d in item["drift"]]
    if item["blocked"]:
        out.append("Not sent:")
        out += [f"  {b['field']}: {b['reason']}: {b['message']}" for b in item["blocked"]]
    verdict = item["verdict"]
    out.append(f"Ready would be {verdict['ready']}: {verdict['reason']}: {verdict['message']}")
    if item["replanAt"]:
        out.append(f"Plans again at {item['replanAt']} at the latest.")
    out += [f"Note: {n}" for n in item["notes"]]
    return "\n".join(out)
