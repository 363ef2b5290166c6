"""CloudWatch's clock for the load balancers' metrics and the alarms on them.

moto stores metric data and alarms but publishes nothing for an ALB and evaluates no alarm.
The sandbox's fronts count each proxied request here, and this module makes the numbers
reach readers on AWS's schedule, not at once. Each behaviour, and its source:

- **Periods.** An ALB "measures and sends its metrics in 60-second intervals" (ELB guide,
  "CloudWatch metrics for your Application Load Balancer"): every request falls into a
  60 s period aligned to the minute. On the sandbox a minute lasts 60 x the CloudWatch time
  scale in real seconds (`Clock`).
- **Publication delay, spread.** A period becomes readable `publication_delay_s` after it
  closed, plus a share of `publication_spread_s` drawn for that period (the `aws` profile:
  60 to 120 s; CloudWatch documents no figure, and ALB data points are commonly seen one to
  two minutes after their minute). Alarms evaluate the periods the longest delay allows
  (a 1-minute ALB alarm is commonly minutes behind its data).
- **Late samples.** A share `late_fraction` of the samples arrives up to `late_s` after its
  period was first readable: a reader that read the period before sees it revised (more
  requests, more errors) later, as CloudWatch adds samples to a period after it was read.
- **No traffic, no datapoint.** "If there are no requests flowing through the load balancer
  or no data for a metric, the metric is not reported", and "metrics for Application Load
  Balancers exclude health check requests" (same guide): a period without requests has no
  datapoint, and the prober's checks never pass through the fronts. HTTPCode_Target_5XX_Count
  is reported only when it is not zero. UnHealthyHostCount and HealthyHostCount come from the
  health checks and are reported every period.
- **Dimensions.** Each request counts under (LoadBalancer, TargetGroup) and under
  (LoadBalancer) alone, as an ALB publishes them; a query matches a dimension set exactly.
- **Alarm evaluation.** Alarms with a period of a minute or more are evaluated once a
  minute (CloudWatch User Guide, "Alarm evaluation"), over the last EvaluationPeriods
  complete and published periods, breaching when DatapointsToAlarm of them breach; missing
  datapoints follow TreatMissingData (missing: INSUFFICIENT_DATA when all are missing;
  notBreaching / breaching: count as such; ignore: keep the state). Only alarms made by a
  template are evaluated; alarms made through the API are left alone (tests set their state).
- **Readers.** GetMetricData and GetMetricStatistics on AWS/ApplicationELB answer from the
  same published periods, with Sum, Average, Minimum, Maximum, SampleCount and percentiles
  (pNN, nearest rank); other namespaces go to moto.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from deployer.sandbox import metric_math

NAMESPACE = "AWS/ApplicationELB"
PERIOD_S = 60.0  # [D] "in 60-second intervals"
EVALUATION_EVERY_S = 60.0  # [D] alarms on periods of a minute or more: once a minute
KEEP_PERIODS = 24 * 60  # a day of minutes, then the oldest periods are dropped
DimensionsKey = tuple[tuple[str, str], ...]
COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


def dimensions_key(dimensions: Iterable[Mapping[str, str]]) -> DimensionsKey:
    return tuple(sorted((str(d["Name"]), str(d["Value"])) for d in dimensions))


@dataclass(frozen=True)
class Clock:
    """CloudWatch's minute on the sandbox: `scale` real seconds per modelled second; when a
    period's samples become readable (modelled seconds after the period closed).
    """

    scale: float
    publication_delay_s: float
    publication_spread_s: float = 0.0
    late_fraction: float = 0.0
    late_s: float = 0.0
    seed: int = 0

    def real(self, modelled_s: float) -> float:
        return modelled_s * self.scale

    def period_index(self, epoch: float, period_s: float = PERIOD_S) -> int:
        return math.floor(epoch / self.real(period_s))

    def period_start(self, index: int, period_s: float = PERIOD_S) -> float:
        return index * self.real(period_s)

    def last_published(self, now: float, period_s: float = PERIOD_S) -> int:
        """The newest period (of `period_s`) the minimum delay lets a reader see at `now`."""
        return math.floor((now - self.real(self.publication_delay_s)) / self.real(period_s)) - 1

    def last_settled(self, now: float, period_s: float = PERIOD_S) -> int:
        """The newest period (of `period_s`) every period of which is readable at `now`."""
        delay = self.publication_delay_s + self.publication_spread_s
        return math.floor((now - self.real(delay)) / self.real(period_s)) - 1

    def readable_at(self, index: int) -> float:
        """When the base period `index` is first readable: its own delay, drawn once."""
        spread = self.publication_spread_s * random.Random(self.seed * 7919 + index).random()
        return self.period_start(index + 1) + self.real(self.publication_delay_s + spread)

    def arrival(self, index: int, draw: random.Random) -> float:
        """When one sample of the base period `index` is readable: late, now and then."""
        late = self.late_s * draw.random() if draw.random() < self.late_fraction else 0.0
        return self.readable_at(index) + self.real(late)


def statistic(name: str, values: Sequence[float]) -> float | None:
    """CloudWatch's statistic over one period's samples; percentiles by nearest rank."""
    if not values:
        return None
    if name.startswith("p") and name[1:].replace(".", "", 1).isdigit():
        ranked = sorted(values)
        rank = math.ceil(float(name[1:]) / 100 * len(ranked))
        return ranked[min(len(ranked) - 1, max(0, rank - 1))]
    table = {
        "Sum": lambda: float(sum(values)),
        "Average": lambda: float(sum(values)) / len(values),
        "Minimum": lambda: float(min(values)),
        "Maximum": lambda: float(max(values)),
        "SampleCount": lambda: float(len(values)),
    }
    compute = table.get(name)
    return compute() if compute else None


class MetricStore:
    """Every sample of the ALB namespace, by metric, dimension set and base period, each with
    the moment it becomes readable.
    """

    def __init__(self, clock: Clock, now: Callable[[], float]) -> None:
        self.clock = clock
        self._now = now
        self._lock = threading.Lock()
        self._draw = random.Random(clock.seed)
        self._series: dict[tuple[str, DimensionsKey], dict[int, list[tuple[float, float]]]] = (
            defaultdict(dict)
        )

    def add(self, metric: str, dimensions: DimensionsKey, value: float, when: float) -> None:
        index = self.clock.period_index(when)
        with self._lock:
            sample = (value, self.clock.arrival(index, self._draw))
            self._series[(metric, dimensions)].setdefault(index, []).append(sample)

    def drop_old(self) -> None:
        oldest = self.clock.period_index(self._now()) - KEEP_PERIODS
        with self._lock:
            for periods in self._series.values():
                for index in [i for i in periods if i < oldest]:
                    del periods[index]

    def published(
        self, metric: str, dimensions: DimensionsKey, start: float, end: float, period_s: float
    ) -> list[tuple[float, list[float]]]:
        """(period start, readable samples) of each period of `period_s` (a multiple of a
        minute) that starts in [start, end) and has a readable sample; oldest first.
        """
        clock, now = self.clock, self._now()
        first = math.ceil(start / clock.real(period_s) - 1e-9)
        last = min(
            math.ceil(end / clock.real(period_s) - 1e-9) - 1,
            clock.last_published(now, period_s),
        )
        per_base = max(1, round(period_s / PERIOD_S))
        with self._lock:
            periods = self._series.get((metric, dimensions), {})
            found = []
            for index in range(first, last + 1):
                samples = [
                    value
                    for base in range(index * per_base, (index + 1) * per_base)
                    for value, readable in periods.get(base, ())
                    if readable <= now
                ]
                if samples:
                    found.append((clock.period_start(index, period_s), samples))
        return found


# ---- the readers: GetMetricData and GetMetricStatistics --------------------------------------


def _epoch(moment: Any) -> float:
    if isinstance(moment, datetime):
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return float(moment)


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def answer_metric_stat(store: MetricStore, query: Mapping[str, Any], start: Any, end: Any) -> dict:
    """One MetricStat query of GetMetricData, answered as moto's backend returns results."""
    stat = query["MetricStat"]
    metric = stat["Metric"]
    points = store.published(
        str(metric["MetricName"]),
        dimensions_key(metric.get("Dimensions", [])),
        _epoch(start),
        _epoch(end),
        float(stat["Period"]),
    )
    values = [(when, statistic(str(stat["Stat"]), samples)) for when, samples in points]
    kept = [(when, value) for when, value in values if value is not None]
    label = query.get("Label") or f"{metric['MetricName']} {stat['Stat']}"
    return {
        "id": query["Id"],
        "label": label,
        "values": [value for _, value in kept],
        "timestamps": [_when(when) for when, _ in kept],
        "status_code": "Complete",
    }


