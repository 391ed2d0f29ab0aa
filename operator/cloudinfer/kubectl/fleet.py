"""`status`: the fleet view. Per CloudAccount: provider, region, Ready, services by phase and
reason, the age of the last observation and the rate budgets with their use (from the
metrics); per cloud: writes in flight and throttles; then every service that is not Ready."""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from cloudinfer.kubectl.operator_metrics import OperatorMetrics
from cloudinfer.kubectl.planning import ready_condition
from cloudinfer.kubectl.text import BOLD, Painter, age, cut, table

JsonDict = dict[str, Any]


def _key(obj: Mapping[str, Any]) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def _account_key(service: Mapping[str, Any]) -> str:
    ref = ((service.get("spec") or {}).get("accountRef") or {}).get("name", "")
    return f"{service['metadata']['namespace']}/{ref}"


def report(
    accounts: Sequence[Mapping[str, Any]],
    services: Sequence[Mapping[str, Any]],
    metrics: OperatorMetrics | None,
) -> JsonDict:
    sample = metrics.sample if metrics else None
    by_state: Counter[tuple[str, str, str, str]] = Counter()
    counts: Counter[str] = Counter()
    not_ready = []
    for service in services:
        status = service.get("status") or {}
        ready = ready_condition(status)
        phase = (status.get("observed") or {}).get("phase", "Unknown")
        reason = ready.get("reason", "NoStatus")
        account = _account_key(service)
        counts[account] += 1
        by_state[account, phase, ready.get("status", "Unknown"), reason] += 1
        if ready.get("status") != "True":
            not_ready.append({
                "namespace": service["metadata"]["namespace"],
                "name": service["metadata"]["name"],
                "account": account,
                "reason": reason,
                "message": ready.get("message", "the operator has not written a status yet"),
            })  # fmt: skip
    account_rows = []
    for obj in accounts:
        key, spec = _key(obj), obj.get("spec") or {}
        status = obj.get("status") or {}
        ready = ready_condition(status)
        row: JsonDict = {
            "namespace": obj["metadata"]["namespace"],
            "name": obj["metadata"]["name"],
            "provider": spec.get("provider"),
            "region": spec.get("region"),
            "ready": {k: ready.get(k) for k in ("status", "reason", "message")},
            "services": counts.get(key, 0),
            "servicesSeen": status.get("servicesSeen"),
        }
        if sample is not None:
            last = sample.last_observation.get(key)
            row["lastObservation"] = (
                datetime.datetime.fromtimestamp(last, datetime.UTC).isoformat() if last else None
            )
            # Aged at the scrape that reported it, not at the command's start.
            row["lastObservationAgeSeconds"] = round(sample.at - last, 1) if last else None
            row["pollIntervalSeconds"] = sample.poll_interval.get(key)
            row["rateBudgets"] = [
                {"action": b.action, "limitPerSecond": b.limit, "allowedPerSecond": b.allowed,
                 "usedPerSecond": None if b.used is None else round(b.used, 2)}
                for b in sample.budgets.get(key, [])
            ]  # fmt: skip
        account_rows.append(row)
    return {
        "accounts": account_rows,
        "clouds": (
            [
                {
                    "cloud": cloud,
                    "writesInFlight": sample.writes_in_flight.get(cloud, 0),
                    "throttledCalls": sample.throttled.get(cloud, 0),
                }
                for cloud in sorted({a["provider"] for a in account_rows if a["provider"]})
            ]
            if sample is not None
            else None
        ),
        "servicesByState": [
            {"account": a, "phase": p, "ready": r, "reason": reason, "count": n}
            for (a, p, r, reason), n in sorted(by_state.items())
        ],
        "notReady": not_ready,
    }


def _use(budget: Mapping[str, Any]) -> str:
    used, limit = budget["usedPerSecond"], budget["limitPerSecond"]
    if used is None:
        return "-"
    return f"{used:g}/s ({100 * used / limit:.0f}%)" if limit else f"{used:g}/s"


def text(data: Mapping[str, Any], paint: Painter) -> str:
    out = []
    accounts = data["accounts"]
    if not accounts:
        out.append("No CloudAccounts.")
    else:
        rows = []
        for a in accounts:
            observed = (
                f"{age(a['lastObservationAgeSeconds'])} ago"
                if a.get("lastObservationAgeSeconds") is not None
                else ("never" if "lastObservation" in a else "?")
            )
            rows.append([
                f"{a['namespace']}/{a['name']}", str(a["provider"]), str(a["region"]),
                paint.status(str(a["ready"]["status"] or "Unknown")),
                str(a["ready"]["reason"] or "-"), str(a["services"]), observed,
            ])  # fmt: skip
        out.append(paint("CLOUD ACCOUNTS", BOLD))
        headers = ["ACCOUNT", "PROVIDER", "REGION", "READY", "REASON", "SERVICES", "OBSERVED"]
        out.append(table(headers, rows))
        for a in accounts:
            if a["ready"]["status"] != "True" and a["ready"]["message"]:
                out.append(f"  {a['namespace']}/{a['name']}: {cut(a['ready']['message'])}")
    budgets = [
        [f"{a['namespace']}/{a['name']}", b["action"], f"{b['limitPerSecond']:g}/s",
         f"{b['allowedPerSecond']:g}/s", _use(b)]
        for a in accounts for b in a.get("rateBudgets") or []
    ]  # fmt: skip
    if budgets:
        out += ["", paint("RATE BUDGETS", BOLD)]
        out.append(table(["ACCOUNT", "ACTION", "LIMIT", "ALLOWED NOW", "USED"], budgets))
    if data.get("clouds"):
        out += ["", paint("CLOUDS", BOLD)]
        rows = [
            [c["cloud"], f"{c['writesInFlight']:g}", f"{c['throttledCalls']:g}"]
            for c in data["clouds"]
        ]
        out.append(table(["CLOUD", "WRITES IN FLIGHT", "THROTTLED CALLS"], rows))
    if data["servicesByState"]:
        out += ["", paint("SERVICES", BOLD)]
        rows = [
            [s["account"], s["phase"], paint.status(s["ready"]), s["reason"], str(s["count"])]
            for s in data["servicesByState"]
        ]
        out.append(table(["ACCOUNT", "PHASE", "READY", "REASON", "COUNT"], rows))
    else:
        out += ["", "No InferenceServices."]
    if data["notReady"]:
        out += ["", paint("NOT READY", BOLD)]
        rows = [
            [f"{s['namespace']}/{s['name']}", s["reason"], cut(s["message"])]
            for s in data["notReady"]
        ]
        out.append(table(["SERVICE", "REASON", "MESSAGE"], rows))
    return "\n".join(out)
