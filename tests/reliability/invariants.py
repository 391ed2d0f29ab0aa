"""Invariants every reliability scenario checks, written so each can be reused and break-tested.

Each check returns a list of violations (empty: the invariant holds) so that the break-checks
in docs/reliability.md can show what a broken operator produces; `assert_holds` turns them into
one readable assertion.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness import GROUP, VERSION, CloudAccountHandle, Kube, OperatorProcess
from kubernetes.client.rest import ApiException

PLURALS = ("inferenceservices", "cloudaccounts")


def assert_holds(violations: list[str], what: str) -> None:
    assert not violations, f"invariant violated: {what}:\n  " + "\n  ".join(violations)


# -- 1. every service converges or shows the correct non-Ready reason ------------------------


def ready_condition(obj: Mapping[str, Any]) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return {}


def outcome_violations(kube: Kube, namespace: str, expected: Mapping[str, str]) -> list[str]:
    """`expected` maps a service name to "Converged" or the non-Ready reason it must show."""
    problems = []
    for name, reason in expected.items():
        try:
            obj = kube.get(namespace, name)
        except ApiException as err:
            problems.append(f"{name}: cannot read it ({err.status})")
            continue
        cond = ready_condition(obj)
        want_status = "True" if reason == "Converged" else "False"
        if cond.get("status") != want_status or cond.get("reason") != reason:
            problems.append(
                f"{name}: Ready={cond.get('status')} {cond.get('reason')} "
                f"({cond.get('message')!r}), expected {want_status} {reason}"
            )
        elif cond.get("observedGeneration") not in (None, obj["metadata"]["generation"]):
            problems.append(f"{name}: Ready describes an old generation: {cond}")
    return problems


RUNNING = {"Normal", "running", "Serving"}
"""The simulators' running statuses (TI-ONE, ModelArts, Qianfan)."""


def cloud_truth_violations(
    kube: Kube, namespace: str, expected: Mapping[str, str],
    handles: Mapping[str, CloudAccountHandle],
) -> list[str]:  # fmt: skip
    """ "Converged" must be true in the cloud, not only in the operator's own condition: the
    simulator's service runs with the spec's replica count."""
    problems = []
    for name, reason in expected.items():
        if reason != "Converged":
            continue
        spec = kube.get(namespace, name)["spec"]
        handle = handles.get(spec["accountRef"]["name"])
        if handle is None:
            continue
        internal = handle.sim.control.service(spec["serviceId"])["internal"]
        if internal["status"] not in RUNNING:
            problems.append(f"{name}: Converged, but the cloud says {internal['status']}")
        if "replicas" in spec and internal["replicas"] != spec["replicas"]:
            problems.append(
                f"{name}: Converged, but the cloud runs {internal['replicas']} replicas, "
                f"the spec wants {spec['replicas']}"
            )
    return problems


def wait_outcome(
    kube: Kube, namespace: str, expected: Mapping[str, str], timeout: float = 90
) -> list[str]:
    """Poll until every service shows its expected outcome; the last violations otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        problems = outcome_violations(kube, namespace, expected)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.5)


# -- 2. no non-idempotent cloud write is duplicated ---------------------------------------------


def write_key(entry: Mapping[str, Any]) -> str:
    """What a write asks for: the action, its path parameters (ModelArts names the service in
    the URL) and its body or query parameters (which name the service on TI-ONE and Qianfan)."""
    path = entry.get("path_params") or {}
    where = f" {json.dumps(path, sort_keys=True)}" if path else ""
    return f"{entry['action']}{where} {json.dumps(entry.get('params'), sort_keys=True)}"


def account_entries(handle: CloudAccountHandle, *, writes_only: bool) -> list[dict[str, Any]]:
    journal = handle.sim.control.journal()
    out = []
    for log in journal.values():
        source = log.get("writes", []) if writes_only else log.get("entries", [])
        out += [e for e in source if e.get("account") == handle.name]
    return sorted(out, key=lambda e: float(e["time"]))


def duplicate_write_violations(handle: CloudAccountHandle) -> list[str]:
    """Successful writes asking for the same thing twice (e.g. two SCALEs to the same count)."""
    ok = [e for e in account_entries(handle, writes_only=True) if e.get("error_code") is None]
    counts = Counter(write_key(e) for e in ok)
    return [f"{count}x {key}" for key, count in counts.items() if count > 1]


# -- 3. per-account write rate never exceeds the cloud's limit ----------------------------------


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most timestamps that fall in any half-open interval [t, t + window)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, stamp in enumerate(ordered):
        while stamp - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def write_rate_violations(handle: CloudAccountHandle) -> list[str]:
    """Every write attempt (throttled and failed ones included) of one account, per action,
    against the cloud's per-second limit, in any one-second window of the simulator's clock."""
    limits = handle.sim.control.rate_limits()
    by_action: dict[str, list[float]] = defaultdict(list)
    for entry in account_entries(handle, writes_only=True):
        by_action[entry["action"]].append(float(entry["time"]))
    problems = []
    for action, times in by_action.items():
        limit = limits.get(action, 0)
        peak = max_in_window(times)
        if limit > 0 and peak > limit:
            problems.append(f"{action}: {peak} calls in one second, the cloud allows {limit:g}")
    return problems


# -- 4. no spec is modified by the operator ----------------------------------------------------


def spec_entry(item: Mapping[str, Any]) -> tuple[int, str]:
    """An object's (generation, spec), as spec_violations compares them."""
    return int(item["metadata"].get("generation", 0)), json.dumps(item.get("spec"), sort_keys=True)


