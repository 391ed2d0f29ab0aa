"""The benchmark's world: a real control plane, the TI-ONE simulator and the operator process.

The approach follows hack/demo.py: everything on loopback, the operator run as users run it
(`python -m cloudinfer --standalone`), the simulator as its own process (so its CPU and GIL
are not shared with the benchmark's own threads), and its virtual clock at real speed so
journal times and the benchmark's wall clock can be compared.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from cloudsim.control import SimControl
from controlplane import ControlPlane, find_bin_dir
from controlplane.launcher import free_port

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "cloudinfer.dev", "v1alpha1"
SERVICES, ACCOUNTS = "inferenceservices", "cloudaccounts"
REGION = "ap-guangzhou"
# Short transitions, as in the operator tests: a SCALE takes 2 s on the simulator.
SIM_SETTINGS = {"scale_seconds": 2.0, "start_seconds": 2.0, "stop_seconds": 1.0}
# The smallest intervals the CloudAccount CRD allows.
POLL_SECONDS = 5
ACTIVE_POLL_SECONDS = 1


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class SimProcess:
    """`python -m cloudsim serve --cloud CLOUD` in its own process, speed 1."""

    def __init__(self, log_path: Path, cloud: str = "tencent") -> None:
        self.cloud = cloud
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._log = log_path.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cloudsim", "serve", "--cloud", cloud, "--port",
             str(self.port), "--speed", "1", "--seed", "9", "--no-demo"],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        self.control = SimControl(self.base_url, timeout=60)

        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"the simulator exited; see {log_path}")
            try:
                self.control.health()
            except httpx.HTTPError:
                return False
            return True

        wait_for(up, 30, "the simulator")
        self.control.update_settings(**SIM_SETTINGS)

    def clock_offset(self) -> float:
        """Simulator virtual time minus this process's wall clock (seconds), at speed 1."""
        best: tuple[float, float] | None = None
        for _ in range(5):
            before = time.time()
            now = float(self.control.clock()["now"])
            after = time.time()
            sample = (after - before, now - (before + after) / 2)
            if best is None or sample[0] < best[0]:
                best = sample
        assert best is not None
        return best[1]

    def stop(self) -> None:
        self.control.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


@dataclass
class SimAccount:
    name: str
    secret_id: str
    secret_key: str


def new_sim_account(sim: SimProcess, label: str) -> SimAccount:
    tag = uuid.uuid4().hex[:10]
    account = SimAccount(f"bench-{label}-{tag}", f"AKID{tag}{'0' * 22}", f"bench{tag}{'k' * 22}")
    sim.control.add_account(
        name=account.name, secret_id=account.secret_id, secret_key=account.secret_key,
        regions=[REGION],
    )  # fmt: skip
    return account


