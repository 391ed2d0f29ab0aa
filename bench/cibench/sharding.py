"""Sharding (issue 23 item 5): N TI-ONE services over 20 accounts on R replicas run with
`--shard`, all started at once; cold convergence, each replica's footprint and share of the
accounts, then a failover (SIGKILL the replica holding the most accounts).

Who wrote is read from the simulator's journal: in sharding mode the operator's User-Agent
ends with `replica/<identity>`. Who holds an account is read from its Lease.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client

from cibench.env import Cluster, OperatorProcess, SimProcess, wait_for
from cibench.scenarios import (
    LIMIT_PER_SECOND,
    MODIFY,
    PARTIAL,
    Config,
    SizeBench,
    _account_ref,
    _max_in_window,
    _r,
)
from cloudinfer.main.settings import POD_NAME_ENV
from cloudinfer.main.sharding import ACCOUNT_ANNOTATION, ROLE_LABEL, assign

FAILOVER_TIMEOUT = 180.0
"""Generous: a Lease lasts 15 s; the survivors may be busy on a shared box."""
SETTLE_SECONDS = 10.0
"""After all Ready, before the kill: the last transitions end, the fleet is quiet."""
LEASE_POLL_SECONDS = 0.25


def replica_of(entry: Mapping[str, Any]) -> str:
    """The replica identity a journal entry's User-Agent names ("" outside sharding)."""
    return str(entry.get("client") or "").partition(" replica/")[2]


def write_key(entry: Mapping[str, Any]) -> str:
    """What a write asks for, as tests/reliability/invariants.py compares them: two
    successful writes with the same key are a duplicate."""
    path = entry.get("path_params") or {}
    where = f" {json.dumps(path, sort_keys=True)}" if path else ""
    return f"{entry['action']}{where} {json.dumps(entry.get('params'), sort_keys=True)}"


def _mb(rss: int) -> float:
    return round(rss / 2**20, 1)


