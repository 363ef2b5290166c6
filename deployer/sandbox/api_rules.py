"""AWS's API rules that moto skips, applied to every call moto serves (all but S3, which the
gateway handles), before and after moto's own handler:

- throttling and server errors (faults.py), in the service's own error shape;
- idempotency tokens: the same token with the same parameters answers the first call's
  result (also after the instance it made has terminated); with other parameters,
  `IdempotentParameterMismatch`;
- eventual consistency: an EC2 id made in the last `consistency_window_s` seconds answers
  its NotFound code to every other EC2 call that names it;
- DescribeAlarms without AlarmTypes lists metric alarms only;
- iam:SimulatePrincipalPolicy, answered from the `denied` behaviour (simulator.py).

Errors are raised as moto ServiceExceptions, so moto serializes them in each protocol's shape
(EC2 XML, query XML, JSON, CBOR) with the status AWS uses.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from typing import Any

from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, BaseResponse, EmptyResult

from deployer.sandbox.faults import Fault, Faults
from deployer.sandbox.simulator import simulate_principal_policy
from deployer.sandbox.world import WORLD

# (service, action) -> the parameter that carries its idempotency token.
TOKENS: dict[tuple[str, str], str] = {
    ("ec2", "RunInstances"): "ClientToken",
    ("ec2", "CopyImage"): "ClientToken",
    ("ec2", "CreateLaunchTemplate"): "ClientToken",
    ("ec2", "CreateLaunchTemplateVersion"): "ClientToken",
    ("cloudformation", "CreateStack"): "ClientRequestToken",
    ("cloudformation", "UpdateStack"): "ClientRequestToken",
    ("cloudformation", "DeleteStack"): "ClientRequestToken",
    ("cloudformation", "ExecuteChangeSet"): "ClientRequestToken",
    ("cloudformation", "ContinueUpdateRollback"): "ClientRequestToken",
    ("dynamodb", "TransactWriteItems"): "ClientRequestToken",
}
# AWS's answer to a token reused with other parameters. CloudFormation does not document it;
# TokenAlreadyExistsException is CreateStack's modelled error for a token in use.
MISMATCH = {
    "ec2": "IdempotentParameterMismatch",
    "dynamodb": "IdempotentParameterMismatchException",
    "cloudformation": "TokenAlreadyExistsException",
}
# EC2 calls that create an id: the tag the id is in, the NotFound code other calls get, and
# the parameters (by name prefix) that name such an id in other calls.
RESOURCE_PARAMS = ("ResourceId", "Resource.")
CREATED_IDS: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "RunInstances": [("instanceId", "InvalidInstanceID.NotFound", ("InstanceId",))],
    "CreateImage": [("imageId", "InvalidAMIID.NotFound", ("ImageId", "SourceImageId"))],
    "CopyImage": [("imageId", "InvalidAMIID.NotFound", ("ImageId", "SourceImageId"))],
    "RegisterImage": [("imageId", "InvalidAMIID.NotFound", ("ImageId", "SourceImageId"))],
    "CreateLaunchTemplate": [
        ("launchTemplateId", "InvalidLaunchTemplateId.NotFound", ("LaunchTemplateId",))
    ],
    "CreateKeyPair": [("keyName", "InvalidKeyPair.NotFound", ("KeyName",))],
    "ImportKeyPair": [("keyName", "InvalidKeyPair.NotFound", ("KeyName",))],
    "CreateSecurityGroup": [("groupId", "InvalidGroup.NotFound", ("GroupId", "SecurityGroupId"))],
}

_ORIGINAL_CALL_ACTION = BaseResponse.call_action
_ORIGINAL_DESCRIBE_ALARMS = CloudWatchResponse.describe_alarms
_FAULTS = Faults(WORLD)
_tokens: dict[tuple[str, str, str], tuple[str, Any]] = {}
_fresh: dict[str, tuple[float, str, tuple[str, ...]]] = {}  # id -> (made at, code, params)
_state_lock = threading.Lock()


class _ApiError(ServiceException):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


def _service(response: BaseResponse) -> str:
    return str(getattr(response, "service_name", "") or "")


def _params(response: BaseResponse) -> dict[str, Any]:
    """The request's parameters, whatever the protocol."""
    querystring = getattr(response, "querystring", None) or {}
    params: dict[str, Any] = {
        k: v for k, v in querystring.items() if k not in ("Action", "Version")
    }
    body = getattr(response, "body", None)
    if not params and body:
        try:
            decoded = json.loads(body)
        except (ValueError, TypeError):
            decoded = None
        if isinstance(decoded, dict):
            params = decoded
    return params


def _first(params: dict[str, Any], name: str) -> str:
    value = params.get(name, "")
    return str(value[0] if isinstance(value, list) and value else value or "")


def _fingerprint(params: dict[str, Any], token_name: str) -> str:
    kept = {k: v for k, v in params.items() if k != token_name}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def _error(response: BaseResponse, code: str, message: str, status: int | None = None) -> Any:
    se_status, headers, body = response.serialized(ActionResult(_ApiError(code, message)))
    headers["status"] = status or se_status
    return status or se_status, headers, body


def _fresh_id_named(params: dict[str, Any]) -> tuple[str, str] | None:
    """A parameter naming an id made within the window, as a parameter of its kind."""
    window = WORLD.behaviours.consistency_window_s
    if window <= 0:
        return None
    now = WORLD.clock()
    with _state_lock:
        for name, value in params.items():
            for item in value if isinstance(value, list) else [value]:
                found = _fresh.get(str(item))
                if found is None or now - found[0] >= window:
                    continue
                if name.startswith(found[2] + RESOURCE_PARAMS):
                    return str(item), found[1]
    return None