class OperatorProcess:
    """`python -m cloudinfer --standalone --namespace NS`, its log in a file, psutil on it.
    `mode` replaces `--standalone` (sharding: `--shard ...`); `env` is added to its
    environment."""

    def __init__(
        self, kubeconfig: Path, namespace: str, log_path: Path, trace_path: Path | None = None,
        memray_path: Path | None = None, *, mode: tuple[str, ...] = ("--standalone",),
        env: Mapping[str, str] | None = None, peak_path: Path | None = None,
    ) -> None:  # fmt: skip
        self.mode = mode
        self.extra_env = dict(env or {})
        self.trace_path = trace_path
        self.memray_path = memray_path
        self.peak_path = peak_path
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log_path = log_path
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None
        self.started_at = 0.0
        self.rss_samples: list[tuple[float, int]] = []
        self.cpu_samples: list[tuple[float, float]] = []
        self._sampling = threading.Event()

    def start(self) -> float:
        """Start it; returns the wall time just before the process was spawned."""
        started = self.spawn()
        wait_for(self.healthy, 60, "the operator's liveness endpoint", every=0.2)
        return started

    def spawn(self) -> float:
        """Start it without waiting for it to be healthy (several at once); returns the wall
        time just before the process was spawned."""
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        env.update(self.extra_env)
        self._log = self.log_path.open("ab")
        entry = ["-m", "cloudinfer"]
        if self.trace_path is not None:
            entry = [str(Path(__file__).with_name("profiled.py"))]
            env["CIBENCH_PROFILE_OUT"] = str(self.trace_path)
        if self.peak_path is not None:
            entry = [str(Path(__file__).with_name("peaktrace.py"))]
            env["CIBENCH_PEAK_OUT"] = str(self.peak_path)
        if self.memray_path is not None:
            # Aggregated capture keeps what was allocated at the high-water mark, per Python stack
            # (native stacks failed to resolve here and cost more).
            entry = ["-m", "memray", "run", "--aggregate", "--quiet", "--force",
                     "-o", str(self.memray_path), *entry]  # fmt: skip
        self.started_at = time.time()
        self.process = subprocess.Popen(
            [sys.executable, *entry, *self.mode, "--log-format", "text",
             "--namespace", self.namespace, "--health-port", str(self.health_port),
             "--metrics-port", str(self.metrics_port),
             # The simulators listen on loopback, outside the default (public) allow-list.
             "--allowed-endpoint-host", "127.0.0.1"],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        self.ps = psutil.Process(self.process.pid)
        threading.Thread(target=self._sample, name="rss-sampler", daemon=True).start()
        return self.started_at

    def kill(self) -> float:
        """SIGKILL, as a crashed node or an OOM kill would; returns the wall time of it."""
        assert self.process is not None
        killed = time.time()
        self.process.kill()
        self.process.wait()
        return killed

    def peak_rss(self, since: float = 0.0, until: float = float("inf")) -> int:
        """The largest sampled RSS between the two wall times (0 if none was sampled)."""
        return max((r for t, r in self.rss_samples if since <= t <= until), default=0)

    def _sample(self) -> None:
        while not self._sampling.wait(0.5):
            with contextlib.suppress(psutil.Error):
                assert self.ps is not None
                now = time.time()
                self.rss_samples.append((now, self.ps.memory_info().rss))
                self.cpu_samples.append((now, self.cpu_seconds()))

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the operator exited; see {self.log_path}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2).is_success
        except httpx.HTTPError:
            return False

    def rss(self) -> int:
        assert self.ps is not None
        return int(self.ps.memory_info().rss)

    def cpu_seconds(self) -> float:
        assert self.ps is not None
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def cpu_seconds_at(self, when: float) -> float | None:
        """CPU seconds used by `when` (the first sample at or after it, 0.5 s apart)."""
        return next((cpu for t, cpu in self.cpu_samples if t >= when), None)

    def dump_profile(self, label: str) -> None:
        """With profiling on: ask the operator to write its CPU and memory reports (SIGUSR1),
        then keep them as <trace_path>.<label>.{cpu,memory}.txt."""
        assert self.process is not None and self.trace_path is not None
        done = Path(f"{self.trace_path}.memory.txt")
        done.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        wait_for(done.exists, 300, "the profile dump", every=0.5)
        for kind in ("cpu", "memory"):
            Path(f"{self.trace_path}.{kind}.txt").rename(f"{self.trace_path}.{label}.{kind}.txt")

    def freeze_peak(self) -> None:
        """With --tracemalloc-peak: keep the peak reached so far (converged), not a later one."""
        if self.peak_path is not None and self.process is not None:
            self.process.send_signal(signal.SIGUSR2)

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def stop(self) -> None:
        """Idempotent: a sharded replica stopped at all Ready (--memray) is stopped again at
        the end, and memray's reports take minutes to write."""
        if self._sampling.is_set():
            return
        self._sampling.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self._log.close()
        if self.memray_path is not None and self.memray_path.exists():
            for report in ("summary", "tree"):  # memory held at the peak, by allocating stack
                with self.memray_path.with_suffix(f".{report}.txt").open("w") as out:
                    subprocess.run(
                        [sys.executable, "-m", "memray", report, str(self.memray_path)],
                        stdout=out, stderr=subprocess.STDOUT, timeout=600, check=False,
                    )  # fmt: skip


def _ready(obj: dict[str, Any]) -> bool:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


@dataclass
class Record:
    """One watch event on an InferenceService, as the benchmark received it."""

    time: float
    type: str
    name: str
    resource_version: str
    ready: bool
    observed_replicas: int | None


