"""The scenario harness: a z-* namespace, its own operator processes and simulator accounts,
and every invariant of invariants.py checked at the end."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import GROUP, VERSION, CloudAccountHandle, Kube, OperatorProcess, new_sim_account
from invariants import (
    GenerationSampler,
    cloud_truth_violations,
    duplicate_write_violations,
    health_violations,
    leak_violations,
    spec_entry,
    spec_snapshot,
    spec_violations,
    wait_outcome,
    write_rate_violations,
)
from kubernetes import client

from cloudsim.server import RunningSim
from support import Cluster

FIGURES: list[str] = []
"""Measured figures (recovery times): printed at the end of the run, never asserted, because
a bound that a loaded 2-core machine misses is a timing lottery."""


def report_figure(scenario: str, text: str) -> None:
    FIGURES.append(f"{scenario}: {text}")
    print(f"{scenario}: {text}")


@dataclass
class LeakRegistry:
    """Every credential value seeded in the session and every operator log written."""

    secrets: set[str] = field(default_factory=set)
    logs: list[Path] = field(default_factory=list)


class Scenario:
    """One namespace, its operators and accounts, and the invariants to check at the end."""

    def __init__(
        self, kube: Kube, cluster: Cluster, sims: dict[str, RunningSim], *,
        registry: LeakRegistry, log_dir: Path, name: str,
    ) -> None:  # fmt: skip
        self.kube = kube
        self.cluster = cluster
        self.sims = sims
        self.registry = registry
        self.ns = f"z-{uuid.uuid4().hex[:10]}"
        self.log_dir = log_dir
        self.name = name
        self.operators: list[OperatorProcess] = []
        self.stopped: list[OperatorProcess] = []
        """Operators the scenario stopped on purpose; every other one must stay healthy."""
        self.handles: list[CloudAccountHandle] = []
        self.by_account: dict[str, CloudAccountHandle] = {}
        self.baseline: dict[str, tuple[int, str]] | None = None
        self.spec_changes: list[str] = []
        """Spec changes found before a user edit moved the baseline on."""
        self.sampler = GenerationSampler(kube, self.ns)
        kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.ns)))
        self.sampler.start()

    # -- set-up ------------------------------------------------------------------------------

    def account(self, provider: str, *, name: str = "acct", create: bool = True,
                sim: RunningSim | None = None, **kwargs: Any) -> CloudAccountHandle:  # fmt: skip
        """A fresh simulator account (unique canary secret) and, by default, its CloudAccount."""
        handle = new_sim_account(sim or self.sims[provider], provider)
        self.handles.append(handle)
        self.by_account[name] = handle
        self.registry.secrets.add(handle.secret)
        if create:
            self.kube.create_account(self.ns, handle, name=name, secret_name=f"{name}-creds",
                                     **kwargs)  # fmt: skip
        return handle

    def service(self, name: str, spec: Mapping[str, Any]) -> None:
        self.kube.create_service(self.ns, name, dict(spec))

    def operator(self, *extra: str, standalone: bool = True, start: bool = True) -> OperatorProcess:
        args = ("--standalone",) if standalone else ()
        log = self.log_dir / f"{self.name}-{len(self.operators)}.log"
        process = OperatorProcess(
            self.cluster.kubeconfig, log, args=(*args, "--namespace", self.ns, *extra)
        )
        self.operators.append(process)
        self.registry.logs.append(log)
        if start:
            process.start()
        if self.baseline is None:
            self.freeze_specs()
        return process

    def stop_operator(self, operator: OperatorProcess, sig: int = signal.SIGTERM) -> None:
        self.stopped.append(operator)
        operator.stop(sig)

    def freeze_specs(self) -> None:
        """The specs as the user left them: the operator must not change them from here on.
        What it changed up to now is kept for the final check."""
        current = spec_snapshot(self.kube, self.ns)
        if self.baseline is not None:
            self.spec_changes += spec_violations(self.baseline, current)
        self.baseline = current

    def edit(self, name: str, patch: Mapping[str, Any], plural: str = "inferenceservices") -> None:
        """A user's edit (a merge patch): specs are checked up to it; then the edited object,
        as the patch left it, joins the baseline (the others keep theirs)."""
        self.freeze_specs()
        edited = self.kube.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.ns, plural, name, dict(patch)
        )
        assert self.baseline is not None
        self.baseline[f"{plural}/{name}"] = spec_entry(edited)

    # -- evidence ----------------------------------------------------------------------------

    def captured_texts(self) -> dict[str, str]:
        texts = {}
        for op in self.operators:
            if op.log_path.exists():
                texts[str(op.log_path.name)] = op.log_path.read_text(errors="replace")
        events = self.kube.events(self.ns)
        texts["events"] = "\n".join(
            f"{e.reason} {e.message} {e.involved_object.name}" for e in events
        )
        for plural in ("inferenceservices", "cloudaccounts"):
            listed = self.kube.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, plural)
            texts[plural] = json.dumps(listed["items"])
        return texts

    def violations(
        self, expected: Mapping[str, str], *, timeout: float = 90
    ) -> dict[str, list[str]]:
        """Every invariant, by name; empty lists mean it holds."""
        found = {"outcome": wait_outcome(self.kube, self.ns, expected, timeout=timeout)}
        found["outcome"] += cloud_truth_violations(self.kube, self.ns, expected, self.by_account)
        self.sampler.stop()
        found["duplicate writes"] = [v for h in self.handles for v in duplicate_write_violations(h)]
        found["write rate"] = [v for h in self.handles for v in write_rate_violations(h)]
        found["spec untouched"] = self.spec_changes + spec_violations(
            self.baseline or {}, spec_snapshot(self.kube, self.ns)
        )
        found["observedGeneration monotonic"] = self.sampler.violations()
        # Keep sampling (same history) in case the scenario goes on and finishes again.
        self.sampler = GenerationSampler(self.kube, self.ns, samples=self.sampler.samples).start()
        found["operator healthy"] = [
            v for op in self.operators if op not in self.stopped for v in health_violations(op)
        ]
        found["no credential leak"] = leak_violations(
            [h.secret for h in self.handles], self.captured_texts()
        )
        return found

    def finish(self, expected: Mapping[str, str], *, timeout: float = 90) -> None:
        found = self.violations(expected, timeout=timeout)
        broken = {k: v for k, v in found.items() if v}
        if broken:
            tails = "\n".join(op.log_tail(40) for op in self.operators if op.log_path.exists())
            raise AssertionError(
                "invariants violated:\n"
                + "\n".join(f"- {k}: {v}" for k, v in broken.items())
                + f"\noperator log tail:\n{tails}"
            )

    # -- tear-down ---------------------------------------------------------------------------

    def close(self) -> None:
        self.sampler.stop()
        for op in self.operators:
            if op.process is not None:
                op.stop(signal.SIGKILL if op.process.poll() is None else signal.SIGTERM)
        # No operator runs any more: drop the finalizers so the namespace can go.
        for plural in ("inferenceservices", "cloudaccounts"):
            try:
                listed = self.kube.custom.list_namespaced_custom_object(
                    GROUP, VERSION, self.ns, plural
                )
            except client.ApiException:
                continue
            for item in listed["items"]:
                if item["metadata"].get("finalizers"):
                    self.kube.custom.patch_namespaced_custom_object(
                        GROUP, VERSION, self.ns, plural, item["metadata"]["name"],
                        {"metadata": {"finalizers": None}},
                    )  # fmt: skip
        self.kube.core.delete_namespace(self.ns)


def services(
    scenario: Scenario, handle: CloudAccountHandle, count: int, *, start: int = 1, want: int = 2,
    **spec: Any,
) -> dict[str, str]:  # fmt: skip
    """`count` cloud services at `start` replicas and their InferenceServices wanting `want`;
    returns the outcome each must reach."""
    expected = {}
    for i in range(count):
        service_id = handle.add_service(name=f"svc{i}", replicas=start)
        scenario.service(f"svc{i}", {"serviceId": service_id, "replicas": want, **spec})
        expected[f"svc{i}"] = "Converged"
    return expected


def wait_until(predicate: Callable[[], Any], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
