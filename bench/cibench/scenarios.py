"""The five scenarios of issue 9, run against one namespace of N services.

Times: the benchmark's wall clock (`time.time()`) for what it does (patches, console edits,
watch events) and the simulator's journal (virtual clock at speed 1, offset measured and
subtracted) for what the cloud received.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import math
import random
import re
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cibench.env import (
    POLL_SECONDS,
    REGION,
    Cluster,
    OperatorProcess,
    ServiceWatcher,
    SimAccount,
    SimProcess,
    new_sim_account,
    wait_for,
)
from cloudinfer.cloud import Account, Cloud, Secret, TencentCredentials
from cloudinfer.cloud.tencent import limits as tione_limits
from cloudinfer.cloud.tencent.provider import TencentProvider

LIST = "DescribeModelServiceGroups"
DESCRIBE = "DescribeModelService"
MODIFY = "ModifyModelService"
PARTIAL = "ModifyModelServicePartialConfig"
# TI-ONE's documented limit, per action (docs/clouds/tencent-tione.md#rate-limits).
WRITE_LIMIT_PER_SECOND = tione_limits.TENCENT_RATE_LIMITS[MODIFY].per_second
LIMIT_PER_SECOND = {
    action: tione_limits.TENCENT_RATE_LIMITS[action].per_second for action in (MODIFY, PARTIAL)
}
LIST_PAGE = 100
POLL_GAP_SECONDS = 0.8  # list calls closer than this belong to one poll (its pages)


SCENARIOS = ("converge", "steady", "edits", "drift", "footprint", "boundary")


@dataclass(frozen=True)
class Config:
    name: str
    sizes: tuple[int, ...]
    edits: int
    drift_trials: int
    steady_polls: int
    converge_timeout: float
    scenarios: tuple[str, ...] = SCENARIOS[:5]
    """Run in this order after set-up; `converge` always runs first."""
    accounts: int = 1
    """TI-ONE accounts the N services are spread over (round robin), one operator process."""
    baseline: bool = True
    """Run the peer-style baseline beside the steady state (N describes per poll)."""
    other_clouds: tuple[str, ...] = ()
    """ModelArts ("huawei") and Qianfan ("baidu") beside TI-ONE (cibench/clouds.py)."""
    other_sizes: tuple[int, ...] = ()
    replicas: tuple[int, ...] = ()
    """Sharding (cibench/sharding.py): run each N once per replica count, every replica with
    `--shard`, all started at once; empty: one `--standalone` process."""


CONFIGS = {
    "quick": Config(
        "quick", (10, 100, 300), edits=50, drift_trials=4, steady_polls=3, converge_timeout=180
    ),
    "full": Config(
        "full",
        (100, 300, 1000),
        edits=50,
        drift_trials=10,
        steady_polls=4,
        converge_timeout=600,
        other_clouds=("huawei", "baidu"),
        other_sizes=(300,),
        scenarios=SCENARIOS,
    ),
    # issue 19 item 4: N = 10,000 in one account, then over 10 accounts (make bench-scale).
    "scale": Config(
        "scale",
        (10000,),
        edits=50,
        drift_trials=4,
        steady_polls=3,
        converge_timeout=2400,
        baseline=False,
    ),
    "scale-10-accounts": Config(
        "scale-10-accounts",
        (10000,),
        edits=50,
        drift_trials=4,
        steady_polls=3,
        converge_timeout=2400,
        accounts=10,
        baseline=False,
    ),
    # issue 23 item 5: N = 10,000 over 20 accounts, on 1 sharded replica and on 4
    # (make bench-shard); convergence, per-replica footprint, then a failover.
    "shard": Config(
        "shard",
        (10000,),
        edits=0,
        drift_trials=0,
        steady_polls=0,
        converge_timeout=2400,
        scenarios=("converge",),
        accounts=20,
        baseline=False,
        replicas=(1, 4),
    ),
}  # fmt: skip
BOUNDARY_SLACK_SECONDS = 5.0
"""Issue 20's target: every service flips within the cloud's floor + 5 s of the boundary."""


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50": _r(percentile(values, 0.50)),
        "p99": _r(percentile(values, 0.99)),
        "max": _r(max(values) if values else None),
        "mean": _r(statistics.fmean(values) if values else None),
    }


def _max_in_window(times: list[float], width: float) -> int:
    """The most calls any window of `width` seconds held (arrivals at the simulator)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


