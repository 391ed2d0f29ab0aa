"""Running simulators: in a background thread for tests, or several ports in one process."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from cloudsim.baidu import BaiduSim
from cloudsim.control import SimControl
from cloudsim.core import CloudSim, Settings
from cloudsim.http import ASGIApp, Receive, Scope, Send
from cloudsim.huawei import HuaweiSim
from cloudsim.tencent import TencentSim

CLOUDS: dict[str, type[CloudSim]] = {"tencent": TencentSim, "huawei": HuaweiSim, "baidu": BaiduSim}
LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 10.0


def make_sim(
    cloud: str,
    *,
    seed: int = 0,
    speed: float = 1.0,
    start: float | None = None,
    settings: Settings | None = None,
) -> CloudSim:
    """Build one simulator by cloud name (`tencent`, `huawei` or `baidu`)."""
    try:
        cls = CLOUDS[cloud]
    except KeyError:
        raise ValueError(f"unknown cloud {cloud!r}; expected one of {sorted(CLOUDS)}") from None
    return cls(seed=seed, speed=speed, start=start, settings=settings)


def bind(host: str = LOOPBACK, port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it the response body (a second write after the
    # headers) waits for the client's delayed ACK, about 40 ms per request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(256)
    sock.setblocking(False)
    return sock


class PortDispatcher:
    """One ASGI app for several listening sockets: each local port is one cloud."""

    def __init__(self, sims_by_port: dict[int, CloudSim]) -> None:
        self._apps = {port: sim.asgi() for port, sim in sims_by_port.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            first = next(iter(self._apps.values()))
            await first(scope, receive, send)
            return
        server = scope.get("server") or ("", 0)
        app = self._apps.get(int(server[1] or 0))
        if app is None:
            return
        await app(scope, receive, send)


def uvicorn_config(app: ASGIApp | PortDispatcher, *, log_level: str = "warning") -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="off",
        log_level=log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
        http="h11",
    )


@dataclass
class RunningSim:
    """A simulator served on loopback from a background thread."""

    sim: CloudSim
    host: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """`host:port`, the form the Tencent SDK's HttpProfile(endpoint=...) wants."""
        return f"{self.host}:{self.port}"

    @property
    def control(self) -> SimControl:
        return SimControl(self.base_url)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> RunningSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(
    cloud: str | CloudSim,
    *,
    seed: int = 0,
    speed: float = 1.0,
    host: str = LOOPBACK,
    port: int = 0,
    log_level: str = "warning",
) -> RunningSim:
    """Serve a simulator on a (free, by default) loopback port from a daemon thread.

    Returns once the server accepts connections. Call `.stop()` (or use it as a context
    manager) to shut it down.
    """
    sim = cloud if isinstance(cloud, CloudSim) else make_sim(cloud, seed=seed, speed=speed)
    sock = bind(host, port)
    server = uvicorn.Server(uvicorn_config(sim.asgi(), log_level=log_level))

    def run() -> None:
        asyncio.run(server.serve(sockets=[sock]))

    thread = threading.Thread(target=run, name=f"cloudsim-{sim.cloud}", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the {sim.cloud} simulator did not start")
        time.sleep(0.01)
    return RunningSim(sim=sim, host=host, port=sock.getsockname()[1], server=server, thread=thread)


@contextmanager
def running(cloud: str | CloudSim, *, seed: int = 0, speed: float = 1.0) -> Iterator[RunningSim]:
    """`serve_in_thread` as a context manager."""
    handle = serve_in_thread(cloud, seed=seed, speed=speed)
    try:
        yield handle
    finally:
        handle.stop()


def bind_all(ports: dict[str, int], host: str = LOOPBACK) -> dict[str, socket.socket]:
    return {cloud: bind(host, port) for cloud, port in ports.items()}


def serve_sockets(
    sims: dict[str, CloudSim], sockets: dict[str, socket.socket], log_level: str = "info"
) -> None:
    """Serve each cloud on its socket from one uvicorn server (blocks; Ctrl-C stops it)."""
    by_port = {sockets[c].getsockname()[1]: sims[c] for c in sims}
    server = uvicorn.Server(uvicorn_config(PortDispatcher(by_port), log_level=log_level))
    server.run(sockets=list(sockets.values()))
