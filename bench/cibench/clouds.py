"""ModelArts and Qianfan beside TI-ONE (issue 19 item 3): cold convergence against each
cloud's physical floor, steady reads per poll against a per-resource baseline, and drift.

Each cloud has its own simulator process, namespace, account and operator process. What
differs from TI-ONE (bench/README.md explains it):
- ModelArts v1 has no RPS-limit field, so a service differs in replicas (the partial
  `UpdateServiceByProperty`) and the scheduled stop (`UpdateService` with `schedule`): two
  calls per service, one per action. Its list has no `config`, so the observer reads the
  detail (`ShowService`) of each service whose `update_time` moved.
- Qianfan can change only replicas (`ScaleService`): one call per service.
- Neither cloud documents a management rate limit; the floor uses the operator's default
  budgets (cloud/huawei/limits.py, cloud/baidu/limits.py), which the simulators' own limits
  exceed, so the operator's budgets are the binding limit.
"""

from __future__ import annotations

import datetime
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cibench.env import (
    POLL_SECONDS,
    Cluster,
    OperatorProcess,
    ServiceWatcher,
    SimAccount,
    SimProcess,
    wait_for,
)
from cibench.scenarios import Config, _max_in_window, _r, _summary, percentile
from cloudinfer.cloud.baidu import limits as qianfan_limits
from cloudinfer.cloud.budget import CallRate
from cloudinfer.cloud.huawei import limits as modelarts_limits


@dataclass(frozen=True)
class CloudShape:
    """What the benchmark needs to know about one cloud."""

    provider: str
    title: str
    region: str
    writes: tuple[str, ...]
    """The actions a service needs, one call each, to converge."""
    scale: str
    """The action that sets replicas (the drift correction)."""
    reads: tuple[str, ...]
    """The actions the operator's observation uses (list, then details)."""
    list_action: str
    detail_action: str
    """The per-service read a peer operator polls with (the baseline)."""
    budgets: Mapping[str, CallRate]


MODELARTS = CloudShape(
    provider="huawei",
    title="ModelArts",
    region="cn-north-4",
    writes=(modelarts_limits.UPDATE_SERVICE_BY_PROPERTY, modelarts_limits.UPDATE_SERVICE),
    scale=modelarts_limits.UPDATE_SERVICE_BY_PROPERTY,
    reads=(modelarts_limits.LIST_SERVICES, modelarts_limits.SHOW_SERVICE),
    list_action=modelarts_limits.LIST_SERVICES,
    detail_action=modelarts_limits.SHOW_SERVICE,
    budgets=modelarts_limits.HUAWEI_RATE_LIMITS,
)
QIANFAN = CloudShape(
    provider="baidu",
    title="Qianfan",
    region="bj",
    writes=(qianfan_limits.SCALE_SERVICE,),
    scale=qianfan_limits.SCALE_SERVICE,
    reads=(qianfan_limits.DESCRIBE_SERVICES, qianfan_limits.DESCRIBE_SERVICE),
    list_action=qianfan_limits.DESCRIBE_SERVICES,
    detail_action=qianfan_limits.DESCRIBE_SERVICE,
    budgets=qianfan_limits.BAIDU_RATE_LIMITS,
)
SHAPES = {shape.provider: shape for shape in (MODELARTS, QIANFAN)}
POLL_GAP_SECONDS = 0.8


