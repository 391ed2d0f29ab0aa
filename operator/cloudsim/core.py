"""The shared simulator core: auth hook, faults, rate limits, journal, clock, control API.

Each cloud subclasses `CloudSim` and supplies routing, authentication, error envelopes,
actions and rendering. The core is plain ASGI (see `cloudsim.http`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cloudsim.clock import VirtualClock
from cloudsim.faults import DEFAULT_HANG_SECONDS, Fault, FaultInjector, FaultKind
from cloudsim.http import (
    ASGIApp,
    Hang,
    JSONValue,
    Request,
    ResetConnection,
    Response,
    json_response,
)
from cloudsim.journal import Journal, JournalEntry
from cloudsim.ratelimit import RateLimiter
from cloudsim.store import Account, EventQueue, Service, ServiceStore

CONTROL_PREFIX = "/_sim"
_OVERSIZED_JSON_HEAD = b'{"RequestId": "oversized", "Result": {"Items": ['
_OVERSIZED_HTML = (b"<html><head><title>502 Bad Gateway</title></head><body>", b"</body></html>")


class ApiError(Exception):
    """A cloud API error; the cloud renders it in its own envelope."""

    def __init__(self, code: str, message: str, http_status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Call:
    """A routed API request before it is executed."""

    action: str
    write: bool
    params: dict[str, Any]
    region: str = ""
    path_params: dict[str, str] = field(default_factory=dict)
    # How the request was made, for `authenticate` (e.g. TI-ONE's signature version).
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class Settings:
    """Tunable behaviour; `PUT /_sim/settings` changes any of these fields."""

    scale_seconds: float = 20.0  # virtual seconds a scale takes to settle
    start_seconds: float = 30.0  # virtual seconds a resume/start takes
    stop_seconds: float = 10.0  # virtual seconds a stop takes
    # Seconds added to the server clock used for signature checks (simulates client skew).
    auth_skew: float = 0.0
    # Huawei v1 list `offset`: "page" (the doc: 分页列表的起始页) or "item" [UNVERIFIED].
    huawei_offset_mode: str = "page"
    # Tencent: PartialConfig mode for accounts created without one ("available"|"removed").
    default_partial_config: str = "available"
    # Qianfan: `runStatus` while DeactivateService takes effect. The docs name no in-between
    # status [UNVERIFIED]; `Deploying` is the only documented in-progress one.
    baidu_deactivating_status: str = "Deploying"

    def update(self, spec: dict[str, Any]) -> None:
        names = {f.name: f for f in dataclasses.fields(self)}
        for key, value in spec.items():
            if key not in names:
                raise ControlError(400, f"unknown setting {key!r}")
            current = getattr(self, key)
            setattr(self, key, type(current)(value))
        if self.huawei_offset_mode not in ("page", "item"):
            raise ControlError(400, "huawei_offset_mode must be 'page' or 'item'")
        if self.baidu_deactivating_status not in ("Deploying", "Serving"):
            raise ControlError(400, "baidu_deactivating_status must be 'Deploying' or 'Serving'")


Route = tuple[str, str, Callable[..., Any]]


class CloudSim(ABC):
    """One simulated cloud. Call `asgi()` for the ASGI app."""

    cloud: ClassVar[str]
    default_rates: ClassVar[dict[str, float]]

    def __init__(
        self,
        *,
        seed: int = 0,
        speed: float = 1.0,
        start: float | None = None,
        clock: VirtualClock | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)  # noqa: S311 - determinism, not secrecy
        self.clock = clock or VirtualClock(start=start, speed=speed)
        self.settings = settings or Settings()
        self._initial_settings = dataclasses.replace(self.settings)
        self.lock = threading.RLock()
        self.accounts: dict[str, Account] = {}
        self.keys: dict[str, Account] = {}
        self.store = ServiceStore()
        self.events = EventQueue()
        self.limiter = RateLimiter(self.clock, self.default_rates)
        self.journal = Journal()
        self.faults = FaultInjector(self.rng)
        self._control_routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = []
        self._register_control_routes()
        self.init_cloud_state()

    @abstractmethod
    def init_cloud_state(self) -> None:
        """Create (or clear) a cloud's own indexes; called at start and on reset."""

    # ----- hooks for each cloud -------------------------------------------------------------

    @abstractmethod
    def route(self, req: Request) -> Call:
        """Name the action of a request and parse its parameters (raise ApiError if unknown)."""

    @abstractmethod
    def authenticate(self, req: Request, call: Call) -> Account:
        """Verify the signature; return the caller's account or raise ApiError."""

    @abstractmethod
    def dispatch(self, call: Call, account: Account, request_id: str) -> Response:
        """Execute a routed, authenticated, admitted call."""

    @abstractmethod
    def error_response(self, err: ApiError, request_id: str) -> Response:
        """Render an error in the cloud's envelope."""

    @abstractmethod
    def throttled_error(self, action: str) -> ApiError:
        """The cloud's own throttling error."""

    @abstractmethod
    def seed_service(self, spec: dict[str, Any]) -> Service:
        """Create a service from a control-API spec."""

    @abstractmethod
    def render(self, service: Service) -> dict[str, Any]:
        """The service as the cloud's detail API shows it."""

    @abstractmethod
    def new_account(self, spec: dict[str, Any]) -> Account:
        """Build an account from a control-API spec, with cloud defaults."""

    def console_edit(self, service: Service, spec: dict[str, Any]) -> None:
        """Apply an out-of-band edit (drift), immediately and without transitions."""
        simple = {
            "name": str,
            "status": str,
            "replicas": int,
            "ready": int,
            "old_replicas": int,
            "rps_enabled": bool,
            "rps_limit": float,
            "stop_enabled": bool,
            "business_status": str,
        }
        for key, value in spec.items():
            if key in simple:
                setattr(service, key, simple[key](value))
            elif key == "stop_at":
                service.stop_at = None if value is None else float(value)
            elif key == "extra":
                service.extra.update(dict(value))
            else:
                raise ControlError(400, f"cannot edit field {key!r} on {self.cloud}")
        service.generation += 1  # a console edit cancels any transition in flight
        service.updated_at = self.clock.now()
        self.arm_schedule(service)

    def platform_stop(self, service: Service, reason: str) -> None:
        """The platform stops a service on its own (billing, whitelist)."""
        raise ControlError(400, f"platform stops are not simulated on {self.cloud}")

    def arm_schedule(self, service: Service) -> None:
        """(Re)arm the scheduled-stop event after `stop_enabled`/`stop_at` changed."""
        service.schedule_token += 1
        if not service.stop_enabled or service.stop_at is None:
            return
        token, due = service.schedule_token, service.stop_at

        def fire() -> None:
            if service.schedule_token != token or self.store.get(service.service_id) is not service:
                return
            self.fire_scheduled_stop(service, due)

        self.events.push(due, fire)

    @abstractmethod
    def fire_scheduled_stop(self, service: Service, due: float) -> None:
        """The scheduled stop came due at `due`: run the cloud's stop path from that moment,
        even when a clock jump runs the event later."""

    def issue_temporary_credentials(self, account: Account, ttl: float) -> dict[str, Any]:
        """Temporary credentials (STS) for `account`, valid `ttl` seconds of the auth clock."""
        raise ControlError(400, f"temporary credentials are not simulated on {self.cloud}")

    # ----- shared helpers ----------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now()

    def auth_now(self) -> float:
        return self.clock.wall() + self.settings.auth_skew

    def tick(self) -> None:
        self.events.run_due(self.clock.now())

    def new_request_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def new_hex(self, length: int) -> str:
        alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def account_for_key(self, access_key: str) -> Account | None:
        return self.keys.get(access_key)

    def secret_for(self, access_key: str) -> str | None:
        account = self.keys.get(access_key)
        return None if account is None else account.secret_key

    def add_account(self, account: Account) -> Account:
        if account.name in self.accounts:
            raise ControlError(409, f"account {account.name} exists")
        if account.access_key in self.keys:
            raise ControlError(409, f"access key {account.access_key} is taken")
        self.accounts[account.name] = account
        self.keys[account.access_key] = account
        return account

    def add_service(self, spec: dict[str, Any]) -> Service:
        with self.lock:
            service = self.seed_service(spec)
            self.arm_schedule(service)
            return service

    def get_service(self, service_id: str) -> Service:
        service = self.store.get(service_id)
        if service is None:
            raise ControlError(404, f"no service {service_id}")
        return service

    def transition(
        self,
        service: Service,
        steps: list[tuple[float, Callable[[Service], None]]],
        *,
        start: float | None = None,
    ) -> None:
        """Schedule `steps` (delay after the previous step, mutation) from `start` (default
        now); cancels older ones. Steps already due run at the next tick, stamped with their
        own due times."""
        service.generation += 1
        generation = service.generation
        due = self.clock.now() if start is None else start
        for delay, mutate in steps:
            due += delay

            def run(mutate: Callable[[Service], None] = mutate, when: float = due) -> None:
                if (
                    service.generation != generation
                    or self.store.get(service.service_id) is not service
                ):
                    return
                mutate(service)
                service.transition_at = when
                service.updated_at = when

            self.events.push(due, run)

    def reset(self) -> None:
        with self.lock:
            self.accounts.clear()
            self.keys.clear()
            self.store.clear()
            self.events.clear()
            self.limiter.reset()
            self.limiter.rates = dict(self.default_rates)
            self.journal.clear()
            self.faults.clear()
            self.rng.seed(self.seed)
            self.settings = dataclasses.replace(self._initial_settings)
            self.init_cloud_state()

    def asgi(self) -> ASGIApp:
        return ASGIApp(self.handle)

    # ----- request pipeline -----------------------------------------------------------------

    async def handle(self, req: Request) -> Response | Hang:
        if req.path == CONTROL_PREFIX or req.path.startswith(CONTROL_PREFIX + "/"):
            return self.control(req)
        return await self.handle_api(req)

    async def handle_api(self, req: Request) -> Response | Hang:
        with self.lock:
            request_id = self.new_request_id()
        action, account_name, write, throttled = "Unknown", "", False, False
        params: dict[str, Any] | None = None
        path_params: dict[str, str] = {}
        fault: Fault | None = None
        client = req.header("user-agent", "") or ""
        try:
            with self.lock:
                call = self.route(req)
                action, write, params = call.action, call.write, call.params
                path_params = call.path_params
                account = self.authenticate(req, call)
                account_name = account.name
                fault = self.faults.pick(action, account.name)
            if fault is not None:
                try:
                    outcome = await self.apply_fault(fault, request_id)
                except ResetConnection:
                    # Journaled before the connection goes, so tests can count resets too.
                    self._record(
                        action, request_id=request_id, account=account_name, outcome=None,
                        write=write, params=params, path_params=path_params, fault=fault,
                        client=client,
                    )  # fmt: skip
                    raise
                if outcome is not None:
                    self._record(
                        action,
                        request_id=request_id,
                        account=account_name,
                        outcome=outcome,
                        write=write,
                        params=params,
                        path_params=path_params,
                        fault=fault,
                        client=client,
                    )
                    return outcome
            with self.lock:
                if not self.limiter.allow(account.name, call.region, action):
                    throttled = True
                    raise self.throttled_error(action)
                self.tick()
                response = self.dispatch(call, account, request_id)
        except ApiError as err:
            with self.lock:
                response = self.error_response(err, request_id)
            self._record(
                action,
                request_id=request_id,
                account=account_name,
                outcome=response,
                write=write,
                params=params,
                path_params=path_params,
                err=err,
                throttled=throttled,
                client=client,
            )
            return response
        self._record(
            action,
            request_id=request_id,
            account=account_name,
            outcome=response,
            write=write,
            params=params,
            path_params=path_params,
            client=client,
        )
        return response

    async def apply_fault(self, fault: Fault, request_id: str) -> Response | Hang | None:
        if fault.kind is FaultKind.LATENCY:
            await asyncio.sleep(fault.latency)
            return None
        if fault.kind is FaultKind.RESET:
            raise ResetConnection(f"fault {fault.id}")
        if fault.kind is FaultKind.HANG:
            return Hang(fault.latency or DEFAULT_HANG_SECONDS)
        if fault.kind is FaultKind.MALFORMED:
            return Response(status=fault.http_status or 200, body=b'{"Response": {"RequestId": "')
        if fault.kind is FaultKind.HTML:
            page = (
                "<html><head><title>502 Bad Gateway</title></head><body>"
                "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
            )
            return Response(
                status=fault.http_status or 502, body=page.encode(), content_type="text/html"
            )
        if fault.kind is FaultKind.OVERSIZED:
            return _oversized(fault)
        err = ApiError(fault.code, fault.message, fault.http_status)
        with self.lock:
            return self.error_response(err, request_id)

    def _record(
        self,
        action: str,
        *,
        request_id: str,
        account: str,
        outcome: Response | Hang | None,
        write: bool,
        params: dict[str, Any] | None,
        path_params: dict[str, str] | None = None,
        fault: Fault | None = None,
        err: ApiError | None = None,
        throttled: bool = False,
        client: str = "",
    ) -> None:
        """Journal one call; `outcome` None is a connection reset (no HTTP status)."""
        status = outcome.status if isinstance(outcome, Response) else 0
        code = err.code if err is not None else None
        if code is None and fault is not None:
            code = fault.code if fault.kind is FaultKind.ERROR else f"fault:{fault.kind.value}"
        with self.lock:
            self.journal.record(
                JournalEntry(
                    action=action,
                    time=self.clock.now(),
                    request_id=request_id,
                    account=account,
                    http_status=status,
                    error_code=code,
                    throttled=throttled,
                    write=write,
                    params=params if write else None,
                    path_params=dict(path_params or {}) if write else None,
                    client=client,
                )
            )

    # ----- control API ----------------------------------------------------------------------

    def _register_control_routes(self) -> None:
        table: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", r"/health", self._c_health),
            ("GET", r"/state", self._c_state),
            ("POST", r"/reset", self._c_reset),
            ("GET", r"/accounts", self._c_accounts),
            ("POST", r"/accounts", self._c_add_account),
            ("PATCH", r"/accounts/(?P<name>[^/]+)", self._c_edit_account),
            (
                "POST",
                r"/accounts/(?P<name>[^/]+)/temporary-credentials",
                self._c_temporary_credentials,
            ),
            ("GET", r"/services", self._c_services),
            ("POST", r"/services", self._c_add_service),
            ("POST", r"/services/bulk", self._c_bulk),
            ("GET", r"/services/(?P<sid>[^/]+)", self._c_service),
            ("PATCH", r"/services/(?P<sid>[^/]+)", self._c_edit_service),
            ("DELETE", r"/services/(?P<sid>[^/]+)", self._c_delete_service),
            ("POST", r"/services/(?P<sid>[^/]+)/platform-stop", self._c_platform_stop),
            ("GET", r"/faults", self._c_faults),
            ("POST", r"/faults", self._c_add_fault),
            ("DELETE", r"/faults", self._c_clear_faults),
            ("DELETE", r"/faults/(?P<fid>\d+)", self._c_delete_fault),
            ("GET", r"/clock", self._c_clock),
            ("PUT", r"/clock", self._c_set_clock),
            ("POST", r"/clock/advance", self._c_advance),
            ("GET", r"/journal", self._c_journal),
            ("DELETE", r"/journal", self._c_clear_journal),
            ("GET", r"/ratelimits", self._c_rates),
            ("PUT", r"/ratelimits", self._c_set_rates),
            ("GET", r"/settings", self._c_settings),
            ("PUT", r"/settings", self._c_set_settings),
        ]
        self._control_routes = [
            (method, re.compile(CONTROL_PREFIX + pattern + "$"), fn)
            for method, pattern, fn in table
        ]

    def control(self, req: Request) -> Response:
        try:
            body: Any = req.json() if req.body else {}
        except json.JSONDecodeError:
            return json_response(400, {"error": "body is not JSON"})
        query = dict(req.query)
        allowed: list[str] = []
        for method, pattern, fn in self._control_routes:
            match = pattern.match(req.path)
            if match is None:
                continue
            if method != req.method:
                allowed.append(method)
                continue
            try:
                with self.lock:
                    self.tick()
                    result = fn(body, query, **match.groupdict())
            except ControlError as err:
                return json_response(err.status, {"error": err.message})
            except (ValueError, TypeError, KeyError) as err:
                return json_response(400, {"error": f"{type(err).__name__}: {err}"})
            return json_response(200, result)
        if allowed:
            return json_response(405, {"error": f"use {', '.join(allowed)}"})
        return json_response(404, {"error": f"no control route {req.method} {req.path}"})

    def _c_health(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        return {"cloud": self.cloud, "ok": True}

    def _c_state(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        return {
            "cloud": self.cloud,
            "now": self.clock.now(),
            "speed": self.clock.speed,
            "seed": self.seed,
            "accounts": sorted(self.accounts),
            "services": len(self.store),
            "pending_events": len(self.events),
            "faults": len(self.faults.rules),
        }

    def _c_reset(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        self.reset()
        return {"reset": True}

    def _c_accounts(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        return {"accounts": [a.to_json() for a in self.accounts.values()]}

    def _c_add_account(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        return {"account": self.add_account(self.new_account(dict(body))).to_json()}

    def _c_edit_account(self, body: JSONValue, query: dict[str, str], name: str) -> dict[str, Any]:
        account = self.accounts.get(name)
        if account is None:
            raise ControlError(404, f"no account {name}")
        for key, value in dict(body).items():
            if key == "partial_config":
                if value not in ("available", "removed"):
                    raise ControlError(400, "partial_config must be 'available' or 'removed'")
                account.partial_config = value
            elif key == "token":
                account.token = None if value is None else str(value)
            elif key == "regions":
                account.regions = [str(r) for r in value]
            else:
                raise ControlError(400, f"cannot edit account field {key!r}")
        return {"account": account.to_json()}

    def _c_temporary_credentials(
        self, body: JSONValue, query: dict[str, str], name: str
    ) -> dict[str, Any]:
        account = self.accounts.get(name)
        if account is None:
            raise ControlError(404, f"no account {name}")
        ttl = float(dict(body).get("ttl", 1800))
        if ttl <= 0:
            raise ControlError(400, "ttl must be positive")
        return self.issue_temporary_credentials(account, ttl)

    def _c_services(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        limit = int(query.get("limit", "100"))
        offset = int(query.get("offset", "0"))
        items = list(self.store.by_id.values())[offset : offset + limit]
        return {"total": len(self.store), "services": [s.internal() for s in items]}

    def _c_add_service(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        service = self.add_service(dict(body))
        return {"id": service.service_id, "service": self.render(service)}

    def _c_bulk(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        spec = dict(body)
        count = int(spec.pop("count"))
        template = dict(spec.pop("template", {}))
        if spec:
            raise ControlError(400, f"unknown bulk fields {sorted(spec)}")
        prefix = str(template.pop("name", "svc"))
        ids = [
            self.add_service({**template, "name": f"{prefix}-{i:05d}"}).service_id
            for i in range(count)
        ]
        return {
            "count": len(ids),
            "first": ids[0] if ids else None,
            "last": ids[-1] if ids else None,
        }

    def _c_service(self, body: JSONValue, query: dict[str, str], sid: str) -> dict[str, Any]:
        service = self.get_service(sid)
        return {"id": sid, "service": self.render(service), "internal": service.internal()}

    def _c_edit_service(self, body: JSONValue, query: dict[str, str], sid: str) -> dict[str, Any]:
        service = self.get_service(sid)
        self.console_edit(service, dict(body))
        return {"id": sid, "service": self.render(service), "internal": service.internal()}

    def _c_delete_service(self, body: JSONValue, query: dict[str, str], sid: str) -> dict[str, Any]:
        if self.store.remove(sid) is None:
            raise ControlError(404, f"no service {sid}")
        return {"deleted": sid}

    def _c_platform_stop(self, body: JSONValue, query: dict[str, str], sid: str) -> dict[str, Any]:
        service = self.get_service(sid)
        self.platform_stop(service, str(dict(body).get("reason", "arrears")))
        return {"id": sid, "service": self.render(service), "internal": service.internal()}

    def _c_faults(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        return {"faults": [f.to_json() for f in self.faults.rules]}

    def _c_add_fault(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        return {"fault": self.faults.add(dict(body)).to_json()}

    def _c_clear_faults(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        self.faults.clear()
        return {"faults": []}

    def _c_delete_fault(self, body: JSONValue, query: dict[str, str], fid: str) -> dict[str, Any]:
        if not self.faults.remove(int(fid)):
            raise ControlError(404, f"no fault {fid}")
        return {"deleted": int(fid)}

    def _clock_json(self) -> dict[str, Any]:
        return {
            "now": self.clock.now(),
            "speed": self.clock.speed,
            "wall": self.clock.wall(),
            "auth_skew": self.settings.auth_skew,
        }

    def _c_clock(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        return self._clock_json()

    def _c_set_clock(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        spec = dict(body)
        if "speed" in spec:
            self.clock.set_speed(float(spec.pop("speed")))
        if "auth_skew" in spec:
            self.settings.auth_skew = float(spec.pop("auth_skew"))
        if spec:
            raise ControlError(400, f"unknown clock fields {sorted(spec)}")
        return self._clock_json()

    def _c_advance(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        seconds = float(dict(body).get("seconds", 0))
        if seconds < 0:
            raise ControlError(400, "the clock only moves forward")
        self.clock.advance(seconds)
        ran = self.events.run_due(self.clock.now())
        return {**self._clock_json(), "events_run": ran}

    def _c_journal(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        entries = query.get("entries", "1") not in ("0", "false")
        return {"actions": self.journal.summary(query.get("action"), entries=entries)}

    def _c_clear_journal(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        self.journal.clear()
        return {"actions": {}}

    def _c_rates(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        return {"rates": dict(self.limiter.rates)}

    def _c_set_rates(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        for action, rate in dict(body).items():
            self.limiter.rates[str(action)] = float(rate)
        self.limiter.reset()
        return {"rates": dict(self.limiter.rates)}

    def _c_settings(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        return dataclasses.asdict(self.settings)

    def _c_set_settings(self, body: JSONValue, query: dict[str, str]) -> dict[str, Any]:
        self.settings.update(dict(body))
        return dataclasses.asdict(self.settings)


def _oversized(fault: Fault) -> Response:
    """A `fault.size`-byte body: an unclosed JSON document, or an HTML page for a 4xx/5xx."""
    status = fault.http_status or 200
    if status >= 400:
        head, tail = _OVERSIZED_HTML
        body = head + b" " * max(0, fault.size - len(head) - len(tail)) + tail
        return Response(status=status, body=body, content_type="text/html")
    return Response(status=status, body=_OVERSIZED_JSON_HEAD.ljust(fault.size))
