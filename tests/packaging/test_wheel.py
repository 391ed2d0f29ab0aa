"""The image's Python payload without Docker: the wheel built and installed exactly as the
Dockerfile's two stages do, then the installed `cloudinfer-operator` entry point run
against the local control plane.

Deliberate differences from the image: pip's cache is reused (the Dockerfile disables it
to keep layers small; here it keeps the test fast), and the interpreter is this venv's
base Python 3.11 rather than the image's pinned patch release.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from harness import GROUP, VERSION, Kube, new_sim_account
from kubernetes import client
from kubernetes.client.rest import ApiException
from packaging_support import REPO, Helm, one, render

from cloudinfer.main.cli import parser
from cloudsim.server import RunningSim
from controlplane.launcher import free_port
from support import Cluster, wait_for

DOCKERFILE = REPO / "Dockerfile"
# The build stage's COPY lines, and the .dockerignore exclusions inside operator/.
BUILD_CONTEXT = ("pyproject.toml", "constraints.txt", "README.md", "operator")
IGNORED = shutil.ignore_patterns("__pycache__", "*.egg-info")
# The Dockerfile's ENV, minus PIP_NO_CACHE_DIR (see the module docstring).
IMAGE_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONNOUSERSITE": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path

    @property
    def entry_point(self) -> Path:
        return self.venv / "bin" / "cloudinfer-operator"

    @property
    def kubectl_plugin(self) -> Path:
        return self.venv / "bin" / "kubectl-cloudinfer"


def run(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_NO_CACHE", "PYTHON"))}
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env={**env, **IMAGE_ENV},
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-2000:]}\n{result.stderr}"
    return result


def test_dockerfile_commands_are_the_ones_mirrored_here() -> None:
    """If the Dockerfile's build or install step changes, this test must change with it."""
    text = DOCKERFILE.read_text()
    assert "COPY pyproject.toml constraints.txt README.md ./\nCOPY operator/ operator/" in text
    assert "pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt ." in text
    install = re.search(r"pip install (.*?)\n\s*&&", text, re.DOTALL)
    assert install is not None
    assert [word for word in install.group(1).split() if word != "\\"] == [
        "--no-cache-dir", "--no-index", "--find-links=/wheels",
        "-c", "/tmp/constraints.txt", "/wheels/cloudinfer_operator-*.whl",  # noqa: S108
    ]  # fmt: skip
    assert 'ENTRYPOINT ["cloudinfer-operator"]' in text


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Stage 1: `pip wheel -c constraints.txt .` over the build context (the project wheel
    and every dependency's). Stage 2: a clean venv, `pip install --no-index` from those
    wheels only, constrained by the same pins."""
    work = tmp_path_factory.mktemp("wheel")
    src, wheels = work / "src", work / "wheels"
    src.mkdir()
    for name in BUILD_CONTEXT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=IGNORED)
        else:
            shutil.copy(source, src / name)
    run(sys.executable, "-m", "pip", "wheel", "--wheel-dir", wheels, "-c", "constraints.txt",
        ".", cwd=src, timeout=180)  # fmt: skip
    (wheel,) = wheels.glob("cloudinfer_operator-*.whl")

    venv = work / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=work)
    run(venv / "bin" / "pip", "install", "--no-index", f"--find-links={wheels}",
        "-c", src / "constraints.txt", wheel, cwd=work, timeout=180)  # fmt: skip
    return Installed(venv, wheel)


def test_wheel_holds_the_operator_and_installs_pinned_versions(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        top = {name.split("/")[0] for name in wheel.namelist()}
    # The test infrastructure (simulators, control-plane launcher) rides along: setuptools
    # finds every package under operator/. cloudinfer never imports them (import-linter),
    # and their extras (uvicorn, starlette, cryptography) are not installed.
    assert top == {"cloudinfer", "cloudsim", "controlplane", "cloudinfer_operator-0.1.0.dist-info"}

    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    pins = {
        canonical(name): version
        for name, _, version in (
            line.partition("==")
            for line in (REPO / "constraints.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")
        )
    }
    listed = run(installed.venv / "bin" / "pip", "list", "--format=json", cwd=installed.venv)
    versions = {canonical(p["name"]): p["version"] for p in json.loads(listed.stdout)}
    assert versions.pop("cloudinfer-operator") == "0.1.0"
    for tool in ("pip", "setuptools", "wheel"):  # the venv's own, as in the base image
        versions.pop(tool, None)
    assert {"kopf", "kubernetes", "httpx", "pydantic", "prometheus-client"} <= set(versions)
    unpinned = {name: v for name, v in versions.items() if pins.get(name) != v}
    assert unpinned == {}, "installed versions that differ from constraints.txt"
    assert "uvicorn" not in versions

    where = run(installed.venv / "bin" / "python", "-c",
                "import cloudinfer; print(cloudinfer.__file__)", cwd=installed.venv)  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(installed.venv)


def test_wheel_installs_the_kubectl_plugin_and_krew_launches_it(
    installed: Installed, tmp_path: Path
) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        (entry_points,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
        scripts = wheel.read(entry_points).decode()
    assert "kubectl-cloudinfer = cloudinfer.kubectl.cli:main" in scripts
    out = run(installed.kubectl_plugin, "--help", cwd=installed.venv).stdout
    assert out.startswith("usage: kubectl cloudinfer")
    for command in ("status", "get", "plan", "wake", "pause", "resume", "why"):
        assert command in out

    # The krew archive's launcher runs the installed package; its manifest names the archive.
    run(sys.executable, REPO / "hack" / "krew_manifest.py", "v0.1.0",
        "https://example.invalid/releases/v0.1.0", tmp_path, cwd=REPO)  # fmt: skip
    manifest = yaml.safe_load((tmp_path / "cloudinfer.yaml").read_text())
    (platform,) = manifest["spec"]["platforms"]
    archive = tmp_path / "kubectl-cloudinfer.tar.gz"
    assert platform["uri"] == "https://example.invalid/releases/v0.1.0/kubectl-cloudinfer.tar.gz"
    assert platform["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (manifest["metadata"]["name"], platform["bin"]) == ("cloudinfer", "kubectl-cloudinfer")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    launcher = tmp_path / "x" / "kubectl-cloudinfer"
    env = {**os.environ, "CLOUDINFER_PYTHON": str(installed.venv / "bin" / "python")}
    launched = subprocess.run([launcher, "--help"], capture_output=True, text=True, env=env,
                              timeout=60, check=False)  # fmt: skip
    assert launched.returncode == 0 and launched.stdout == out, launched.stderr
    empty = subprocess.run([launcher, "status"], capture_output=True, text=True, timeout=60,
                           env={"PATH": "/nonexistent"}, check=False)  # fmt: skip
    assert empty.returncode == 1
    assert empty.stderr.startswith("error: the cloudinfer-operator Python package is not installed")


def test_help_documents_every_flag_and_the_chart_uses_only_those(
    installed: Installed, helm: Helm
) -> None:
    out = run(installed.entry_point, "--help", cwd=installed.venv).stdout
    assert out.startswith("usage: cloudinfer-operator")
    flags = [opt for action in parser()._actions for opt in action.option_strings]
    assert "--standalone" in flags
    assert len(flags) > 10
    for flag in flags:
        assert re.search(rf"(^|[\s,\[]){re.escape(flag)}\b", out), f"{flag} missing from --help"
    for action in parser()._actions:
        if action.help and action.dest != "help":
            assert action.help.split("%")[0].split()[0] in out, action.dest
    deployment = one(render(helm, "watchNamespaces={a}"), "Deployment")
    for arg in deployment["spec"]["template"]["spec"]["containers"][0]["args"]:
        assert arg.split("=")[0] in flags, f"the chart passes {arg}, which the CLI lacks"


@pytest.fixture
def smoke_namespace(cluster: Cluster, cloudinfer_crds: Path) -> Iterator[str]:
    """A p-* namespace: the session operator of tests/operator only watches t-*."""
    name = f"p-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_installed_entry_point_reconciles_against_the_control_plane(
    installed: Installed, cluster: Cluster, api_client: client.ApiClient,
    packaging_sims: dict[str, RunningSim], smoke_namespace: str,
) -> None:  # fmt: skip
    kube, ns = Kube(api_client, cluster), smoke_namespace
    health, metrics = free_port(), free_port()
    log = installed.venv.parent / "operator.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CLOUDINFER"))}
    env |= {**IMAGE_ENV, "KUBECONFIG": str(cluster.kubeconfig), "HOME": str(log.parent)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [installed.entry_point, "--standalone", "--namespace", ns,
             f"--health-port={health}", f"--metrics-port={metrics}", "--log-format=json",
             "--allowed-endpoint-host=127.0.0.1"],
            cwd=installed.venv.parent, stdout=out, stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
    try:

        def healthy() -> bool:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=2).is_success
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=30, what="/healthz of the installed entry point")

        handle = new_sim_account(packaging_sims["huawei"], "huawei")
        service_id = handle.add_service(name="chat", replicas=1)
        kube.create_account(ns, handle)
        kube.create_service(ns, "chat", {"serviceId": service_id, "replicas": 2})
        kube.wait_condition(ns, "chat", reason="Converged", timeout=45)
        assert kube.get(ns, "chat")["status"]["observed"]["replicas"] == 2
        # The installed console script, found by kubectl's plugin discovery on PATH.
        plugin = subprocess.run(
            [str(cluster.bin_dir / "kubectl"), "cloudinfer", "get", "chat", "-n", ns,
             f"--metrics-url=http://127.0.0.1:{metrics}/metrics"],
            env={**env, "PATH": f"{installed.venv / 'bin'}{os.pathsep}{os.environ['PATH']}"},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert plugin.returncode == 0, plugin.stderr
        assert re.search(r"^Ready\s+True\s+Converged", plugin.stdout, re.M), plugin.stdout
        scrape = httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5).text
        assert "cloudinfer_" in scrape

        # Default onDelete (Retain): the operator releases its finalizer, so nothing is left.
        for plural, name in (("inferenceservices", "chat"), ("cloudaccounts", "acct")):
            kube.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, plural, name)

        def gone(plural: str, name: str) -> bool:
            try:
                kube.get(ns, name, plural)
            except ApiException as err:
                return err.status == 404
            return False

        wait_for(lambda: gone("inferenceservices", "chat") and gone("cloudaccounts", "acct"),
                 timeout=30, what="the operator to release both objects")  # fmt: skip
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, log.read_text()[-3000:]
    # JSON logs, as the chart configures them, and no tracebacks.
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines
    assert all(line.startswith("{") for line in lines), lines[:5]
    assert "Traceback" not in log.read_text()
