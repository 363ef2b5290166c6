"""The metric gate's error rates and step durations at any traffic, from the rule itself.

    python bench/gate_model.py [--releases 1000] [--rates 20,200] [--baseline 0.001] [--json]

The sandbox serves a few hundred real requests a second on two cores, so a busy service's
minutes (200 requests/s: 12,000 a minute) cannot be played through it. This model plays
them through the same decision instead: each minute's requests and errors are drawn
(Poisson, binomial) for blue and green at their shares of the traffic, published and
settled as CloudWatch does (`publication_delay_seconds` after the minute), and judged by
deployer's own code: core.gate_inputs.rule_input, the JSONata rule
(deployer/core/gate_rule.jsonata), and a hold that follows release.gating.hold (a look
every gate interval, PASS ending the step once its minimum has passed, FAIL at once,
inconclusive at the deadline: proceed). The fleet's default 5xx alarm (a count and a share
of green's requests a minute) is modelled beside it, as it gates every step too.

It reports, per rate:
- A/A (green = blue, both at `--baseline` errors): the false rollbacks (by the rule, by the
  default 5xx alarm) and the releases' modelled traffic time (the three canary steps);
- 50 % and 2 % errors from the 10 % step: how often and how fast they are rolled back, and
  how many users' requests failed until then.

What it leaves out: deployer's own probes (subtracted before the rule, exactly, in the
model), late samples (a minute revised after it settled), latency (both fleets answer alike
here), and the time of the stacks and the switches around the steps.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deployer.core.durations import step_hold_s  # noqa: E402
from deployer.core.gate_inputs import looks_per_step, rule_input  # noqa: E402
from deployer.core.metrics import (  # noqa: E402
    FLEET_ALARM_WINDOW_S,
    MetricPolicy,
    Period,
    alarm_wait_s,
    evidence_wait_s,
)
from deployer.release.gate_rule import evaluate  # noqa: E402

MINUTE = 60.0
STEPS = (0.10, 0.50, 1.00)  # the canary's shares
BAKE_S = 60.0  # strategy.bake_seconds (default)
INTERVAL_S = 5.0  # gates.interval_seconds (default)
BASELINE_MINUTES = 10  # blue's minutes before the step (release.gating BASELINE_S)
ALARM_5XX = 5  # default_alarms.target_5xx_count, a minute ...
ALARM_PERCENT = 5.0  # ... and error_percent of the group's requests (cloudformation/fleet.yaml)
ALARM_SEES_S = 90.0  # an alarm judges a minute 60 to 120 s after it (the sandbox's aws profile)
LATENCY_S = 0.05


def poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 50:  # normal approximation, never below zero
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def binomial(rng: random.Random, n: int, p: float) -> int:
    if n <= 0 or p <= 0:
        return 0
    if n * p > 30 and n * (1 - p) > 30:
        return min(n, max(0, round(rng.gauss(n * p, math.sqrt(n * p * (1 - p))))))
    return poisson(rng, n * p) if p < 0.05 else sum(rng.random() < p for _ in range(n))


@dataclass
class Traffic:
    """Blue's and green's minutes (start -> (requests, errors)), drawn as time goes on."""

    rate: float  # users' requests a second
    blue_errors: float
    rng: random.Random
    green: dict[float, tuple[int, int]] = field(default_factory=dict)
    blue: dict[float, tuple[int, int]] = field(default_factory=dict)

    def minute(self, start: float, share_of: Any, green_errors: float) -> None:
        """Users' requests of the minute at `start`, split second by second by share_of(t)."""
        green_n = green_e = blue_n = blue_e = 0
        for second in range(0, 60, 5):  # five-second slices: the share changes at a step
            share = share_of(start + second)
            n = poisson(self.rng, self.rate * 5)
            to_green = binomial(self.rng, n, share)
            green_n += to_green
            blue_n += n - to_green
            green_e += binomial(self.rng, to_green, green_errors)
            blue_e += binomial(self.rng, n - to_green, self.blue_errors)
        self.green[start] = (green_n, green_e)
        self.blue[start] = (blue_n, blue_e)


def periods(minutes: dict[float, tuple[int, int]], since: float, settled_by: float) -> list[Period]:
    return [
        Period(start, float(n), float(e), LATENCY_S if n else None)
        for start, (n, e) in sorted(minutes.items())
        if since <= start and start + MINUTE <= settled_by and n > 0
    ]


