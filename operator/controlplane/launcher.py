"""Runs a real etcd + kube-apiserver + kube-controller-manager on loopback.

The same shape as controller-runtime's envtest, plus the controller manager so that
garbage collection, namespace deletion and service-account tokens work. Used by the
test suite, `make cluster`, the demo and the benchmarks.
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
    ) -> None:
        self.bin_dir = find_bin_dir(bin_dir)
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
        self.server_url = f"https://{LOOPBACK}:{self.apiserver_port}"
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
        self._write_certificates()
        self._write_kubeconfig()
        try:
            self._start("etcd", self._etcd_argv())
            self._wait_healthy("etcd", self._etcd_ready)
            self._start_apiserver()
            if self.with_controller_manager:
                self._start("kube-controller-manager", self._controller_manager_argv())
                self._wait_healthy("kube-controller-manager", self._controller_manager_ready)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop components in reverse start order; safe to call more than once."""
        for component in reversed(list(self.components.values())):
            component.stop()
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

    def _wait_healthy(self, name: str, probe: Callable[[], bool]) -> None:
        component = self.components[name]
        deadline = time.monotonic() + self.start_timeout
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
        serving = serving_ca.issue_serving([LOOPBACK, "localhost"])
        admin = client_ca.issue_client("cloudinfer-admin", ("system:masters",))
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
        }
        for name, data in files.items():
            path = self.cert_dir / name
            path.write_bytes(data)
            path.chmod(0o600)

    def _write_kubeconfig(self) -> None:
        def read(name: str) -> str:
            return base64.b64encode((self.cert_dir / name).read_bytes()).decode()

        config = {
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
                        "client-certificate-data": read("admin.crt"),
                        "client-key-data": read("admin.key"),
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
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

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
            f"--bind-address={LOOPBACK}",
            # Without it the apiserver looks for a default route, which sandboxes lack.
            f"--advertise-address={LOOPBACK}",
            f"--cert-dir={certs}",
            f"--tls-cert-file={certs / 'apiserver.crt'}",
            f"--tls-private-key-file={certs / 'apiserver.key'}",
            f"--client-ca-file={certs / 'client-ca.crt'}",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--service-account-issuer={self.server_url}/",
            f"--service-account-key-file={certs / 'sa.crt'}",
            f"--service-account-signing-key-file={certs / 'sa.key'}",
            "--allow-privileged=true",
            # A loopback endpoint for `kubernetes` is rejected by validation anyway.
            "--endpoint-reconciler-type=none",
            *self.apiserver_extra_args,
        ]

    def _controller_manager_argv(self) -> list[str]:
        certs = self.cert_dir
        return [
            str(self.bin_dir / "kube-controller-manager"),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            f"--controllers={','.join(CONTROLLERS)}",
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
