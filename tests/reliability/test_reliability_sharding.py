"""Sharding mode (`--shard`) on the real apiserver: several active replicas split the
CloudAccounts through Leases, and each account's cloud calls come from one replica at a time.

The simulators journal every call with its User-Agent, which names the replica in sharding
mode, so "who wrote" is read from the cloud's side, not from the operators' logs.
"""

from __future__ import annotations

import signal
import socket
import time
from collections import Counter
from collections.abc import Iterable

from harness import PROVIDERS, CloudAccountHandle, OperatorProcess
from invariants import account_entries
from kubernetes import client
from scenario import Scenario, report_figure, wait_until

from cloudinfer.main.sharding import ACCOUNT_ANNOTATION, ROLE_LABEL, assign

ACCOUNTS = 9
SERVICES_PER_ACCOUNT = 3
SETTLE_TIMEOUT = 120
"""Generous: a replica's Lease lasts 15 s, and the box is shared."""
CONVERGE_TIMEOUT = 180
HANDOVER_NOISE = {"AccountNotReady", "PendingObservation", "ServiceNotFound"}


def identity(operator: OperatorProcess) -> str:
    """The replica's identity as sharding.default_identity() derives it."""
    assert operator.process is not None
    return f"{socket.gethostname()}-{operator.process.pid}"


def replica_of(entry: dict[str, object]) -> str:
    agent = str(entry.get("client") or "")
    return agent.partition(" replica/")[2]


class Fleet:
    """The scenario's accounts, services and sharded operators."""

    def __init__(self, scenario: Scenario) -> None:
        self.sc = scenario
        self.handles: dict[str, CloudAccountHandle] = {}
        self.expected: dict[str, str] = {}
        self.operators: list[OperatorProcess] = []
        self.coordination = client.CoordinationV1Api(scenario.kube.api)

    def accounts(self) -> None:
        for i in range(ACCOUNTS):
            name = f"acct{i}"
            self.handles[name] = self.sc.account(PROVIDERS[i % len(PROVIDERS)], name=name)
            # One write a second: a change of 3 services takes 3 s per account, long enough
            # to kill a replica in the middle of it.
            self.sc.kube.custom.patch_namespaced_custom_object(
                "cloudinfer.dev", "v1alpha1", self.sc.ns, "cloudaccounts", name,
                {"spec": {"rateBudgets": {"writesPerSecond": 1}}},
            )  # fmt: skip

    def services(self, replicas: int) -> None:
        for name, handle in self.handles.items():
            for j in range(SERVICES_PER_ACCOUNT):
                service_id = handle.add_service(name=f"svc{j}", replicas=1)
                self.sc.service(
                    f"{name}-svc{j}",
                    {"accountRef": {"name": name}, "serviceId": service_id, "replicas": replicas},
                )
                self.expected[f"{name}-svc{j}"] = "Converged"
        self.sc.freeze_specs()

    def scale_all(self, replicas: int) -> None:
        for service in self.expected:
            self.sc.edit(service, {"spec": {"replicas": replicas}})

    def start(self) -> OperatorProcess:
        operator = self.sc.operator("--shard", "--shard-namespace", self.sc.ns, standalone=False)
        self.operators.append(operator)
        return operator

    def live(self) -> list[OperatorProcess]:
        return [op for op in self.operators if op not in self.sc.stopped]

    def holders(self) -> dict[str, str]:
        """Account name -> the replica holding its Lease (empty: released)."""
        leases = self.coordination.list_namespaced_lease(
            self.sc.ns, label_selector=f"{ROLE_LABEL}=account"
        ).items
        out = {}
        for lease in leases:
            account = (lease.metadata.annotations or {}).get(ACCOUNT_ANNOTATION, "")
            out[account.partition("/")[2]] = lease.spec.holder_identity or ""
        return out

    def expected_holders(self, operators: Iterable[OperatorProcess]) -> dict[str, str]:
        members = [identity(op) for op in operators]
        assignment = assign([(self.sc.ns, name) for name in self.handles], members)
        return {key[1]: member for key, member in assignment.items()}

    def wait_balanced(self, what: str) -> dict[str, str]:
        want = self.expected_holders(self.live())
        last: dict[str, str] = {}

        def balanced() -> bool:
            nonlocal last
            last = self.holders()
            return last == want

        try:
            wait_until(balanced, timeout=SETTLE_TIMEOUT, what=what)
        except AssertionError as err:
            raise AssertionError(f"{err}: holders {last}, `assign` says {want}") from None
        return want

    def writes_since(self, marks: dict[str, int]) -> dict[str, list[dict[str, object]]]:
        """Account -> its successful writes after `marks`."""
        out = {}
        for name, handle in self.handles.items():
            entries = [
                e for e in account_entries(handle, writes_only=True) if e.get("error_code") is None
            ]
            out[name] = entries[marks.get(name, 0) :]
        return out

    def writers_since(self, marks: dict[str, int]) -> dict[str, set[str]]:
        """Account -> the replicas whose successful writes came after `marks`."""
        return {n: {replica_of(e) for e in w} for n, w in self.writes_since(marks).items()}

    def gone(self, service: str) -> bool:
        try:
            self.sc.kube.get(self.sc.ns, service)
        except client.ApiException as err:
            return err.status == 404
        return False

    def marks(self) -> dict[str, int]:
        return {
            name: len([
                e for e in account_entries(handle, writes_only=True) if e.get("error_code") is None
            ])
            for name, handle in self.handles.items()
        }  # fmt: skip

    def throttled(self) -> list[str]:
        return [
            f"{name}: {e['action']}"
            for name, handle in self.handles.items()
            for e in account_entries(handle, writes_only=False)
            if e.get("throttled")
        ]