def _not_found_message(code: str, ident: str) -> str:
    kind = {
        "InvalidInstanceID.NotFound": "instance ID",
        "InvalidAMIID.NotFound": "image id",
        "InvalidLaunchTemplateId.NotFound": "launch template ID",
        "InvalidKeyPair.NotFound": "key pair",
        "InvalidGroup.NotFound": "security group",
    }.get(code, "resource")
    return f"The {kind} '{ident}' does not exist"


def _remember_created(action: str, body: Any) -> None:
    if not WORLD.behaviours.consistency_window_s or not isinstance(body, str | bytes):
        return
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    now = WORLD.clock()
    with _state_lock:
        for tag, code, names in CREATED_IDS.get(action, []):
            for ident in re.findall(rf"<{tag}>([^<]+)</{tag}>", text):
                _fresh[ident] = (now, code, names)
        if len(_fresh) > 10_000:  # forget the old ones
            cutoff = now - 60
            for ident in [i for i, (t, _, _) in _fresh.items() if t < cutoff]:
                del _fresh[ident]


def call_action(self: BaseResponse) -> Any:
    service, action = _service(self), self._get_action()
    if not service or not action:
        return _ORIGINAL_CALL_ACTION(self)
    denied = WORLD.behaviours.denied.get(f"{service}:{action}")
    if denied:
        message = f"User is not authorized to perform: {service}:{action} (sandbox: denied)"
        return _error(self, denied, message, 403)
    fault: Fault | None = _FAULTS.decide(service)
    if fault is not None:
        return _error(self, fault.code, fault.message, fault.status)
    params = _params(self)
    if (service, action) == ("iam", "SimulatePrincipalPolicy"):
        return simulate_principal_policy(self, params)
    if service == "ec2":
        fresh = _fresh_id_named(params)
        if fresh is not None:
            return _error(self, fresh[1], _not_found_message(fresh[1], fresh[0]))
    token_name = TOKENS.get((service, action)) if WORLD.behaviours.client_tokens else None
    token = _first(params, token_name) if token_name else ""
    key = (service, action, token)
    if token:
        fingerprint = _fingerprint(params, str(token_name))
        with _state_lock:
            seen = _tokens.get(key)
        if seen is not None:
            if seen[0] == fingerprint:
                return seen[1]
            return _error(
                self,
                MISMATCH.get(service, "ValidationError"),
                f"The client token {token} was used with different parameters",
            )
    result = _ORIGINAL_CALL_ACTION(self)
    status = result[0] if isinstance(result, tuple) else 200
    if int(status) < 300:
        if service == "ec2":
            _remember_created(action, result[2] if isinstance(result, tuple) else result)
        if token:
            with _state_lock:
                _tokens[key] = (fingerprint, result)
    return result


def describe_alarms(self: CloudWatchResponse) -> Any:
    """AWS lists only metric alarms unless AlarmTypes asks for composite ones too."""
    result = _ORIGINAL_DESCRIBE_ALARMS(self)
    if not WORLD.behaviours.metric_alarms_only:
        return result
    wanted = self._get_param("AlarmTypes") or []
    listing: dict[str, Any] = dict(result.result)  # type: ignore[call-overload]
    if "MetricAlarm" not in wanted and wanted:
        listing["MetricAlarms"] = []
    if "CompositeAlarm" not in wanted:
        listing["CompositeAlarms"] = []
    return ActionResult(listing)


def check_internals() -> list[str]:
    """What moves in moto that these rules rely on (empty when nothing did)."""
    moved = []
    for attribute in ("call_action", "serialized", "_get_action", "_get_param"):
        if not hasattr(BaseResponse, attribute):
            moved.append(f"BaseResponse.{attribute}")
    if "querystring" not in BaseResponse.setup_class.__code__.co_names:
        moved.append("BaseResponse.querystring")
    if hasattr(_ORIGINAL_CALL_ACTION, "__wrapped__"):
        moved.append("BaseResponse.call_action is wrapped already")
    return moved


def apply() -> None:
    BaseResponse.call_action = call_action  # type: ignore[method-assign]
    CloudWatchResponse.describe_alarms = describe_alarms  # type: ignore[method-assign]
    CloudWatchResponse.put_composite_alarm = put_composite_alarm  # type: ignore[attr-defined]


def restore() -> None:
    BaseResponse.call_action = _ORIGINAL_CALL_ACTION  # type: ignore[method-assign]
    CloudWatchResponse.describe_alarms = _ORIGINAL_DESCRIBE_ALARMS  # type: ignore[method-assign]


def put_composite_alarm(self: CloudWatchResponse) -> Any:
    """PutCompositeAlarm, which moto lacks: a composite alarm is an alarm with a rule."""
    self.cloudwatch_backend.put_metric_alarm(
        name=self._get_param("AlarmName"),
        namespace="",
        metric_name="",
        comparison_operator="",
        evaluation_periods=0,
        period=0,
        threshold=0.0,
        statistic="",
        description=self._get_param("AlarmDescription") or "",
        dimensions=[],
        alarm_actions=self._get_param("AlarmActions", []) or [],
        ok_actions=self._get_param("OKActions", []) or [],
        insufficient_data_actions=self._get_param("InsufficientDataActions", []) or [],
        actions_enabled=self._get_param("ActionsEnabled", True) in (True, "true", None),
        rule=self._get_param("AlarmRule"),
        tags=self._get_param("Tags", []) or [],
    )
    return EmptyResult()
