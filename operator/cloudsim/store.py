"""Accounts, services and the event queue that drives asynchronous transitions."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ComputeUnit:
    """A Qianfan compute-unit instance (算力单元实例) bought by an account."""

    instance_id: str
    type: str = "GPU-I-2"
    total_units: int = 8


@dataclass
class Account:
    """An account (or sub-account) with its own keys, regions/projects and switches."""

    name: str
    access_key: str
    secret_key: str
    # Tencent: regions; Huawei: project ids; Qianfan: resource regions.
    regions: list[str]
    # Tencent only: whether ModifyModelServicePartialConfig is "available" or "removed".
    partial_config: str = "available"
    # Huawei only: an IAM token accepted in X-Auth-Token (optional).
    token: str | None = None
    uin: str = "100000000001"
    compute_units: dict[str, ComputeUnit] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "access_key": self.access_key,
            "regions": list(self.regions),
            "partial_config": self.partial_config,
            "token": self.token is not None,
            "uin": self.uin,
            "compute_units": {
                k: {"type": v.type, "total_units": v.total_units}
                for k, v in self.compute_units.items()
            },
        }


@dataclass(eq=False)
class Service:
    """Cloud-neutral service state; each cloud renders it in its own shape.

    `status` holds the cloud's own status string (Tencent `Normal`, Huawei `running`,
    Qianfan `Serving`, ...), so nothing is lost in translation.
    """

    service_id: str
    account: str
    region: str  # Tencent region, Huawei project id, Qianfan resource region
    name: str
    status: str
    replicas: int  # desired
    ready: int  # ready/available replicas
    created_at: float
    updated_at: float
    transition_at: float
    old_replicas: int = 0
    group_id: str = ""
    rps_enabled: bool = False
    rps_limit: float = 0.0
    stop_enabled: bool = False  # a scheduled stop is armed
    stop_at: float | None = None  # virtual epoch seconds of the scheduled stop
    schedule: list[dict[str, Any]] = field(default_factory=list)  # Huawei v1 `schedule`
    business_status: str = "CREATE_SUCCEED"  # Tencent BusinessStatus; `ARREARS_STOP` etc.
    frozen: str | None = None  # a platform stop reason that blocks user starts
    progress: int = 100
    config_updated_at: float = 0.0
    # Qianfan: compute-unit instanceId -> replicas deployed on it.
    units: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    generation: int = 0  # bumped by every transition; stale events check it
    schedule_token: int = 0  # bumped whenever the stop schedule changes

    def internal(self) -> dict[str, Any]:
        return {
            "service_id": self.service_id,
            "account": self.account,
            "region": self.region,
            "name": self.name,
            "status": self.status,
            "replicas": self.replicas,
            "ready": self.ready,
            "old_replicas": self.old_replicas,
            "rps_enabled": self.rps_enabled,
            "rps_limit": self.rps_limit,
            "stop_enabled": self.stop_enabled,
            "stop_at": self.stop_at,
            "business_status": self.business_status,
            "frozen": self.frozen,
            "units": dict(self.units),
            "updated_at": self.updated_at,
        }


class EventQueue:
    """Callbacks due at virtual times, run in (time, insertion) order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def push(self, due: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), callback))

    def run_due(self, now: float) -> int:
        ran = 0
        while self._heap and self._heap[0][0] <= now:
            _, _, callback = heapq.heappop(self._heap)
            callback()
            ran += 1
        return ran

    def __len__(self) -> int:
        return len(self._heap)

    def clear(self) -> None:
        self._heap.clear()


class ServiceStore:
    """O(1) lookup by id, and insertion-ordered indexes per (account, region)."""

    def __init__(self) -> None:
        self.by_id: dict[str, Service] = {}
        self.by_scope: dict[tuple[str, str], dict[str, Service]] = {}

    def add(self, service: Service) -> None:
        if service.service_id in self.by_id:
            raise ValueError(f"service {service.service_id} already exists")
        self.by_id[service.service_id] = service
        self.by_scope.setdefault((service.account, service.region), {})[service.service_id] = (
            service
        )

    def remove(self, service_id: str) -> Service | None:
        service = self.by_id.pop(service_id, None)
        if service is not None:
            self.by_scope.get((service.account, service.region), {}).pop(service_id, None)
        return service

    def get(self, service_id: str) -> Service | None:
        return self.by_id.get(service_id)

    def scope(self, account: str, region: str) -> dict[str, Service]:
        return self.by_scope.get((account, region), {})

    def __len__(self) -> int:
        return len(self.by_id)

    def clear(self) -> None:
        self.by_id.clear()
        self.by_scope.clear()