def test_sharded_replicas_split_accounts_fail_over_rebalance_and_shrink(
    scenario: Scenario,
) -> None:
    fleet = Fleet(scenario)
    fleet.accounts()
    for _ in range(3):
        fleet.start()
    assignment = fleet.wait_balanced("3 replicas to split 9 accounts as `assign` says")
    assert sorted(Counter(assignment.values()).values()) == [3, 3, 3], assignment

    # 1. Each account's writes come from the one replica holding it.
    fleet.services(replicas=2)
    scenario.finish(fleet.expected, timeout=CONVERGE_TIMEOUT)
    writers = fleet.writers_since({})
    assert writers == {name: {assignment[name]} for name in fleet.handles}, writers
    # (Services created in the cloud a moment before: ServiceNotFound until the next list.)
    # An Event repeated later is the same object with a higher count (events.py aggregates).
    settled = {e.metadata.uid: e.count or 1 for e in scenario.kube.events(scenario.ns)}

    # 2. SIGKILL a replica in the middle of a change: its accounts move and converge.
    victim = next(op for op in fleet.operators if identity(op) in assignment.values())
    victims = sorted(n for n, holder in assignment.items() if holder == identity(victim))
    before = fleet.marks()
    fleet.scale_all(3)
    wait_until(
        lambda: any(fleet.writers_since(before)[n] for n in victims),
        timeout=CONVERGE_TIMEOUT, what="the victim's first writes of the change",
    )  # fmt: skip
    scenario.stop_operator(victim, signal.SIGKILL)
    killed = time.monotonic()
    moved = fleet.wait_balanced("the killed replica's accounts to move")
    taken_over = time.monotonic() - killed
    scenario.finish(fleet.expected, timeout=CONVERGE_TIMEOUT)
    report_figure(
        "sharding failover",
        f"{len(victims)} accounts of a SIGKILLed replica held by the survivors "
        f"{taken_over:.1f} s after the kill; every service Converged "
        f"{time.monotonic() - killed:.1f} s after it",
    )
    assert identity(victim) not in moved.values()
    for name, replicas in fleet.writers_since(before).items():
        # The holder before the kill, then the one after (the victim's accounts, and the few
        # others that bounded loads move with them).
        assert replicas <= {assignment[name], moved[name]}, (name, replicas)

    # 3. Back to three replicas, then a 4th joins: the accounts rebalance, and writes follow
    # the new holders.
    fleet.start()
    fleet.wait_balanced("3 replicas again")
    fleet.start()
    rebalanced = fleet.wait_balanced("4 replicas to rebalance")
    assert sorted(Counter(rebalanced.values()).values()) == [2, 2, 2, 3], rebalanced
    before = fleet.marks()
    fleet.scale_all(4)
    scenario.finish(fleet.expected, timeout=CONVERGE_TIMEOUT)
    assert fleet.writers_since(before) == {n: {rebalanced[n]} for n in fleet.handles}

    # Deleting onDelete: Stop services: one STOP each, from the replica holding the account,
    # while the others wait rather than release the resource without it.
    deleted = {f"acct{i}": f"acct{i}-svc0" for i in range(len(PROVIDERS))}
    for service in deleted.values():
        scenario.edit(service, {"spec": {"policy": {"onDelete": "Stop"}}})
    before = fleet.marks()
    for service in deleted.values():
        scenario.kube.custom.delete_namespaced_custom_object(
            "cloudinfer.dev", "v1alpha1", scenario.ns, "inferenceservices", service
        )
        del fleet.expected[service]
    for service in deleted.values():
        wait_until(
            lambda s=service: fleet.gone(s), timeout=CONVERGE_TIMEOUT, what=f"{service} gone"
        )
    stops = fleet.writes_since(before)
    for account in deleted:
        assert [replica_of(w) for w in stops[account]] == [rebalanced[account]], stops[account]

    # 4. Down to one replica (the others leave cleanly): it holds every account.
    last = fleet.live()[-1]
    for operator in fleet.live()[:-1]:
        scenario.stop_operator(operator)
    alone = fleet.wait_balanced("the last replica to hold every account")
    assert set(alone.values()) == {identity(last)}
    before = fleet.marks()
    fleet.scale_all(1)
    scenario.finish(fleet.expected, timeout=CONVERGE_TIMEOUT)
    assert fleet.writers_since(before) == {n: {identity(last)} for n in fleet.handles}
    assert not fleet.throttled(), "a rate budget was overrun"
    assert f"cloudinfer_shard_accounts_held {ACCOUNTS}.0" in last.metrics()
    # After the first convergence, no handover showed a service its account or its cloud
    # service as missing or unobserved: the old holder stops before it could say so, the
    # new one waits for its first observation quietly.
    unsettled = [
        f"{e.involved_object.name}: {e.reason}"
        for e in scenario.kube.events(scenario.ns)
        if e.type == "Warning"
        and e.reason in HANDOVER_NOISE
        and (e.count or 1) > settled.get(e.metadata.uid, 0)
    ]
    assert unsettled == [], unsettled
