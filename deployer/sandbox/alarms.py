"""ALB metrics and the alarms on them, which moto stores but never produces nor evaluates.

- `AWS::CloudWatch::Alarm` in a template makes a metric alarm (moto's CloudFormation has no
  such resource), named as CloudFormation names it (stack-LogicalId-SUFFIX).
- The fronts publish, per request, what an ALB publishes per target group:
  `RequestCount`, `HTTPCode_Target_5XX_Count`, `TargetResponseTime`; the evaluator adds
  `UnHealthyHostCount` from the prober.
- The evaluator sets the state of every alarm made by a template, as CloudWatch does: the
  statistic (Sum, Average, Maximum, Minimum, SampleCount or pNN) over its evaluation window
  (Period x EvaluationPeriods, scaled by the sandbox's time scale), against its threshold,
  with TreatMissingData. Alarms made through the API are left alone (tests set their state).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.cloudformation.models import CloudFormationModel
from moto.cloudwatch.models import MetricDatum, cloudwatch_backends

from deployer.sandbox.layout import ACCOUNT_ID, REGION
from deployer.sandbox.prober import elbv2_backend

NAMESPACE = "AWS/ApplicationELB"
KEEP_DATA = timedelta(hours=1)
COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}
_FROM_TEMPLATES: set[str] = set()
_LOCK = threading.Lock()


def backend() -> Any:
    return cloudwatch_backends[ACCOUNT_ID][REGION]


class TemplateAlarm(CloudFormationModel):
    """AWS::CloudWatch::Alarm for moto's CloudFormation (found through __subclasses__)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **_: Any,
    ) -> TemplateAlarm:
        props = cloudformation_json["Properties"]
        name = str(props.get("AlarmName") or resource_name)
        cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=name,
            namespace=str(props.get("Namespace", "")),
            metric_name=str(props.get("MetricName", "")),
            comparison_operator=str(props["ComparisonOperator"]),
            evaluation_periods=int(props.get("EvaluationPeriods", 1)),
            period=int(props.get("Period", 60)),
            threshold=float(props["Threshold"]),
            statistic=props.get("Statistic"),
            extended_statistic=props.get("ExtendedStatistic"),
            description=str(props.get("AlarmDescription", "")),
            dimensions=[
                {"Name": str(d["Name"]), "Value": str(d["Value"])}
                for d in props.get("Dimensions", [])
            ],
            alarm_actions=[],
            treat_missing_data=props.get("TreatMissingData"),
        )
        with _LOCK:
            _FROM_TEMPLATES.add(name)
        return cls(name)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])
        with _LOCK:
            _FROM_TEMPLATES.discard(resource_name)

    def delete(self, account_id: str, region_name: str) -> None:
        self.delete_from_cloudformation_json(self.name, {}, account_id, region_name)