class LeasePoller:
    """Lists the account Leases of a namespace every 0.25 s in a thread; keeps each change
    of the holders (account name -> holder identity, "" when released)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self._coordination = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.latest: dict[str, str] = {}
        self.transitions = 0
        self.series: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leases", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def holders(self) -> dict[str, str]:
        with self._lock:
            return dict(self.latest)

    def poll(self) -> None:
        leases = self._coordination.list_namespaced_lease(
            self.namespace, label_selector=f"{ROLE_LABEL}=account"
        ).items
        now = time.time()
        holders: dict[str, str] = {}
        transitions = 0
        for lease in leases:
            if lease.metadata is None or lease.spec is None:
                continue
            account = (lease.metadata.annotations or {}).get(ACCOUNT_ANNOTATION, "")
            holders[account.partition("/")[2]] = lease.spec.holder_identity or ""
            transitions += lease.spec.lease_transitions or 0
        with self._lock:
            if holders != self.latest:
                self.series.append((now, holders))
            self.latest, self.transitions = holders, transitions

    def _run(self) -> None:
        while not self._stop.wait(LEASE_POLL_SECONDS):
            try:
                self.poll()
            except Exception:  # the apiserver busy: the next round reads again
                time.sleep(LEASE_POLL_SECONDS)


class ShardBench(SizeBench):
    """One N on R sharded replicas: its own namespace (which also holds the Leases), the
    config's accounts, R operator processes."""

    def __init__(
        self, cluster: Cluster, sim: SimProcess, n: int, config: Config, work: Path, *,
        replicas: int, memray: bool = False, peak: bool = False,
    ) -> None:  # fmt: skip
        self.memray = memray
        """Under memray the replicas stop at all Ready (no failover): memray keeps the
        allocations at the whole process's high-water mark, and the failover's would hide
        the convergence's."""
        super().__init__(cluster, sim, n, config, work, namespace=f"shard-{n}-{replicas}r")
        self.replicas = replicas
        self.operators = [
            OperatorProcess(
                cluster.kubeconfig, self.namespace, work / f"operator-{n}-{replicas}r-{i}.log",
                mode=("--shard", "--shard-namespace", self.namespace),
                env={POD_NAME_ENV: f"r{i}"},
                memray_path=work / f"memray-{n}-{replicas}r-{i}.bin" if memray else None,
                # One replica only: four under tracemalloc starved the box and their Leases
                # lapsed, which changed what they held.
                peak_path=work / f"tracemalloc-{n}-{replicas}r-{i}" if peak and i == 0 else None,
            )
            for i in range(replicas)
        ]  # fmt: skip
        self.operator = self.operators[0]
        self.leases = LeasePoller(cluster.api, self.namespace)
        self.account_refs = [_account_ref(k) for k in range(config.accounts)]
        self.all_ready = 0.0
        self.result = {"n": n, "replicas": replicas, "accounts": config.accounts}

    @staticmethod
    def identity(operator: OperatorProcess) -> str:
        """As cloudinfer.main.sharding.default_identity() derives it: POD_ID-pid."""
        assert operator.process is not None
        return f"{operator.extra_env[POD_NAME_ENV]}-{operator.process.pid}"

    def _expected(self, operators: list[OperatorProcess]) -> dict[str, str]:
        members = [self.identity(op) for op in operators]
        keys = [(self.namespace, name) for name in self.account_refs]
        return {key[1]: member for key, member in assign(keys, members).items()}

    # -- 1. cold convergence, all replicas started at once ---------------------------------------

    def converge(self) -> dict[str, Any]:
        self.offset = self.sim.clock_offset()
        self.sim.control.clear_journal()
        self.leases.start()
        self.t0 = time.time()
        for operator in self.operators:
            operator.spawn()
        for operator in self.operators:
            wait_for(operator.healthy, 60, "a replica's liveness endpoint", every=0.2)
        healthy = time.time()
        converged = True
        try:
            wait_for(
                lambda: self.watcher.ready_count() >= self.n,
                self.config.converge_timeout,
                f"{self.n} services Ready",
                every=0.2,
            )
        except TimeoutError:  # recorded with the reasons of those not Ready; the run goes on
            converged = False
        all_ready = self.all_ready = (
            max(t for t, c in self.watcher.ready_series if c >= self.n)
            if converged
            else time.time()
        )
        cpu = {self.identity(op): op.cpu_seconds() for op in self.operators}
        rss = {self.identity(op): op.rss() for op in self.operators}
        for op in self.operators:
            op.freeze_peak()
        expected = self._expected(self.operators)
        with contextlib.suppress(TimeoutError):  # then seconds_to_balanced is None
            wait_for(lambda: self.leases.holders() == expected, 60, "the Leases as `assign` says")
        journal = self._journal()
        modify = [w for w in self._writes(journal, MODIFY) if w.get("error_code") is None]
        partial = [w for w in self._writes(journal, PARTIAL) if w.get("error_code") is None]
        writes = modify + partial
        per_account = math.ceil(self.n / len(self.accounts))
        floor = max(per_account / LIMIT_PER_SECOND[a] for a in (MODIFY, PARTIAL))
        elapsed = all_ready - self.t0
        times = [self._wall(w["time"]) - self.t0 for w in writes]
        first = min(times) if times else None
        held = Counter(self.leases.holders().values())
        by_replica = Counter(replica_of(w) for w in writes)
        writers: dict[str, set[str]] = defaultdict(set)
        for w in writes:
            writers[w["account"]].add(replica_of(w))
        total_cpu = sum(cpu.values())
        peak = {
            self.identity(op): _mb(max(rss[self.identity(op)], op.peak_rss(self.t0, all_ready)))
            for op in self.operators
        }
        replicas = {
            name: {
                "cpu_seconds": round(cpu[name], 2),
                "cpu_share": round(cpu[name] / total_cpu, 3) if total_cpu else None,
                "peak_rss_mb": peak[name],
                "rss_mb": _mb(rss[name]),
                "accounts_held": held.get(name, 0),
                "writes": by_replica.get(name, 0),
            }
            for op in self.operators
            for name in (self.identity(op),)
        }  # fmt: skip
        peaks = list(peak.values())
        result = {
            "converged": converged,
            "ready_at_end": self.watcher.ready_count(),
            "not_ready": self._not_ready(),
            "seconds_to_all_ready": round(elapsed, 2) if converged else None,
            "seconds_to_all_healthy": round(healthy - self.t0, 2),
            "seconds_to_first_write": _r(first, 2),
            "seconds_to_last_write": _r(max(times) if times else None, 2),
            "floor_seconds": floor,
            "ratio_to_floor": round(elapsed / floor, 3) if converged else None,
            "ratio_to_floor_from_first_write": _r(
                (elapsed - first) / floor if first is not None and converged else None
            ),
            "writes_needed_total": 2 * self.n,
            "writes_made_total": len(writes),
            "services_written_more_than_needed": sum(
                1 for c in Counter(w["params"]["ServiceId"] for w in writes).values() if c > 2
            ),
            "throttled_total": _throttled_total(journal),
            "max_calls_in_any_1s_one_account": self._max_per_account(journal),
            "seconds_to_balanced": _r(_settled_at(self.leases.series, expected, self.t0), 2),
            "lease_transitions": self.leases.transitions,
            "accounts_written_by_two_replicas": sum(1 for r in writers.values() if len(r) > 1),
            "cpu_seconds_total": round(total_cpu, 2),
            "cpu_seconds_max_replica": round(max(cpu.values()), 2),
            "peak_rss_mb_max_replica": max(peaks),
            "peak_rss_mb_mean_replica": round(sum(peaks) / len(peaks), 1),
            "replicas": replicas,
            "ready_series": [
                (round(t - self.t0, 3), c) for t, c in self.watcher.ready_series if t >= self.t0
            ],
        }
        self.result["convergence"] = result
        if self.memray:
            for op in self.operators:
                op.stop()
        return result

    def _not_ready(self) -> dict[str, Any]:
        """The services not Ready: how many per Ready reason, and a few of them."""
        reasons: Counter[str] = Counter()
        examples: list[str] = []
        for name in self.ids:
            obj = self.watcher.latest.get(name) or {}
            conditions = (obj.get("status") or {}).get("conditions") or []
            if not any(c.get("type") == "Ready" for c in conditions):
                reasons["(no Ready condition yet)"] += 1
            for cond in conditions:
                if cond.get("type") == "Ready" and cond.get("status") != "True":
                    reasons[str(cond.get("reason"))] += 1
                    if len(examples) < 5:
                        account = obj["spec"]["accountRef"]["name"]
                        examples.append(f"{name} ({account}): {cond.get('message')}")
        return {"reasons": dict(reasons), "examples": examples}

    def _max_per_account(self, journal: dict[str, dict[str, Any]]) -> dict[str, int]:
        """Per write action: the most calls one account's got in any second at the simulator."""
        out: dict[str, int] = {}
        for action in (MODIFY, PARTIAL):
            by_account: dict[str, list[float]] = defaultdict(list)
            for entry in self._entries(journal, action):
                by_account[entry["account"]].append(float(entry["time"]))
            out[action] = max((_max_in_window(t, 1.0) for t in by_account.values()), default=0)
        return out

    # -- 2. failover --------------------------------------------------------------------------

    def failover(self) -> dict[str, Any]:
        """SIGKILL the replica holding the most accounts, then at once edit `replicas` of one
        of its services: the time until the survivors hold all its accounts, until the
        edit's SCALE reaches the cloud, and until the status shows it Ready."""
        time.sleep(max(0.0, self.all_ready + SETTLE_SECONDS - time.time()))
        holders = self.leases.holders()
        counts = Counter(h for h in holders.values() if h)
        victim_name, _ = counts.most_common(1)[0]
        victim = next(op for op in self.operators if self.identity(op) == victim_name)
        survivors = [op for op in self.operators if op is not victim]
        lost = sorted(a for a, h in holders.items() if h == victim_name)
        ready = {n for n, obj in self.watcher.latest.items() if _is_ready(obj)}
        theirs = [s for s, spec in self.specs.items() if spec["accountRef"]["name"] in lost]
        name = next((s for s in theirs if s in ready), theirs[0])
        spec = self.specs[name]
        new = 2 + (spec["replicas"] - 1) % 3
        cpu_before = {self.identity(op): op.cpu_seconds() for op in survivors}
        self.offset = self.sim.clock_offset()
        killed = victim.kill()
        self.cluster.patch_service(self.namespace, name, {"replicas": new})
        spec["replicas"] = new
        live = {self.identity(op) for op in survivors}

        def taken_over() -> bool:
            now = self.leases.holders()
            return all(now.get(a) in live for a in lost)

        result: dict[str, Any] = {
            "victim": victim_name,
            "victim_accounts": len(lost),
            "killed_at_seconds": round(killed - self.t0, 2),
            "edited_service": name,
        }
        taken_at = written_at = ready_at = None
        try:
            wait_for(taken_over, FAILOVER_TIMEOUT, "the survivors to hold its accounts", every=0.1)
            taken_at = time.time()
        except TimeoutError:
            pass
        written_at = self._wait_write(
            MODIFY, self.ids[name], {"ServiceAction": "SCALE", "Replicas": new}, killed,
            timeout=FAILOVER_TIMEOUT,
        )  # fmt: skip

        def ready_again() -> bool:
            return any(
                r.name == name and r.ready and r.observed_replicas == new
                for r in self.watcher.since(killed)
            )

        try:
            wait_for(ready_again, FAILOVER_TIMEOUT, f"{name} Ready at {new} replicas", every=0.2)
            ready_at = time.time()
        except TimeoutError:
            pass
        expected = self._expected(survivors)
        with contextlib.suppress(TimeoutError):  # then seconds_to_balanced is None
            wait_for(lambda: self.leases.holders() == expected, 60, "the survivors balanced")
        journal = self._journal()
        after_kill = [
            e for action in (MODIFY, PARTIAL) for e in self._entries(journal, action)
            if self._wall(e["time"]) >= killed
        ]  # fmt: skip
        moved_to = Counter(self.leases.holders().get(a, "") for a in lost)
        cpu_after = {self.identity(op): op.cpu_seconds() for op in survivors}
        result |= {
            "seconds_to_accounts_held": _r(taken_at - killed if taken_at else None, 2),
            "seconds_to_edit_written": _r(written_at - killed if written_at else None, 2),
            "seconds_to_edit_ready": _r(ready_at - killed if ready_at else None, 2),
            "seconds_to_balanced": _r(_settled_at(self.leases.series, expected, killed), 2),
            "moved_to": dict(moved_to),
            "writes_after_kill": sum(1 for e in after_kill if e.get("error_code") is None),
            "throttled_after_kill": sum(
                1
                for action in journal
                for e in self._entries(journal, action)
                if e.get("throttled") and self._wall(e["time"]) >= killed
            ),
            "survivor_cpu_seconds": {k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_after},
        }
        self.result["failover"] = result
        return result

    # -- 3. the whole run -----------------------------------------------------------------------

    def totals(self) -> dict[str, Any]:
        """Over the whole run: duplicate writes (the same write asked twice, successfully),
        throttles (the simulator's counters: budget overruns), each replica's footprint."""
        journal = self._journal()
        ok = [
            w for action in journal for w in self._writes(journal, action)
            if w.get("error_code") is None
        ]  # fmt: skip
        by_key: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for w in ok:
            by_key[w["account"], write_key(w)].append(w)
        duplicates = {key: ws for key, ws in by_key.items() if len(ws) > 1}
        result = {
            "duplicate_writes": sum(len(ws) - 1 for ws in duplicates.values()),
            # A retry by the same replica (its first call timed out but was applied), or a
            # second replica writing for the account: the latter breaks the sharding.
            "duplicate_writes_across_replicas": sum(
                1 for ws in duplicates.values() if len({replica_of(w) for w in ws}) > 1
            ),
            "duplicate_examples": {
                f"{account}: {key}": [
                    f"{replica_of(w)} at {self._wall(w['time']) - self.t0:.1f} s" for w in ws
                ]
                for (account, key), ws in list(duplicates.items())[:10]
            },
            "throttled_total": _throttled_total(journal),
            "replicas": {
                self.identity(op): {
                    "peak_rss_mb": _mb(op.peak_rss()),
                    "cpu_seconds": round(op.cpu_samples[-1][1] if op.cpu_samples else 0.0, 2),
                }
                for op in self.operators
            },
            "wall_seconds_total": round(time.time() - self.t0, 1),
            "rss_series": {
                self.identity(op): [(round(t - self.t0, 1), _mb(r)) for t, r in op.rss_samples[::4]]
                for op in self.operators
            },
        }
        self.result["totals"] = result
        return result

    def stop(self) -> None:
        self.leases.stop()
        self.watcher.stop()
        for operator in self.operators:
            operator.stop()


