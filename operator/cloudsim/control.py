"""A small Python client for the simulators' control API (`/_sim/...`)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

DEFAULT_TIMEOUT_SECONDS = 10.0


class ControlAPIError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class SimControl:
    """Drive one simulator's control API. Every method returns the decoded JSON answer."""

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url + "/_sim", timeout=timeout, trust_env=False
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SimControl:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(
        self, method: str, path: str, body: object = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        response = self._http.request(method, path, json=body, params=params)
        payload: dict[str, Any] = response.json()
        if response.status_code != 200:
            raise ControlAPIError(response.status_code, str(payload.get("error", payload)))
        return payload

    # state
    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/health"))

    def state(self) -> dict[str, Any]:
        return dict(self._call("GET", "/state"))

    def reset(self) -> None:
        self._call("POST", "/reset")

    # accounts and services
    def add_account(self, **spec: object) -> dict[str, Any]:
        """Tencent: name, secret_id, secret_key, regions, partial_config, uin.
        Huawei: name, ak, sk, projects, token. Baidu: name, ak, sk, regions, compute_units."""
        return dict(self._call("POST", "/accounts", spec)["account"])

    def accounts(self) -> dict[str, dict[str, Any]]:
        """Every account by name, without its secret (Qianfan: with its compute units)."""
        listed = self._call("GET", "/accounts")["accounts"]
        return {str(a["name"]): dict(a) for a in listed}

    def edit_account(self, name: str, **changes: object) -> dict[str, Any]:
        return dict(self._call("PATCH", f"/accounts/{name}", changes)["account"])

    def temporary_credentials(self, name: str, ttl: float = 1800) -> dict[str, Any]:
        """STS-style credentials of account `name`: secret id, secret key, token, expiry."""
        return dict(self._call("POST", f"/accounts/{name}/temporary-credentials", {"ttl": ttl}))

    def add_service(self, **spec: object) -> str:
        """Seed one service; returns its id. Fields depend on the cloud (docs/simulators.md)."""
        return str(self._call("POST", "/services", spec)["id"])

    def add_services(self, count: int, **template: object) -> dict[str, Any]:
        """Seed `count` services from one template (names get a numeric suffix)."""
        return dict(self._call("POST", "/services/bulk", {"count": count, "template": template}))

    def service(self, service_id: str) -> dict[str, Any]:
        """`{"service": <as the cloud renders it>, "internal": <cloud-neutral state>}`."""
        return dict(self._call("GET", f"/services/{service_id}"))

    def edit_service(self, service_id: str, **changes: object) -> dict[str, Any]:
        """Out-of-band (console) edit: applied at once, no transition, cancels one in flight."""
        return dict(self._call("PATCH", f"/services/{service_id}", changes))

    def delete_service(self, service_id: str) -> None:
        self._call("DELETE", f"/services/{service_id}")

    def platform_stop(self, service_id: str, reason: str = "arrears") -> dict[str, Any]:
        """The platform stops the service itself (Tencent ARREARS_STOP, Huawei frozen, ...)."""
        return dict(self._call("POST", f"/services/{service_id}/platform-stop", {"reason": reason}))

    # faults
    def inject(self, action: str, kind: str = "error", **spec: object) -> dict[str, Any]:
        """Add a fault rule: kind error|latency|reset|hang|malformed|html|oversized; code,
        message, http_status, latency, count, probability, account, size (oversized bytes)."""
        return dict(
            self._call("POST", "/faults", {"action": action, "kind": kind, **spec})["fault"]
        )

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults")["faults"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def remove_fault(self, fault_id: int) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    # clock
    def clock(self) -> dict[str, Any]:
        return dict(self._call("GET", "/clock"))

    def set_clock(
        self, *, speed: float | None = None, auth_skew: float | None = None
    ) -> dict[str, Any]:
        body: dict[str, float] = {}
        if speed is not None:
            body["speed"] = speed
        if auth_skew is not None:
            body["auth_skew"] = auth_skew
        return dict(self._call("PUT", "/clock", body))

    def advance(self, seconds: float) -> dict[str, Any]:
        """Move the virtual clock forward and run every event that came due."""
        return dict(self._call("POST", "/clock/advance", {"seconds": seconds}))

    # journal, limits, settings
    def journal(self, action: str | None = None, *, entries: bool = True) -> dict[str, Any]:
        params = {"entries": "1" if entries else "0"}
        if action is not None:
            params["action"] = action
        return dict(self._call("GET", "/journal", params=params)["actions"])

    def writes(self, action: str) -> list[dict[str, Any]]:
        """Every recorded write call of `action`: request id, params, status, error code."""
        return list(self.journal(action).get(action, {}).get("writes", []))

    def clear_journal(self) -> None:
        self._call("DELETE", "/journal")

    def rate_limits(self) -> dict[str, float]:
        return dict(self._call("GET", "/ratelimits")["rates"])

    def set_rate_limits(self, **rates: float) -> dict[str, float]:
        return dict(self._call("PUT", "/ratelimits", rates)["rates"])

    def settings(self) -> dict[str, Any]:
        return dict(self._call("GET", "/settings"))

    def update_settings(self, **changes: object) -> dict[str, Any]:
        return dict(self._call("PUT", "/settings", changes))