def _account_ref(k: int) -> str:
    """The CloudAccount name of the k-th account ("acct" for the first, as before)."""
    return "acct" if k == 0 else f"acct-{k}"


class SizeBench:
    """Everything measured at one N: a namespace, a sim account, one operator process."""

    def __init__(
        self, cluster: Cluster, sim: SimProcess, n: int, config: Config, work: Path, *,
        trace_path: Path | None = None, memray_path: Path | None = None,
        namespace: str | None = None, peak_path: Path | None = None,
    ) -> None:  # fmt: skip
        self.cluster, self.sim, self.n, self.config = cluster, sim, n, config
        self.namespace = namespace or f"bench-{n}"
        self.accounts: list[SimAccount] = [
            new_sim_account(sim, f"{n}-{k}") for k in range(config.accounts)
        ]
        self.account = self.accounts[0]
        self.account_names = {a.name for a in self.accounts}
        self.operator = OperatorProcess(
            cluster.kubeconfig, self.namespace, work / f"operator-{n}.log", trace_path,
            memray_path, peak_path=peak_path,
        )  # fmt: skip
        self.watcher = ServiceWatcher(cluster.api, self.namespace)
        self.ids: dict[str, str] = {}  # CR name -> cloud service id
        self.specs: dict[str, dict[str, Any]] = {}
        self.last_scaled: dict[str, float] = {}
        self.offset = 0.0
        self.t0 = 0.0
        self.result: dict[str, Any] = {"n": n}

    # -- helpers ----------------------------------------------------------------------------

    def _journal(self) -> dict[str, dict[str, Any]]:
        return self.sim.control.journal()

    def _entries(self, journal: dict[str, dict[str, Any]], action: str) -> list[dict[str, Any]]:
        entries = journal.get(action, {}).get("entries", [])
        return [e for e in entries if e.get("account") in self.account_names]

    def _writes(self, journal: dict[str, dict[str, Any]], action: str) -> list[dict[str, Any]]:
        writes = journal.get(action, {}).get("writes", [])
        return [w for w in writes if w.get("account") in self.account_names]

    def _throttled(self, journal: dict[str, dict[str, Any]]) -> dict[str, int]:
        out = {}
        for action in journal:
            count = sum(1 for e in self._entries(journal, action) if e.get("throttled"))
            if count:
                out[action] = count
        return out

    def _wall(self, sim_time: float) -> float:
        return sim_time - self.offset

    # -- set-up -----------------------------------------------------------------------------

    def setup(self) -> None:
        """N services on the cloud at 1 replica, no RPS limit, no schedule; N CRs that differ
        in replicas (2-4), RPS limit (10-99 per instance) and scheduled stop (days ahead)."""
        started = time.monotonic()
        self.cluster.create_namespace(self.namespace)
        for k, account in enumerate(self.accounts):
            self.cluster.create_account(
                self.namespace, account, self.sim.base_url, name=_account_ref(k),
                secret_name=f"creds-{k}",
            )  # fmt: skip
        base = datetime.datetime.now(datetime.UTC).replace(microsecond=0, second=0)
        base += datetime.timedelta(days=2)
        for i in range(self.n):
            name = f"svc-{i:05d}"
            k = i % len(self.accounts)
            self.ids[name] = self.sim.control.add_service(
                account=self.accounts[k].name, region=REGION, name=name, replicas=1
            )
            stop_at = (base + datetime.timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.specs[name] = {
                "serviceId": self.ids[name],
                "accountRef": {"name": _account_ref(k)},
                "replicas": 2 + i % 3,
                "rateLimit": {"requestsPerSecond": 10 + i % 90, "scope": "PerInstance"},
                "stopSchedule": {"stopAt": stop_at},
            }
        self.cluster.create_services(self.namespace, self.specs)
        self.watcher.start()
        self.result["setup_seconds"] = round(time.monotonic() - started, 1)

    # -- 1. cold convergence ------------------------------------------------------------------

    def converge(self) -> dict[str, Any]:
        """Start the operator with N CRs waiting; time until every one is Ready."""
        self.offset = self.sim.clock_offset()
        self.sim.control.clear_journal()
        self.t0 = self.operator.start()
        healthy = time.time()
        wait_for(
            lambda: self.watcher.ready_count() >= self.n,
            self.config.converge_timeout,
            f"{self.n} services Ready",
            every=0.2,
        )
        all_ready = max(t for t, c in self.watcher.ready_series if c >= self.n)
        cpu = self.operator.cpu_seconds()
        rss = self.operator.rss()
        self.operator.freeze_peak()
        if self.operator.trace_path is not None:
            self.operator.dump_profile("converged")
        journal = self._journal()
        modify = [w for w in self._writes(journal, MODIFY) if w.get("error_code") is None]
        partial = [w for w in self._writes(journal, PARTIAL) if w.get("error_code") is None]
        # The physical floor: the fewest calls that close the difference (a SCALE and one
        # PartialConfig carrying the RPS limit and the schedule per service), each action at
        # its documented limit; the actions have separate budgets, so they overlap.
        # Each account has its own budgets: the floor is the busiest account's.
        needed = {MODIFY: self.n, PARTIAL: self.n}
        per_account = math.ceil(self.n / len(self.accounts))
        floor_by_action = {a: per_account / LIMIT_PER_SECOND[a] for a in needed}
        floor = max(floor_by_action.values())
        # Footnote only: the floor while the two PartialConfig fields took two calls.
        floor_two_partial_calls = 2 * per_account / LIMIT_PER_SECOND[PARTIAL]
        write_times = [self._wall(w["time"]) for w in modify + partial]
        elapsed = all_ready - self.t0
        first_write = min(write_times) - self.t0 if write_times else None
        last_write = max(write_times) - self.t0 if write_times else None
        failed = {
            a: sum(1 for w in self._writes(journal, a) if w.get("error_code") is not None)
            for a in (MODIFY, PARTIAL)
        }
        per_service = Counter(w["params"]["ServiceId"] for w in modify + partial)
        result = {
            "seconds_to_all_ready": round(elapsed, 2),
            "seconds_to_healthy": round(healthy - self.t0, 2),
            "seconds_to_first_write": _r(first_write, 2),
            "seconds_to_last_write": _r(last_write, 2),
            "writes_needed": needed,
            "writes_needed_total": sum(needed.values()),
            "writes_made": {MODIFY: len(modify), PARTIAL: len(partial)},
            "writes_made_total": len(modify) + len(partial),
            "writes_failed": failed,
            "services_written_more_than_needed": sum(1 for c in per_service.values() if c > 2),
            "floor_seconds_by_action": floor_by_action,
            "floor_seconds": floor,
            "floor_seconds_if_one_20_per_s_budget": sum(needed.values()) / WRITE_LIMIT_PER_SECOND,
            "floor_seconds_two_partial_calls": floor_two_partial_calls,
            "ratio_to_floor_two_partial_calls": round(elapsed / floor_two_partial_calls, 3),
            "ratio_to_floor": round(elapsed / floor, 3),
            "ratio_to_floor_from_first_write": _r(
                (all_ready - self.t0 - first_write) / floor if first_write is not None else None
            ),
            "throttled": self._throttled(journal),
            "throttled_total": sum(self._throttled(journal).values()),
            "throttle_times": {
                a: [
                    round(self._wall(e["time"]) - self.t0, 3)
                    for e in self._entries(journal, a)
                    if e.get("throttled")
                ]
                for a in (MODIFY, PARTIAL, LIST)
            },
            "max_calls_in_any_1s": {
                a: _max_in_window([self._wall(e["time"]) for e in self._entries(journal, a)], 1.0)
                for a in (MODIFY, PARTIAL, LIST)
            },
            "list_calls": len(self._entries(journal, LIST)),
            "operator_cpu_seconds": round(cpu, 2),
            "operator_cpu_seconds_to_first_write": _r(
                self.operator.cpu_seconds_at(self.t0 + first_write)
                if first_write is not None
                else None
            ),
            "cpu_seconds_per_converged_service": round(cpu / self.n, 5),
            "accounts": len(self.accounts),
            "status_writes_during_convergence": sum(
                1
                for r in self.watcher.since(self.t0)
                if r.type == "MODIFIED" and r.time <= all_ready
            ),
            "operator_rss_mb": round(rss / 2**20, 1),
            "write_series": {
                a: sorted(round(self._wall(w["time"]) - self.t0, 3) for w in ws)
                for a, ws in ((MODIFY, modify), (PARTIAL, partial))
            },
            "ready_series": [
                (round(t - self.t0, 3), c) for t, c in self.watcher.ready_series if t >= self.t0
            ],
        }
        result["events"] = self._events()
        self.result["convergence"] = result
        return result

    def _events(self) -> dict[str, Any]:
        """The operator's Kubernetes Events once they stop changing (they lag the writes):
        Event objects, the occurrences they record (their `count`s), the apiserver's requests
        on events by verb, and the drops the operator logged."""

        def occurrences() -> tuple[int, int]:
            items = self.cluster.core.list_namespaced_event(self.namespace).items
            return len(items), sum(e.count or 1 for e in items)

        last, stable_since = occurrences(), time.monotonic()
        deadline = time.monotonic() + 60
        while time.monotonic() - stable_since < 5 and time.monotonic() < deadline:
            time.sleep(1)
            now = occurrences()
            if now != last:
                last, stable_since = now, time.monotonic()
        metrics = self.cluster.kubectl("get", "--raw", "/metrics")
        calls: Counter[str] = Counter()
        for match in re.finditer(
            r"^apiserver_request_total\{([^}]*)\} (\S+)$", metrics, re.MULTILINE
        ):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            if labels.get("resource") == "events" and labels.get("group", "") == "":
                calls[labels.get("verb", "")] += int(float(match.group(2)))
        log = self.operator.log_path.read_text(errors="replace")
        dropped = [int(d) for d in re.findall(r"(\d+) events dropped so far", log)]
        lost = [int(d) for d in re.findall(r"\((\d+) events lost so far\)", log)]
        return {
            "event_objects": last[0],
            "occurrences": last[1],
            "apiserver_requests": dict(calls),
            "dropped_logged_at_least": max(dropped, default=0),
            "lost_logged_at_least": max(lost, default=0),
        }

    # -- 2. steady state ----------------------------------------------------------------------

    def steady(self) -> dict[str, Any]:
        """K poll periods with nothing to do: the operator's list calls per poll, a peer-style
        baseline (one DescribeModelService per service per poll) beside it, Kubernetes writes."""
        polls = self.config.steady_polls
        # Let the last transitions finish and the observer drop to its slow interval.
        time.sleep(POLL_SECONDS + 2)
        self.sim.control.clear_journal()
        before_rv = self.cluster.resource_versions(self.namespace)
        cpu_before = self.operator.cpu_seconds()
        t1 = time.time()
        # The baseline polls the first account's services (all of them with one account).
        ids = list(self.ids.values())[:: len(self.accounts)] if self.config.baseline else []
        baseline = Baseline(
            self.sim.base_url, self.account, ids, polls if self.config.baseline else 0
        )
        baseline.start()
        time.sleep(polls * POLL_SECONDS)
        baseline.join(timeout=polls * POLL_SECONDS + self.n / 10 + 60)
        t2 = time.time()
        cpu_after = self.operator.cpu_seconds()
        after_rv = self.cluster.resource_versions(self.namespace)
        journal = self._journal()
        lists = sorted(self._wall(e["time"]) for e in self._entries(journal, LIST))
        groups: list[list[float]] = []
        for t in lists:
            if groups and t - groups[-1][-1] <= POLL_GAP_SECONDS:
                groups[-1].append(t)
            else:
                groups.append([t])
        starts = [g[0] for g in groups]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        describes = self._entries(journal, DESCRIBE)
        changed = sorted(k for k, v in after_rv.items() if before_rv.get(k) != v)
        modified = [r for r in self.watcher.since(t1) if r.time <= t2 and r.type == "MODIFIED"]
        window = t2 - t1
        operator_describes = len(describes) - baseline.calls
        result = {
            "window_seconds": round(window, 1),
            "polls": len(groups),
            "measured_poll_interval_seconds": _r(statistics.median(gaps) if gaps else None, 2),
            "list_calls": len(lists),
            "reads_per_poll": _r(len(lists) / len(groups) if groups else None, 2),
            "reads_per_poll_target": math.ceil(self.n / LIST_PAGE),
            "operator_describe_calls": operator_describes,
            "baseline_rounds": baseline.rounds_done,
            "baseline_calls": baseline.calls,
            "baseline_reads_per_poll": _r(
                baseline.calls / baseline.rounds_done if baseline.rounds_done else None, 2
            ),
            "baseline_round_seconds": [round(s, 2) for s in baseline.round_seconds],
            "baseline_errors": baseline.errors,
            "call_ratio_baseline_to_operator": _r(
                (baseline.calls / baseline.rounds_done) / (len(lists) / len(groups))
                if groups and baseline.rounds_done
                else None,
                1,
            ),
            "kube_objects_changed": len(changed),
            "kube_changed_examples": changed[:5],
            "kube_watch_modified_events": len(modified),
            "kube_writes_per_minute": round(len(changed) * 60 / window, 2),
            "cloud_writes": sum(len(self._writes(journal, a)) for a in (MODIFY, PARTIAL)),
            "throttled": self._throttled(journal),
            "throttled_operator": sum(
                v for k, v in self._throttled(journal).items() if k != DESCRIBE
            ),
            "throttled_baseline": self._throttled(journal).get(DESCRIBE, 0),
            "operator_cpu_seconds_per_minute": round((cpu_after - cpu_before) * 60 / window, 3),
            "operator_cpu_percent_of_one_core": round((cpu_after - cpu_before) * 100 / window, 2),
            "operator_rss_mb": round(self.operator.rss() / 2**20, 1),
        }
        self.result["steady"] = result
        return result

    # -- 3. edit latency ----------------------------------------------------------------------

    def edits(self) -> dict[str, Any]:
        """One spec change at a time: the time from our patch to the cloud write."""
        self.offset = self.sim.clock_offset()
        offset_before = self.offset
        self.sim.control.clear_journal()
        names = list(self.ids)
        latencies: list[float] = []
        by_field: dict[str, list[float]] = {"replicas": [], "rateLimit": []}
        patch_seconds: list[float] = []
        timeouts = 0
        timeout_details: list[dict[str, Any]] = []
        cursor = 0
        for k in range(self.config.edits):
            # A replica change starts a 2 s transition on the cloud, during which the operator
            # rightly holds every change to that service: edit only services left alone 8 s.
            now = time.time()
            for _ in range(len(names)):
                name = names[cursor % len(names)]
                cursor += 7 if len(names) % 7 else 1
                if now - self.last_scaled.get(name, 0.0) > 8:
                    break
            else:
                time.sleep(8)
            spec = self.specs[name]
            if k % 2 == 0:
                field, new = "replicas", 2 + (spec["replicas"] - 1) % 3
                action, match = MODIFY, {"ServiceAction": "SCALE", "Replicas": new}
                patch: dict[str, Any] = {"replicas": new}
            else:
                field = "rateLimit"
                new = spec["rateLimit"]["requestsPerSecond"] % 500 + 1
                action = PARTIAL
                match = {"ServiceLimit": {"EnableInstanceRpsLimit": True, "InstanceRpsLimit": new}}
                patch = {"rateLimit": {"requestsPerSecond": new, "scope": "PerInstance"}}
            sid = self.ids[name]
            patched_at = time.time()
            self.cluster.patch_service(self.namespace, name, patch)
            patch_seconds.append(time.time() - patched_at)
            if field == "replicas":
                spec["replicas"] = new
                self.last_scaled[name] = patched_at
            else:
                spec["rateLimit"] = patch["rateLimit"]
            written = self._wait_write(action, sid, match, patched_at, timeout=60)
            if written is None:
                timeouts += 1
                status = (self.watcher.latest.get(name) or {}).get("status") or {}
                timeout_details.append(
                    {"service": name, "field": field, "value": new,
                     "conditions": status.get("conditions"), "journal": status.get("journal")}
                )  # fmt: skip
                continue
            latency = written - patched_at
            latencies.append(latency)
            by_field[field].append(latency)
        journal = self._journal()
        offset_after = self.sim.clock_offset()
        result = {
            **_summary(latencies),
            "edits": self.config.edits,
            "timeouts": timeouts,
            "timeout_details": timeout_details,
            "by_field": {f: _summary(v) for f, v in by_field.items()},
            "apiserver_patch_p50": _r(percentile(patch_seconds, 0.5)),
            "clock_offset_seconds": {"before": _r(offset_before, 4), "after": _r(offset_after, 4)},
            "throttled": self._throttled(journal),
            "throttled_total": sum(self._throttled(journal).values()),
        }
        self.result["edits"] = result
        return result

    def _wait_write(
        self, action: str, sid: str, match: dict[str, Any], since: float, timeout: float
    ) -> float | None:
        """Wall time of the first write of `action` to `sid` containing `match`, after `since`."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._find_write(action, sid, match, since)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(0.02)

    def _find_write(
        self, action: str, sid: str, match: dict[str, Any], since: float
    ) -> float | None:
        for w in self.sim.control.writes(action):
            params = w.get("params") or {}
            if (
                w.get("account") in self.account_names
                and params.get("ServiceId") == sid
                and w.get("error_code") is None
                and all(params.get(k) == v for k, v in match.items())
                and self._wall(w["time"]) >= since - 0.05
            ):
                return self._wall(w["time"])
        return None

    # -- 4. drift ---------------------------------------------------------------------------

    def drift(self) -> dict[str, Any]:
        """A console edit (replicas +3) on one service at a random moment of the poll cycle:
        the time until status.observed shows it, and until the corrective SCALE."""
        rng = random.Random(self.n)  # noqa: S311 - jitter, not cryptography
        self.sim.control.clear_journal()
        self.offset = self.sim.clock_offset()
        detect: list[float] = []
        correct: list[float] = []
        listed: list[float] = []  # the first list call after the edit (the cloud-side view)
        missed = 0
        names = list(self.ids)
        for trial in range(self.config.drift_trials):
            wait_for(lambda: self.watcher.ready_count() >= self.n, 60, "all Ready again")
            time.sleep(rng.uniform(0, POLL_SECONDS))
            name = names[-1 - (trial * 3) % len(names)]
            if time.time() - self.last_scaled.get(name, 0.0) < 8:
                time.sleep(8)
            sid, wanted = self.ids[name], self.specs[name]["replicas"]
            console = wanted + 3
            edited_at = time.time()
            self.sim.control.edit_service(sid, replicas=console, ready=console)
            self.last_scaled[name] = edited_at
            seen = self._await_drift(name, sid, console, wanted, edited_at)
            if seen is None:
                missed += 1
                continue
            detect.append(seen["detect"] - edited_at)
            correct.append(seen["correct"] - edited_at)
            lists = self._entries(self.sim.control.journal(LIST), LIST)
            after = [self._wall(e["time"]) for e in lists if self._wall(e["time"]) >= edited_at]
            if after:
                listed.append(min(after) - edited_at)
        journal = self._journal()
        result = {
            "trials": self.config.drift_trials,
            "missed": missed,
            "poll_interval_seconds": POLL_SECONDS,
            "detect": _summary(detect),
            "first_list_after_edit": _summary(listed),
            "correct": _summary(correct),
            "detect_p50_over_poll": _r((percentile(detect, 0.5) or 0) / POLL_SECONDS),
            "detect_p99_over_poll": _r((percentile(detect, 0.99) or 0) / POLL_SECONDS),
            "correct_p50_over_poll": _r((percentile(correct, 0.5) or 0) / POLL_SECONDS),
            "correct_p99_over_poll": _r((percentile(correct, 0.99) or 0) / POLL_SECONDS),
            "throttled": self._throttled(journal),
            "throttled_total": sum(self._throttled(journal).values()),
        }
        self.result["drift"] = result
        return result

    def _await_drift(
        self, name: str, sid: str, console: int, wanted: int, edited_at: float
    ) -> dict[str, float] | None:
        """Wall times the status showed the console value and the corrective SCALE ran."""
        seen: dict[str, float] = {}
        match = {"ServiceAction": "SCALE", "Replicas": wanted}

        def done() -> bool:
            if "detect" not in seen:
                for r in self.watcher.since(edited_at):
                    if r.name == name and r.observed_replicas == console:
                        seen["detect"] = r.time
                        break
            if "correct" not in seen:
                when = self._find_write(MODIFY, sid, match, edited_at)
                if when is not None:
                    seen["correct"] = when
            return len(seen) == 2

        try:
            wait_for(done, 3 * POLL_SECONDS + 20, f"drift on {name} corrected", every=0.05)
        except TimeoutError:
            return None
        return seen

    # -- 5. footprint -----------------------------------------------------------------------

    def footprint(self) -> dict[str, Any]:
        if self.operator.trace_path is not None:
            self.operator.dump_profile("end")
        rss = self.operator.rss()
        samples = [rss] + [r for t, r in self.operator.rss_samples if t >= self.t0]
        metrics = self.operator.metrics()
        throttles = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("cloudinfer_cloud_throttled_total{")
        )
        result = {
            "rss_mb": round(rss / 2**20, 1),
            "peak_rss_mb": round(max(samples) / 2**20, 1),
            "cpu_seconds_total": round(self.operator.cpu_seconds(), 2),
            "wall_seconds_total": round(time.time() - self.t0, 1),
            "operator_throttled_metric": throttles,
        }
        self.result["footprint"] = result
        return result

    # -- 6. one window boundary --------------------------------------------------------------

    def boundary(self) -> dict[str, Any]:
        """Every service gets the same daily window, opening at the next minute boundary far
        enough away to patch them all and let the operator settle: the time from the
        boundary until the cloud received every STOP, against the floor (N STOPs through
        ModifyModelService at 20/s), and until every status says ScheduledStop."""
        lead = 20 + self.n / 25  # N patches (~100/s) and N status writes, then quiet
        now = datetime.datetime.now(datetime.UTC)
        edge = now.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
        while (edge - now).total_seconds() < lead:
            edge += datetime.timedelta(minutes=1)
        close = edge + datetime.timedelta(minutes=30)
        window = {"stop": f"{edge.minute} {edge.hour} * * *",
                  "start": f"{close.minute} {close.hour} * * *"}  # fmt: skip
        self.offset = self.sim.clock_offset()
        self.sim.control.clear_journal()
        patched_at = time.time()

        def patch(name: str) -> None:
            schedule = {"timeZone": "UTC", "windows": [window]}
            self.cluster.patch_service(self.namespace, name, {"stopSchedule": schedule})

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(patch, self.ids))
        patch_seconds = time.time() - patched_at
        at = edge.timestamp()
        floor = self.n / WRITE_LIMIT_PER_SECOND
        sids = set(self.ids.values())

        def stops() -> list[float]:
            writes = self._writes(self.sim.control.journal(MODIFY), MODIFY)
            return [
                self._wall(w["time"]) for w in writes
                if w.get("error_code") is None and w["params"].get("ServiceAction") == "STOP"
                and w["params"].get("ServiceId") in sids
            ]  # fmt: skip

        wait_for(lambda: len(stops()) >= self.n, at - time.time() + 3 * floor + 60,
                 f"{self.n} STOPs after the boundary", every=0.5)  # fmt: skip
        flipped = {"at": 0.0}

        def all_stopped() -> bool:
            reasons = [_ready_reason(self.watcher.latest.get(name)) for name in self.ids]
            flipped["at"] = time.time()
            return all(r == "ScheduledStop" for r in reasons)

        wait_for(all_stopped, 120, f"{self.n} services ScheduledStop", every=0.2)
        journal = self._journal()
        times = stops()
        last = max(times) - at
        result = {
            "lead_seconds": round(at - patched_at, 1),
            "patch_seconds": round(patch_seconds, 1),
            "stops": len(times),
            "stops_before_boundary": sum(1 for t in times if t < at),
            "first_stop_seconds": _r(min(times) - at, 2),
            "last_stop_seconds": _r(last, 2),
            "floor_seconds": floor,
            "target_seconds": floor + BOUNDARY_SLACK_SECONDS,
            "within_target": last <= floor + BOUNDARY_SLACK_SECONDS,
            "all_scheduled_stop_seconds": _r(flipped["at"] - at, 2),
            "max_calls_in_any_1s": _max_in_window(times, 1.0),
            "throttled": self._throttled(journal),
            "throttled_total": sum(self._throttled(journal).values()),
        }
        self.result["boundary"] = result
        return result

    def stop(self) -> None:
        self.watcher.stop()
        self.operator.stop()


def _ready_reason(obj: dict[str, Any] | None) -> str | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("reason"))
    return None


class Baseline(threading.Thread):
    """Peer-operator polling: every poll interval, one signed DescribeModelService per service,
    through the operator's own TencentProvider (and its 50/s budget for that action)."""

    def __init__(self, endpoint: str, account: SimAccount, ids: list[str], rounds: int) -> None:
        super().__init__(name="baseline", daemon=True)
        self.account = Account(
            name=account.name, cloud=Cloud.TENCENT, region=REGION, endpoint=endpoint,
            credentials=TencentCredentials(account.secret_id, Secret(account.secret_key)),
        )  # fmt: skip
        self.ids, self.rounds = ids, rounds
        self.calls = 0
        self.errors = 0
        self.rounds_done = 0
        self.round_seconds: list[float] = []

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        async with httpx.AsyncClient(timeout=30, limits=limits, trust_env=False) as http:
            provider = TencentProvider(http)
            gate = asyncio.Semaphore(16)

            async def one(sid: str) -> None:
                async with gate:
                    try:
                        await provider.observe(self.account, sid)
                    except Exception:  # counted and reported
                        self.errors += 1
                    self.calls += 1

            start = time.monotonic()
            for k in range(self.rounds):
                await asyncio.sleep(max(0.0, start + k * POLL_SECONDS - time.monotonic()))
                began = time.monotonic()
                await asyncio.gather(*(one(sid) for sid in self.ids))
                self.round_seconds.append(time.monotonic() - began)
                self.rounds_done += 1
