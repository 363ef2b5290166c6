"""The metric gate: green judged against blue from their load-balancer metrics. Pure.

The verdict is the gate rule's (gate_rule.jsonata: one text, evaluated in process by the CLI
and by Step Functions), given users' requests of settled minutes (gate_inputs.py):

- **PASS** only on evidence of safety: the upper confidence bound of green's error rate
  minus blue's is below `max_error_increase` (without blue: green's bound below
  `max_error_rate`), after `min_periods` minutes with requests, and latency does not fail.
- **FAIL** when green's rate is above blue's by more than the margin *and* significantly
  so at alpha/K (K looks per step), or when significantly many of its minutes are slower
  than blue's by both `max_latency_ratio` and `min_latency_increase_ms`.
- **CONTINUE** otherwise: the step holds for more evidence. At the hold's deadline it is
  *inconclusive*, and `on_inconclusive` decides (proceed, said plainly, or roll back).

A busy service reaches PASS sooner, so its steps end sooner; a quiet one waits honestly.
This module holds the value types, the waits, and the words of a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

PERIOD_S = 60.0  # an ALB publishes its metrics per minute
# When a minute of ALB metrics stops changing. No AWS page gives a figure; field reports put
# 1-minute ALB datapoints about two minutes after their minute (and a 1-minute ALB alarm
# four minutes late), and CloudWatch may add samples to a period it already returned.
PUBLICATION_DELAY_S = 120.0
BASELINE_S = 600.0  # blue's baseline: its last ten minutes (before the switch, for a 100 % step)


def evidence_wait_s(policy: MetricPolicy) -> float:
    """How long (AWS seconds) a step with steady traffic takes to gather `min_periods`
    settled minutes: the minutes themselves and twice the publication delay (the minute
    holding the step's start is partial, and a late minute must settle). A step still
    without a verdict by then is inconclusive.
    """
    return policy.min_periods * PERIOD_S + 2 * policy.publication_delay_s


def longest_hold_s(hold_s: float, alarm_window_s: float, evidence_s: float | None) -> float:
    """A step's hold: bake_seconds, the alarms' window published (0: no alarm), and the time
    the metric evidence takes (None: no metric gate), whichever is last.
    """
    waits = [hold_s]
    if alarm_window_s:
        waits.append(alarm_wait_s(alarm_window_s))
    if evidence_s is not None:
        waits.append(evidence_s)
    return max(waits)


# The fleet's own alarms (cloudformation/fleet.yaml: 5xx, connection errors, latency): one
# period of a minute.
FLEET_ALARM_WINDOW_S = 60.0


def alarm_wait_s(window_s: float) -> float:
    """How long (AWS seconds) an alarm needs to judge a step: its evaluation window, then
    the publication delay of the window's last period.
    """
    return window_s + PUBLICATION_DELAY_S


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    CONTINUE = "continue"  # not enough evidence either way yet: the step holds


@dataclass(frozen=True)
class Period:
    """One published CloudWatch period of one target group."""

    start: float  # epoch seconds
    requests: float
    errors: float = 0.0  # target 5xx + connection errors (a balancer's: its own 5xx)
    latency: float | None = None  # TargetResponseTime, the policy's statistic
    connection_errors: float = 0.0  # TargetConnectionErrorCount: the ALB's 502s, in `errors`


@dataclass(frozen=True)
class MetricPolicy:
    min_periods: int = 3
    max_error_increase: float = 0.5  # percentage points above blue's rate
    max_latency_ratio: float = 1.5  # green's median period over blue's
    min_latency_increase_s: float = 0.05  # and slower by at least this much: 1 ms -> 2 ms is not
    significance: float = 0.01
    max_error_rate: float = 5.0  # percent, with no blue to compare with
    max_latency_seconds: float = 2.0  # with no blue to compare with
    on_inconclusive: str = "proceed"  # or "rollback": a step still CONTINUE at its deadline
    publication_delay_s: float = PUBLICATION_DELAY_S  # AWS seconds until a minute settles
    min_minute_requests: float = 10  # users' requests a minute needs to be paired for latency


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


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else 0.0


def judgements(
    result: Mapping[str, Any],
    inputs: Mapping[str, Any],
    excluded: int = 0,
    connection_errors: int = 0,
) -> list[MetricJudgement]:
    """The rule's answer as words and numbers, one judgement per part (error rate,
    latency); each part carries its own verdict, and the whole verdict decides.
    """
    verdict = Verdict(str(result["verdict"]).lower())
    errors, latency = result["errors"], result["latency"]
    green, blue, policy = inputs["green"], inputs["blue"], inputs["policy"]
    g_req, g_err = int(green["requests"]), int(green["errors"])
    evidence: dict[str, float | int | str | None] = {
        "green_requests": g_req,
        "green_errors": g_err,
        "green_rate_pct": round(_pct(g_err, g_req), 3),
        "periods": int(green["minutes"]),
        "probes_excluded": excluded,
        "green_connection_errors": connection_errors,
        "test": str(errors.get("test", "none")),
        "looks_alpha": policy["alpha"],
    }
    if "p" in errors:
        evidence["p_value"] = _round_p(float(errors["p"]))
    elif "z2" in errors:
        evidence["p_value"] = _round_p(_one_sided_p(float(errors["z2"])))
    if blue is not None and blue["requests"] > 0:
        b_req, b_err = int(blue["requests"]), int(blue["errors"])
        increase = _pct(g_err, g_req) - _pct(b_err, b_req)
        evidence |= {
            "blue_requests": b_req,
            "blue_errors": b_err,
            "blue_rate_pct": round(_pct(b_err, b_req), 3),
            "increase_pp": round(increase, 3),
        }
        said = (
            f"green {_pct(g_err, g_req):.2f}% ({g_err}/{g_req} users' requests) vs blue "
            f"{_pct(b_err, b_req):.2f}% ({b_err}/{b_req})"
        )
        margin = f"{policy['delta'] * 100:g} pp above blue"
    else:
        said = (
            f"green {_pct(g_err, g_req):.2f}% ({g_err}/{g_req} users' requests) against a "
            f"limit of {policy['limit'] * 100:g}% (no previous fleet to compare with)"
        )
        margin = f"{policy['limit'] * 100:g}%"
    if connection_errors:
        said += f" ({connection_errors} of them connection errors: the load balancer's 502s)"
    if "p_value" in evidence:
        said += f", p={_show_p(float(evidence['p_value'] or 0.0))}"
    if excluded:
        said += f"; {excluded} of deployer's own checks not counted"
    error_verdict = Verdict(str(errors["verdict"]).lower())
    if error_verdict is Verdict.PASS:
        said += f": shown no worse than {margin}"
    elif error_verdict is Verdict.CONTINUE:
        said += f": not yet enough to show no worse than {margin}"
    latency_evidence: dict[str, float | int | str | None] = {
        "minutes": int(latency["minutes"]),
        "slower_minutes": int(latency["slower"]),
        "critical": int(latency["critical"]),
    }
    latency_said = (
        f"{int(latency['slower'])} of {int(latency['minutes'])} paired minute(s) slower than "
        f"{'blue' if blue is not None else 'the limit'} by the margin"
        + (f" (fails at {int(latency['critical'])})" if int(latency["critical"]) >= 0 else "")
    )
    parts = [
        MetricJudgement("error rate", error_verdict, said, evidence),
        MetricJudgement(
            "latency", Verdict(str(latency["verdict"]).lower()), latency_said, latency_evidence
        ),
    ]
    if verdict is Verdict.CONTINUE:  # a part's PASS alone does not end the step
        return [
            MetricJudgement(
                j.metric,
                Verdict.CONTINUE if j.verdict is Verdict.PASS else j.verdict,
                j.detail,
                j.evidence,
            )
            for j in parts
        ]
    return parts


def _one_sided_p(z2: float) -> float:
    """For display only (the rule compares squares): the upper tail beyond sqrt(z2)."""
    from statistics import NormalDist

    return 1.0 - NormalDist().cdf(z2**0.5) if z2 > 0 else 1.0


def _round_p(p_value: float) -> float:
    return float(f"{p_value:.3g}")


def _show_p(p_value: float) -> str:
    return f"{p_value:.2g}" if p_value >= 0.001 else f"{p_value:.1e}"