def apply() -> None:
    """Target groups answer Fn::GetAtt as on AWS (moto's do not): the alarms' dimensions and
    the requests-per-target scaling label need TargetGroupFullName.
    """
    from moto.elbv2.models import FakeTargetGroup

    attributes = {
        "TargetGroupFullName": lambda group: group.arn.rsplit(":", 1)[-1],
        "TargetGroupName": lambda group: group.name,
        "LoadBalancerArns": lambda group: list(group.load_balancer_arns),
    }

    def has_cfn_attr(cls: Any, attribute: str) -> bool:
        return attribute in attributes

    def get_cfn_attribute(self: Any, attribute: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute not in attributes:
            raise UnformattedGetAttTemplateException()
        return attributes[attribute](self)

    from moto.elbv2.models import FakeLoadBalancer

    original_has, original_get = FakeLoadBalancer.has_cfn_attr, FakeLoadBalancer.get_cfn_attribute

    def balancer_has(cls: Any, attribute: str) -> bool:
        return attribute == "LoadBalancerFullName" or original_has(attribute)

    def balancer_get(self: Any, attribute: str) -> Any:
        if attribute == "LoadBalancerFullName":
            return self.arn.split(":loadbalancer/", 1)[-1]
        return original_get(self, attribute)

    FakeLoadBalancer.has_cfn_attr = classmethod(balancer_has)  # type: ignore[method-assign,assignment]
    FakeLoadBalancer.get_cfn_attribute = balancer_get  # type: ignore[method-assign,assignment]
    FakeTargetGroup.has_cfn_attr = classmethod(has_cfn_attr)  # type: ignore[method-assign,assignment]
    FakeTargetGroup.get_cfn_attribute = get_cfn_attribute  # type: ignore[attr-defined]


_DIMENSIONS: dict[str, list[dict[str, str]]] = {}


def dimensions_of(target_group_arn: str) -> list[dict[str, str]] | None:
    """The dimensions an ALB publishes a target group's metrics under. Found once per group
    (a group stays with its load balancer): every proxied request asks.
    """
    known = _DIMENSIONS.get(target_group_arn)
    if known is not None:
        return known
    backend_ = elbv2_backend()
    group = backend_.target_groups.get(target_group_arn)
    if group is None:
        return None
    balancer = (
        group.load_balancer_arns[0]
        if group.load_balancer_arns
        else _routing(backend_, target_group_arn)
    )
    if not balancer:
        return None
    _DIMENSIONS[target_group_arn] = [
        {"Name": "LoadBalancer", "Value": balancer.split(":loadbalancer/", 1)[-1]},
        {"Name": "TargetGroup", "Value": target_group_arn.rsplit(":", 1)[-1]},
    ]
    return _DIMENSIONS[target_group_arn]


def _routing(backend_: Any, target_group_arn: str) -> str:
    """The load balancer whose listener (a rule or the default action) forwards to the group
    (moto records it only for default actions).
    """
    for balancer in list(backend_.load_balancers.values()):
        for listener in list(balancer.listeners.values()):
            rules = list(getattr(listener, "_non_default_rules", {}).values())
            actions = [a for r in rules for a in r.actions] + list(listener.default_actions)
            if target_group_arn in json.dumps([getattr(a, "data", a) for a in actions]):
                return str(balancer.arn)
    return ""


def publish(target_group_arn: str, status: int, seconds: float) -> None:
    """One request answered by a target of the group, as the ALB counts it."""
    dimensions = dimensions_of(target_group_arn)
    if dimensions is None:
        return
    now = datetime.now(UTC)
    data = [
        ("RequestCount", 1.0),
        ("TargetResponseTime", seconds),
        *([("HTTPCode_Target_5XX_Count", 1.0)] if status >= 500 else []),
    ]
    _append([(name, value, dimensions, now) for name, value in data])


def _append(points: list[tuple[str, float, list[dict[str, str]], datetime]]) -> None:
    store = backend()
    for name, value, dimensions, when in points:
        store.metric_data.append(MetricDatum(NAMESPACE, name, value, dimensions, when))


def _statistic(alarm: Any, values: list[float]) -> float:
    if alarm.extended_statistic:
        ranked = sorted(values)
        share = float(alarm.extended_statistic[1:]) / 100
        return ranked[min(len(ranked) - 1, max(0, int(round(share * len(ranked))) - 1))]
    return {
        "Sum": sum(values),
        "Average": sum(values) / len(values),
        "Maximum": max(values),
        "Minimum": min(values),
        "SampleCount": float(len(values)),
    }.get(alarm.statistic, sum(values))


def _matches(datum: Any, alarm: Any) -> bool:
    if datum.namespace != alarm.namespace or datum.name != alarm.metric_name:
        return False
    return all(d in datum.dimensions for d in alarm.dimensions)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Evaluator:
    """Publishes UnHealthyHostCount and evaluates the template-made alarms, each tick."""

    def __init__(self, time_scale: float, health_of: Callable[[str, str], Any]) -> None:
        self._scale = max(time_scale, 0.001)
        self._health_of = health_of

    def tick(self) -> None:
        self._publish_unhealthy()
        store = backend()
        now = datetime.now(UTC)
        store.metric_data[:] = [
            d for d in store.metric_data if now - _aware(d.timestamp) <= KEEP_DATA
        ]
        with _LOCK:
            names = set(_FROM_TEMPLATES)
        for name in names:
            alarm = store.alarms.get(name)
            if alarm is not None:
                self._evaluate(alarm, store.metric_data, now)

    def _publish_unhealthy(self) -> None:
        now = datetime.now(UTC)
        points = []
        for arn, group in list(elbv2_backend().target_groups.items()):
            dimensions = dimensions_of(arn)
            if dimensions is None or not group.targets:
                continue
            states = [(self._health_of(arn, t) or ("initial",))[0] for t in list(group.targets)]
            points.append(("UnHealthyHostCount", float(states.count("unhealthy")), dimensions, now))
            points.append(("HealthyHostCount", float(states.count("healthy")), dimensions, now))
        _append(points)

    def _evaluate(self, alarm: Any, data: list[Any], now: datetime) -> None:
        window = timedelta(seconds=alarm.period * alarm.evaluation_periods * self._scale)
        values = [
            d.value
            for d in list(data)
            if isinstance(d, MetricDatum)
            and _matches(d, alarm)
            and now - _aware(d.timestamp) <= window
        ]
        if values:
            value = _statistic(alarm, values)
            breaching = COMPARE.get(alarm.comparison_operator, COMPARE["GreaterThanThreshold"])(
                value, alarm.threshold
            )
            state = "ALARM" if breaching else "OK"
            reason = (
                f"Threshold Crossed: {alarm.extended_statistic or alarm.statistic} {value:g} "
                f"over the last {window.total_seconds():g}s (threshold {alarm.threshold:g})"
            )
        else:
            missing = alarm.treat_missing_data or "missing"
            if missing == "ignore":
                return
            state = {"notBreaching": "OK", "breaching": "ALARM"}.get(missing, "INSUFFICIENT_DATA")
            reason = f"no datapoints in the last {window.total_seconds():g}s ({missing})"
        if state != alarm.state_value:
            alarm.update_state(reason, json.dumps({"value": values[-1:] or None}), state)
