"""Baidu AI Cloud Qianfan console API v2: POST /v2/service?Action=..., bce-auth-v1."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from cloudsim.core import ApiError, Call, CloudSim, ControlError
from cloudsim.http import JSONValue, Request, Response, json_response
from cloudsim.signing import AuthError, AuthReason, bce
from cloudsim.store import Account, ComputeUnit, Service
from cloudsim.timefmt import iso_z

ROUTE = "/v2/service"
DESCRIBE_SERVICES = "DescribeServices"
DESCRIBE_SERVICE = "DescribeService"
SCALE = "ScaleService"
DEACTIVATE = "DeactivateService"
ACTIONS = frozenset({DESCRIBE_SERVICES, DESCRIBE_SERVICE, SCALE, DEACTIVATE})
WRITES = frozenset({SCALE, DEACTIVATE})

# No rate limit is documented for console v2 management actions; these are [UNVERIFIED]
# defaults, changeable via /_sim/ratelimits.
RATES: dict[str, float] = {DESCRIBE_SERVICES: 20, DESCRIBE_SERVICE: 20, SCALE: 10, DEACTIVATE: 10}

DEFAULT_MAX_KEYS = 10  # DescribeServices maxKeys default [DOC]
MAX_MAX_KEYS = 100  # larger values are clamped [DOC]
DEACTIVATE_MESSAGE = "当前服务独占后付费资源,请注意空闲资源释放!"

# BCE common error codes and their HTTP statuses; the rest are [UNVERIFIED] simulator choices.
STATUS_BY_CODE: dict[str, int] = {
    "AccessDenied": 403,
    "InvalidAccessKeyId": 403,
    "InvalidHTTPAuthHeader": 400,
    "SignatureDoesNotMatch": 400,
    "RequestExpired": 400,
    "InappropriateJSON": 400,
    "MalformedJSON": 400,
    "InvalidURI": 400,
    "InternalError": 500,
    "InvalidAction": 400,  # [UNVERIFIED]
    "ResourceNotFound": 404,  # [UNVERIFIED]
    "ServiceStatusConflict": 409,  # [UNVERIFIED]
    "ResourceInsufficient": 400,  # [UNVERIFIED]
    "QPSLimitReached": 429,  # [UNVERIFIED] name taken from the SDK's retryable list
}
AUTH_CODES = {
    AuthReason.MISSING: "AccessDenied",
    AuthReason.MALFORMED: "InvalidHTTPAuthHeader",
    AuthReason.UNKNOWN_KEY: "InvalidAccessKeyId",
    AuthReason.BAD_SIGNATURE: "SignatureDoesNotMatch",
    AuthReason.EXPIRED: "RequestExpired",
}


class _AuthApiError(ApiError):
    """Auth failures also travel in X-Bce-Error-* response headers."""


def _bad(message: str) -> ApiError:
    return ApiError("InappropriateJSON", message)


def _offline(service: Service) -> None:
    service.status = "Stopped"
    service.ready = 0


def _register_units(account: Account, units: dict[str, int]) -> None:
    """A service seeded or edited onto instances the account lacks gets them (8 units each)."""
    for instance_id in units:
        if instance_id not in account.compute_units:
            account.compute_units[instance_id] = ComputeUnit(instance_id=instance_id)


class BaiduSim(CloudSim):
    cloud: ClassVar[str] = "baidu"
    default_rates: ClassVar[dict[str, float]] = RATES

    order: dict[str, list[Service]]  # account -> services in creation order

    def init_cloud_state(self) -> None:
        self.order = {}

    # ----- routing and auth ----------------------------------------------------------------

    def route(self, req: Request) -> Call:
        if req.method != "POST" or req.path.rstrip("/") != ROUTE:
            raise ApiError("InvalidURI", f"{req.method} {req.path} is not a console API route.")
        action = dict(req.query).get("Action", "")
        if action not in ACTIONS:
            raise ApiError("InvalidAction", f"The action {action!r} is not supported.")
        try:
            params = req.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError("MalformedJSON", "The request body is not valid JSON.") from None
        if not isinstance(params, dict):
            raise ApiError("MalformedJSON", "The request body must be a JSON object.")
        return Call(action=action, write=action in WRITES, params=params)

    def authenticate(self, req: Request, call: Call) -> Account:
        try:
            access_key = bce.verify(
                method=req.method,
                path=req.path,
                query=req.query,
                headers=req.headers,
                now=self.auth_now(),
                secret_for=self.secret_for,
            )
        except AuthError as err:
            raise _AuthApiError(AUTH_CODES[err.reason], err.message) from None
        return self.keys[access_key]

    def error_response(self, err: ApiError, request_id: str) -> Response:
        status = err.http_status or STATUS_BY_CODE.get(err.code, 500)
        headers = [("X-Bce-Request-Id", request_id)]
        if isinstance(err, _AuthApiError):
            headers += [
                ("X-Bce-Error-Code", err.code),
                ("X-Bce-Error-Message", err.message.encode().decode("latin-1")),
            ]
        payload = {"requestId": request_id, "code": err.code, "message": err.message}
        return json_response(status, payload, headers=headers)

    def throttled_error(self, action: str) -> ApiError:
        return ApiError("QPSLimitReached", f"The QPS limit of {action} has been reached.")

    # ----- actions -------------------------------------------------------------------------

    def dispatch(self, call: Call, account: Account, request_id: str) -> Response:
        handler = {
            DESCRIBE_SERVICES: self._describe_services,
            DESCRIBE_SERVICE: self._describe_service,
            SCALE: self._scale,
            DEACTIVATE: self._deactivate,
        }[call.action]
        result = handler(call, account)
        return json_response(
            200,
            {"requestId": request_id, "result": result},
            headers=[("X-Bce-Request-Id", request_id)],
        )

    def _service(self, call: Call, account: Account) -> Service:
        service_id = call.params.get("serviceId")
        if not service_id or not isinstance(service_id, str):
            raise _bad("serviceId is required.")
        service = self.store.get(service_id)
        if service is None or service.account != account.name:
            raise ApiError("ResourceNotFound", f"service {service_id} not found")
        return service

    def _describe_service(self, call: Call, account: Account) -> dict[str, Any]:
        return self.render(self._service(call, account))

    def _describe_services(self, call: Call, account: Account) -> dict[str, Any]:
        params = call.params
        max_keys = params.get("maxKeys", DEFAULT_MAX_KEYS)
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise _bad("maxKeys must be a positive integer.")
        max_keys = min(max_keys, MAX_MAX_KEYS)
        services = self.order.get(account.name, [])
        if params.get("pageReverse"):
            services = services[::-1]
        name = params.get("name")
        run_status = params.get("runStatus")
        service_type = params.get("serviceType")
        marker = params.get("marker") or ""
        start = 0
        if marker:
            ids = [s.service_id for s in services]
            if marker not in ids:
                raise _bad(f"marker {marker} does not exist.")
            start = ids.index(marker)
        page: list[Service] = []
        next_marker = ""
        for service in services[start:]:
            if name and str(name) not in service.name:
                continue
            if run_status and service.status not in run_status:
                continue
            if service_type and str(service.extra.get("serviceType", "chat")) not in service_type:
                continue
            if len(page) == max_keys:
                next_marker = service.service_id
                break
            page.append(service)
        return {
            "pageInfo": {
                "marker": marker,
                "maxKeys": max_keys,
                "isTruncated": bool(next_marker),
                "nextMarker": next_marker,
            },
            "serviceList": [self.render(s) for s in page],
        }

    def _scale(self, call: Call, account: Account) -> bool:
        service = self._service(call, account)
        instance_id = call.params.get("instanceId")
        count = call.params.get("deploymentReplicasCount")
        if not instance_id or not isinstance(instance_id, str):
            raise _bad("instanceId is required.")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise _bad("deploymentReplicasCount must be an integer >= 0.")
        unit = account.compute_units.get(instance_id)
        if unit is None:
            raise ApiError("ResourceNotFound", f"compute unit instance {instance_id} not found")
        if service.status != "Serving":
            raise ApiError(
                "ServiceStatusConflict", f"service {service.service_id} is {service.status}"
            )
        per_replica = int(service.extra.get("unitsPerReplica", 1))
        used = sum(
            s.units.get(instance_id, 0) * int(s.extra.get("unitsPerReplica", 1))
            for s in self.order.get(account.name, [])
            if s is not service
        )
        if count * per_replica > unit.total_units - used:
            raise ApiError(
                "ResourceInsufficient",
                f"compute unit instance {instance_id} has {unit.total_units - used} free units; "
                f"{count} replicas need {count * per_replica}.",
            )
        if count == 0:
            # "deployedReplicasCount等于0时, 表示将该算力单元实例从服务移除".
            service.units.pop(instance_id, None)
        else:
            service.units[instance_id] = count
        service.replicas = sum(service.units.values())
        service.ready = min(service.ready, service.replicas)
        service.status = "Deploying"
        service.updated_at = service.transition_at = self.now()

        def done(s: Service) -> None:
            s.status = "Serving"
            s.ready = s.replicas

        self.transition(service, [(self.settings.scale_seconds, done)])
        return True

    def _deactivate(self, call: Call, account: Account) -> dict[str, Any]:
        service = self._service(call, account)
        if service.status != "Serving":
            raise ApiError(
                "ServiceStatusConflict", f"service {service.service_id} is {service.status}"
            )
        # "operation 操作成功,具体状态查询服务状态": accepted now, offline after stop_seconds.
        service.status = self.settings.baidu_deactivating_status
        service.updated_at = service.transition_at = self.now()
        self.transition(service, [(self.settings.stop_seconds, _offline)])
        return {"operation": True, "message": DEACTIVATE_MESSAGE}

    def stop_now(self, service: Service) -> None:
        """A platform stop (arrears) is shown at once [UNVERIFIED]."""
        service.generation += 1
        _offline(service)
        service.updated_at = service.transition_at = self.now()

    def fire_scheduled_stop(self, service: Service, due: float) -> None:
        """Qianfan services have no stop schedule; nothing to do."""

    def platform_stop(self, service: Service, reason: str) -> None:
        if reason != "arrears":
            raise ControlError(400, "reason must be 'arrears'")
        service.frozen = "ARREARS"
        service.extra["chargeStatus"] = "NotOpen"
        self.stop_now(service)

    # ----- seeding ---------------------------------------------------------------------------

    def new_account(self, spec: dict[str, Any]) -> Account:
        known = {"name", "ak", "sk", "regions", "compute_units"}
        if set(spec) - known:
            raise ControlError(400, f"unknown account fields {sorted(set(spec) - known)}")
        units = {
            str(iid): ComputeUnit(
                instance_id=str(iid),
                type=str(cfg.get("type", "GPU-I-2")),
                total_units=int(cfg.get("total_units", 8)),
            )
            for iid, cfg in dict(spec.get("compute_units", {})).items()
        }
        return Account(
            name=str(spec["name"]),
            access_key=str(spec["ak"]),
            secret_key=str(spec["sk"]),
            regions=[str(r) for r in spec.get("regions", ["bj"])],
            compute_units=units,
        )

    def seed_service(self, spec: dict[str, Any]) -> Service:
        known = {
            "account",
            "region",
            "name",
            "service_id",
            "status",
            "units",
            "qps",
            "type",
            "units_per_replica",
            "extra",
        }
        if set(spec) - known:
            raise ControlError(400, f"unknown service fields {sorted(set(spec) - known)}")
        account = self.accounts.get(str(spec.get("account", "")))
        if account is None:
            raise ControlError(404, f"no account {spec.get('account')!r}")
        service_id = str(spec.get("service_id") or f"svco-{self.new_hex(12)}")
        units = {str(k): int(v) for k, v in dict(spec.get("units", {})).items()}
        _register_units(account, units)
        if not units and "units" not in spec:
            instance_id = f"cu-{self.new_hex(10)}"
            account.compute_units[instance_id] = ComputeUnit(instance_id=instance_id)
            units = {instance_id: 1}
        status = str(spec.get("status", "Serving"))
        now = self.now()
        replicas = sum(units.values())
        extra: dict[str, Any] = {
            "qps": float(spec.get("qps", 1)),
            "type": str(spec.get("type", "GPU-I-2")),
            "unitsPerReplica": int(spec.get("units_per_replica", 1)),
            **dict(spec.get("extra", {})),
        }
        service = Service(
            service_id=service_id,
            account=account.name,
            region=str(spec.get("region", account.regions[0])),
            name=str(spec.get("name", service_id)),
            status=status,
            replicas=replicas,
            ready=replicas if status == "Serving" else 0,
            created_at=now,
            updated_at=now,
            transition_at=now,
            units=units,
            extra=extra,
        )
        self.store.add(service)
        self.order.setdefault(account.name, []).append(service)
        return service

    def console_edit(self, service: Service, spec: dict[str, Any]) -> None:
        spec = dict(spec)
        if "units" in spec:
            # E.g. someone adds a second compute-unit instance to the service in the console.
            service.units = {str(k): int(v) for k, v in dict(spec.pop("units")).items()}
            _register_units(self.accounts[service.account], service.units)
            service.replicas = sum(service.units.values())
        if "qps" in spec:
            service.extra["qps"] = float(spec.pop("qps"))
        super().console_edit(service, spec)

    def _c_delete_service(self, body: JSONValue, query: dict[str, str], sid: str) -> dict[str, Any]:
        service = self.get_service(sid)
        self.order[service.account] = [
            s for s in self.order.get(service.account, []) if s is not service
        ]
        return super()._c_delete_service(body, query, sid)

    # ----- rendering -------------------------------------------------------------------------

    def render(self, service: Service) -> dict[str, Any]:
        extra = service.extra
        return {
            "serviceId": service.service_id,
            "name": service.name,
            "description": str(extra.get("description", "")),
            "baseModel": str(extra.get("baseModel", "ERNIE-Speed")),
            "modelSetId": str(extra.get("modelSetId", "am-" + service.service_id[5:])),
            "modelId": str(extra.get("modelId", "amv-" + service.service_id[5:])),
            "url": f"https://qianfan.baidubce.com/v2/chat/{service.service_id}",
            "endpoint": str(extra.get("endpoint", service.service_id)),
            "serviceType": str(extra.get("serviceType", "chat")),
            "runStatus": service.status,
            "updateStatus": "None",
            "chargeType": "ComputingUnit",
            "payType": "Postpay",
            "chargeStatus": str(extra.get("chargeStatus", "Opened")),
            "createTime": iso_z(service.created_at),
            "updateTime": iso_z(service.updated_at),
            # Resource block names follow CreateService's resourceConfig [UNVERIFIED in responses].
            "resourceConfig": {
                "type": str(extra.get("type", "GPU-I-2")),
                "replicasCount": service.replicas,
                "qps": extra.get("qps", 1),
            },
            "region": service.region,
            "computeUnits": [
                {"instanceId": iid, "deploymentReplicasCount": n}
                for iid, n in service.units.items()
            ],
        }
