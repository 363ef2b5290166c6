"""ALB metrics and the alarms on them, which moto stores but never produces nor evaluates.

- `AWS::CloudWatch::Alarm` in a template makes a metric alarm (moto's CloudFormation has no
  such resource), named as CloudFormation names it (stack-LogicalId-SUFFIX).
- The fronts publish, per request, what an ALB publishes per target group and per load
  balancer: `RequestCount`, `HTTPCode_Target_5XX_Count`, `TargetResponseTime`; the evaluator
  adds `UnHealthyHostCount` and `HealthyHostCount` from the prober.
- What readers see, and when alarms change state, follows CloudWatch's clock
  (deployer.sandbox.cloudwatch_clock): minute periods, a publication delay, evaluation once a
  minute over complete periods with DatapointsToAlarm and TreatMissingData. Alarms made
  through the API are left alone (tests set their state).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from moto.cloudformation.models import CloudFormationModel
from moto.cloudwatch.models import (
    CloudWatchBackend,
    Dimension,
    Metric,
    MetricDataQuery,
    MetricStat,
    cloudwatch_backends,
)
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult

from deployer.sandbox.cloudwatch_clock import (
    EVALUATION_EVERY_S,
    NAMESPACE,
    Clock,
    DimensionsKey,
    MetricStore,
    answer_metric_stat,
    dimensions_key,
    evaluate_alarm,
    is_ours,
    reason_data,
    statistic,
)
from deployer.sandbox.layout import ACCOUNT_ID, REGION
from deployer.sandbox.prober import elbv2_backend

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
        queries = [_query(m) for m in props.get("Metrics", [])]  # a metric math alarm
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=name,
            namespace=str(props.get("Namespace", "")),
            metric_name=str(props.get("MetricName", "")),
            metric_data_queries=queries or None,
            comparison_operator=str(props["ComparisonOperator"]),
            evaluation_periods=int(props.get("EvaluationPeriods", 1)),
            period=int(props.get("Period", 0)) or None,  # type: ignore[arg-type]
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
            datapoints_to_alarm=(
                int(props["DatapointsToAlarm"]) if props.get("DatapointsToAlarm") else None
            ),
        )
        alarm.state_value = "INSUFFICIENT_DATA"  # as CloudWatch makes a new alarm (moto: OK)
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


def _on_our_metrics(alarm: Any) -> bool:
    """Whether the alarm watches the load balancers' metrics (itself, or every query of its
    metric math): those the sandbox publishes and evaluates.
    """
    queries = [q for q in alarm.metric_data_queries or [] if q.metric_stat is not None]
    if queries:
        return all(q.metric_stat.metric.namespace == NAMESPACE for q in queries)
    return bool(alarm.namespace == NAMESPACE)


def _query(metric: dict[str, Any]) -> MetricDataQuery:
    """One entry of an alarm's Metrics, shaped as moto's PutMetricAlarm makes it."""
    stat = metric.get("MetricStat")
    metric_stat = None
    if stat:
        found = stat["Metric"]
        metric_stat = MetricStat(
            Metric(
                str(found["MetricName"]),
                str(found.get("Namespace", "")),
                [Dimension(str(d["Name"]), str(d["Value"])) for d in found.get("Dimensions", [])],
            ),
            int(stat["Period"]),  # type: ignore[arg-type]
            str(stat["Stat"]),
            stat.get("Unit"),
        )
    returned = metric.get("ReturnData", True)
    return MetricDataQuery(
        query_id=str(metric["Id"]),
        label=metric.get("Label"),  # type: ignore[arg-type]
        period=int(metric["Period"]) if metric.get("Period") else None,  # type: ignore[arg-type]
        return_data=returned if isinstance(returned, bool) else str(returned).lower() == "true",  # type: ignore[arg-type]
        expression=metric.get("Expression"),
        metric_stat=metric_stat,
    )


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


# ---- publishing and reading, on CloudWatch's clock (deployer.sandbox.cloudwatch_clock) --------

_STORE: MetricStore | None = None
_ORIGINAL_GET_METRIC_DATA = CloudWatchBackend.get_metric_data
_ORIGINAL_GET_METRIC_STATISTICS = CloudWatchResponse.get_metric_statistics


def install(clock: Clock) -> MetricStore:
    """The store every front publishes to and every reader reads from; patches the readers."""
    global _STORE
    _STORE = MetricStore(clock, time.time)

    def get_metric_data(self: Any, queries: list[Any], start_time: Any, end_time: Any, **kw: Any):
        ours = [q for q in queries if is_ours(q)]
        others = [q for q in queries if not is_ours(q)]
        results = (
            _ORIGINAL_GET_METRIC_DATA(
                self, queries=others, start_time=start_time, end_time=end_time, **kw
            )
            if others
            else []
        )
        store = _STORE
        if store is None:
            return results
        return [answer_metric_stat(store, q, start_time, end_time) for q in ours] + results

    def get_metric_statistics(self: Any) -> Any:
        if self._get_param("Namespace") != NAMESPACE or _STORE is None:
            return _ORIGINAL_GET_METRIC_STATISTICS(self)
        return ActionResult(statistics_result(self, _STORE))

    CloudWatchBackend.get_metric_data = get_metric_data  # type: ignore[method-assign,assignment]
    CloudWatchResponse.get_metric_statistics = get_metric_statistics  # type: ignore[method-assign]
    return _STORE


def statistics_result(request: Any, store: MetricStore) -> dict[str, Any]:
    """GetMetricStatistics on AWS/ApplicationELB, from the published periods."""
    name = str(request._get_param("MetricName"))
    dimensions = request._get_params().get("Dimensions", [])
    wanted = list(request._get_param("Statistics", []) or [])
    extended = list(request._get_param("ExtendedStatistics", []) or [])
    points = store.published(
        name,
        dimensions_key(dimensions),
        _seconds(request._get_param("StartTime")),
        _seconds(request._get_param("EndTime")),
        float(request._get_int_param("Period")),
    )
    datapoints = []
    for when, samples in points:
        point: dict[str, Any] = {"Timestamp": datetime.fromtimestamp(when, tz=UTC)}
        point.update({stat: statistic(stat, samples) for stat in wanted})
        if extended:
            point["ExtendedStatistics"] = {p: statistic(p, samples) for p in extended}
        datapoints.append(point)
    return {"Label": name, "Datapoints": datapoints}


def _seconds(moment: Any) -> float:
    if isinstance(moment, datetime):
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return datetime.fromisoformat(str(moment).replace("Z", "+00:00")).timestamp()


def _where(target_group_arn: str) -> tuple[MetricStore, DimensionsKey, DimensionsKey] | None:
    """The store, and a group's metrics' keys: per target group and per load balancer."""
    store, dimensions = _STORE, dimensions_of(target_group_arn)
    if store is None or dimensions is None:
        return None
    per_balancer = dimensions_key([d for d in dimensions if d["Name"] == "LoadBalancer"])
    return store, dimensions_key(dimensions), per_balancer


def publish(target_group_arn: str, status: int, seconds: float) -> None:
    """One request answered by a target of the group, counted as the ALB counts it: per
    target group and per load balancer; 5xx only when there is one.
    """
    where, now = _where(target_group_arn), time.time()
    if where is None:
        return
    store, per_group, per_balancer = where
    for key in (per_group, per_balancer):
        store.add("RequestCount", key, 1.0, now)
        store.add("TargetResponseTime", key, seconds, now)
        if status >= 500:
            store.add("HTTPCode_Target_5XX_Count", key, 1.0, now)


def publish_elb_error(target_group_arn: str, status: int) -> None:
    """A request the load balancer answered itself after choosing a target of the group:
    502 when the connection failed or was reset, 504 when the target did not answer in time.
    As an ALB counts it: RequestCount (a target was chosen) per group and balancer;
    HTTPCode_ELB_5XX_Count and HTTPCode_ELB_<code>_Count per balancer only (they have no
    TargetGroup dimension); TargetConnectionErrorCount per group and balancer for a failed
    connection. Never HTTPCode_Target_5XX_Count nor TargetResponseTime: no target answered.
    """
    where, now = _where(target_group_arn), time.time()
    if where is None:
        return
    store, per_group, per_balancer = where
    for key in (per_group, per_balancer):
        store.add("RequestCount", key, 1.0, now)
        if status == 502:
            store.add("TargetConnectionErrorCount", key, 1.0, now)
    store.add("HTTPCode_ELB_5XX_Count", per_balancer, 1.0, now)
    store.add(f"HTTPCode_ELB_{status}_Count", per_balancer, 1.0, now)


class Evaluator:
    """Publishes the host counts from the health checks and evaluates the template-made
    alarms once a (scaled) minute, as CloudWatch does.
    """

    def __init__(self, store: MetricStore, health_of: Callable[[str, str], Any]) -> None:
        self._store = store
        self._health_of = health_of
        self._next_sample = 0.0
        self._next_evaluation = 0.0

    def tick(self) -> None:
        now = time.time()
        clock = self._store.clock
        if now >= self._next_sample:
            self._publish_hosts(now)
            self._next_sample = now + min(1.0, clock.real(10.0))
        if now >= self._next_evaluation:
            self._evaluate_all(now)
            self._store.drop_old()
            minute = clock.real(EVALUATION_EVERY_S)
            self._next_evaluation = (math.floor(now / minute) + 1) * minute

    def _publish_hosts(self, now: float) -> None:
        for arn, group in list(elbv2_backend().target_groups.items()):
            dimensions = dimensions_of(arn)
            if dimensions is None or not group.targets:
                continue
            states = [(self._health_of(arn, t) or ("initial",))[0] for t in list(group.targets)]
            key = dimensions_key(dimensions)
            self._store.add("UnHealthyHostCount", key, float(states.count("unhealthy")), now)
            self._store.add("HealthyHostCount", key, float(states.count("healthy")), now)

    def _evaluate_all(self, now: float) -> None:
        store = backend()
        with _LOCK:
            names = set(_FROM_TEMPLATES)
        for name in names:
            alarm = store.alarms.get(name)
            if alarm is None or not _on_our_metrics(alarm):
                continue
            verdict = evaluate_alarm(alarm, self._store, now)
            if verdict.state and verdict.state != alarm.state_value:
                alarm.update_state(verdict.reason, reason_data(verdict, alarm), verdict.state)
