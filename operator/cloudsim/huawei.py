"""Huawei Cloud ModelArts v1 services API (seed 002): REST under /v1/{project_id}/services."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

from cloudsim.core import ApiError, Call, CloudSim, ControlError
from cloudsim.http import JSONValue, Request, Response, json_response
from cloudsim.signing import AuthError, AuthReason, sdk_hmac
from cloudsim.store import Account, Service
from cloudsim.timefmt import millis

LIST = "ListServices"
SHOW = "ShowService"
UPDATE = "UpdateService"
UPDATE_PROPERTY = "UpdateServiceByProperty"

# No per-API limit is documented for ModelArts service management; the gateway throttles
# with APIGW.0308. These defaults are [UNVERIFIED] and can be changed via /_sim/ratelimits.
RATES: dict[str, float] = {LIST: 20, SHOW: 50, UPDATE: 20, UPDATE_PROPERTY: 20}

DEFAULT_LIMIT = 1000  # v1 ListServices `limit` default (ListServices doc)

_LIST_RE = re.compile(r"^/v1/(?P<pid>[^/]+)/services/?$")
_ONE_RE = re.compile(r"^/v1/(?P<pid>[^/]+)/services/(?P<sid>[^/]+)/?$")
_PROPERTY_RE = re.compile(r"^/v1/(?P<pid>[^/]+)/services/(?P<sid>[^/]+)/property/?$")

# HTTP status of each error code we emit (ModelArts error appendix, API gateway docs).
STATUS_BY_CODE: dict[str, int] = {
    "APIGW.0101": 404,
    "APIGW.0301": 401,
    "APIGW.0303": 401,
    "APIGW.0308": 429,
    "ModelArts.0107": 400,
    "ModelArts.0210": 403,
    "ModelArts.3501": 500,
    "ModelArts.3502": 404,
    "ModelArts.3503": 409,
    "ModelArts.3505": 500,
    "ModelArts.3519": 400,
    "ModelArts.4116": 403,
}

INVALID = "ModelArts.0107"  # "The values of the request parameters ({0},{1}) are invalid."
CONFLICT = "ModelArts.3519"  # update not allowed in the current state

TIME_UNITS = {"MINUTES": 60, "HOURS": 3600, "DAYS": 86400}
CONFIG_REQUIRED = ("model_id", "weight", "specification", "instance_count")
CONFIG_FIELDS = frozenset(
    {
        *CONFIG_REQUIRED,
        "custom_spec",
        "envs",
        "cluster_id",
        "model_name",
        "model_version",
        "pool_name",
    }
)
BUSY = frozenset({"deploying", "stopping", "deleting"})


def _invalid(message: str) -> ApiError:
    return ApiError(INVALID, message)


class HuaweiSim(CloudSim):
    cloud: ClassVar[str] = "huawei"
    default_rates: ClassVar[dict[str, float]] = RATES

    # ----- routing and auth ----------------------------------------------------------------

    def init_cloud_state(self) -> None:
        """ModelArts needs no index beyond the shared store."""

    def route(self, req: Request) -> Call:
        path = req.path
        for pattern, method, action in (
            (_PROPERTY_RE, "PUT", UPDATE_PROPERTY),
            (_LIST_RE, "GET", LIST),
            (_ONE_RE, "GET", SHOW),
            (_ONE_RE, "PUT", UPDATE),
        ):
            match = pattern.match(path)
            if match is None or req.method != method:
                continue
            params: dict[str, Any] = {}
            if method == "PUT":
                try:
                    params = req.json()
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise _invalid("The request body is not valid JSON.") from None
                if not isinstance(params, dict):
                    raise _invalid("The request body must be a JSON object.")
            else:
                params = dict(req.query)
            return Call(
                action=action,
                write=method == "PUT",
                params=params,
                region=match["pid"],
                path_params=dict(match.groupdict()),
            )
        raise ApiError(
            "APIGW.0101", "The API does not exist or has not been published in the environment"
        )

    def authenticate(self, req: Request, call: Call) -> Account:
        token = req.header("x-auth-token")
        account: Account | None = None
        if token and not req.header("authorization"):
            account = next((a for a in self.accounts.values() if a.token == token), None)
            if account is None:
                raise ApiError(
                    "APIGW.0301", "Incorrect IAM authentication information: decrypt token fail"
                )
        else:
            try:
                access_key = sdk_hmac.verify(
                    method=req.method,
                    raw_path=req.raw_path,
                    query=req.query,
                    headers=req.headers,
                    body=req.body,
                    now=self.auth_now(),
                    secret_for=self.secret_for,
                )
            except AuthError as err:
                code = "APIGW.0303" if err.reason is AuthReason.EXPIRED else "APIGW.0301"
                raise ApiError(code, err.message) from None
            account = self.keys[access_key]
        project = call.path_params["pid"]
        header_project = req.header("x-project-id")
        if project not in account.regions or (header_project and header_project != project):
            raise ApiError(
                "ModelArts.0210", f"The project id {project} does not match the credentials."
            )
        return account

    def error_response(self, err: ApiError, request_id: str) -> Response:
        status = err.http_status or STATUS_BY_CODE.get(err.code, 500)
        return json_response(
            status,
            {"error_code": err.code, "error_msg": err.message},
            headers=[("X-Request-Id", request_id)],
        )

    def throttled_error(self, action: str) -> ApiError:
        return ApiError(
            "APIGW.0308", "The throttling threshold has been reached: policy user over ratelimit"
        )

    # ----- actions -------------------------------------------------------------------------

    def dispatch(self, call: Call, account: Account, request_id: str) -> Response:
        handler = {
            LIST: self._list,
            SHOW: self._show,
            UPDATE: self._update,
            UPDATE_PROPERTY: self._update_property,
        }[call.action]
        return json_response(200, handler(call, account), headers=[("X-Request-Id", request_id)])

    def _service(self, call: Call, account: Account) -> Service:
        sid = call.path_params["sid"]
        service = self.store.get(sid)
        if service is None or service.account != account.name or service.region != call.region:
            raise ApiError("ModelArts.3502", f"Service {sid} does not exist.")
        return service

    def _show(self, call: Call, account: Account) -> dict[str, Any]:
        return self.render(self._service(call, account))

    def _list(self, call: Call, account: Account) -> dict[str, Any]:
        query = call.params
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
            offset = int(query.get("offset", 0))
        except ValueError:
            raise _invalid("offset and limit must be integers.") from None
        if limit < 1 or offset < 0:
            raise _invalid(
                f"The values of the request parameters (offset={offset},limit={limit}) are invalid."
            )
        sort_by = query.get("sort_by", "publish_at")
        order = query.get("order", "desc")
        if sort_by not in ("publish_at", "service_name", "transition_at") or order not in (
            "asc",
            "desc",
        ):
            raise _invalid("sort_by must be publish_at|service_name|transition_at; order asc|desc.")
        services = list(self.store.scope(account.name, call.region).values())
        filters: dict[str, str] = {
            k: str(query[k])
            for k in (
                "service_id",
                "service_name",
                "model_id",
                "infer_type",
                "status",
                "workspace_id",
            )
            if k in query
        }
        if filters:
            services = [s for s in services if _list_match(s, filters)]
        if sort_by == "service_name":
            services.sort(key=lambda s: s.name, reverse=order == "desc")
        elif sort_by == "transition_at":
            services.sort(key=lambda s: s.transition_at, reverse=order == "desc")
        elif order == "desc":
            services.reverse()
        start = offset * limit if self.settings.huawei_offset_mode == "page" else offset
        page = services[start : start + limit]
        return {
            "total_count": len(services),
            "count": len(page),
            "services": [self.render(s, listing=True) for s in page],
        }

    def _update(self, call: Call, account: Account) -> dict[str, Any]:
        service = self._service(call, account)
        body = call.params
        unknown = set(body) - {"status", "config", "schedule", "description"}
        if unknown:
            raise _invalid(f"Unknown fields: {sorted(unknown)}.")
        if "status" in body:
            # "status不可跟config同时修改, 同时存在则只修改status".
            self._change_status(service, body["status"])
            return {}
        out: dict[str, Any] = {}
        if "config" in body:
            out["update_time"] = self._change_config(service, body["config"])
        if "schedule" in body:
            self._change_schedule(service, body["schedule"])
        if "description" in body:
            service.extra["description"] = str(body["description"])
        return out

    def _change_status(self, service: Service, target: JSONValue) -> None:
        if target not in ("running", "stopped"):
            raise _invalid("status must be running or stopped.")
        if service.status == target:
            raise ApiError(CONFLICT, f"Service {service.name} is already {target}.")
        # The doc forbids only a start or a config change while deploying, stopping or
        # deleting (docs/clouds/huawei-modelarts.md#writing-changes): a stop is accepted then.
        if target == "running":
            if service.status in BUSY:
                raise ApiError(
                    CONFLICT, f"Service {service.name} cannot start while {service.status}."
                )
            if service.status in ("waiting", "concerning"):
                raise ApiError(
                    CONFLICT, f"Service {service.name} cannot start while {service.status}."
                )
            if service.frozen:
                raise ApiError(
                    "ModelArts.4116", "The account is in arrears; the service cannot start."
                )
            self._deploy(service, self.settings.start_seconds)
        elif service.status not in ("stopping", "deleting"):
            # A stop already under way, or a deletion, is left to finish [INFERRED].
            self.stop_now(service)

    def _deploy(self, service: Service, seconds: float) -> None:
        """deploying (progress 0 -> 50 -> 100) -> running."""
        service.status = "deploying"
        service.progress = 0
        service.ready = min(service.ready, service.replicas) if service.replicas else 0
        service.updated_at = service.transition_at = self.now()

        def half(s: Service) -> None:
            s.progress = 50

        def done(s: Service) -> None:
            s.status = "running"
            s.progress = 100
            s.ready = s.replicas

        self.transition(service, [(seconds / 2, half), (seconds / 2, done)])

    def stop_now(self, service: Service, at: float | None = None) -> None:
        """stopping -> stopped from `at` (default now); cancels a deployment in flight."""
        start = self.now() if at is None else at
        service.status = "stopping"
        service.updated_at = service.transition_at = start

        def stopped(s: Service) -> None:
            s.status = "stopped"
            s.ready = 0

        self.transition(service, [(self.settings.stop_seconds, stopped)], start=start)

    def _change_config(self, service: Service, config: JSONValue) -> int:
        if service.status in BUSY:
            raise ApiError(
                CONFLICT, f"Service {service.name} cannot be updated while {service.status}."
            )
        if not isinstance(config, list) or not config:
            raise _invalid("config must be a non-empty array.")
        entries: list[dict[str, Any]] = []
        for item in config:
            if not isinstance(item, dict):
                raise _invalid("config entries must be objects.")
            missing = [k for k in CONFIG_REQUIRED if k not in item]
            if missing:
                raise _invalid(f"config entry is missing {missing}.")
            if set(item) - CONFIG_FIELDS:
                raise _invalid(f"Unknown config fields {sorted(set(item) - CONFIG_FIELDS)}.")
            count = item["instance_count"]
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise _invalid("instance_count must be an integer > 0.")
            entries.append(dict(item))
        if sum(int(e["weight"]) for e in entries) != 100:
            raise _invalid("The weights of config entries must sum to 100.")
        old = {e["model_id"]: e for e in service.extra.get("config", [])}
        for entry in entries:
            base = old.get(entry["model_id"], {})
            entry.setdefault("model_name", base.get("model_name", service.name))
            entry.setdefault("model_version", base.get("model_version", "1.0.0"))
        service.extra["config"] = entries
        service.replicas = sum(int(e["instance_count"]) for e in entries)
        now = self.now()
        service.config_updated_at = now
        if service.status in ("running", "concerning", "failed"):
            self._deploy(service, self.settings.scale_seconds)
        return millis(now)

    def _update_property(self, call: Call, account: Account) -> dict[str, Any]:
        service = self._service(call, account)
        body = call.params
        if body.get("changed_property") != "instance_count":
            raise _invalid("changed_property must be instance_count.")
        configs = body.get("configs")
        if not isinstance(configs, list) or not configs:
            raise _invalid("configs must be a non-empty array.")
        if service.status not in ("running", "concerning", "abnormal"):
            raise ApiError(
                CONFLICT, f"Service {service.name} cannot be updated while {service.status}."
            )
        current = {e["model_id"]: e for e in service.extra.get("config", [])}
        for item in configs:
            model_id = item.get("model_id") if isinstance(item, dict) else None
            if model_id not in current:
                raise _invalid(f"model_id {model_id} is not deployed in this service.")
            try:
                value = int(item["changed_value"])
            except (KeyError, TypeError, ValueError):
                raise _invalid("changed_value must be an integer string.") from None
            if value < 1 or value == int(current[model_id]["instance_count"]):
                raise _invalid("changed_value must be > 0 and differ from the current value.")
            current[model_id]["instance_count"] = value
        service.replicas = sum(int(e["instance_count"]) for e in current.values())
        now = self.now()
        service.config_updated_at = now
        self._deploy(service, self.settings.scale_seconds)
        return {"update_time": str(millis(now)), "resource_ids": []}

    def _change_schedule(self, service: Service, schedule: JSONValue) -> None:
        if not isinstance(schedule, list):
            raise _invalid("schedule must be an array.")
        if not schedule:
            # Clearing with [] is [UNVERIFIED]: the doc does not say how to clear.
            service.schedule = []
            service.stop_enabled = False
            service.stop_at = None
            self.arm_schedule(service)
            return
        entries = []
        due: float | None = None
        for item in schedule:
            if not isinstance(item, dict) or item.get("type") != "stop":
                raise _invalid("schedule type must be stop.")
            unit = item.get("time_unit")
            duration = item.get("duration")
            if unit not in TIME_UNITS:
                raise _invalid("time_unit must be DAYS, HOURS or MINUTES.")
            if isinstance(duration, bool) or not isinstance(duration, int) or duration < 1:
                raise _invalid("duration must be a positive integer.")
            entries.append({"type": "stop", "time_unit": unit, "duration": duration})
            # Relative to now: re-sending the same schedule moves due_time.
            due = self.now() + duration * TIME_UNITS[unit]
        service.schedule = entries
        service.stop_at = due
        service.stop_enabled = True
        self.arm_schedule(service)

    def fire_scheduled_stop(self, service: Service, due: float) -> None:
        service.stop_enabled = False
        service.stop_at = None
        service.schedule = []
        if service.status not in ("stopped", "stopping"):
            self.stop_now(service, at=due)

    def console_edit(self, service: Service, spec: dict[str, Any]) -> None:
        """A console scale is a config change: `instance_count` follows `replicas` (one
        model version) and the list's `update_time` moves, as after UpdateService."""
        super().console_edit(service, spec)
        config = service.extra.get("config", [])
        if "replicas" in spec and len(config) == 1:
            config[0]["instance_count"] = service.replicas
            service.config_updated_at = self.now()

    def platform_stop(self, service: Service, reason: str) -> None:
        reasons = {"arrears": "ARREAR", "police": "POLICE", "illegal": "ILLEGAL"}
        if reason not in reasons:
            raise ControlError(400, f"reason must be one of {sorted(reasons)}")
        service.frozen = reasons[reason]
        if service.status not in ("stopped", "stopping"):
            self.stop_now(service)

    # ----- seeding ---------------------------------------------------------------------------

    def new_account(self, spec: dict[str, Any]) -> Account:
        known = {"name", "ak", "sk", "projects", "token"}
        if set(spec) - known:
            raise ControlError(400, f"unknown account fields {sorted(set(spec) - known)}")
        return Account(
            name=str(spec["name"]),
            access_key=str(spec["ak"]),
            secret_key=str(spec["sk"]),
            regions=[str(p) for p in spec.get("projects", ["0123456789abcdef0123456789abcdef"])],
            token=None if spec.get("token") is None else str(spec["token"]),
        )

    def seed_service(self, spec: dict[str, Any]) -> Service:
        known = {
            "account",
            "project_id",
            "name",
            "service_id",
            "replicas",
            "status",
            "config",
            "schedule",
            "extra",
        }
        if set(spec) - known:
            raise ControlError(400, f"unknown service fields {sorted(set(spec) - known)}")
        account = self.accounts.get(str(spec.get("account", "")))
        if account is None:
            raise ControlError(404, f"no account {spec.get('account')!r}")
        project = str(spec.get("project_id", account.regions[0]))
        service_id = str(
            spec.get("service_id") or uuid.UUID(int=self.rng.getrandbits(128), version=4)
        )
        name = str(spec.get("name", f"service-{service_id[:8]}"))
        replicas = int(spec.get("replicas", 1))
        config = spec.get("config") or [
            {
                "model_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "model_name": f"{name}-model",
                "model_version": "1.0.0",
                "specification": "modelarts.vm.cpu.2u",
                "weight": 100,
                "instance_count": replicas,
            }
        ]
        status = str(spec.get("status", "running"))
        now = self.now()
        total = sum(int(c["instance_count"]) for c in config)
        service = Service(
            service_id=service_id,
            account=account.name,
            region=project,
            name=name,
            status=status,
            replicas=total,
            ready=total if status == "running" else 0,
            created_at=now,
            updated_at=now,
            transition_at=now,
            config_updated_at=now,
            extra={"config": [dict(c) for c in config], **dict(spec.get("extra", {}))},
        )
        self.store.add(service)
        if spec.get("schedule"):
            self._change_schedule(service, spec["schedule"])
        return service

    # ----- rendering -------------------------------------------------------------------------

    def render(self, service: Service, *, listing: bool = False) -> dict[str, Any]:
        account = self.accounts[service.account]
        out: dict[str, Any] = {
            "service_id": service.service_id,
            "service_name": service.name,
            "description": str(service.extra.get("description", "")),
            "tenant": account.regions[0],
            "project": service.region,
            "owner": account.name,
            "publish_at": millis(service.created_at),
            "update_time": millis(service.config_updated_at),
            "infer_type": "real-time",
            "status": service.status,
            "progress": service.progress,
            "access_address": (
                f"https://infer-modelarts.example.com/v1/infers/{service.service_id}"
            ),
            "cluster_id": str(service.extra.get("cluster_id", "")) or None,
            "workspace_id": "0",
            "additional_properties": {},
            "is_shared": False,
            "invocation_times": 0,
            "failed_times": 0,
            "shared_count": 0,
            "operation_time": millis(self.now()),
            "transition_at": millis(service.transition_at),
            "is_free": False,
            "pool_name": "",
        }
        if out["cluster_id"] is None:
            del out["cluster_id"]
        if service.status == "failed":
            out["error_msg"] = str(service.extra.get("error_msg", "deployment failed"))
        if service.schedule:
            out["schedule"] = [dict(e) for e in service.schedule]
        if service.stop_enabled and service.stop_at is not None:
            out["due_time"] = millis(service.stop_at)
        if listing:
            return out
        config_status = {
            "running": "running",
            "deploying": "deploying",
            "concerning": "concerning",
            "failed": "failed",
        }.get(service.status, "stopped")
        out["config"] = [
            {
                "model_id": c["model_id"],
                "model_name": c.get("model_name", service.name),
                "model_version": c.get("model_version", "1.0.0"),
                "specification": c["specification"],
                "custom_spec": dict(c.get("custom_spec", {})),
                "status": config_status,
                "weight": int(c["weight"]),
                "instance_count": int(c["instance_count"]),
                "scaling": False,
                "envs": dict(c.get("envs", {})),
                "additional_properties": {},
                "support_debug": False,
            }
            for c in service.extra.get("config", [])
        ]
        return out


def _list_match(service: Service, filters: dict[str, str]) -> bool:
    checks: dict[str, Callable[[str], bool]] = {
        "service_id": lambda v: service.service_id == v,
        "service_name": lambda v: v in service.name,
        "status": lambda v: service.status == v,
        "infer_type": lambda v: v == "real-time",
        "workspace_id": lambda v: v == "0",
        "model_id": lambda v: any(c["model_id"] == v for c in service.extra.get("config", [])),
    }
    return all(checks[key](value) for key, value in filters.items())