def _is_ready(obj: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def _throttled_total(journal: Mapping[str, Mapping[str, Any]]) -> int:
    """The simulator's own counters (complete, unlike its capped entry lists); only this
    run's replicas are calling it."""
    return sum(int(log.get("throttled", 0)) for log in journal.values())


def _settled_at(
    series: list[tuple[float, dict[str, str]]], expected: Mapping[str, str], after: float
) -> float | None:
    """Seconds after `after` at which the holders became `expected` for the last time;
    None if they are not `expected` at the end."""
    if not series or series[-1][1] != expected:
        return None
    when = series[-1][0]
    for t, holders in reversed(series):
        if holders != expected:
            break
        when = t
    return max(when, after) - after


def compare(by_replicas: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Each replica count against the fewest (1): per-replica peak RSS and CPU-s ratios."""
    counts = sorted(by_replicas, key=int)
    if len(counts) < 2:
        return {}
    base = by_replicas[counts[0]]["convergence"]
    out: dict[str, Any] = {"base_replicas": int(counts[0])}
    for count in counts[1:]:
        conv = by_replicas[count]["convergence"]
        out[count] = {
            "peak_rss_max_replica_over_base": round(
                conv["peak_rss_mb_max_replica"] / base["peak_rss_mb_max_replica"], 3
            ),
            "peak_rss_mean_replica_over_base": round(
                conv["peak_rss_mb_mean_replica"] / base["peak_rss_mb_max_replica"], 3
            ),
            "cpu_max_replica_over_base": round(
                conv["cpu_seconds_max_replica"] / base["cpu_seconds_total"], 3
            ),
            "cpu_total_over_base": round(conv["cpu_seconds_total"] / base["cpu_seconds_total"], 3),
            "all_ready_over_base": _r(
                conv["seconds_to_all_ready"] / base["seconds_to_all_ready"]
                if conv["seconds_to_all_ready"] and base["seconds_to_all_ready"]
                else None
            ),
        }
    return out
