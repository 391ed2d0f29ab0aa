"""`kubectl cloudinfer` against the real apiserver, with the session operator and simulators.

The text outputs are compared with golden files (tests/operator/golden/kubectl/) after the
volatile parts are masked: namespace, service IDs, times, ages, request IDs, and the per-cloud
counters other tests move. `UPDATE_GOLDEN=1` rewrites them; review the diff.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml
from harness import Kube, OperatorProcess, new_sim_account, writes

from cloudinfer.api.conditions import PAUSED_ANNOTATION, WAKE_UNTIL_ANNOTATION
from cloudsim.server import RunningSim
from controlplane.launcher import free_port
from support import Cluster

pytestmark = pytest.mark.usefixtures("operator_process")

GOLDEN = Path(__file__).parent / "golden" / "kubectl"
OPERATOR_DIR = Path(__file__).resolve().parents[2] / "operator"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def plugin(cluster: Cluster, *args: str, kubeconfig: Path | None = None) -> Result:
    """`python -m cloudinfer.kubectl ARGS`, as the console script runs it."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig or cluster.kubeconfig)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(OPERATOR_DIR), env.get("PYTHONPATH")]))
    env.pop("NO_COLOR", None)
    done = subprocess.run(
        [sys.executable, "-m", "cloudinfer.kubectl", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


@dataclass
class Fleet:
    namespace: str
    ids: dict[str, str]
    metrics_url: str
    handle_name: str

    def mask(self, text: str) -> str:
        text = text.replace(self.namespace, "<ns>")
        for name, service_id in self.ids.items():
            text = text.replace(service_id, f"<id:{name}>")
        text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", "<time>", text)
        text = re.sub(r"\b\d+[smhd]( ago)?\b", "<age>", text)
        text = re.sub(
            r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>", text
        )
        text = re.sub(r"^(tencent|huawei|baidu)\s+\d+\s+\d+$", r"\1 <n> <n>", text, flags=re.M)
        text = re.sub(r"\d+(\.\d+)?/s \(\d+%\)", "<use>", text)
        # Masked values change column widths: compare words, not alignment.
        return "\n".join(" ".join(line.split()) for line in text.splitlines()).strip() + "\n"


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"{name} differs from its golden file:\n{text}"


@pytest.fixture
def fleet(
    kube: Kube, sims: dict[str, RunningSim], namespace: str, operator_process: OperatorProcess
) -> Fleet:
    """A TI-ONE account with three services: chat (scaled 1 -> 2, Converged), watcher
    (ObserveOnly, 1 on the cloud, 3 in the spec) and ghost (no such cloud service)."""
    handle = new_sim_account(sims["tencent"], "tencent")
    ids = {
        "chat": handle.add_service(name="chat", replicas=1),
        "watcher": handle.add_service(name="watcher", replicas=1),
        "ghost": "ms-nosuchsvc-1",
    }
    kube.create_account(namespace, handle)
    kube.create_service(namespace, "chat", {"serviceId": ids["chat"], "replicas": 2})
    kube.create_service(
        namespace, "watcher",
        {"serviceId": ids["watcher"], "replicas": 3, "policy": {"mode": "ObserveOnly"}},
    )  # fmt: skip
    kube.create_service(namespace, "ghost", {"serviceId": ids["ghost"], "replicas": 1})
    kube.wait_condition(namespace, "chat", reason="Converged", timeout=90)
    kube.wait_condition(namespace, "watcher", status="False", reason="ObserveOnly", timeout=60)
    kube.wait_condition(namespace, "ghost", status="False", reason="ServiceNotFound", timeout=60)
    assert len(writes(handle, "ModifyModelService")) == 1
    url = f"http://127.0.0.1:{operator_process.metrics_port}/metrics"
    return Fleet(namespace, ids, url, handle.name)


def test_status_get_plan_why_match_their_golden_outputs(cluster: Cluster, fleet: Fleet) -> None:
    ns, metrics = fleet.namespace, ["--metrics-url", fleet.metrics_url]
    outputs = {
        "status": plugin(cluster, "status", "-n", ns, *metrics),
        "get": plugin(cluster, "get", "chat", "-n", ns, *metrics),
        "plan-all": plugin(cluster, "plan", "-n", ns, *metrics),
        "plan-observe-only": plugin(cluster, "plan", "watcher", "-n", ns, *metrics),
        "plan-converged": plugin(cluster, "plan", "chat", "-n", ns, *metrics),
        "why": plugin(cluster, "why", "ghost", "-n", ns, *metrics),
    }
    for name, result in outputs.items():
        assert result.code == 0, (name, result.err)
        assert result.err == "", (name, result.err)
        assert "\033[" not in result.out, "colour in a pipe"
        assert_golden(name, fleet.mask(result.out))


def test_json_and_yaml_carry_the_same_facts(cluster: Cluster, fleet: Fleet) -> None:
    ns, metrics = fleet.namespace, ["--metrics-url", fleet.metrics_url]
    status = json.loads(plugin(cluster, "status", "-n", ns, *metrics, "-o", "json").out)
    (account,) = status["accounts"]
    assert (account["provider"], account["region"], account["services"]) == (
        "tencent", "ap-guangzhou", 3,
    )  # fmt: skip
    assert account["ready"]["reason"] == "CredentialsVerified"
    # The operator lists the account every few seconds: the observation is recent.
    assert 0 <= account["lastObservationAgeSeconds"] < 120
    budgets = {b["action"]: b for b in account["rateBudgets"]}
    assert budgets, "no rate budgets from the metrics"
    for budget in budgets.values():
        assert 0 < budget["allowedPerSecond"] <= budget["limitPerSecond"]
        assert budget["usedPerSecond"] is not None and budget["usedPerSecond"] >= 0
    assert {s["name"]: s["reason"] for s in status["notReady"]} == {
        "watcher": "ObserveOnly", "ghost": "ServiceNotFound",
    }  # fmt: skip
    assert status["operator"]["running"] is True

    plan = yaml.safe_load(plugin(cluster, "plan", "watcher", "-n", ns, *metrics, "-o", "yaml").out)
    (item,) = plan["services"]
    assert item["sends"] == []
    assert [(c["kind"], c["replicas"]) for c in item["wouldSend"]] == [("scale", 3)]
    assert item["verdict"]["reason"] == "ObserveOnly"

    got = json.loads(plugin(cluster, "get", "chat", "-n", ns, *metrics, "-o", "json").out)
    (entry,) = got["journal"]
    assert (entry["kind"], entry["target"], entry["result"]) == (
        "scale",
        {"replicas": 2},
        "Succeeded",
    )
    assert entry["requestId"]


def test_colour_only_when_asked_or_on_a_terminal(cluster: Cluster, fleet: Fleet) -> None:
    ns, metrics = fleet.namespace, ["--metrics-url", fleet.metrics_url]
    coloured = plugin(cluster, "get", "chat", "-n", ns, *metrics, "--color", "always")
    assert "\033[32mTrue\033[0m" in coloured.out
    assert "\033[" not in plugin(cluster, "get", "chat", "-n", ns, *metrics).out


def test_pause_resume_and_wake_set_exactly_their_annotations(
    cluster: Cluster, kube: Kube, fleet: Fleet
) -> None:
    ns, metrics = fleet.namespace, ["--metrics-url", fleet.metrics_url]

    def annotations() -> dict[str, str]:
        return kube.get(ns, "chat")["metadata"].get("annotations") or {}

    dry = plugin(cluster, "pause", "chat", "-n", ns, *metrics, "--dry-run")
    assert dry.code == 0 and "dry run: nothing changed" in dry.out
    assert PAUSED_ANNOTATION not in annotations()

    paused = plugin(cluster, "pause", "chat", "-n", ns, *metrics)
    assert paused.code == 0, paused.err
    assert paused.out.splitlines() == [
        f"InferenceService {ns}/chat: setting {PAUSED_ANNOTATION}=true: the operator makes no "
        "cloud write for it (it still observes; Ready says Paused and what it would send)",
        "done",
    ]
    assert annotations()[PAUSED_ANNOTATION] == "true"
    kube.wait_condition(ns, "chat", status="False", reason="Paused")
    again = plugin(cluster, "pause", "chat", "-n", ns, *metrics)
    assert "already paused; nothing to change" in again.out

    resumed = plugin(cluster, "resume", "chat", "-n", ns, *metrics)
    assert resumed.code == 0, resumed.err
    assert "removing cloudinfer.dev/paused" in resumed.out
    assert "it has nothing to send now" in resumed.out
    assert PAUSED_ANNOTATION not in annotations()
    kube.wait_condition(ns, "chat", reason="Converged")

    before = datetime.datetime.now(datetime.UTC)
    woken = plugin(cluster, "wake", "chat", "-n", ns, *metrics, "--for", "2h", "-o", "json")
    assert woken.code == 0, woken.err
    change = json.loads(woken.out)
    assert change["changed"] is True and change["annotation"] == WAKE_UNTIL_ANNOTATION
    until = datetime.datetime.fromisoformat(annotations()[WAKE_UNTIL_ANNOTATION])
    assert change["to"] == annotations()[WAKE_UNTIL_ANNOTATION]
    assert datetime.timedelta(hours=2) - datetime.timedelta(seconds=1) <= until - before
    assert until - before <= datetime.timedelta(hours=2, minutes=5)
    assert "it has no stop windows, so nothing changes now" in change["effect"]

    exact = plugin(cluster, "wake", "chat", "-n", ns, "--until", "2031-05-06T07:08:09+08:00")
    assert exact.code == 0, exact.err
    assert annotations()[WAKE_UNTIL_ANNOTATION] == "2031-05-05T23:08:09Z"

    cleared = plugin(cluster, "wake", "chat", "-n", ns, *metrics, "--clear")
    assert cleared.code == 0 and "removing cloudinfer.dev/wake-until" in cleared.out
    assert WAKE_UNTIL_ANNOTATION not in annotations()

    past = plugin(cluster, "wake", "chat", "-n", ns, "--until", "2001-01-01T00:00:00Z")
    assert past.code == 2 and past.err.count("\n") == 1 and "in the past" in past.err


def test_errors_are_one_line_with_their_exit_code(cluster: Cluster, fleet: Fleet) -> None:
    ns, metrics = fleet.namespace, ["--metrics-url", fleet.metrics_url]
    missing = plugin(cluster, "get", "nope", "-n", ns, *metrics)
    assert missing.code == 3
    assert missing.err == (
        f'error: InferenceService "nope" not found in namespace "{ns}"; `kubectl cloudinfer '
        f"status -n {ns}` lists what is there\n"
    )
    assert plugin(cluster, "why", "nope", "-n", ns).code == 3
    assert plugin(cluster, "pause", "nope", "-n", ns).code == 3

    dead = f"http://127.0.0.1:{free_port()}/metrics"
    alone = plugin(cluster, "status", "-n", ns, "--metrics-url", dead, "--sample-seconds", "0")
    assert alone.code == 7
    assert "SERVICES" in alone.out, "the rest is still printed"
    assert alone.err.count("\n") == 1 and alone.err.startswith("error: no operator is running")


def _kubeconfig_for(cluster: Cluster, server: str, path: Path) -> Path:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = server
        entry["cluster"].pop("certificate-authority-data", None)
        entry["cluster"]["insecure-skip-tls-verify"] = True
    path.write_text(yaml.safe_dump(config))
    return path


def test_an_unreachable_apiserver_is_one_line(cluster: Cluster, tmp_path: Path) -> None:
    kubeconfig = _kubeconfig_for(cluster, f"https://127.0.0.1:{free_port()}", tmp_path / "kc")
    result = plugin(cluster, "status", kubeconfig=kubeconfig)
    assert result.code == 5
    assert result.err.count("\n") == 1
    assert "cannot reach the apiserver at https://127.0.0.1:" in result.err
    assert "connection refused" in result.err
    bad_context = plugin(cluster, "status", "--context", "nope")
    assert bad_context.code == 5 and "context 'nope' is not in the kubeconfig" in bad_context.err


class _NoCloudinferGroup(BaseHTTPRequestHandler):
    """Answers as an apiserver without the cloudinfer.dev CRDs answers: 404 for the group."""

    def do_GET(self) -> None:
        body = json.dumps({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "the server could not find the requested resource",
            "reason": "NotFound", "details": {}, "code": 404,
        }).encode()  # fmt: skip
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def apiserver_without_crds() -> Iterator[str]:
    """A loopback stand-in for an apiserver that has no cloudinfer.dev group. Installing and
    removing the CRDs on the shared control plane would break the session's other tests."""
    server = HTTPServer(("127.0.0.1", 0), _NoCloudinferGroup)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_missing_crds_are_one_line(
    cluster: Cluster, tmp_path: Path, apiserver_without_crds: str
) -> None:
    kubeconfig = _kubeconfig_for(cluster, apiserver_without_crds, tmp_path / "kc")
    result = plugin(cluster, "get", "chat", "-n", "default", kubeconfig=kubeconfig)
    assert result.code == 4, result.err
    assert result.err.count("\n") == 1
    assert "the cloudinfer.dev CRDs are not installed in this cluster" in result.err


def test_kubectl_finds_the_plugin_on_path(cluster: Cluster, fleet: Fleet, tmp_path: Path) -> None:
    """kubectl's own plugin discovery: an executable kubectl-cloudinfer on PATH."""
    launcher = tmp_path / "kubectl-cloudinfer"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cloudinfer.kubectl "$@"\n')
    launcher.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(OPERATOR_DIR), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [str(cluster.bin_dir / "kubectl"), "cloudinfer", "why", "ghost", "-n", fleet.namespace,
         f"--kubeconfig={cluster.kubeconfig}", "--metrics-url", fleet.metrics_url],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{fleet.namespace}/ghost Ready=False ServiceNotFound" in done.stdout
