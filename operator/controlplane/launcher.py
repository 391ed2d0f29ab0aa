"""Runs a real etcd + kube-apiserver + kube-controller-manager on loopback.

The same shape as controller-runtime's envtest, plus the controller manager so that
garbage collection, namespace deletion and service-account tokens work. Used by the
test suite, `make cluster`, the demo and the benchmarks.

With `node=True` it is a single-node cluster (the node tier, tests/node): kube-scheduler,
containerd and a kubelet join, and everything listens on the host side of a bridge the
plane creates (controlplane.node), which pods on that bridge reach too.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx
import yaml

from controlplane import node as nodes
from controlplane.certs import TinyCA, service_account_signer

BIN_DIR_ENV = "CLOUDINFER_K8S_BIN"
REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")

# The `kubernetes` Service range; configuration only, nothing ever routes to it.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
LOOPBACK = "127.0.0.1"
# envtest polls every 100 ms; a cold apiserver on 2 cores needs tens of seconds.
READINESS_POLL_SECONDS = 0.1
DEFAULT_START_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 15.0
# Controllers that make the plane behave like a cluster without kubelets or nodes.
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
)
# What a node needs beyond those: node lifecycle (else the not-ready taint stays),
# Deployments, and the kube-root-ca.crt ConfigMap that every pod mounts.
NODE_CONTROLLERS = (
    "node-lifecycle-controller",
    "deployment-controller",
    "replicaset-controller",
    "root-ca-certificate-publisher-controller",
    "disruption-controller",
)
NODE_READY_TIMEOUT_SECONDS = 120.0
POD_TEARDOWN_TIMEOUT_SECONDS = 90.0
_PR_SET_PDEATHSIG = 1


class ControlPlaneError(RuntimeError):
    """The control plane could not start or stop; the message names the logs to read."""


def find_bin_dir(explicit: Path | None = None) -> Path:
    """Locate the Kubernetes binaries built by `hack/build-k8s.sh`, or fail with directions."""
    candidate = explicit or (Path(os.environ[BIN_DIR_ENV]) if os.environ.get(BIN_DIR_ENV) else None)
    if candidate is None:
        raise ControlPlaneError(
            f"{BIN_DIR_ENV} is not set. Build the Kubernetes binaries with `make k8s` "
            f"(or `hack/build-k8s.sh`, which prints the directory) and export {BIN_DIR_ENV}."
        )
    missing = [b for b in REQUIRED_BINARIES if not os.access(candidate / b, os.X_OK)]
    if missing:
        raise ControlPlaneError(
            f"{candidate} lacks {', '.join(missing)}. Run `make k8s` to build them from source."
        )
    return candidate


def free_port() -> int:
    """A currently unused loopback TCP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    # Runs in the child before exec: the kernel kills it if the launcher dies,
    # so an interrupted test run never leaves etcd or an apiserver behind.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Component:
    """One control-plane process and its log file."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self, *, die_with_parent: bool) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Own process group: Ctrl-C reaches the launcher, which stops us in order.
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 25) -> str:
        try:
            content = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(content[-lines:])


class ControlPlane:
    """etcd, kube-apiserver and (optionally) kube-controller-manager on free loopback ports.

    Use as a context manager, or call `start()` and `stop()`. Everything lives under
    `work_dir`: certificates, etcd data, the admin kubeconfig and one log per component.
    """

    def __init__(
        self,
        bin_dir: Path | None = None,
        work_dir: Path | None = None,
        *,
        controller_manager: bool = True,
        start_timeout: float = DEFAULT_START_TIMEOUT_SECONDS,
        die_with_parent: bool = True,
        apiserver_extra_args: tuple[str, ...] = (),
        node_sandbox_image: str | None = None,
        extra_controllers: tuple[str, ...] = (),
    ) -> None:
        """`node_sandbox_image`: run a node too, with this (imported) pause image.
        `extra_controllers`: more kube-controller-manager controllers (e.g. Deployments,
        so that `helm install --wait` can finish without a node)."""
        self.bin_dir = find_bin_dir(bin_dir)
        self.extra_controllers = extra_controllers
        self.node_sandbox_image = node_sandbox_image
        self.with_node = node_sandbox_image is not None
        # With a node, the pods on the bridge must reach the apiserver: it listens on the
        # bridge's host-side address instead of loopback (both stay on this machine).
        self.address = nodes.BRIDGE_ADDRESS if self.with_node else LOOPBACK
        self.host_state: nodes.HostState | None = None
        self._owns_work_dir = work_dir is None
        self.work_dir = (
            Path(tempfile.mkdtemp(prefix="cloudinfer-cp-")) if work_dir is None else work_dir
        )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.cert_dir = self.work_dir / "certs"
        self.log_dir = self.work_dir / "logs"
        self.etcd_data_dir = self.work_dir / "etcd-data"
        self.kubeconfig = self.work_dir / "kubeconfig"
        self.with_controller_manager = controller_manager
        self.start_timeout = start_timeout
        self.die_with_parent = die_with_parent
        self.apiserver_extra_args = apiserver_extra_args
        self.etcd_port = free_port()
        # Fixed for the plane's life: a restarted etcd must advertise the peer URL its data
        # directory's membership records.
        self.etcd_peer_port = free_port()
        self.apiserver_port = free_port()
        self.controller_manager_port = free_port()
        self.scheduler_port = free_port()
        self.kubelet_healthz_port = free_port()
        self.server_url = f"https://{self.address}:{self.apiserver_port}"
        self.containerd_dir = self.work_dir / "containerd"
        self.containerd_socket = self.containerd_dir / "containerd.sock"
        self.components: dict[str, Component] = {}

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every component and wait until each reports healthy."""
        for directory in (self.cert_dir, self.log_dir, self.etcd_data_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if self.with_node:
            problems = nodes.preflight_problems()
            if problems:
                raise ControlPlaneError("this host cannot run a node: " + "; ".join(problems))
            self.host_state = nodes.HostState.record(self.work_dir)
        self._write_certificates()
        self._write_kubeconfig()
        try:
            if self.with_node:
                nodes.create_bridge()
            self._start("etcd", self._etcd_argv())
            self._wait_healthy("etcd", self._etcd_ready)
            self._start_apiserver()
            if self.with_controller_manager:
                self._start("kube-controller-manager", self._controller_manager_argv())
                self._wait_healthy("kube-controller-manager", self._controller_manager_ready)
            if self.with_node:
                self._start_node()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop components in reverse start order; safe to call more than once."""
        if self.with_node:
            self._stop_pods()
        for component in reversed(list(self.components.values())):
            component.stop()
        if self.host_state is not None:
            self.host_state.restore()
        if self._owns_work_dir:
            # Keep the logs of a failed run readable; drop the bulky etcd data.
            shutil.rmtree(self.etcd_data_dir, ignore_errors=True)

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port, keeping etcd's data."""
        self.components["kube-apiserver"].stop()
        self._start_apiserver()

    def restart_etcd(self, downtime: float = 0.0) -> None:
        """Stop etcd, wait `downtime` seconds, and start it again on the same ports and data
        directory. kube-apiserver keeps running and reconnects by itself; until it does, its
        requests fail and its watches break, as in a real etcd restart."""
        self.components["etcd"].stop()
        time.sleep(downtime)
        self._start("etcd", self._etcd_argv())
        self._wait_healthy("etcd", self._etcd_ready)

    def import_image(self, archive: Path) -> None:
        """Load a docker-archive into the node's containerd (images are never pulled)."""
        self._ctr("images", "import", str(archive))

    def _ctr(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            ["ctr", "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args],
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise ControlPlaneError(f"ctr {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _start_node(self) -> None:
        assert self.node_sandbox_image is not None
        self._start("kube-scheduler", self._scheduler_argv())
        self._wait_healthy("kube-scheduler", self._scheduler_ready)
        cni_conf_dir = self.work_dir / "cni" / "net.d"
        cni_conf_dir.mkdir(parents=True, exist_ok=True)
        (cni_conf_dir / "10-cloudinfer.conflist").write_text(
            nodes.cni_config(self.work_dir / "cni" / "ipam")
        )
        self.containerd_dir.mkdir(parents=True, exist_ok=True)
        config = self.containerd_dir / "config.toml"
        config.write_text(
            nodes.containerd_config(self.containerd_dir, cni_conf_dir, self.node_sandbox_image)
        )
        self._start("containerd", ["containerd", f"--config={config}"])
        self._wait_healthy("containerd", self._containerd_ready)
        kubelet_dir = self.work_dir / "kubelet"
        kubelet_dir.mkdir(parents=True, exist_ok=True)
        kubelet_config = kubelet_dir / "config.yaml"
        kubelet_config.write_text(
            yaml.safe_dump(
                nodes.kubelet_config(
                    kubelet_dir,
                    self.containerd_socket,
                    self.cert_dir / "client-ca.crt",
                    self.kubelet_healthz_port,
                )
            )
        )
        self._start(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={kubelet_config}",
                f"--kubeconfig={self.work_dir / 'kubelet.kubeconfig'}",
                f"--root-dir={kubelet_dir / 'root'}",
                f"--cert-dir={kubelet_dir / 'pki'}",
                f"--hostname-override={nodes.NODE_NAME}",
                f"--node-ip={nodes.BRIDGE_ADDRESS}",
            ],
        )
        self._wait_healthy("kubelet", self._node_ready, timeout=NODE_READY_TIMEOUT_SECONDS)

    def _containerd_ready(self) -> bool:
        probe = subprocess.run(
            ["ctr", "--address", str(self.containerd_socket), "version"],
            capture_output=True, check=False, timeout=10,
        )  # fmt: skip
        return probe.returncode == 0

    def _node_ready(self) -> bool:
        with self._admin_client() as client:
            response = client.get(f"{self.server_url}/api/v1/nodes/{nodes.NODE_NAME}")
            if response.status_code != 200:
                return False
            conditions = response.json().get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _scheduler_ready(self) -> bool:
        url = f"https://{LOOPBACK}:{self.scheduler_port}/healthz"
        return httpx.get(url, verify=False, timeout=2).status_code == 200  # noqa: S501

    def _stop_pods(self) -> None:
        """Let the kubelet tear its pods down (network, mounts) before it stops."""
        kubelet = self.components.get("kubelet")
        apiserver = self.components.get("kube-apiserver")
        if kubelet and kubelet.running() and apiserver and apiserver.running():
            try:
                with self._admin_client() as client:
                    client.patch(
                        f"{self.server_url}/api/v1/nodes/{nodes.NODE_NAME}",
                        json={"spec": {"unschedulable": True}},
                        headers={"Content-Type": "application/strategic-merge-patch+json"},
                    )
                    namespaces = client.get(f"{self.server_url}/api/v1/namespaces").json()
                    for item in namespaces.get("items", []):
                        name = item["metadata"]["name"]
                        client.request(
                            "DELETE",
                            f"{self.server_url}/api/v1/namespaces/{name}/pods",
                            params={"gracePeriodSeconds": "0"},
                        )
                deadline = time.monotonic() + POD_TEARDOWN_TIMEOUT_SECONDS
                while time.monotonic() < deadline and self._ctr("tasks", "ls", "-q", check=False):
                    time.sleep(0.5)
            except (httpx.HTTPError, ControlPlaneError):
                pass
        if kubelet is not None:
            kubelet.stop()
        containerd = self.components.get("containerd")
        if containerd is not None and containerd.running():
            # Whatever the kubelet did not stop (or if it was gone): kill it.
            for task in self._ctr("tasks", "ls", "-q", check=False).split():
                self._ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self._ctr("tasks", "ls", "-q", check=False):
                for task in self._ctr("tasks", "ls", "-q", check=False).split():
                    self._ctr("tasks", "delete", "--force", task, check=False)
                time.sleep(0.2)

    def pids(self) -> dict[str, int]:
        return {name: c.process.pid for name, c in self.components.items() if c.process is not None}

    # -- internals -------------------------------------------------------------------

    def _start(self, name: str, argv: list[str]) -> None:
        component = Component(name, argv, self.log_dir / f"{name}.log")
        self.components[name] = component
        component.start(die_with_parent=self.die_with_parent)

    def _start_apiserver(self) -> None:
        self._start("kube-apiserver", self._apiserver_argv())
        self._wait_healthy("kube-apiserver", self._apiserver_ready)

    def _wait_healthy(
        self, name: str, probe: Callable[[], bool], timeout: float | None = None
    ) -> None:
        component = self.components[name]
        deadline = time.monotonic() + (timeout or self.start_timeout)
        last_error = "no probe yet"
        while time.monotonic() < deadline:
            if not component.running():
                raise ControlPlaneError(
                    f"{name} exited during start-up. Log: {component.log_path}\n"
                    f"{component.log_tail()}"
                )
            try:
                if probe():
                    return
                last_error = "not ready"
            except httpx.HTTPError as err:
                last_error = f"{type(err).__name__}: {err}"
            time.sleep(READINESS_POLL_SECONDS)
        raise ControlPlaneError(
            f"{name} was not healthy after {self.start_timeout:.0f}s ({last_error}). "
            f"Logs: {self.log_dir}\n{component.log_tail()}"
        )

    def _etcd_ready(self) -> bool:
        response = httpx.get(f"http://{LOOPBACK}:{self.etcd_port}/health", timeout=2)
        return response.status_code == 200

    def admin_ssl_context(self) -> ssl.SSLContext:
        """Trusts the plane's CA and presents the admin (system:masters) client certificate."""
        context = ssl.create_default_context(cafile=str(self.cert_dir / "ca.crt"))
        context.load_cert_chain(self.cert_dir / "admin.crt", self.cert_dir / "admin.key")
        return context

    def _admin_client(self) -> httpx.Client:
        return httpx.Client(verify=self.admin_ssl_context(), timeout=5)

    def _apiserver_ready(self) -> bool:
        with self._admin_client() as client:
            if client.get(f"{self.server_url}/readyz").status_code != 200:
                return False
            # envtest also waits for the `default` namespace: clients expect it at once.
            return client.get(f"{self.server_url}/api/v1/namespaces/default").status_code == 200

    def _controller_manager_ready(self) -> bool:
        # The controller manager serves a self-signed certificate; only liveness matters.
        url = f"https://{LOOPBACK}:{self.controller_manager_port}/healthz"
        return httpx.get(url, verify=False, timeout=2).status_code == 200  # noqa: S501

    def _write_certificates(self) -> None:
        serving_ca = TinyCA("cloudinfer-local-ca")
        client_ca = TinyCA("cloudinfer-client-ca")
        serving = serving_ca.issue_serving(
            [LOOPBACK, "localhost", *([nodes.BRIDGE_ADDRESS] if self.with_node else [])]
        )
        admin = client_ca.issue_client("cloudinfer-admin", ("system:masters",))
        node = client_ca.issue_client(f"system:node:{nodes.NODE_NAME}", ("system:nodes",))
        kubelet_client = client_ca.issue_client(
            "kube-apiserver-kubelet-client", ("system:masters",)
        )
        sa_signer = service_account_signer()
        files = {
            "ca.crt": serving_ca.keypair.cert_pem,
            "apiserver.crt": serving.cert_pem,
            "apiserver.key": serving.key_pem,
            "client-ca.crt": client_ca.keypair.cert_pem,
            "admin.crt": admin.cert_pem,
            "admin.key": admin.key_pem,
            "sa.crt": sa_signer.cert_pem,
            "sa.key": sa_signer.key_pem,
            "node.crt": node.cert_pem,
            "node.key": node.key_pem,
            "kubelet-client.crt": kubelet_client.cert_pem,
            "kubelet-client.key": kubelet_client.key_pem,
        }
        for name, data in files.items():
            path = self.cert_dir / name
            path.write_bytes(data)
            path.chmod(0o600)

    def _write_kubeconfig(self) -> None:
        self.kubeconfig.write_text(yaml.safe_dump(self._kubeconfig("admin")))
        self.kubeconfig.chmod(0o600)
        if self.with_node:
            node_kubeconfig = self.work_dir / "kubelet.kubeconfig"
            node_kubeconfig.write_text(yaml.safe_dump(self._kubeconfig("node")))
            node_kubeconfig.chmod(0o600)

    def _kubeconfig(self, user: str) -> dict[str, object]:
        def read(name: str) -> str:
            return base64.b64encode((self.cert_dir / name).read_bytes()).decode()

        config: dict[str, object] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "cloudinfer-local",
                    "cluster": {
                        "server": self.server_url,
                        "certificate-authority-data": read("ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": "cloudinfer-admin",
                    "user": {
                        "client-certificate-data": read(f"{user}.crt"),
                        "client-key-data": read(f"{user}.key"),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "cloudinfer-local",
                    "context": {"cluster": "cloudinfer-local", "user": "cloudinfer-admin"},
                }
            ],
            "current-context": "cloudinfer-local",
        }
        return config

    def _etcd_argv(self) -> list[str]:
        client_url = f"http://{LOOPBACK}:{self.etcd_port}"
        peer_url = f"http://{LOOPBACK}:{self.etcd_peer_port}"
        return [
            str(self.bin_dir / "etcd"),
            f"--data-dir={self.etcd_data_dir}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            # Test data is disposable; skipping fsync makes the plane much faster.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_argv(self) -> list[str]:
        certs = self.cert_dir
        return [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://{LOOPBACK}:{self.etcd_port}",
            f"--secure-port={self.apiserver_port}",
            f"--bind-address={self.address}",
            # Without it the apiserver looks for a default route, which sandboxes lack.
            f"--advertise-address={self.address}",
            f"--cert-dir={certs}",
            f"--tls-cert-file={certs / 'apiserver.crt'}",
            f"--tls-private-key-file={certs / 'apiserver.key'}",
            f"--client-ca-file={certs / 'client-ca.crt'}",
            f"--authorization-mode={'Node,RBAC' if self.with_node else 'RBAC'}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--service-account-issuer={self.server_url}/",
            f"--service-account-key-file={certs / 'sa.crt'}",
            f"--service-account-signing-key-file={certs / 'sa.key'}",
            "--allow-privileged=true",
            # A loopback endpoint for `kubernetes` is rejected by validation anyway.
            "--endpoint-reconciler-type=none",
            *(self._apiserver_node_args() if self.with_node else []),
            *self.apiserver_extra_args,
        ]

    def _controllers(self) -> tuple[str, ...]:
        wanted = CONTROLLERS + (NODE_CONTROLLERS if self.with_node else ()) + self.extra_controllers
        return tuple(dict.fromkeys(wanted))

    def _apiserver_node_args(self) -> list[str]:
        certs = self.cert_dir
        return [
            "--enable-admission-plugins=NodeRestriction",
            # For logs and exec: dial the node's InternalIP, not its host name.
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={certs / 'kubelet-client.crt'}",
            f"--kubelet-client-key={certs / 'kubelet-client.key'}",
        ]

    def _scheduler_argv(self) -> list[str]:
        return [
            str(self.bin_dir / "kube-scheduler"),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            f"--secure-port={self.scheduler_port}",
            f"--bind-address={LOOPBACK}",
            f"--cert-dir={self.work_dir / 'scheduler'}",
        ]

    def _controller_manager_argv(self) -> list[str]:
        certs = self.cert_dir
        return [
            str(self.bin_dir / "kube-controller-manager"),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            f"--controllers={','.join(self._controllers())}",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            f"--secure-port={self.controller_manager_port}",
            f"--bind-address={LOOPBACK}",
            f"--cert-dir={self.work_dir / 'controller-manager'}",
            f"--service-account-private-key-file={certs / 'sa.key'}",
            f"--root-ca-file={certs / 'ca.crt'}",
        ]


@contextlib.contextmanager
def running_control_plane(work_dir: Path | None = None) -> Iterator[ControlPlane]:
    """Start a control plane for the duration of a `with` block."""
    with ControlPlane(work_dir=work_dir) as plane:
        yield plane