def is_ours(query: Mapping[str, Any]) -> bool:
    return "MetricStat" in query and query["MetricStat"]["Metric"].get("Namespace") == NAMESPACE


# ---- the alarms -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlarmVerdict:
    state: str  # "ALARM", "OK", "INSUFFICIENT_DATA", or "" (keep the state: ignore)
    reason: str
    evaluated: tuple[tuple[float, float | None], ...]  # (period start, value or missing)


def alarm_period_s(alarm: Any) -> float:
    """A metric alarm's period; a metric math alarm's is its queries' (it has none itself)."""
    queries = getattr(alarm, "metric_data_queries", None) or []
    stats = [float(q.metric_stat.period) for q in queries if q.metric_stat is not None]
    return max(stats, default=0.0) or float(alarm.period or PERIOD_S)


def evaluate_alarm(alarm: Any, store: MetricStore, now: float) -> AlarmVerdict:
    """The state CloudWatch would give `alarm` at `now`, from complete published periods: a
    metric alarm's statistic, or a metric math alarm's returned expression.
    """
    clock = store.clock
    queries = list(getattr(alarm, "metric_data_queries", None) or [])
    period_s = alarm_period_s(alarm)
    periods = int(alarm.evaluation_periods)
    needed = int(alarm.datapoints_to_alarm or periods)
    last = clock.last_settled(now, period_s)
    window_start = clock.period_start(last - periods + 1, period_s)
    window_end = clock.period_start(last + 1, period_s)
    value_of = (
        _math_values(queries, store, window_start, window_end, period_s)
        if queries
        else _metric_values(alarm, store, window_start, window_end, period_s)
    )
    evaluated = []
    for index in range(last - periods + 1, last + 1):
        when = clock.period_start(index, period_s)
        evaluated.append((when, value_of(when)))
    compare = COMPARE.get(alarm.comparison_operator, COMPARE["GreaterThanThreshold"])
    missing = alarm.treat_missing_data or "missing"
    present = [v for _, v in evaluated if v is not None]
    breaching = sum(1 for v in present if compare(v, alarm.threshold))
    if missing == "breaching":
        breaching += len(evaluated) - len(present)
    if not present and missing in ("missing", "ignore"):
        state = "" if missing == "ignore" else "INSUFFICIENT_DATA"
        reason = f"no datapoints in the last {periods} period(s) of {period_s:g}s ({missing})"
        return AlarmVerdict(state, reason, tuple(evaluated))
    state = "ALARM" if breaching >= needed else "OK"
    shown = ", ".join(f"{v:g}" if v is not None else "missing" for _, v in evaluated)
    crossed = "Threshold Crossed" if state == "ALARM" else "Threshold not crossed"
    reason = (
        f"{crossed}: {breaching} out of the last {periods} datapoints [{shown}] breached the "
        f"threshold ({alarm.threshold:g}) (minimum {needed} datapoint(s) for ALARM)"
    )
    return AlarmVerdict(state, reason, tuple(evaluated))