def spec_snapshot(kube: Kube, namespace: str) -> dict[str, tuple[int, str]]:
    """(generation, spec) of every CR in the namespace, keyed by kind/name."""
    out = {}
    for plural in PLURALS:
        listed = kube.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
        for item in listed["items"]:
            out[f"{plural}/{item['metadata']['name']}"] = spec_entry(item)
    return out


def spec_violations(
    before: Mapping[str, tuple[int, str]], after: Mapping[str, tuple[int, str]]
) -> list[str]:
    problems = []
    for key, (generation, spec) in before.items():
        if key not in after:
            continue  # deleted by the scenario itself
        new_generation, new_spec = after[key]
        if (new_generation, new_spec) != (generation, spec):
            problems.append(
                f"{key}: generation {generation} -> {new_generation}, spec {spec} -> {new_spec}"
            )
    return problems


# -- 5. observedGeneration never goes backwards ----------------------------------------------


@dataclass
class GenerationSampler:
    """Samples status.observedGeneration of every CR in a namespace from a thread."""

    kube: Kube
    namespace: str
    interval: float = 0.25
    samples: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    errors: int = 0

    def sample_once(self) -> None:
        for plural in PLURALS:
            try:
                listed = self.kube.custom.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, plural
                )
            except Exception:
                self.errors += 1
                continue
            for item in listed["items"]:
                observed = (item.get("status") or {}).get("observedGeneration")
                if observed is not None:
                    key = f"{plural}/{item['metadata']['name']}/{item['metadata']['uid']}"
                    self.samples[key].append(int(observed))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_once()

    def start(self) -> GenerationSampler:
        self._thread = threading.Thread(target=self._run, daemon=True, name="gen-sampler")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sample_once()

    def violations(self) -> list[str]:
        return regressions(self.samples)


def regressions(samples: Mapping[str, list[int]]) -> list[str]:
    problems = []
    for key, values in samples.items():
        for earlier, later in itertools.pairwise(values):
            if later < earlier:
                problems.append(f"{key}: observedGeneration went {earlier} -> {later}")
                break
    return problems


# -- 6. the operator process is still healthy ----------------------------------------------------


def health_violations(operator: OperatorProcess) -> list[str]:
    assert operator.process is not None
    if operator.process.poll() is not None:
        return [f"the operator exited with {operator.process.returncode}"]
    for _ in range(10):
        try:
            if operator.healthy():
                return []
        except AssertionError as err:
            return [str(err)]
        time.sleep(0.5)
    return ["the operator's /healthz did not answer 200"]


# -- security: no credential value appears anywhere we can see ----------------------------------


def leak_violations(secrets: Iterable[str], texts: Mapping[str, str]) -> list[str]:
    """Every secret value (and its distinctive middle, in case of truncation) against every
    captured text."""
    problems = []
    for secret in secrets:
        needles = {secret}
        if len(secret) >= 32:
            needles.add(secret[-16:])  # the random tail: a truncated copy still shows
        for where, text in texts.items():
            for needle in needles:
                if needle in text:
                    problems.append(f"{needle[:6]}... appears in {where}")
    return problems
