"""`cloudinfer-controlplane up|down|status`: a local control plane for people.

`up` runs in the foreground until interrupted; `up --detach` returns once the plane is
ready and leaves a supervisor process behind, which `down` stops. The supervisor owns
the component processes, so killing it (even with SIGKILL) takes them down too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from controlplane.launcher import ControlPlane, ControlPlaneError

READY_FILE = "ready.json"
PID_FILE = "supervisor.pid"
DETACH_TIMEOUT_SECONDS = 180.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _hint(kubeconfig: Path) -> str:
    return (
        f"Control plane ready.\n"
        f"  export KUBECONFIG={kubeconfig}\n"
        f"  kubectl get --raw /readyz\n"
        f"Stop it with: make cluster-down"
    )


def _run_foreground(state_dir: Path, bin_dir: Path | None) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / READY_FILE).unlink(missing_ok=True)
    # Fresh certificates each start, so old etcd data would only hold stale objects.
    shutil.rmtree(state_dir / "etcd-data", ignore_errors=True)
    (state_dir / PID_FILE).write_text(str(os.getpid()))
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    plane = ControlPlane(bin_dir=bin_dir, work_dir=state_dir)
    try:
        plane.start()
        ready = {"kubeconfig": str(plane.kubeconfig), "server": plane.server_url, **plane.pids()}
        (state_dir / READY_FILE).write_text(json.dumps(ready))
        print(_hint(plane.kubeconfig), flush=True)
        while not stopping:
            dead = [name for name, c in plane.components.items() if not c.running()]
            if dead:
                print(f"component exited: {', '.join(dead)}; logs in {plane.log_dir}", flush=True)
                return 1
            time.sleep(0.5)
        return 0
    except ControlPlaneError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    finally:
        plane.stop()
        (state_dir / READY_FILE).unlink(missing_ok=True)
        (state_dir / PID_FILE).unlink(missing_ok=True)


def _up_detached(state_dir: Path, bin_dir: Path | None) -> int:
    existing = _read_pid(state_dir)
    if existing is not None and _pid_alive(existing):
        print(f"A control plane is already running (pid {existing}).")
        print(_hint(state_dir / "kubeconfig"))
        return 0
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / READY_FILE).unlink(missing_ok=True)
    argv = [sys.executable, "-m", "controlplane", "up", "--state-dir", str(state_dir)]
    if bin_dir is not None:
        argv += ["--bin-dir", str(bin_dir)]
    log_path = state_dir / "supervisor.log"
    with log_path.open("ab") as log:
        supervisor = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + DETACH_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if (state_dir / READY_FILE).exists():
            print(_hint(state_dir / "kubeconfig"))
            return 0
        if supervisor.poll() is not None:
            print(f"error: the control plane failed to start; see {log_path}", file=sys.stderr)
            print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
            return 1
        time.sleep(0.2)
    supervisor.terminate()
    print(f"error: not ready after {DETACH_TIMEOUT_SECONDS:.0f}s; see {log_path}", file=sys.stderr)
    return 1


def _down(state_dir: Path) -> int:
    pid = _read_pid(state_dir)
    if pid is None or not _pid_alive(pid):
        print("No control plane is running.")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _pid_alive(pid):
        # Its children die with it (PR_SET_PDEATHSIG).
        os.kill(pid, signal.SIGKILL)
    print("Control plane stopped.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cloudinfer-controlplane",
        description="Run a local etcd + kube-apiserver + kube-controller-manager on loopback.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a control plane")
    up.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".cluster"),
        help="where certificates, etcd data, logs and the kubeconfig go",
    )
    up.add_argument(
        "--bin-dir",
        type=Path,
        default=None,
        help="Kubernetes binaries (default: $CLOUDINFER_K8S_BIN)",
    )
    up.add_argument(
        "--detach",
        action="store_true",
        help="return once ready, leaving the plane running in the background",
    )
    down = sub.add_parser("down", help="stop a detached control plane")
    down.add_argument("--state-dir", type=Path, default=Path(".cluster"))
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir.resolve()
    if args.command == "down":
        return _down(state_dir)
    if args.detach:
        return _up_detached(state_dir, args.bin_dir)
    return _run_foreground(state_dir, args.bin_dir)


if __name__ == "__main__":
    sys.exit(main())
