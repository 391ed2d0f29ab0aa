"""Tencent Cloud TI-ONE (API 2021-11-11): POST / with X-TC-Action, TC3-HMAC-SHA256."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from cloudsim.core import ApiError, Call, CloudSim, ControlError
from cloudsim.http import JSONValue, Request, Response, json_response
from cloudsim.signing import AuthError, AuthReason, tc3, tc_v1
from cloudsim.store import Account, Service
from cloudsim.timefmt import iso_china, iso_z, parse_iso

SERVICE = "tione"
VERSION = "2021-11-11"

# Regions with a TI-ONE endpoint (the TI-ONE "请求结构" page).
REGIONS = frozenset(
    {
        "ap-guangzhou",
        "ap-shanghai",
        "ap-beijing",
        "ap-chengdu",
        "ap-chongqing",
        "ap-hongkong",
        "ap-singapore",
        "ap-bangkok",
        "ap-seoul",
        "ap-tokyo",
        "na-ashburn",
        "na-siliconvalley",
        "eu-frankfurt",
    }
)

DESCRIBE_GROUPS = "DescribeModelServiceGroups"
DESCRIBE_GROUP = "DescribeModelServiceGroup"
DESCRIBE_SERVICE = "DescribeModelService"
MODIFY = "ModifyModelService"
PARTIAL = "ModifyModelServicePartialConfig"

# Per-action limits, requests per second (API overview page 851/75060; seed 000 for PartialConfig).
RATES: dict[str, float] = {
    DESCRIBE_GROUPS: 20,
    DESCRIBE_GROUP: 50,
    DESCRIBE_SERVICE: 50,
    MODIFY: 20,
    PARTIAL: 20,
}

IMAGE_URL = "tione.tencentcloudcr.com/qcloud-ti-platform/ti-cloud-infer-pytorch-gpu:py38"
DEFAULT_LIMIT = 20  # DescribeModelServiceGroups Limit default (seed 001)
MAX_LIMIT = 100  # DescribeModelServiceGroups Limit maximum (seed 001)

FILTER_NAMES = frozenset(
    {
        "ClusterId",
        "ServiceId",
        "ServiceGroupName",
        "ServiceGroupId",
        "Status",
        "CreatedBy",
        "ModelVersionId",
    }
)

# Request fields each action accepts; anything else is UnknownParameter, as the real API says.
COMMON_FIELDS = frozenset({"TiProjectId"})
ACTION_FIELDS: dict[str, frozenset[str]] = {
    DESCRIBE_GROUPS: frozenset(
        {"Offset", "Limit", "Order", "OrderField", "Filters", "TagFilters", "ServiceCategory"}
    ),
    DESCRIBE_GROUP: frozenset({"ServiceGroupId", "ServiceCategory"}),
    DESCRIBE_SERVICE: frozenset({"ServiceId", "ServiceCategory"}),
    MODIFY: frozenset(
        {
            "ServiceId",
            "ModelInfo",
            "ImageInfo",
            "Env",
            "Resources",
            "InstanceType",
            "ScaleMode",
            "Replicas",
            "HorizontalPodAutoscaler",
            "LogEnable",
            "LogConfig",
            "ServiceAction",
            "ServiceDescription",
            "ScaleStrategy",
            "CronScaleJobs",
            "HybridBillingPrepaidReplicas",
            "ModelHotUpdateEnable",
            "ScheduledAction",
            "ServiceLimit",
            "VolumeMount",
            "VolumeMounts",
            "Command",
            "CommandBase64",
            "ServicePort",
            "RollingUpdate",
            "HealthProbe",
            "Sidecar",
            "ResourceGroupId",
            "Priority",
            "ModelTurboEnable",
            "InferCodeInfo",
            "ServiceEIP",
            "InstancePerReplicas",
            "TerminationGracePeriodSeconds",
            "PreStopCommand",
            "GrpcEnable",
            "Tags",
        }
    ),
    PARTIAL: frozenset({"ServiceId", "ScheduledAction", "ServiceLimit"}),
}
WRITE_ACTIONS = frozenset({MODIFY, PARTIAL})

TRANSITIONAL = frozenset({"Pending", "Waiting", "Stopping", "CREATING"})
RUNNING = frozenset({"Normal", "Abnormal"})
BILLING_STOPS = frozenset({"ARREARS_STOP", "WHITELIST_STOP"})


# Signature v1 sends these common parameters among the action's own (tc_v1's docstring).
V1_COMMON = frozenset(
    {
        "Action",
        "Version",
        "Region",
        "Timestamp",
        "Nonce",
        "SecretId",
        "Signature",
        "SignatureMethod",
        "Token",
        "Language",
        "RequestClient",
    }
)
FORM = "application/x-www-form-urlencoded"
# Form and query values are strings; these request fields are read as integers or booleans.
INT_FIELDS = frozenset({"Offset", "Limit", "Replicas", "InstanceRpsLimit", "InstanceReqLimit"})
BOOL_FIELDS = frozenset(
    {"Fuzzy", "Negative", "ScheduleStop", "EnableInstanceRpsLimit", "EnableInstanceReqLimit"}
)


@dataclass
class TemporaryKey:
    """STS credentials: a SecretId/SecretKey pair that needs its token and expires."""

    account: str
    secret_id: str
    secret_key: str
    token: str
    expires_at: float  # on the auth clock (wall + skew)


def _err(code: str, message: str) -> ApiError:
    return ApiError(code, message)


def _form_value(name: str, value: str) -> int | bool | str:
    if name in INT_FIELDS:
        try:
            return int(value)
        except ValueError:
            return value  # the action then refuses it with InvalidParameterValue
    if name in BOOL_FIELDS and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def form_params(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Flattened form parameters (`Filters.0.Values.1=x`, as the SDK's `_fix_params` sends
    them) back into the JSON document the action reads."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.split(".")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise _err("InvalidParameter", f"The parameter `{key}` conflicts with another.")
        field = next((p for p in reversed(parts) if not p.isdigit()), parts[-1])
        node[parts[-1]] = _form_value(field, value)
    return {k: _listify(v) for k, v in root.items()}


def _listify(node: JSONValue) -> JSONValue:
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def _int_field(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _err("InvalidParameterValue", f"The value of `{name}` must be an integer.")
    return value


class TencentSim(CloudSim):
    cloud: ClassVar[str] = "tencent"
    default_rates: ClassVar[dict[str, float]] = RATES

    # (account, region) -> group id -> services of the group, in creation order.
    groups: dict[tuple[str, str], dict[str, list[Service]]]

    temporary: dict[str, TemporaryKey]  # temporary SecretId -> its credentials

    def init_cloud_state(self) -> None:
        self.groups = {}
        self.temporary = {}

    # ----- routing and auth ----------------------------------------------------------------

    def route(self, req: Request) -> Call:
        if req.path != "/" or req.method not in ("GET", "POST"):
            raise ApiError("InvalidParameter", "Only GET or POST / is supported.", 404)
        if req.header("x-tc-action") or req.header("authorization"):
            return self._route_tc3(req)
        return self._route_v1(req)

    def _route_tc3(self, req: Request) -> Call:
        """Signature v3: action and region in headers; JSON body, form body, or GET query."""
        action = req.header("x-tc-action")
        if not action:
            raise _err("MissingParameter", "The request is missing a required parameter `Action`.")
        self._check_action(action, req.header("x-tc-version"))
        content_type = req.header("content-type").split(";")[0].strip().lower()
        if req.method == "GET":
            params = form_params(req.query)
        elif content_type == FORM:
            params = form_params(_body_pairs(req))
        else:
            try:
                decoded = req.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise _err("InvalidParameter", "The request body is not valid JSON.") from None
            if not isinstance(decoded, dict):
                raise _err("InvalidParameter", "The request body must be a JSON object.")
            params = decoded
        meta = {"signature": "TC3", "token": req.header("x-tc-token")}
        return Call(
            action=action,
            write=action in WRITE_ACTIONS,
            params=params,
            region=req.header("x-tc-region"),
            meta=meta,
        )

    def _route_v1(self, req: Request) -> Call:
        """Signature v1 (HmacSHA1/HmacSHA256): everything is a form parameter."""
        if req.method == "POST":
            content_type = req.header("content-type").split(";")[0].strip().lower()
            if content_type != FORM:
                raise _err(
                    "InvalidParameter", "Without TC3 the body must be form-encoded parameters."
                )
            pairs = _body_pairs(req)
        else:
            pairs = req.query
        common = {k: v for k, v in pairs if k in V1_COMMON}
        action = common.get("Action", "")
        if not action:
            raise _err("MissingParameter", "The request is missing a required parameter `Action`.")
        self._check_action(action, common.get("Version", ""))
        return Call(
            action=action,
            write=action in WRITE_ACTIONS,
            params=form_params([(k, v) for k, v in pairs if k not in V1_COMMON]),
            region=common.get("Region", ""),
            meta={"signature": "v1", "token": common.get("Token", "")},
        )

    def _check_action(self, action: str, version: str) -> None:
        if version != VERSION:
            raise _err("NoSuchVersion", f"The API version `{version}` does not exist.")
        if action not in ACTION_FIELDS:
            raise _err("InvalidAction", f"The action `{action}` does not exist.")

    def authenticate(self, req: Request, call: Call) -> Account:
        try:
            if call.meta["signature"] == "TC3":
                secret_id = tc3.verify(
                    method=req.method,
                    query_string=req.query_string,
                    headers=req.headers,
                    body=req.body,
                    service=SERVICE,
                    now=self.auth_now(),
                    secret_for=self.secret_for,
                )
            else:
                secret_id = tc_v1.verify(
                    method=req.method,
                    host=req.header("host"),
                    path=req.path,
                    params=_body_pairs(req) if req.method == "POST" else req.query,
                    now=self.auth_now(),
                    secret_for=self.secret_for,
                )
        except AuthError as err:
            raise _err(_AUTH_CODES[err.reason], err.message) from None
        account = self._check_token(secret_id, call.meta["token"])
        if not call.region:
            raise _err("MissingParameter", "The request is missing a required parameter `Region`.")
        if call.region not in REGIONS:
            raise _err("UnsupportedRegion", f"The region `{call.region}` is not supported.")
        return account

    def secret_for(self, access_key: str) -> str | None:
        temporary = self.temporary.get(access_key)
        return temporary.secret_key if temporary is not None else super().secret_for(access_key)

    def _check_token(self, secret_id: str, token: str) -> Account:
        """A temporary SecretId needs its own unexpired token; a permanent one takes none
        (the latter is [UNVERIFIED]: the docs only say the token goes with temporary keys)."""
        temporary = self.temporary.get(secret_id)
        if temporary is None:
            if token:
                raise _err("AuthFailure.TokenFailure", "A token was sent with a permanent key.")
            return self.keys[secret_id]
        if not token or not hmac.compare_digest(token, temporary.token):
            raise _err("AuthFailure.TokenFailure", "The token does not match the SecretId.")
        if self.auth_now() >= temporary.expires_at:
            raise _err("AuthFailure.TokenFailure", "The temporary credentials have expired.")
        return self.accounts[temporary.account]

    def issue_temporary_credentials(self, account: Account, ttl: float) -> dict[str, Any]:
        key = TemporaryKey(
            account=account.name,
            secret_id=f"AKIDtmp{self.new_hex(29)}",
            secret_key=self.new_hex(32),
            token=self.new_hex(64),
            expires_at=self.auth_now() + ttl,
        )
        self.temporary[key.secret_id] = key
        return {
            "secret_id": key.secret_id,
            "secret_key": key.secret_key,
            "token": key.token,
            "expires_at": key.expires_at,
        }

    def error_response(self, err: ApiError, request_id: str) -> Response:
        # Errors travel in an HTTP 200 envelope; the SDK only looks inside it then.
        payload = {
            "Response": {
                "Error": {"Code": err.code, "Message": err.message},
                "RequestId": request_id,
            }
        }
        return json_response(err.http_status or 200, payload)

    def throttled_error(self, action: str) -> ApiError:
        return _err("RequestLimitExceeded", "请求的次数超过了频率限制。")

    # ----- actions -------------------------------------------------------------------------

    def dispatch(self, call: Call, account: Account, request_id: str) -> Response:
        allowed = ACTION_FIELDS[call.action] | COMMON_FIELDS
        for name in call.params:
            if name not in allowed:
                raise _err("UnknownParameter", f"The parameter `{name}` is not recognized.")
        if call.action == PARTIAL and account.partial_config == "removed":
            raise _err("InvalidAction", f"The action `{PARTIAL}` does not exist.")
        handler = {
            DESCRIBE_GROUPS: self._describe_groups,
            DESCRIBE_GROUP: self._describe_group,
            DESCRIBE_SERVICE: self._describe_service,
            MODIFY: self._modify,
            PARTIAL: self._partial,
        }[call.action]
        payload = handler(call, account)
        payload["RequestId"] = request_id
        return json_response(200, {"Response": payload})

    def _service(self, call: Call, account: Account) -> Service:
        service_id = call.params.get("ServiceId")
        if not service_id:
            raise _err(
                "MissingParameter", "The request is missing a required parameter `ServiceId`."
            )
        if not isinstance(service_id, str):
            raise _err("InvalidParameterValue", "`ServiceId` must be a string.")
        service = self.store.get(service_id)
        if service is None or service.account != account.name or service.region != call.region:
            raise _err("ResourceNotFound", f"服务不存在: {service_id}")
        return service

    def _describe_service(self, call: Call, account: Account) -> dict[str, Any]:
        return {"Service": self.render(self._service(call, account))}

    def _describe_group(self, call: Call, account: Account) -> dict[str, Any]:
        group_id = call.params.get("ServiceGroupId")
        if not group_id:
            raise _err(
                "MissingParameter", "The request is missing a required parameter `ServiceGroupId`."
            )
        services = self.groups.get((account.name, call.region), {}).get(str(group_id))
        if not services:
            raise _err("ResourceNotFound", f"服务组不存在: {group_id}")
        return {"ServiceGroup": self.render_group(services)}

    def _describe_groups(self, call: Call, account: Account) -> dict[str, Any]:
        params = call.params
        offset = _int_field(params, "Offset", 0)
        limit = _int_field(params, "Limit", DEFAULT_LIMIT)
        if offset < 0 or limit < 0:
            raise _err("InvalidParameterValue", "`Offset` and `Limit` must not be negative.")
        if limit > MAX_LIMIT:
            raise _err("InvalidParameterValue", f"`Limit` must not exceed {MAX_LIMIT}.")
        order = params.get("Order", "DESC")
        field = params.get("OrderField", "CreateTime")
        if order not in ("ASC", "DESC"):
            raise _err("InvalidParameterValue", "`Order` must be ASC or DESC.")
        if field not in ("CreateTime", "UpdateTime"):
            raise _err("InvalidParameterValue", "`OrderField` must be CreateTime or UpdateTime.")
        filters = params.get("Filters") or []
        if not isinstance(filters, list):
            raise _err("InvalidParameterValue", "`Filters` must be an array.")
        for flt in filters:
            if not isinstance(flt, dict) or flt.get("Name") not in FILTER_NAMES:
                raise _err("InvalidParameterValue", f"Unsupported filter: {flt!r}.")
        scope = self.groups.get((account.name, call.region), {})
        groups: list[list[Service]] = list(scope.values())
        if filters:
            groups = [g for g in groups if all(_matches(g, f, account.uin) for f in filters)]
        if field == "UpdateTime":
            groups.sort(key=lambda g: max(s.updated_at for s in g), reverse=order == "DESC")
        elif order == "DESC":
            groups.reverse()
        page = groups[offset : offset + limit]
        total = len(groups)
        return {
            "TotalCount": total,
            "ServiceGroups": [self.render_group(g) for g in page],
            "GlobalTotalCount": len(scope),
        }

    def _check_writable(self, service: Service) -> None:
        if service.status in TRANSITIONAL:
            raise _err(
                "ResourceInUse",
                f"资源被占用: 服务 {service.service_id} 正在变更中 ({service.status})。",
            )

    def _modify(self, call: Call, account: Account) -> dict[str, Any]:
        service = self._service(call, account)
        params = call.params
        action = params.get("ServiceAction")
        if action is not None:
            # "存在这些特殊更新行为时, 会忽略其他更新字段": other fields are ignored.
            if action == "SCALE":
                self._scale(service, params)
            elif action == "STOP":
                self._stop(service)
            elif action == "RESUME":
                self._resume(service)
            else:
                raise _err(
                    "InvalidParameterValue", "`ServiceAction` must be STOP, RESUME or SCALE."
                )
        else:
            self._full_update(service, params)
        return {"Service": self.render(service)}

    def _partial(self, call: Call, account: Account) -> dict[str, Any]:
        service = self._service(call, account)
        # Incremental and without restart (seed 000): allowed during transitions too.
        if "ScheduledAction" in call.params:
            self._apply_schedule(service, call.params["ScheduledAction"])
        if "ServiceLimit" in call.params:
            self._apply_limit(service, call.params["ServiceLimit"])
        service.updated_at = self.now()
        return {"Service": self.render(service)}

    def _deny_if_billing_stopped(self, service: Service) -> None:
        if service.business_status in BILLING_STOPS:
            raise _err("OperationDenied.BalanceInsufficient", "余额不足,创建/更新失败。")

    def _scale(self, service: Service, params: dict[str, Any]) -> None:
        if "Replicas" not in params:
            raise _err(
                "MissingParameter", "The request is missing a required parameter `Replicas`."
            )
        replicas = _int_field(params, "Replicas", 0)
        if replicas < 0:
            raise _err("InvalidParameterValue", "`Replicas` must not be negative.")
        self._deny_if_billing_stopped(service)
        self._check_writable(service)
        if service.status not in RUNNING:
            raise _err("UnsupportedOperation", f"服务状态 {service.status} 不支持扩缩容。")
        self._roll(service, replicas)

    def _roll(self, service: Service, replicas: int) -> None:
        """Pending -> Waiting -> Normal, with ready replicas catching up at the end."""
        service.replicas = replicas
        service.ready = min(service.ready, replicas)
        service.status = "Pending"
        service.updated_at = service.transition_at = self.now()
        half = self.settings.scale_seconds / 2

        def waiting(s: Service) -> None:
            s.status = "Waiting"

        def done(s: Service) -> None:
            s.status = "Normal"
            s.ready = s.replicas

        self.transition(service, [(half, waiting), (half, done)])

    def _stop(self, service: Service) -> None:
        self._check_writable(service)
        if service.status == "Stopped":
            raise _err("UnsupportedOperation", "服务已停止。")
        self.stop_now(service)

    def stop_now(self, service: Service, at: float | None = None) -> None:
        """Stopping -> Stopped from `at` (default now); the desired count is kept in
        OldReplicas for RESUME."""
        start = self.now() if at is None else at
        if service.replicas > 0:
            service.old_replicas = service.replicas
        service.replicas = 0
        service.status = "Stopping"
        service.updated_at = service.transition_at = start

        def stopped(s: Service) -> None:
            s.status = "Stopped"
            s.ready = 0

        self.transition(service, [(self.settings.stop_seconds, stopped)], start=start)

    def _resume(self, service: Service) -> None:
        self._deny_if_billing_stopped(service)
        self._check_writable(service)
        if service.status != "Stopped":
            raise _err("UnsupportedOperation", f"服务状态 {service.status} 不支持重启。")
        replicas = service.old_replicas or 1
        service.ready = 0
        service.replicas = replicas
        service.status = "Pending"
        service.updated_at = service.transition_at = self.now()
        half = self.settings.start_seconds / 2

        def waiting(s: Service) -> None:
            s.status = "Waiting"

        def done(s: Service) -> None:
            s.status = "Normal"
            s.ready = s.replicas

        self.transition(service, [(half, waiting), (half, done)])

    def _full_update(self, service: Service, params: dict[str, Any]) -> None:
        """ModifyModelService without ServiceAction: omitted fields are kept; a running
        service rolls (Waiting -> Normal) [UNVERIFIED: whether and how it restarts]."""
        self._deny_if_billing_stopped(service)
        self._check_writable(service)
        replicas = service.replicas
        if "Replicas" in params:
            replicas = _int_field(params, "Replicas", 0)
            if replicas < 0:
                raise _err("InvalidParameterValue", "`Replicas` must not be negative.")
        if "ScheduledAction" in params:
            self._apply_schedule(service, params["ScheduledAction"])
        if "ServiceLimit" in params:
            self._apply_limit(service, params["ServiceLimit"])
        for name in ("ScaleMode", "ServiceDescription", "InstanceType"):
            if name in params:
                service.extra[name] = params[name]
        service.updated_at = self.now()
        if service.status == "Stopped":
            if "Replicas" in params:
                service.old_replicas = replicas
            return
        self._roll(service, replicas)

    def _apply_limit(self, service: Service, spec: JSONValue) -> None:
        if not isinstance(spec, dict):
            raise _err("InvalidParameterValue", "`ServiceLimit` must be an object.")
        for key in spec:
            if key not in (
                "EnableInstanceRpsLimit",
                "InstanceRpsLimit",
                "EnableInstanceReqLimit",
                "InstanceReqLimit",
            ):
                raise _err(
                    "UnknownParameter", f"The parameter `ServiceLimit.{key}` is not recognized."
                )
        if "EnableInstanceRpsLimit" in spec:
            if not isinstance(spec["EnableInstanceRpsLimit"], bool):
                raise _err("InvalidParameterValue", "`EnableInstanceRpsLimit` must be a boolean.")
            service.rps_enabled = spec["EnableInstanceRpsLimit"]
        if "InstanceRpsLimit" in spec:
            value = spec["InstanceRpsLimit"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _err("InvalidParameterValue", "`InstanceRpsLimit` must be an integer >= 0.")
            service.rps_limit = float(value)
        for key in ("EnableInstanceReqLimit", "InstanceReqLimit"):
            if key in spec:
                service.extra[key] = spec[key]

    def _apply_schedule(self, service: Service, spec: JSONValue) -> None:
        if not isinstance(spec, dict):
            raise _err("InvalidParameterValue", "`ScheduledAction` must be an object.")
        stop = spec.get("ScheduleStop", False)
        if not isinstance(stop, bool):
            raise _err("InvalidParameterValue", "`ScheduleStop` must be a boolean.")
        when = spec.get("ScheduleStopTime")
        if stop:
            if not when:
                raise _err(
                    "MissingParameter", "`ScheduleStopTime` is required when ScheduleStop is true."
                )
            try:
                stop_at = parse_iso(str(when))
            except ValueError:
                raise _err("InvalidParameterValue", f"Bad ScheduleStopTime {when!r}.") from None
            if stop_at <= self.now():
                raise _err("InvalidParameterValue", "`ScheduleStopTime` must be in the future.")
            service.stop_at = stop_at
        elif when:
            # "false 则 ScheduleStopTime 不生效": kept, but ignored.
            try:
                service.stop_at = parse_iso(str(when))
            except ValueError:
                raise _err("InvalidParameterValue", f"Bad ScheduleStopTime {when!r}.") from None
        service.stop_enabled = stop
        service.extra["_scheduled"] = True
        self.arm_schedule(service)

    def fire_scheduled_stop(self, service: Service, due: float) -> None:
        service.stop_enabled = False
        if service.status in ("Stopped", "Stopping"):
            return
        self.stop_now(service, at=due)

    def platform_stop(self, service: Service, reason: str) -> None:
        statuses = {"arrears": "ARREARS_STOP", "whitelist": "WHITELIST_STOP"}
        if reason not in statuses:
            raise ControlError(400, f"reason must be one of {sorted(statuses)}")
        service.business_status = statuses[reason]
        if service.status not in ("Stopped", "Stopping"):
            self.stop_now(service)

    def fire_billing_stop(self, service: Service) -> None:
        self.platform_stop(service, "arrears")

    # ----- seeding ---------------------------------------------------------------------------

    def new_account(self, spec: dict[str, Any]) -> Account:
        known = {"name", "secret_id", "secret_key", "regions", "partial_config", "uin"}
        if set(spec) - known:
            raise ControlError(400, f"unknown account fields {sorted(set(spec) - known)}")
        partial = str(spec.get("partial_config", self.settings.default_partial_config))
        if partial not in ("available", "removed"):
            raise ControlError(400, "partial_config must be 'available' or 'removed'")
        return Account(
            name=str(spec["name"]),
            access_key=str(spec["secret_id"]),
            secret_key=str(spec["secret_key"]),
            regions=[str(r) for r in spec.get("regions", ["ap-guangzhou"])],
            partial_config=partial,
            uin=str(spec.get("uin", "100000000001")),
        )

    def seed_service(self, spec: dict[str, Any]) -> Service:
        known = {
            "account",
            "region",
            "name",
            "service_id",
            "group_id",
            "replicas",
            "status",
            "rps_enabled",
            "rps_limit",
            "schedule_stop",
            "schedule_stop_time",
            "business_status",
            "extra",
        }
        if set(spec) - known:
            raise ControlError(400, f"unknown service fields {sorted(set(spec) - known)}")
        account = self.accounts.get(str(spec.get("account", "")))
        if account is None:
            raise ControlError(404, f"no account {spec.get('account')!r}")
        region = str(spec.get("region", account.regions[0]))
        group_id = str(spec.get("group_id") or "")
        service_id = str(spec.get("service_id") or "")
        if not group_id:
            group_id = service_id.rsplit("-", 1)[0] if service_id else f"ms-{self.new_hex(8)}"
        scope = self.groups.setdefault((account.name, region), {})
        if not service_id:
            service_id = f"{group_id}-{len(scope.get(group_id, [])) + 1}"
        now = self.now()
        status = str(spec.get("status", "Normal"))
        replicas = int(spec.get("replicas", 1))
        stopped = status == "Stopped"
        service = Service(
            service_id=service_id,
            account=account.name,
            region=region,
            name=str(spec.get("name", group_id)),
            status=status,
            replicas=0 if stopped else replicas,
            ready=0 if stopped else replicas,
            old_replicas=replicas,
            group_id=group_id,
            created_at=now,
            updated_at=now,
            transition_at=now,
            rps_enabled=bool(spec.get("rps_enabled", False)),
            rps_limit=float(spec.get("rps_limit", 0)),
            business_status=str(spec.get("business_status", "CREATE_SUCCEED")),
            extra=dict(spec.get("extra", {})),
        )
        if "schedule_stop_time" in spec:
            service.stop_at = parse_iso(str(spec["schedule_stop_time"]))
            service.stop_enabled = bool(spec.get("schedule_stop", True))
            service.extra["_scheduled"] = True
        self.store.add(service)
        scope.setdefault(group_id, []).append(service)
        return service

    def console_edit(self, service: Service, spec: dict[str, Any]) -> None:
        spec = dict(spec)
        if "schedule_stop_time" in spec:
            when = spec.pop("schedule_stop_time")
            spec["stop_at"] = None if when is None else parse_iso(str(when))
            service.extra["_scheduled"] = True
        if "schedule_stop" in spec:
            spec["stop_enabled"] = spec.pop("schedule_stop")
        super().console_edit(service, spec)

    def _c_delete_service(self, body: JSONValue, query: dict[str, str], sid: str) -> dict[str, Any]:
        service = self.get_service(sid)
        group = self.groups.get((service.account, service.region), {})
        members = group.get(service.group_id, [])
        if service in members:
            members.remove(service)
        if not members:
            group.pop(service.group_id, None)
        return super()._c_delete_service(body, query, sid)

    # ----- rendering -------------------------------------------------------------------------

    def render_group(self, services: list[Service]) -> dict[str, Any]:
        first = services[0]
        account = self.accounts[first.account]
        running = sum(1 for s in services if s.status == "Normal")
        return {
            "ServiceGroupId": first.group_id,
            "ServiceGroupName": first.name,
            "CreatedBy": account.uin,
            "CreateTime": iso_z(first.created_at),
            "UpdateTime": iso_z(max(s.updated_at for s in services)),
            "Uin": account.uin,
            "ServiceCount": len(services),
            "RunningServiceCount": running,
            "Services": [self.render(s) for s in services],
            "Status": first.status,
            "Tags": [],
            "BusinessStatus": "",
            "WeightUpdateStatus": "",
            "CreateSource": "DEFAULT",
            "BillingInfo": "",
            "LatestVersion": "",
        }

    def render(self, service: Service) -> dict[str, Any]:
        account = self.accounts[service.account]
        extra = service.extra
        gpu_type = str(extra.get("GpuType", "T4"))
        instance_type = str(extra.get("InstanceType", "TI.GN7.8XLARGE128.POST"))
        resources = {
            "Cpu": 32000,
            "Memory": 131072,
            "Gpu": 100,
            "RealGpu": 100,
            "GpuType": gpu_type,
            "RealGpuDetailSet": [{"Name": gpu_type, "Value": 100}],
        }
        cos = {
            "Bucket": f"models-{account.uin}",
            "Region": service.region,
            "Paths": [f"models/{service.group_id}/"],
            "Uin": account.uin,
            "SubUin": account.uin,
        }
        ready = service.ready
        status_block = {
            "Replicas": service.replicas,
            "UpdatedReplicas": service.replicas,
            "ReadyReplicas": ready,
            "AvailableReplicas": ready,
            "UnavailableReplicas": max(service.replicas - ready, 0),
            "Status": service.status,
            "Reason": "",
            "Conditions": [
                {
                    "Message": "Deployment has minimum availability.",
                    "Reason": "MinimumReplicasAvailable",
                    "Status": "True",
                    "Type": "Available",
                    "LastTransitionTime": iso_china(service.transition_at),
                    "LastUpdateTime": iso_china(service.updated_at),
                },
                {
                    "Message": f'ReplicaSet "{service.service_id}-5b4fdfd87c" '
                    "has successfully progressed.",
                    "Reason": "NewReplicaSetAvailable",
                    "Status": "True",
                    "Type": "Progressing",
                    "LastTransitionTime": iso_china(service.created_at),
                    "LastUpdateTime": iso_china(service.updated_at),
                },
            ],
        }
        scheduled: dict[str, Any] | None = None
        if extra.get("_scheduled"):
            scheduled = {
                "ScheduleStop": service.stop_enabled,
                "ScheduleStopTime": iso_z(service.stop_at) if service.stop_at is not None else "",
            }
        limit: dict[str, Any] = {
            "EnableInstanceRpsLimit": service.rps_enabled,
            "InstanceRpsLimit": int(service.rps_limit),
        }
        for key in ("EnableInstanceReqLimit", "InstanceReqLimit"):
            if key in extra:
                limit[key] = extra[key]
        info = {
            "Replicas": service.replicas,
            "ImageInfo": {
                "ImageType": "PRE_SET",
                "ImageUrl": IMAGE_URL,
                "RegistryRegion": "",
                "RegistryId": "",
            },
            "Env": [],
            "Resources": resources,
            "InstanceType": instance_type,
            "ModelInfo": {
                "ModelId": f"m-{service.group_id[3:]}",
                "ModelName": service.name,
                "ModelVersionId": f"mv-v1-{service.group_id[3:]}",
                "ModelVersion": "v1",
                "ModelSource": "COS",
                "ModelType": "NORMAL",
                "CosPathInfo": cos,
                "GpuType": gpu_type,
                "AlgorithmFramework": "PYTORCH",
                "ModelFormat": "PYTORCH",
            },
            "InferCodeInfo": {"CosPathInfo": {k: cos[k] for k in ("Bucket", "Region", "Paths")}},
            "VolumeMount": None,
            "LogEnable": False,
            "LogConfig": None,
            "AuthorizationEnable": False,
            "ScaleMode": str(extra.get("ScaleMode", "MANUAL")),
            "HorizontalPodAutoscaler": None,
            "CronScaleJobs": [],
            "ScaleStrategy": "",
            "ScheduledAction": scheduled,
            "Status": status_block,
            "Weight": 0,
            "PodList": [],
            "Pods": None,
            "PodInfos": [],
            "ResourceTotal": resources,
            "OldReplicas": service.old_replicas,
            "HybridBillingPrepaidReplicas": 0,
            "OldHybridBillingPrepaidReplicas": 0,
            "ServiceLimit": limit,
            "BillingStatus": "BILLING" if service.replicas > 0 else "STOP_BILLING",
            "BillingUnits": [{"Spec": instance_type, "Count": service.replicas}],
            "ModelHotUpdateEnable": False,
            "ModelTurboEnable": False,
        }
        return {
            "ServiceGroupId": service.group_id,
            "ServiceId": service.service_id,
            "ServiceGroupName": service.name,
            "ServiceDescription": str(extra.get("ServiceDescription", "")),
            "ServiceInfo": info,
            "ClusterId": "",
            "Region": service.region,
            "Namespace": f"infer-{account.uin}",
            "ChargeType": "POSTPAID_BY_HOUR",
            "ResourceGroupId": "",
            "ResourceGroupName": "",
            "Tags": [],
            "IngressName": "user-ingress",
            "CreatedBy": account.uin,
            "CreateTime": iso_z(service.created_at),
            "UpdateTime": iso_z(service.updated_at),
            "Uin": account.uin,
            "SubUin": "",
            "AppId": 0,
            "BusinessStatus": service.business_status,
            "CreateFailedReason": "CREATE_SUCCEED",
            "Status": service.status,
            "BillingInfo": "",
            "Weight": 100,
            "CreateSource": "DEFAULT",
            "Version": "1",
            "LatestVersion": "",
            # Deprecated top-level copies: "已废弃,以ServiceInfo中的对应为准"; null like the seeds.
            "ServiceLimit": None,
            "ScheduledAction": None,
        }


_AUTH_CODES = {
    AuthReason.MISSING: "AuthFailure.SignatureFailure",
    AuthReason.MALFORMED: "AuthFailure.SignatureFailure",
    AuthReason.UNKNOWN_KEY: "AuthFailure.SecretIdNotFound",
    AuthReason.BAD_SIGNATURE: "AuthFailure.SignatureFailure",
    AuthReason.EXPIRED: "AuthFailure.SignatureExpire",
}


def _body_pairs(req: Request) -> list[tuple[str, str]]:
    try:
        return parse_qsl(req.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise _err("InvalidParameter", "The form body is not UTF-8.") from None


def _matches(group: list[Service], flt: dict[str, Any], uin: str) -> bool:
    name = flt["Name"]
    values = [str(v) for v in flt.get("Values") or []]
    fuzzy = bool(flt.get("Fuzzy", False))
    negative = bool(flt.get("Negative", False))

    getters: dict[str, Callable[[Service], str]] = {
        "ServiceId": lambda s: s.service_id,
        "ServiceGroupId": lambda s: s.group_id,
        "ServiceGroupName": lambda s: s.name,
        "Status": lambda s: s.status,
        "ModelVersionId": lambda s: f"mv-v1-{s.group_id[3:]}",
        "CreatedBy": lambda s: uin,
        "ClusterId": lambda s: "",
    }
    field = getters[name]

    def hit(value: str) -> bool:
        if fuzzy:
            return any(v in value for v in values)
        return value in values

    found = any(hit(field(s)) for s in group)
    return found != negative