class CloudBench:
    """Convergence, steady reads and drift for N services of one cloud."""

    def __init__(  # noqa: PLR0917 - the world and the size
        self, cluster: Cluster, sim: SimProcess, shape: CloudShape, n: int, config: Config,
        work: Path,
    ) -> None:  # fmt: skip
        self.cluster, self.sim, self.shape, self.n, self.config = cluster, sim, shape, n, config
        self.namespace = f"bench-{shape.provider}-{n}"
        tag = f"{random.getrandbits(40):010x}"
        self.account = SimAccount(
            f"bench-{shape.provider}-{n}-{tag}", f"AK{tag.upper()}", f"sk{tag}"
        )
        self.project = tag * 3 + "00"
        self.operator = OperatorProcess(
            cluster.kubeconfig, self.namespace, work / f"operator-{shape.provider}-{n}.log"
        )
        self.watcher = ServiceWatcher(cluster.api, self.namespace)
        self.ids: dict[str, str] = {}
        self.units: dict[str, str] = {}  # Qianfan: CR name -> its compute-unit instance
        self.replicas: dict[str, int] = {}
        self.t0 = 0.0
        self.offset = 0.0
        self.result: dict[str, Any] = {"n": n, "cloud": shape.title}

    # -- helpers ----------------------------------------------------------------------------

    def _entries(self, journal: dict[str, Any], action: str) -> list[dict[str, Any]]:
        entries = journal.get(action, {}).get("entries", [])
        return [e for e in entries if e.get("account") == self.account.name]

    def _writes(self, journal: dict[str, Any], action: str) -> list[dict[str, Any]]:
        writes = journal.get(action, {}).get("writes", [])
        return [
            w
            for w in writes
            if w.get("account") == self.account.name and w.get("error_code") is None
        ]

    def _throttled(self, journal: dict[str, Any]) -> int:
        return sum(
            1 for action in journal for e in self._entries(journal, action) if e.get("throttled")
        )

    def _wall(self, sim_time: float) -> float:
        return sim_time - self.offset

    # -- set-up -----------------------------------------------------------------------------

    def setup(self) -> None:
        started = time.monotonic()
        control = self.sim.control
        extra: dict[str, Any] = {}
        if self.shape.provider == "huawei":
            control.add_account(
                name=self.account.name, ak=self.account.secret_id, sk=self.account.secret_key,
                projects=[self.project],
            )  # fmt: skip
            extra["projectId"] = self.project
        else:
            control.add_account(
                name=self.account.name, ak=self.account.secret_id, sk=self.account.secret_key,
                regions=[self.shape.region],
            )  # fmt: skip
        self.cluster.create_namespace(self.namespace)
        self.cluster.create_account(
            self.namespace, self.account, self.sim.base_url, provider=self.shape.provider,
            region=self.shape.region, extra=extra,
        )  # fmt: skip
        base = datetime.datetime.now(datetime.UTC).replace(microsecond=0, second=0)
        base += datetime.timedelta(days=2)
        specs: dict[str, dict[str, Any]] = {}
        for i in range(self.n):
            name = f"svc-{i:05d}"
            if self.shape.provider == "huawei":
                sid = control.add_service(
                    account=self.account.name, project_id=self.project, name=name, replicas=1
                )
            else:
                # Its own compute unit (8 units), so scaling to 2-4 and drift +3 fit.
                sid = control.add_service(account=self.account.name, name=name)
                self.units[name] = next(iter(control.service(sid)["internal"]["units"]))
            self.ids[name] = sid
            self.replicas[name] = 2 + i % 3
            spec: dict[str, Any] = {"serviceId": sid, "replicas": self.replicas[name]}
            if self.shape.provider == "huawei":
                stop_at = base + datetime.timedelta(minutes=i)
                spec["stopSchedule"] = {"stopAt": stop_at.strftime("%Y-%m-%dT%H:%M:%SZ")}
            specs[name] = spec
        self.cluster.create_services(self.namespace, specs)
        self.watcher.start()
        self.result["setup_seconds"] = round(time.monotonic() - started, 1)

    # -- cold convergence ---------------------------------------------------------------------

    def converge(self) -> dict[str, Any]:
        self.offset = self.sim.clock_offset()
        self.sim.control.clear_journal()
        self.t0 = self.operator.start()
        wait_for(
            lambda: self.watcher.ready_count() >= self.n,
            self.config.converge_timeout,
            f"{self.n} {self.shape.title} services Ready",
            every=0.2,
        )
        all_ready = max(t for t, c in self.watcher.ready_series if c >= self.n)
        cpu = self.operator.cpu_seconds()
        journal = self.sim.control.journal()
        made = {a: self._writes(journal, a) for a in self.shape.writes}
        # The physical floor: one call per service per action, each action at its limit.
        floor_by_action = {a: self.n / self.shape.budgets[a].per_second for a in self.shape.writes}
        floor = max(floor_by_action.values())
        times = [self._wall(w["time"]) for ws in made.values() for w in ws]
        elapsed = all_ready - self.t0
        first = min(times) - self.t0 if times else None
        reads = {a: len(self._entries(journal, a)) for a in self.shape.reads}
        result = {
            "seconds_to_all_ready": round(elapsed, 2),
            "seconds_to_first_write": _r(first, 2),
            "seconds_to_last_write": _r(max(times) - self.t0 if times else None, 2),
            "writes_needed": dict.fromkeys(self.shape.writes, self.n),
            "writes_made": {a: len(ws) for a, ws in made.items()},
            "writes_needed_total": self.n * len(self.shape.writes),
            "writes_made_total": sum(len(ws) for ws in made.values()),
            "floor_seconds_by_action": floor_by_action,
            "floor_seconds": floor,
            "limits_per_second": {a: self.shape.budgets[a].per_second for a in self.shape.writes},
            "ratio_to_floor": round(elapsed / floor, 3),
            "ratio_to_floor_from_first_write": _r(
                (elapsed - first) / floor if first is not None else None
            ),
            "reads_during_convergence": reads,
            "max_calls_in_any_1s": {
                a: _max_in_window([self._wall(e["time"]) for e in self._entries(journal, a)], 1.0)
                for a in (*self.shape.writes, *self.shape.reads)
            },
            "throttled_total": self._throttled(journal),
            "operator_cpu_seconds": round(cpu, 2),
            "ready_series": [
                (round(t - self.t0, 3), c) for t, c in self.watcher.ready_series if t >= self.t0
            ],
        }
        self.result["convergence"] = result
        return result

    # -- steady state -------------------------------------------------------------------------

    def steady(self) -> dict[str, Any]:
        """Reads per poll with nothing to do, against a per-resource baseline (one detail read
        per service per poll, as peer operators poll), and Kubernetes writes."""
        time.sleep(POLL_SECONDS + 2)
        self.sim.control.clear_journal()
        before = self.cluster.resource_versions(self.namespace)
        cpu_before = self.operator.cpu_seconds()
        t1 = time.time()
        time.sleep(self.config.steady_polls * POLL_SECONDS)
        t2 = time.time()
        cpu_after = self.operator.cpu_seconds()
        after = self.cluster.resource_versions(self.namespace)
        journal = self.sim.control.journal()
        lists = sorted(e["time"] for e in self._entries(journal, self.shape.list_action))
        polls = 0
        last = -math.inf
        for t in lists:
            if t - last > POLL_GAP_SECONDS:
                polls += 1
            last = t
        reads = sum(len(self._entries(journal, a)) for a in self.shape.reads)
        detail_limit = self.shape.budgets[self.shape.detail_action].per_second
        changed = [k for k, v in after.items() if before.get(k) != v]
        result = {
            "window_seconds": round(t2 - t1, 1),
            "polls": polls,
            "reads": {a: len(self._entries(journal, a)) for a in self.shape.reads},
            "reads_per_poll": _r(reads / polls if polls else None, 2),
            "baseline_reads_per_poll": self.n,
            "baseline_round_seconds": round(self.n / detail_limit, 1),
            "kube_objects_changed": len(changed),
            "kube_writes_per_minute": round(len(changed) * 60 / (t2 - t1), 2),
            "cloud_writes": sum(len(self._writes(journal, a)) for a in self.shape.writes),
            "throttled": self._throttled(journal),
            "operator_cpu_seconds_per_minute": round((cpu_after - cpu_before) * 60 / (t2 - t1), 3),
        }
        self.result["steady"] = result
        return result

    # -- drift --------------------------------------------------------------------------------

    def drift(self) -> dict[str, Any]:
        """A console edit (replicas + 3) at a random moment of the poll cycle: the time until
        status.observed shows it and until the corrective scale call."""
        rng = random.Random(self.n)  # noqa: S311 - jitter
        self.sim.control.clear_journal()
        self.offset = self.sim.clock_offset()
        detect: list[float] = []
        correct: list[float] = []
        missed = 0
        names = list(self.ids)
        for trial in range(self.config.drift_trials):
            wait_for(lambda: self.watcher.ready_count() >= self.n, 60, "all Ready again")
            time.sleep(rng.uniform(0, POLL_SECONDS))
            name = names[-1 - (trial * 3) % len(names)]
            sid, wanted = self.ids[name], self.replicas[name]
            console = wanted + 3
            edited_at = time.time()
            if self.shape.provider == "baidu":
                self.sim.control.edit_service(sid, units={self.units[name]: console})
            else:  # ModelArts: the simulator moves instance_count and update_time too
                self.sim.control.edit_service(sid, replicas=console, ready=console)
            seen = self._await(name, sid, console, edited_at)
            if seen is None:
                missed += 1
                continue
            detect.append(seen["detect"] - edited_at)
            correct.append(seen["correct"] - edited_at)
            time.sleep(3)  # the corrective scale's transition
        result = {
            "trials": self.config.drift_trials,
            "missed": missed,
            "detect": _summary(detect),
            "correct": _summary(correct),
            "detect_p99_over_poll": _r((percentile(detect, 0.99) or 0) / POLL_SECONDS),
            "throttled_total": self._throttled(self.sim.control.journal()),
        }
        self.result["drift"] = result
        return result

    def _await(self, name: str, sid: str, console: int, since: float) -> dict[str, float] | None:
        seen: dict[str, float] = {}

        def done() -> bool:
            if "detect" not in seen:
                for r in self.watcher.since(since):
                    if r.name == name and r.observed_replicas == console:
                        seen["detect"] = r.time
                        break
            if "correct" not in seen:
                for w in self.sim.control.writes(self.shape.scale):
                    when = self._wall(w["time"])
                    if (
                        w.get("account") == self.account.name
                        and sid in str(w.get("params")) + str(w.get("path_params"))
                        and w.get("error_code") is None
                        and when >= since - 0.05
                    ):
                        seen["correct"] = when
                        break
            return len(seen) == 2

        try:
            wait_for(done, 3 * POLL_SECONDS + 20, f"drift on {name} corrected", every=0.05)
        except TimeoutError:
            return None
        return seen

    def footprint(self) -> dict[str, Any]:
        samples = [self.operator.rss()] + [r for t, r in self.operator.rss_samples if t >= self.t0]
        result = {
            "rss_mb": round(samples[0] / 2**20, 1),
            "peak_rss_mb": round(max(samples) / 2**20, 1),
            "cpu_seconds_total": round(self.operator.cpu_seconds(), 2),
        }
        self.result["footprint"] = result
        return result

    def stop(self) -> None:
        self.watcher.stop()
        self.operator.stop()
