"""`make demo`: the operator converging services on the three simulated clouds.

Starts a real control plane, the TI-ONE, ModelArts and Qianfan simulators and the operator
(as a process, as users run it), applies examples/ (pointed at the simulators), and shows:
a live table converging, a console edit detected and corrected, and a tiered stop window
stopping and restarting a service. Then it prints a summary and cleans up.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from cloudsim.core import Settings as SimSettings
from cloudsim.server import RunningSim, make_sim, serve_in_thread
from controlplane import ControlPlane, find_bin_dir
from controlplane.launcher import free_port

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "demo"
# Transitions take a couple of seconds; the simulators' clocks run at real speed so that
# absolute stop times mean the same thing to the operator and the clouds.
SIM_SETTINGS = {"scale_seconds": 3.0, "start_seconds": 3.0, "stop_seconds": 2.0}
KEYS = {
    "tencent": ("AKIDdemo0000000000000000000000000000", "demoTencentSecretKey000000000000"),
    "huawei": ("DEMOHUAWEIAK00000000", "demoHuaweiSK0000000000000000000000000000"),
    "baidu": ("demobaiduak0000000000000", "demobaidusk00000000000000000000000"),
}
HUAWEI_PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
BAIDU_UNIT = "cu-7d2k4m9x"
# The cloud-side state the examples find: each example's service exists, differing from
# its spec, so the operator has work to do.
SEEDED = {
    "tencent": [("ms-kxqfprc5-1", 1), ("ms-officehr-1", 1), ("ms-legacy01-1", 2),
                ("ms-window01-1", 3), ("ms-tiered01-1", 4)],
    "huawei": [("7ca3e1f0-5b1c-4d3e-9f00-1a2b3c4d5e6f", 1)],
    "baidu": [("svco-8kf3m2x1ab", 1)],
}  # fmt: skip


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


class Demo:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.bin_dir = find_bin_dir()
        self.plane = ControlPlane(bin_dir=self.bin_dir, work_dir=work / "cluster")
        self.sims: dict[str, RunningSim] = {}
        self.operator: subprocess.Popen[bytes] | None = None
        self.operator_log = work / "operator.log"
        self.metrics_port = free_port()

    # -- plumbing ---------------------------------------------------------------------------

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.plane.kubeconfig}", *args],
            input=stdin, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def services(self) -> list[dict[str, Any]]:
        out = self.kubectl("get", "inferenceservices.cloudinfer.dev", "-n", NAMESPACE, "-o", "json")
        return list(json.loads(out)["items"])

    def table(self) -> str:
        """`kubectl get cis -o wide` without the AGE column (it changes every second)."""
        lines = self.kubectl("get", "cis", "-n", NAMESPACE, "-o", "wide").splitlines()
        cut = lines[0].index("AGE") if lines and "AGE" in lines[0] else None
        return "\n".join(line[:cut].rstrip() for line in lines) + "\n"

    def ready(self, name: str) -> tuple[str, str]:
        for item in self.services():
            if item["metadata"]["name"] == name:
                for cond in (item.get("status") or {}).get("conditions", []):
                    if cond["type"] == "Ready":
                        return cond["status"], cond["reason"]
        return "", ""

    def watch(self, done: Any, timeout: float, what: str) -> None:  # noqa: ANN401
        """Print the table whenever it changes, until `done()` or the timeout."""
        last = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.table()
            if current != last:
                stamp = datetime.datetime.now().strftime("%H:%M:%S")
                print(f"--- {stamp}\n{current.rstrip()}", flush=True)
                last = current
            if done():
                return
            time.sleep(1)
        raise SystemExit(f"demo: timed out waiting for {what}; operator log: {self.operator_log}")

    # -- steps -----------------------------------------------------------------------------

    def start(self) -> None:
        say("Starting etcd, kube-apiserver and kube-controller-manager on loopback")
        started = time.monotonic()
        self.plane.start()
        print(
            f"control plane ready in {time.monotonic() - started:.1f}s at {self.plane.server_url}"
        )
        self.kubectl("apply", "-f", str(ROOT / "crds"))
        self.kubectl("wait", "--for=condition=Established", "-f", str(ROOT / "crds"))

        say("Starting the TI-ONE, ModelArts and Qianfan simulators")
        for cloud in ("tencent", "huawei", "baidu"):
            sim = make_sim(cloud, seed=1, settings=SimSettings(**SIM_SETTINGS))
            self.sims[cloud] = serve_in_thread(sim)
            print(f"{cloud:8} {self.sims[cloud].base_url}")
        key, secret = KEYS["tencent"]
        self.sims["tencent"].control.add_account(
            name="demo", secret_id=key, secret_key=secret, regions=["ap-guangzhou"]
        )
        key, secret = KEYS["huawei"]
        self.sims["huawei"].control.add_account(
            name="demo", ak=key, sk=secret, projects=[HUAWEI_PROJECT]
        )
        key, secret = KEYS["baidu"]
        self.sims["baidu"].control.add_account(
            name="demo", ak=key, sk=secret, regions=["bj"],
            compute_units={BAIDU_UNIT: {"type": "GPU-I-2", "total_units": 64}},
        )  # fmt: skip
        for cloud, services in SEEDED.items():
            for service_id, replicas in services:
                spec: dict[str, Any] = {"account": "demo", "service_id": service_id,
                                        "name": service_id[:12]}  # fmt: skip
                if cloud == "baidu":
                    spec["units"] = {BAIDU_UNIT: replicas}
                else:
                    spec["replicas"] = replicas
                if cloud == "huawei":
                    spec["project_id"] = HUAWEI_PROJECT
                self.sims[cloud].control.add_service(**spec)

        say(
            "Starting the operator: cloudinfer-operator --standalone "
            "--allowed-endpoint-host 127.0.0.1"
        )
        health = free_port()
        env = {**os.environ, "KUBECONFIG": str(self.plane.kubeconfig)}
        with self.operator_log.open("wb") as log:
            self.operator = subprocess.Popen(
                [sys.executable, "-m", "cloudinfer", "--standalone", "--log-format", "text",
                 "--health-port", str(health), "--metrics-port", str(self.metrics_port),
                 "--namespace", NAMESPACE,
                 # The simulators listen on loopback, outside the default allow-list.
                 "--allowed-endpoint-host", "127.0.0.1"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        print(f"operator healthy; log: {self.operator_log}")

    def apply_examples(self) -> None:
        say(
            f"Applying examples/ into namespace {NAMESPACE} "
            "(CloudAccounts pointed at the simulators)"
        )
        self.kubectl("create", "namespace", NAMESPACE)
        for cloud, (key, secret) in KEYS.items():
            name = {"tencent": "tencent-creds", "huawei": "huawei-creds", "baidu": "baidu-creds"}[
                cloud
            ]
            keys = ("ak", "sk") if cloud == "baidu" else ("accessKeyId", "secretAccessKey")
            manifest = {
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                "data": {keys[0]: base64.b64encode(key.encode()).decode(),
                         keys[1]: base64.b64encode(secret.encode()).decode()},
            }  # fmt: skip
            self.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(manifest))
        docs = []
        for path in sorted((ROOT / "examples").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc["kind"] == "CloudAccount":
                    provider = doc["spec"]["provider"]
                    doc["spec"]["endpoint"] = self.sims[provider].base_url
                    doc["spec"]["pollIntervalSeconds"] = 5
                    doc["spec"]["activePollIntervalSeconds"] = 1
                if doc:
                    docs.append(doc)
        self.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=yaml.safe_dump_all(docs))
        print(self.kubectl("get", "cloudaccounts.cloudinfer.dev", "-n", NAMESPACE).rstrip())

    def converge(self) -> None:
        say("Watching the services converge (kubectl get cis -n demo)")
        expected = {
            "chat-tione", "vision-modelarts", "ernie-qianfan", "office-hours", "evening-tier",
        }  # fmt: skip
        done = ("Converged", "ScheduledStop", "ScaledBySchedule")

        def settled() -> bool:
            states = {i["metadata"]["name"]: i for i in self.services()}
            ok = all(self.ready(n)[1] in done for n in expected)
            observe_only = self.ready("adopt-legacy")[1] == "ObserveOnly"
            return ok and observe_only and len(states) == len(expected) + 1

        self.watch(settled, 90, "convergence")
        legacy = next(i for i in self.services() if i["metadata"]["name"] == "adopt-legacy")
        drifted = next(c for c in legacy["status"]["conditions"] if c["type"] == "Drifted")
        print(f"\nadopt-legacy is ObserveOnly; it reports without writing:\n  {drifted['message']}")

    def drift(self) -> None:
        say("A console user scales chat-tione to 5 replicas behind the operator's back")
        self.sims["tencent"].control.edit_service("ms-kxqfprc5-1", replicas=5, ready=5)
        seen_drift = False

        def corrected() -> bool:
            nonlocal seen_drift
            item = next(i for i in self.services() if i["metadata"]["name"] == "chat-tione")
            observed = item["status"].get("observed", {}).get("replicas")
            seen_drift = seen_drift or observed == 5 or self.ready("chat-tione")[1] != "Converged"
            return seen_drift and observed == 3 and self.ready("chat-tione")[1] == "Converged"

        self.watch(corrected, 60, "the drift to be corrected")
        item = next(i for i in self.services() if i["metadata"]["name"] == "chat-tione")
        last = item["status"]["journal"][-1]
        print(
            f"\ncorrected by {last['action']} ({last['change']}), request {last.get('requestId')}"
        )

    def window(self) -> None:
        """A tiered window: one that opened five minutes ago runs the service at 1 replica
        (of 3) until the next minute boundary, where a stop window takes over for a minute
        (the lowest count wins); then it starts again at 3."""
        now = datetime.datetime.now(datetime.UTC)
        edge = now.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
        if (edge - now).total_seconds() < 15:
            edge += datetime.timedelta(minutes=1)
        opened, end = now - datetime.timedelta(minutes=5), edge + datetime.timedelta(minutes=1)

        def cron(at: datetime.datetime) -> str:
            return f"{at.minute} {at.hour} * * *"

        windows = [
            {"stop": cron(opened), "start": cron(edge), "replicas": 1},
            {"stop": cron(edge), "start": cron(end)},
        ]
        say(
            f"Tiered windows on nightly (replicas: 3), UTC: 1 replica from '{cron(opened)}' to "
            f"'{cron(edge)}', stopped from '{cron(edge)}' to '{cron(end)}'. The operator "
            "evaluates windows on its own clock, so this waits for the next minute boundary."
        )
        manifest = {
            "apiVersion": "cloudinfer.dev/v1alpha1", "kind": "InferenceService",
            "metadata": {"name": "nightly"},
            "spec": {"accountRef": {"name": "tencent"}, "serviceId": "ms-window01-1",
                     "replicas": 3,
                     "stopSchedule": {"timeZone": "UTC", "windows": windows}},
        }  # fmt: skip
        self.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(manifest))
        self.watch(lambda: self.ready("nightly")[1] == "ScaledBySchedule", 60, "the tier")
        status = next(i for i in self.services() if i["metadata"]["name"] == "nightly")["status"]
        print("\nnightly: status.nextTransitions")
        for step in status.get("nextTransitions", []):
            print(f"  {step['at']}  {step['action']:5}  -> {step.get('replicas')} replicas")
        self.watch(lambda: self.ready("nightly")[1] == "ScheduledStop", 100, "the stop window")
        self.watch(lambda: self.ready("nightly")[1] == "Converged", 100, "the windows to close")

    def plugin_status(self) -> None:
        """The kubectl plugin, found by kubectl as kubectl-cloudinfer on PATH (here a launcher
        of this Python's package, as the krew archive has). The operator runs outside the
        cluster, so its metrics are named by URL."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        say(f"kubectl cloudinfer status -n {NAMESPACE} --metrics-url {url}")
        bin_dir = self.work / "bin"
        bin_dir.mkdir(exist_ok=True)
        launcher = bin_dir / "kubectl-cloudinfer"
        launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cloudinfer.kubectl "$@"\n')
        launcher.chmod(0o755)
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        result = subprocess.run(
            # kubectl refuses flags before a plugin's name: they all follow it.
            [str(self.bin_dir / "kubectl"), "cloudinfer", "status", "-n", NAMESPACE,
             f"--kubeconfig={self.plane.kubeconfig}", "--metrics-url", url],
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )  # fmt: skip
        print(result.stdout.rstrip())
        if result.returncode != 0:
            raise SystemExit(f"kubectl cloudinfer status failed: {result.stderr.strip()}")

    def summary(self) -> None:
        say("Summary")
        for cloud, sim in self.sims.items():
            journal = sim.control.journal(entries=False)
            calls = ", ".join(f"{a} {v['calls']}" for a, v in sorted(journal.items()))
            throttled = sum(v["throttled"] for v in journal.values())
            print(f"{cloud:8} calls: {calls}; throttled: {throttled}")
        events = self.kubectl(
            "get", "events", "-n", NAMESPACE, "--field-selector", "reason=CloudWrite", "-o", "json"
        )
        print(f"CloudWrite events: {len(json.loads(events)['items'])}")
        print(self.table().rstrip())

    def stop(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            self.operator.terminate()
            try:
                self.operator.wait(20)
            except subprocess.TimeoutExpired:
                self.operator.kill()
        for sim in self.sims.values():
            sim.stop()
        self.plane.stop()


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cloudinfer-demo-") as tmp:
        demo = Demo(Path(tmp))
        try:
            demo.start()
            demo.apply_examples()
            demo.converge()
            demo.drift()
            demo.window()
            demo.plugin_status()
            demo.summary()
        except BaseException:
            print(
                f"\n--- operator log (last lines) ---\n{_tail(demo.operator_log)}", file=sys.stderr
            )
            raise
        finally:
            say("Cleaning up: operator, simulators and control plane stopped")
            demo.stop()
    print(f"demo finished in {time.monotonic() - started:.0f}s")
    return 0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


if __name__ == "__main__":
    sys.exit(main())
