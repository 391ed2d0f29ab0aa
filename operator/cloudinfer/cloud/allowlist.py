"""Which hosts the operator may send cloud requests to (docs/security.md#endpoint-allow-list).

A pattern is a host name (`tione.tencentcloudapi.com`), a wildcard `*.SUFFIX` that matches
any host with at least one more label before SUFFIX (not SUFFIX itself), an IP address
(`127.0.0.1`, `::1` or `[::1]`), or `*` for any host; each optionally followed by `:PORT`,
which then must match too (a URL without a port has its scheme's: 443 or 80). Matching is
case-insensitive and ignores a trailing dot. IP addresses match only as written: a host name
that resolves to an allowed address is not allowed by it, and no name is resolved.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import httpx

DEFAULT_PATTERNS: Final = (
    "*.tencentcloudapi.com",
    "*.myhuaweicloud.com",
    "*.myhuaweicloud.cn",
    "*.baidubce.com",
)
"""The public API hosts of TI-ONE, ModelArts (ap-southeast-1 is on .cn) and Qianfan
(docs/clouds/*.md#endpoint)."""

_LABEL: Final = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_DEFAULT_PORTS: Final = {"https": 443, "http": 80}


def _normal_host(host: str) -> str:
    """Lower case, without a trailing dot; an IP address in its compressed form."""
    host = host.strip().lower().removesuffix(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host


@dataclass(frozen=True)
class HostPattern:
    """One allow-list entry, parsed."""

    host: str
    """A normalised host, `*.suffix`, or `*`."""
    port: int | None

    @staticmethod
    def parse(text: str) -> HostPattern:
        """Raises ValueError naming what is wrong with `text`."""
        spec = text.strip()
        if any(c in spec for c in "/@?#") or not spec:
            raise ValueError(
                f"{text!r} is not a host name, '*.' + a domain, an IP address or '*': give the "
                "host (optionally with :PORT), without a scheme or path"
            )
        port: int | None = None
        host = spec
        if spec.startswith("["):  # [v6] or [v6]:port
            end = spec.find("]")
            if end < 0:
                raise ValueError(f"{text!r}: unclosed '['")
            host, rest = spec[: end + 1], spec[end + 1 :]
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"{text!r}: expected ':PORT' after ']'")
                port = _port(text, rest[1:])
        elif spec.count(":") == 1:
            host, raw_port = spec.split(":")
            port = _port(text, raw_port)
        raw = host.strip().lower()
        if raw == "*":
            return HostPattern(raw, port)
        wildcard = raw.startswith("*.")
        host = _normal_host(raw.removeprefix("*.") if wildcard else raw)
        if not wildcard:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                pass
            else:
                return HostPattern(host, port)
        if not host or not all(_LABEL.match(label) for label in host.split(".")):
            raise ValueError(
                f"{text!r} is not a host name, '*.' + a domain, an IP address or '*' "
                "(optionally with :PORT)"
            )
        return HostPattern(f"*.{host}" if wildcard else host, port)

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host == "*":
            return True
        if self.host.startswith("*."):
            suffix = self.host[1:]  # ".example.com"
            return host.endswith(suffix) and len(host) > len(suffix)
        return host == self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def _port(text: str, raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return int(raw)


@dataclass(frozen=True)
class EndpointAllowList:
    """The hosts cloud requests may go to."""

    patterns: tuple[HostPattern, ...]

    @staticmethod
    def of(patterns: Iterable[str]) -> EndpointAllowList:
        return EndpointAllowList(tuple(HostPattern.parse(p) for p in patterns))

    def denial(self, url: str) -> str | None:
        """None when `url` (parsed as the HTTP client will) may be called, else why not."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as err:
            return f"endpoint {url!r} is not a valid URL: {err}"
        host = _normal_host(parsed.raw_host.decode("ascii"))
        port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme, 0)
        if any(pattern.matches(host, port) for pattern in self.patterns):
            return None
        allowed = ", ".join(str(p) for p in self.patterns) or "(none)"
        return (
            f"endpoint host {host}:{port} is not in the operator's endpoint allow-list "
            f"({allowed}); an operator admin can extend it with --allowed-endpoint-host"
        )


DEFAULT_ALLOW_LIST: Final = EndpointAllowList.of(DEFAULT_PATTERNS)
