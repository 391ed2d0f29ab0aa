"""`cloudsim serve` end to end, and the core pieces (clock, buckets, faults) in isolation."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cloudsim.clock import VirtualClock
from cloudsim.faults import DEFAULT_OVERSIZED_BYTES, FaultInjector
from cloudsim.http import Response
from cloudsim.ratelimit import RateLimiter
from cloudsim.server import make_sim

REPO = Path(__file__).parents[2]


def test_help_documents_every_flag() -> None:
    text = subprocess.run(
        [sys.executable, "-m", "cloudsim", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in (
        "--cloud",
        "--port",
        "--host",
        "--seed",
        "--speed",
        "--demo-services",
        "--no-demo",
        "--log-level",
    ):
        assert flag in text


@pytest.mark.timeout(60)
def test_serve_all_gives_each_cloud_its_port_and_control_api_answers() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cloudsim",
            "serve",
            "--cloud",
            "all",
            "--port",
            "0",
            "--speed",
            "0",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        urls = dict(proc.stdout.readline().split() for _ in range(3))
        assert set(urls) == {"tencent", "huawei", "baidu"}
        assert len(set(urls.values())) == 3
        for cloud, url in urls.items():
            state = httpx.get(f"{url}/_sim/state", trust_env=False, timeout=5).json()
            assert (state["cloud"], state["services"], state["accounts"]) == (cloud, 3, ["demo"])
        moved = httpx.post(
            f"{urls['tencent']}/_sim/clock/advance", json={"seconds": 60}, trust_env=False
        )
        assert moved.json()["speed"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_frozen_clock_moves_only_by_advance() -> None:
    clock = VirtualClock(start=1000.0, speed=0)
    assert clock.now() == 1000.0
    assert clock.advance(5) == 1005.0
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_speed_factor_scales_real_time() -> None:
    real = [0.0]
    clock = VirtualClock(start=0.0, speed=60, monotonic=lambda: real[0])
    real[0] = 2.0
    assert clock.now() == 120.0
    clock.set_speed(1)
    real[0] = 3.0
    assert clock.now() == 121.0


def test_token_bucket_refills_with_virtual_time() -> None:
    clock = VirtualClock(start=0.0, speed=0)
    limiter = RateLimiter(clock, {"A": 20})
    assert sum(limiter.allow("acct", "r", "A") for _ in range(30)) == 20
    assert limiter.allow("other-acct", "r", "A")  # buckets are per account
    clock.advance(0.25)
    assert sum(limiter.allow("acct", "r", "A") for _ in range(30)) == 5
    assert all(limiter.allow("acct", "r", "B") for _ in range(1000))  # unlisted: unlimited


def test_fault_rules_count_and_seeded_probability() -> None:
    faults = FaultInjector(random.Random(1))  # noqa: S311 - determinism, not secrecy
    faults.add({"action": "X", "kind": "error", "count": 2})
    assert [faults.pick("X", "a") is not None for _ in range(3)] == [True, True, False]
    assert faults.pick("Y", "a") is None

    def draws(seed: int) -> list[bool]:
        injector = FaultInjector(random.Random(seed))  # noqa: S311
        injector.add({"action": "*", "kind": "latency", "probability": 0.3})
        return [injector.pick("Z", "a") is not None for _ in range(50)]

    assert draws(3) == draws(3)
    assert 5 < sum(draws(3)) < 25
    with pytest.raises(ValueError, match="unknown fault fields"):
        faults.add({"action": "X", "kind": "error", "colour": 1})
    with pytest.raises(ValueError, match="size"):
        faults.add({"action": "X", "kind": "oversized", "size": -1})


@pytest.mark.parametrize(
    ("spec", "status", "content_type", "head"),
    [
        ({}, 200, "application/json", b'{"'),
        ({"http_status": 502}, 502, "text/html", b"<html>"),
        ({"size": 1000}, 200, "application/json", b'{"'),
    ],
    ids=["truncated-json-11MiB", "html-502-11MiB", "sized"],
)
def test_oversized_fault_bodies(
    spec: dict[str, int], status: int, content_type: str, head: bytes
) -> None:
    sim = make_sim("tencent", seed=1)
    fault = sim.faults.add({"action": "*", "kind": "oversized", **spec})
    outcome = asyncio.run(sim.apply_fault(fault, "r"))
    assert isinstance(outcome, Response)
    assert (outcome.status, outcome.content_type) == (status, content_type)
    assert len(outcome.body) == spec.get("size", DEFAULT_OVERSIZED_BYTES)
    assert outcome.body.startswith(head)
    with pytest.raises(json.JSONDecodeError):
        json.loads(outcome.body)
