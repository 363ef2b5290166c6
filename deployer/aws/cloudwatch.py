"""CloudWatch adapter: the state of the alarms a release is gated on, and the load balancer's
per-period metrics of the target groups the metric gate compares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from deployer.aws.session import AwsContext
from deployer.core.metrics import Period

NAMESPACE = "AWS/ApplicationELB"
PERIOD_S = 60  # an ALB publishes its metrics per minute
# What each Period field is made of: (metric, statistic).
REQUESTS = ("RequestCount", "Sum")
ERRORS = ("HTTPCode_Target_5XX_Count", "Sum")
# A target that refuses or resets connections gives users the ALB's own 502s, which
# HTTPCode_Target_5XX_Count leaves out: this per-group count carries them.
CONNECTION_ERRORS = ("TargetConnectionErrorCount", "Sum")
# What the load balancer answered itself (502, 503, 504): per balancer only, no TargetGroup.
BALANCER_ERRORS = ("HTTPCode_ELB_5XX_Count", "Sum")
LATENCY_METRIC = "TargetResponseTime"


@dataclass(frozen=True)
class AlarmState:
    state: str  # OK, ALARM, INSUFFICIENT_DATA
    reason: str
    window_s: float  # Period x EvaluationPeriods: how much data one evaluation judges


class CloudWatch:
    def __init__(self, aws: AwsContext) -> None:
        self._aws = aws

    @property
    def _cw(self) -> Any:
        return self._aws.client("cloudwatch")

    def alarm_states(self, names: Sequence[str]) -> dict[str, AlarmState]:
        """Alarm name -> its state. An alarm that does not exist is absent."""
        found: dict[str, AlarmState] = {}
        for start in range(0, len(names), 100):
            # Without AlarmTypes, AWS lists metric alarms only: composite ones would be
            # reported missing.
            described = self._cw.describe_alarms(
                AlarmNames=list(names[start : start + 100]),
                AlarmTypes=["MetricAlarm", "CompositeAlarm"],
            )
            for alarm in described.get("MetricAlarms", []):
                window = _period_s(alarm) * int(alarm.get("EvaluationPeriods") or 1)
                found[alarm["AlarmName"]] = AlarmState(
                    alarm["StateValue"], alarm.get("StateReason", ""), window
                )
            for alarm in described.get("CompositeAlarms", []):
                found[alarm["AlarmName"]] = AlarmState(
                    alarm["StateValue"], alarm.get("StateReason", ""), 0.0
                )
        return found

    @staticmethod
    def queries(series: Mapping[str, Mapping[str, str]], latency_stat: str) -> list[dict[str, Any]]:
        """GetMetricData's queries for each series, in order: req<n>, err<n>, lat<n>, and
        con<n> for a target group (n: the series' position).
        """
        queries: list[dict[str, Any]] = []
        for index, dimensions in enumerate(series.values()):
            group = "TargetGroup" in dimensions
            fields = [
                ("req", REQUESTS),
                ("err", ERRORS if group else BALANCER_ERRORS),
                ("lat", (LATENCY_METRIC, latency_stat)),
            ]
            if group:
                fields.append(("con", CONNECTION_ERRORS))
            for field, (metric, stat) in fields:
                queries.append(_query(f"{field}{index}", metric, stat, dimensions))
        return queries

    def periods(
        self,
        series: Mapping[str, Mapping[str, str]],
        start: datetime,
        end: datetime,
        latency_stat: str,
    ) -> dict[str, list[Period]]:
        """Per named series (its dimensions: LoadBalancer, and TargetGroup for a group), the
        published minute periods in [start, end) that had requests, oldest first. A group's
        errors are its targets' 5xx and its connection errors; a balancer's (no TargetGroup)
        are the 5xx it answered itself. One GetMetricData call (paginated) for every series.
        """
        queries = self.queries(series, latency_stat)
        values: dict[str, dict[datetime, float]] = {}
        request: dict[str, Any] = {
            "MetricDataQueries": queries,
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        while True:
            answer = self._cw.get_metric_data(**request)
            for result in answer.get("MetricDataResults", []):
                found = values.setdefault(result["Id"], {})
                found.update(
                    zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
                )
            if not answer.get("NextToken"):
                break
            request["NextToken"] = answer["NextToken"]
        return {name: _periods(values, index) for index, name in enumerate(series)}


def _period_s(alarm: Mapping[str, Any]) -> float:
    """A metric alarm's period; a metric math alarm has none of its own, but its queries'."""
    queries = [float(m["MetricStat"].get("Period") or 0) for m in alarm.get("Metrics", [])
               if m.get("MetricStat")]  # fmt: skip
    return float(alarm.get("Period") or 0) or max(queries, default=0.0)


def _query(query_id: str, metric: str, stat: str, dimensions: Mapping[str, str]) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": NAMESPACE,
                "MetricName": metric,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            },
            "Period": PERIOD_S,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def _periods(values: Mapping[str, Mapping[datetime, float]], index: int) -> list[Period]:
    requests = values.get(f"req{index}", {})
    errors = values.get(f"err{index}", {})
    connections = values.get(f"con{index}", {})
    latency = values.get(f"lat{index}", {})
    return [
        Period(
            start=when.timestamp(),
            requests=float(count),
            errors=float(errors.get(when, 0.0)) + float(connections.get(when, 0.0)),
            latency=latency.get(when),
            connection_errors=float(connections.get(when, 0.0)),
        )
        for when, count in sorted(requests.items())
        if count > 0
    ]