@dataclass
class ServiceWatcher:
    """Watches the InferenceServices of one namespace in a thread; keeps every event."""

    api: client.ApiClient
    namespace: str
    records: list[Record] = field(default_factory=list)
    ready_series: list[tuple[float, int]] = field(default_factory=list)
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._watch = watch.Watch()
        self._ready: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="watch", daemon=True)
        self._synced = threading.Event()

    def start(self) -> None:
        self._thread.start()
        if not self._synced.wait(60):
            raise TimeoutError("the watch did not start")

    def stop(self) -> None:
        self._stop.set()
        self._watch.stop()

    def ready_count(self) -> int:
        with self._lock:
            return len(self._ready)

    def since(self, when: float) -> list[Record]:
        with self._lock:
            return [r for r in self.records if r.time >= when]

    def _run(self) -> None:
        custom = client.CustomObjectsApi(self.api)
        resource_version: str | None = None
        while not self._stop.is_set():
            if resource_version is None:
                listing = custom.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, SERVICES
                )
                for item in listing["items"]:
                    self._record("LISTED", item)
                resource_version = listing["metadata"]["resourceVersion"]
                self._synced.set()
            try:
                for event in self._watch.stream(
                    custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace,
                    SERVICES, resource_version=resource_version, timeout_seconds=30,
                ):  # fmt: skip
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        resource_version = None
                        break
                    resource_version = obj["metadata"]["resourceVersion"]
                    self._record(event["type"], obj)
                    if self._stop.is_set():
                        return
            except ApiException as err:
                if err.status == 410:
                    resource_version = None
                else:
                    time.sleep(0.5)
            except Exception:  # a dropped stream: reconnect from the last version
                time.sleep(0.5)

    def _record(self, type_: str, obj: dict[str, Any]) -> None:
        now = time.time()
        meta = obj["metadata"]
        name = meta["name"]
        observed = (obj.get("status") or {}).get("observed") or {}
        ready = _ready(obj) and type_ != "DELETED"
        with self._lock:
            self.latest[name] = obj
            self.records.append(
                Record(now, type_, name, meta["resourceVersion"], ready, observed.get("replicas"))
            )
            before = len(self._ready)
            if ready:
                self._ready.add(name)
            else:
                self._ready.discard(name)
            if len(self._ready) != before:
                self.ready_series.append((now, len(self._ready)))


class Cluster:
    """The control plane, an API client with a connection pool, and small helpers."""

    def __init__(self, work: Path) -> None:
        self.bin_dir = find_bin_dir()
        self.plane = ControlPlane(bin_dir=self.bin_dir, work_dir=work / "cluster")
        self.kubeconfig = self.plane.kubeconfig

    def start(self) -> None:
        self.plane.start()
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(self.kubeconfig), client_configuration=configuration
        )
        configuration.connection_pool_maxsize = 32
        self.api = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.kubectl("apply", "-f", str(ROOT / "crds"))
        self.kubectl("wait", "--for=condition=Established", "-f", str(ROOT / "crds"))

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.api.close()
        self.plane.stop()

    def kubectl(self, *args: str) -> str:
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def create_namespace(self, name: str) -> None:
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))

    def create_account(
        self, namespace: str, account: SimAccount, endpoint: str, *, provider: str = "tencent",
        region: str = REGION, extra: dict[str, Any] | None = None, name: str = "acct",
        secret_name: str = "creds",  # noqa: S107 - a Secret object's name
    ) -> None:  # fmt: skip
        self.core.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=secret_name),
                data={
                    "accessKeyId": base64.b64encode(account.secret_id.encode()).decode(),
                    "secretAccessKey": base64.b64encode(account.secret_key.encode()).decode(),
                },
            ),
        )
        spec = {
            "provider": provider, "region": region, "endpoint": endpoint,
            "credentialsSecretRef": {"name": secret_name},
            "pollIntervalSeconds": POLL_SECONDS, "activePollIntervalSeconds": ACTIVE_POLL_SECONDS,
            **(extra or {}),
        }  # fmt: skip
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, ACCOUNTS,
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CloudAccount",
             "metadata": {"name": name}, "spec": spec},
        )  # fmt: skip

    def create_services(self, namespace: str, specs: dict[str, dict[str, Any]]) -> None:
        """Create many InferenceServices at once (a thread pool over one connection pool)."""

        def create(item: tuple[str, dict[str, Any]]) -> None:
            name, spec = item
            body = {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService",
                "metadata": {"name": name}, "spec": {"accountRef": {"name": "acct"}, **spec},
            }  # fmt: skip
            self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, SERVICES, body)

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(create, specs.items()))

    def patch_service(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, SERVICES, name, {"spec": spec}
        )

    def resource_versions(self, namespace: str) -> dict[str, str]:
        """Every object the operator may write in the namespace -> its resourceVersion."""
        out: dict[str, str] = {}
        for plural in (SERVICES, ACCOUNTS):
            listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
            for item in listing["items"]:
                out[f"{plural}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
        for event in self.core.list_namespaced_event(namespace).items:
            out[f"events/{event.metadata.name}"] = event.metadata.resource_version
        return out


@contextlib.contextmanager
def world(work: Path) -> Iterator[tuple[Cluster, SimProcess]]:
    cluster = Cluster(work)
    sim: SimProcess | None = None
    try:
        cluster.start()
        sim = SimProcess(work / "sim.log")
        yield cluster, sim
    finally:
        if sim is not None:
            sim.stop()
        cluster.stop()
