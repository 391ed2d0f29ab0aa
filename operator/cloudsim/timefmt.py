"""Timestamp formats the clouds use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache

CHINA = timezone(timedelta(hours=8))


# Rendering a page of 100 services formats ~800 timestamps, mostly the same few seconds.
_FORMAT_CACHE = 4096


def iso_z(epoch: float) -> str:
    """`2022-11-28T02:59:43Z` (Tencent CreateTime/UpdateTime)."""
    return _iso_z(int(epoch))


@lru_cache(maxsize=_FORMAT_CACHE)
def _iso_z(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_china(epoch: float) -> str:
    """`2022-11-28T11:03:18+08:00` (Tencent condition times)."""
    return _iso_china(int(epoch))


@lru_cache(maxsize=_FORMAT_CACHE)
def _iso_china(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, CHINA).isoformat()


def parse_iso(text: str) -> float:
    """Parse an ISO-8601 instant with `Z` or an offset; naive times are taken as UTC+8."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=CHINA)
    return value.timestamp()


def millis(epoch: float) -> int:
    return int(epoch * 1000)
