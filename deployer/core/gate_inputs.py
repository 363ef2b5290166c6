"""What the metric gate rule (gate_rule.jsonata) is given: users' requests of settled minutes,
the minutes paired for latency, and the critical values of the policy. Pure.

Python decides nothing here: the rule text decides, the same in the CLI and in Step
Functions. What only Python can do well is done once, here:

- **Users only.** deployer's own HTTP checks go through the test listener to green, and an
  ALB's metrics have no listener dimension: they land in green's RequestCount and 5xx. Each
  check deployer made is counted in the minute it was made (`Probes`) and taken off green's
  minute. Subtraction, not silence: the checks go on while users reach green (they catch a
  broken path at once), and the counts the rule judges are still users' alone. A minute
  whose requests were mostly deployer's is not paired for latency (its p90 is the probes').
- **Settled minutes.** A minute counts once `now >= its end + publication delay`; an
  earlier read may still be revised by CloudWatch.
- **Alpha spent over the looks.** K looks per step (a new settled minute is a new look),
  each at alpha/K (Bonferroni), so a step's false failures stay at alpha, not K x alpha.
- **Critical values** (z squared; the sign test's counts) from exact arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from statistics import NormalDist
from typing import Any

from deployer.core.metrics import MetricPolicy, Period

SIGN_TABLE_SIZE = 61  # minutes 0..60 of one step; more than an hour of a step is not paired


@dataclass
class Probes:
    """deployer's own requests to green, per minute (period start, on CloudWatch's clock):
    (requests, 5xx answers). Minutes are keyed by their index, never by their start: a start
    that went through a timestamp's text (GetMetricData's) need not be the same float.
    """

    period_s: float
    by_minute: dict[int, tuple[int, int]] = field(default_factory=dict)

    def record(self, at: float, status: int) -> None:
        minute = math.floor(at / self.period_s)
        requests, errors = self.by_minute.get(minute, (0, 0))
        failed = status >= 500 or status == 0  # 0: no answer (the ALB answered 502/504)
        self.by_minute[minute] = (requests + 1, errors + (1 if failed else 0))

    def of(self, start: float) -> tuple[int, int]:
        """(requests, 5xx answers) of the minute that starts at `start`."""
        return self.by_minute.get(round(start / self.period_s), (0, 0))


def looks_per_step(hold_s: float, period_s: float) -> int:
    """How many settled minutes a step can judge: its longest hold in minutes (at least 1)."""
    return max(1, math.ceil(hold_s / period_s))


def z_squared(alpha: float) -> float:
    """The squared one-sided critical value of the normal distribution at `alpha`."""
    z = NormalDist().inv_cdf(1.0 - alpha)
    return z * z


def sign_critical(alpha: float, size: int = SIGN_TABLE_SIZE) -> list[int]:
    """Index n: the fewest of n paired minutes slower by the margin that are significant at
    `alpha` (P(S >= s) <= alpha for S ~ Binomial(n, 1/2)); -1 when no count is.
    """
    table = []
    limit = Fraction(alpha).limit_denominator(10**12)
    for n in range(size):
        total = 2**n
        tail = 0
        found = -1
        for s in range(n, -1, -1):  # from the top: the tail only grows as s goes down
            tail += math.comb(n, s)
            if Fraction(tail, total) <= limit:
                found = s
            else:
                break
        table.append(found)
    return table


def rule_policy(policy: MetricPolicy, looks: int) -> dict[str, Any]:
    alpha = policy.significance / max(1, looks)
    return {
        "delta": policy.max_error_increase / 100.0,
        "limit": policy.max_error_rate / 100.0,
        "alpha": alpha,
        "z2": z_squared(alpha),
        "ratio": policy.max_latency_ratio,
        "floor": policy.min_latency_increase_s,
        "sign_critical": sign_critical(alpha),
        "min_minutes": policy.min_periods,
        "on_inconclusive": policy.on_inconclusive,
    }


def users_of(periods: Sequence[Period], probes: Probes) -> list[Period]:
    """Green's minutes less deployer's own requests in each (never below zero)."""
    users = []
    for p in periods:
        requests, errors = probes.of(p.start)
        users.append(
            Period(
                p.start,
                max(0.0, p.requests - requests),
                max(0.0, p.errors - errors),
                p.latency if requests * 2 <= p.requests else None,  # mostly probes: no p90
                p.connection_errors,
            )
        )
    return users


def settled(periods: Sequence[Period], now: float, period_s: float, delay_s: float) -> list[Period]:
    """The minutes CloudWatch will no longer revise: ended at least `delay_s` ago."""
    return [p for p in periods if p.start + period_s + delay_s <= now]


def rule_input(
    green: Sequence[Period],
    blue: Sequence[Period] | None,
    policy: MetricPolicy,
    looks: int,
    final: bool,
    min_minute_requests: float = 1.0,
) -> dict[str, Any]:
    """The rule's input: summed counts, minutes paired by start, the policy's values.
    `green` holds users' requests only (users_of), of settled minutes; `blue` None: no
    baseline (a first release), each minute is held against the latency limit.
    """
    busy = [p for p in green if p.requests > 0]
    counts = {
        "requests": float(round(sum(p.requests for p in green))),
        "errors": float(round(sum(p.errors for p in green))),
        "minutes": len(busy),
    }
    baseline = None
    if blue is not None:
        baseline = {
            "requests": float(round(sum(p.requests for p in blue))),
            "errors": float(round(sum(p.errors for p in blue))),
        }
    return {
        "green": counts,
        "blue": baseline,
        "pairs": _pairs(green, blue, policy, min_minute_requests),
        "final": final,
        "policy": rule_policy(policy, looks),
    }


def _pairs(
    green: Sequence[Period],
    blue: Sequence[Period] | None,
    policy: MetricPolicy,
    min_requests: float,
) -> list[dict[str, float]]:
    mine = {p.start: p.latency for p in green if p.requests >= min_requests and p.latency}
    if blue is None:
        return [{"green": v, "blue": policy.max_latency_seconds} for _, v in sorted(mine.items())]
    theirs = {p.start: p.latency for p in blue if p.requests > 0 and p.latency is not None}
    paired = [{"green": v, "blue": theirs[t]} for t, v in sorted(mine.items()) if t in theirs]
    if paired or not theirs:
        return paired
    # All traffic on green (a 100 % step, the watch): blue served none of these minutes, so
    # each is held against blue's baseline, the median of its own last minutes.
    ranked = sorted(theirs.values())
    middle = len(ranked) // 2
    typical = ranked[middle] if len(ranked) % 2 else (ranked[middle - 1] + ranked[middle]) / 2
    return [{"green": v, "blue": typical} for _, v in sorted(mine.items())]