def run_release(rng: random.Random, rate: float, baseline: float, fault: tuple[float, int] | None):
    """One release of three canary steps; `fault` (error rate, from step index) or None.
    Returns (outcome, seconds of traffic steps, users' failed requests since the fault, by).
    """
    policy = MetricPolicy()
    delay = policy.publication_delay_s
    deadline = max(BAKE_S, evidence_wait_s(policy))
    minimum = max(BAKE_S, alarm_wait_s(FLEET_ALARM_WINDOW_S))
    looks = looks_per_step(deadline, MINUTE)
    traffic = Traffic(rate, baseline, rng)
    now = rng.uniform(0, MINUTE) + MINUTE * (BASELINE_MINUTES + 1)
    shares: list[tuple[float, float]] = [(0.0, 0.0)]  # (from, green's share)

    def share_of(t: float) -> float:
        return next(s for since, s in reversed(shares) if since <= t)

    fault_from = [math.inf]

    def green_rate_at(t: float) -> float:
        return fault[0] if fault is not None and t >= fault_from[0] else baseline

    drawn_until = 0.0

    def draw_to(t: float) -> None:
        nonlocal drawn_until
        while drawn_until + MINUTE <= t:
            traffic.minute(drawn_until, share_of, green_rate_at(drawn_until + 30))
            drawn_until += MINUTE

    started_all = now
    for index, share in enumerate(STEPS):
        started = now
        shares.append((started, share))
        if fault is not None and index == fault[1]:
            fault_from[0] = started
        green_since = math.floor(started / MINUTE) * MINUTE
        blue_since = green_since - BASELINE_MINUTES * MINUTE
        last: tuple[int, bool] | None = None
        result: dict[str, Any] = {}
        held = 0.0
        while True:
            now = started + held
            draw_to(now - min(delay, ALARM_SEES_S))  # every minute a reader may see by now
            final = held >= deadline
            green = periods(traffic.green, green_since, now - delay)
            key = (len(green), final)
            if key != last:
                blue = periods(traffic.blue, blue_since, now - delay)
                result = evaluate(rule_input(green, blue, policy, looks, final, 10))
                last = key
            alarmed = any(
                e >= ALARM_5XX
                and 100 * e >= ALARM_PERCENT * n
                and start + MINUTE + ALARM_SEES_S <= now
                for start, (n, e) in traffic.green.items()
                if start >= green_since
            )
            if result["verdict"] == "FAIL" or alarmed:
                since_fault = now - fault_from[0] if fault is not None else None
                # Users' requests that failed from the fault until traffic went back (expected).
                failed = 0
                if fault is not None and since_fault is not None:
                    failed = round(fault[0] * rate * share * since_fault)
                by = "rule" if result["verdict"] == "FAIL" else "5xx alarm"
                return "rolled back", now - started_all, failed, by, since_fault
            waiting = result["verdict"] == "CONTINUE"
            if held >= minimum and (not waiting or final):
                break
            held += INTERVAL_S
        now = started + held
    return "released", now - started_all, 0, "", None


@dataclass
class Summary:
    runs: int = 0
    rolled_back: int = 0
    by: dict[str, int] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    detect_s: list[float] = field(default_factory=list)
    failed_users: list[int] = field(default_factory=list)

    def add(self, outcome: str, seconds: float, failed: int, by: str, since_fault: Any) -> None:
        self.runs += 1
        if outcome == "rolled back":
            self.rolled_back += 1
            self.by[by] = self.by.get(by, 0) + 1
            self.detect_s.append(since_fault if since_fault is not None else seconds)
            self.failed_users.append(failed)
        else:
            self.seconds.append(seconds)

    def to_json(self) -> dict[str, Any]:
        def median(values: list[float]) -> float | None:
            return round(statistics.median(values), 1) if values else None

        def p90(values: list[float]) -> float | None:
            return round(sorted(values)[int(0.9 * (len(values) - 1))], 1) if values else None

        return {
            "runs": self.runs,
            "rolled_back": self.rolled_back,
            "by": self.by,
            "median_modelled_s": median(self.seconds),
            "median_detect_modelled_s": median(self.detect_s),
            "p90_detect_modelled_s": p90(self.detect_s),
            "median_failed_user_requests": median([float(f) for f in self.failed_users]),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=1000, help="per case and rate")
    parser.add_argument("--rates", default="20,200", help="users' requests a second")
    parser.add_argument("--baseline", type=float, default=0.001, help="both fleets' error rate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    policy = MetricPolicy()
    report: dict[str, Any] = {
        "releases": args.releases,
        "baseline_error_rate": args.baseline,
        "step_deadline_s": max(BAKE_S, evidence_wait_s(policy)),
        "plan_step_s": step_hold_s(BAKE_S, FLEET_ALARM_WINDOW_S, policy),
        "rates": {},
    }
    cases = {"aa": None, "50% at 10%": (0.5, 0), "2% at 10%": (0.02, 0)}
    for rate in (float(r) for r in args.rates.split(",") if r):
        found = {}
        for name, fault in cases.items():
            summary = Summary()
            for _ in range(args.releases):
                summary.add(*run_release(rng, rate, args.baseline, fault))
            found[name] = summary.to_json()
        report["rates"][f"{rate:g}"] = found
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{args.releases} releases per case, both fleets at {args.baseline:.2%} errors; "
        f"a step's deadline {report['step_deadline_s']:.0f} s"
    )
    for rate, found in report["rates"].items():
        aa = found["aa"]
        print(
            f"\n{rate} requests/s: A/A {aa['rolled_back']} false rollback(s) {aa['by'] or ''}; "
            f"median traffic time {aa['median_modelled_s']} s"
        )
        for name in ("50% at 10%", "2% at 10%"):
            case = found[name]
            print(
                f"  {name}: rolled back {case['rolled_back']}/{case['runs']} {case['by']}, "
                f"median {case['median_detect_modelled_s']} s (p90 {case['p90_detect_modelled_s']}"
                f" s) after the fault, {case['median_failed_user_requests']} failed requests"
            )


if __name__ == "__main__":
    main()