def _metric_values(
    alarm: Any, store: MetricStore, start: float, end: float, period_s: float
) -> Callable[[float], float | None]:
    stat_name = alarm.extended_statistic or alarm.statistic or "Sum"
    found = dict(
        store.published(
            alarm.metric_name,
            tuple(sorted((str(d.name), str(d.value)) for d in alarm.dimensions)),
            start,
            end,
            period_s,
        )
    )
    return lambda when: statistic(stat_name, found[when]) if when in found else None


def _math_values(
    queries: Sequence[Any], store: MetricStore, start: float, end: float, period_s: float
) -> Callable[[float], float | None]:
    """Per period: each MetricStat query's statistic, then the returned expression over them
    (deployer.sandbox.metric_math). An expression CloudWatch would refuse leaves the period
    missing.
    """
    series: dict[str, dict[float, list[float]]] = {}
    stats: dict[str, str] = {}
    for query in queries:
        if query.metric_stat is None:
            continue
        metric = query.metric_stat.metric
        key = tuple(sorted((str(d.name), str(d.value)) for d in metric.dimensions))
        series[query.id] = dict(store.published(metric.metric_name, key, start, end, period_s))
        stats[query.id] = str(query.metric_stat.stat)
    returned = [q for q in queries if str(q.return_data).lower() != "false"]

    def value_of(when: float) -> float | None:
        values: dict[str, float | None] = {
            name: statistic(stats[name], found[when]) if when in found else None
            for name, found in series.items()
        }
        for query in queries:
            if query.expression:
                try:
                    values[query.id] = metric_math.evaluate(query.expression, values)
                except ValueError:
                    values[query.id] = None
        return values.get(returned[0].id) if returned else None

    return value_of


def reason_data(verdict: AlarmVerdict, alarm: Any) -> str:
    """StateReasonData as CloudWatch writes it (version 1.0)."""
    return json.dumps(
        {
            "version": "1.0",
            "statistic": alarm.extended_statistic or alarm.statistic,
            "period": int(alarm_period_s(alarm)),
            "threshold": alarm.threshold,
            "evaluatedDatapoints": [
                {"timestamp": _when(when).isoformat(), **({"value": v} if v is not None else {})}
                for when, v in verdict.evaluated
            ],
        }
    )
