"""The metric gate: green judged against blue from their load-balancer metrics. Pure.

Each target group's published CloudWatch periods (requests, target 5xx, a latency statistic)
come in as `Period`s; the verdict is pass, fail or not enough data, and carries its numbers.

- **Error rate.** Green fails when its rate is significantly above blue's (Fisher's exact
  test, one-sided, on the summed counts) *and* above it by more than a practical margin
  (`max_error_increase`, percentage points). Volume and blue's own errors are accounted for:
  1 % on green is no regression when blue fails 1 % too, and 5 errors mean something
  different in 100 requests and in 100,000.
- **Latency.** Green fails when it is significantly slower (Mann-Whitney U, one-sided, on
  the per-period values) *and* slower by more than `max_latency_ratio` (medians) *and* by
  more than `min_latency_increase_s`: an app answering in 1 ms that takes 2 ms is not slower
  for anyone.
- **No blue** (a first release): absolute limits. The error rate fails when it is
  significantly above `max_error_rate` (an exact binomial test); latency when the median
  period is above `max_latency_seconds`.
- **Not enough data** until green has `min_periods` periods with requests. A clear failure
  is reported as soon as the data show it, whatever the count: a build failing half its
  requests should not wait for three minutes of proof.

The statistics come from scipy, imported only when a judgement is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from statistics import median

PERIOD_S = 60.0  # an ALB publishes its metrics per minute
PUBLICATION_DELAY_S = 60.0  # a minute's datapoint is commonly readable a minute or so later
BASELINE_S = 600.0  # blue's baseline: its last ten minutes (before the switch, for a 100 % step)


def evidence_wait_s(policy: MetricPolicy) -> float:
    """How long (AWS seconds) a step with steady traffic takes to gather `min_periods`
    complete periods: the minutes themselves, the publication delay, and a minute of slack
    for late data. A step without that evidence by then is judged on what it has.
    """
    return policy.min_periods * PERIOD_S + 2 * PUBLICATION_DELAY_S


def alarm_wait_s(window_s: float) -> float:
    """How long (AWS seconds) an alarm needs to judge a step: its evaluation window, then
    the publication delay of the window's last period.
    """
    return window_s + PUBLICATION_DELAY_S


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INSUFFICIENT = "insufficient"


@dataclass(frozen=True)
class Period:
    """One published CloudWatch period of one target group."""

    start: float  # epoch seconds
    requests: float
    errors: float = 0.0  # HTTPCode_Target_5XX_Count (absent when zero: 0)
    latency: float | None = None  # TargetResponseTime, the policy's statistic


@dataclass(frozen=True)
class MetricPolicy:
    min_periods: int = 3
    max_error_increase: float = 0.5  # percentage points above blue's rate
    max_latency_ratio: float = 1.5  # green's median period over blue's
    min_latency_increase_s: float = 0.05  # and slower by at least this much: 1 ms -> 2 ms is not
    significance: float = 0.01
    max_error_rate: float = 5.0  # percent, with no blue to compare with
    max_latency_seconds: float = 2.0  # with no blue to compare with


@dataclass(frozen=True)
class MetricWindow:
    """Which periods a step judges, in epoch seconds on CloudWatch's clock: green's from the
    period that holds the step's start, blue's from its baseline before that.
    """

    green_since: float
    blue_since: float
    now: float

    @staticmethod
    def for_step(started: float, now: float, period_s: float, baseline_s: float) -> MetricWindow:
        """`period_s`, `baseline_s`: a period and the baseline in the clock's seconds."""
        green_since = (started // period_s) * period_s
        return MetricWindow(green_since, green_since - baseline_s, now)

    def idle(self, blue: Sequence[Period] | None) -> bool:
        """Blue exists and answered no request in its baseline: nobody uses this service
        now, and waiting for evidence would only delay the release.
        """
        return blue is not None and not with_requests(blue)


@dataclass(frozen=True)
class MetricJudgement:
    metric: str  # "error rate" or "latency"
    verdict: Verdict
    detail: str
    evidence: dict[str, float | int | str | None] = field(default_factory=dict)


def with_requests(periods: Sequence[Period]) -> list[Period]:
    return [p for p in periods if p.requests > 0]


def enough(green: Sequence[Period], policy: MetricPolicy) -> bool:
    return len(with_requests(green)) >= policy.min_periods


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else 0.0


def judge_error_rate(
    green: Sequence[Period], blue: Sequence[Period] | None, policy: MetricPolicy
) -> MetricJudgement:
    """`blue` None: no baseline (a first release); absolute limits apply."""
    g_req = sum(p.requests for p in green)
    g_err = sum(p.errors for p in green)
    periods = len(with_requests(green))
    evidence: dict[str, float | int | str | None] = {
        "green_requests": int(g_req),
        "green_errors": int(g_err),
        "green_rate_pct": round(_pct(g_err, g_req), 3),
        "periods": periods,
    }
    if g_req <= 0:
        return MetricJudgement("error rate", Verdict.INSUFFICIENT, "no requests yet", evidence)
    if blue is None:
        return _absolute_error_rate(g_req, g_err, periods, evidence, policy)
    b_req = sum(p.requests for p in blue)
    b_err = sum(p.errors for p in blue)
    evidence |= {
        "blue_requests": int(b_req),
        "blue_errors": int(b_err),
        "blue_rate_pct": round(_pct(b_err, b_req), 3),
    }
    if b_req <= 0:
        return _absolute_error_rate(g_req, g_err, periods, evidence, policy)
    from scipy.stats import fisher_exact  # the statistics: only when judging

    g_ok, b_ok = max(g_req - g_err, 0), max(b_req - b_err, 0)
    p_value = float(
        fisher_exact([[int(g_err), int(g_ok)], [int(b_err), int(b_ok)]], alternative="greater")[1]
    )
    increase = _pct(g_err, g_req) - _pct(b_err, b_req)
    evidence |= {"p_value": _round_p(p_value), "increase_pp": round(increase, 3)}
    summary = (
        f"green {_pct(g_err, g_req):.2f}% ({int(g_err)}/{int(g_req)}) vs blue "
        f"{_pct(b_err, b_req):.2f}% ({int(b_err)}/{int(b_req)}), p={_show_p(p_value)}"
    )
    if p_value < policy.significance and increase > policy.max_error_increase:
        return MetricJudgement("error rate", Verdict.FAIL, summary, evidence)
    if periods < policy.min_periods:
        return MetricJudgement(
            "error rate", Verdict.INSUFFICIENT, f"{summary}; {periods} period(s)", evidence
        )
    return MetricJudgement("error rate", Verdict.PASS, summary, evidence)


def _absolute_error_rate(
    g_req: float,
    g_err: float,
    periods: int,
    evidence: dict[str, float | int | str | None],
    policy: MetricPolicy,
) -> MetricJudgement:
    from scipy.stats import binomtest

    limit = policy.max_error_rate
    p_value = float(binomtest(int(g_err), int(g_req), limit / 100, alternative="greater").pvalue)
    evidence |= {"limit_pct": limit, "p_value": _round_p(p_value)}
    summary = (
        f"green {_pct(g_err, g_req):.2f}% ({int(g_err)}/{int(g_req)}) against a limit of "
        f"{limit:g}% (no previous fleet to compare with), p={_show_p(p_value)}"
    )
    if p_value < policy.significance:
        return MetricJudgement("error rate", Verdict.FAIL, summary, evidence)
    if periods < policy.min_periods:
        return MetricJudgement(
            "error rate", Verdict.INSUFFICIENT, f"{summary}; {periods} period(s)", evidence
        )
    return MetricJudgement("error rate", Verdict.PASS, summary, evidence)


def judge_latency(
    green: Sequence[Period], blue: Sequence[Period] | None, policy: MetricPolicy
) -> MetricJudgement:
    g = [p.latency for p in with_requests(green) if p.latency is not None]
    b = [p.latency for p in with_requests(blue or []) if p.latency is not None]
    evidence: dict[str, float | int | str | None] = {
        "green_periods": len(g),
        "green_median_s": round(median(g), 4) if g else None,
    }
    if len(g) < policy.min_periods:
        return MetricJudgement(
            "latency", Verdict.INSUFFICIENT, f"{len(g)} period(s) with requests", evidence
        )
    if blue is None or not b:
        limit = policy.max_latency_seconds
        evidence |= {"limit_s": limit}
        summary = (
            f"green median {median(g):.3f}s against a limit of {limit:g}s "
            "(no previous fleet to compare with)"
        )
        verdict = Verdict.FAIL if median(g) > limit else Verdict.PASS
        return MetricJudgement("latency", verdict, summary, evidence)
    from scipy.stats import mannwhitneyu

    p_value = float(mannwhitneyu(g, b, alternative="greater").pvalue)
    ratio = median(g) / median(b) if median(b) > 0 else float("inf")
    evidence |= {
        "blue_periods": len(b),
        "blue_median_s": round(median(b), 4),
        "ratio": round(ratio, 3) if ratio != float("inf") else None,
        "p_value": _round_p(p_value),
    }
    summary = (
        f"green median {median(g):.3f}s vs blue {median(b):.3f}s "
        f"(x{ratio:.2f}), p={_show_p(p_value)}"
    )
    slower_by = median(g) - median(b)
    if (
        p_value < policy.significance
        and ratio > policy.max_latency_ratio
        and slower_by > policy.min_latency_increase_s
    ):
        return MetricJudgement("latency", Verdict.FAIL, summary, evidence)
    return MetricJudgement("latency", Verdict.PASS, summary, evidence)


def _round_p(p_value: float) -> float:
    return float(f"{p_value:.3g}")


def _show_p(p_value: float) -> str:
    return f"{p_value:.2g}" if p_value >= 0.001 else f"{p_value:.1e}"
