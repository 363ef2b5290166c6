"""Gate probes: observe target health, HTTP checks and CloudWatch alarms (the impure half;
deployer.core.gates judges). A probe that cannot be read returns passed=None: fail closed.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from deployer.aws.autoscaling import AutoScaling
from deployer.aws.cloudwatch import CloudWatch
from deployer.aws.ec2 import Ec2
from deployer.aws.elbv2 import Elbv2
from deployer.config.strategy import HttpCheck
from deployer.core.gate_inputs import Probes, rule_input, settled, users_of
from deployer.core.gates import GateKind, Observation
from deployer.core.health import Member, assess_during_hold, assess_target_health
from deployer.core.metrics import (
    MetricPolicy,
    MetricWindow,
    Period,
    Verdict,
    judgements,
    with_requests,
)
from deployer.core.model import Fleet, TargetState
from deployer.release.gate_rule import evaluate as evaluate_rule

DEFAULT_HTTP_TIMEOUT_S = 5.0


def observe_targets(elb: Elbv2, target_group_arn: str, expected: int) -> Observation:
    try:
        targets = elb.target_health(target_group_arn)
    except (ClientError, BotoCoreError) as exc:
        return Observation(GateKind.TARGET_HEALTH, "green", None, f"unreadable: {exc}")
    return assess_target_health(targets, expected)


def observe_http(
    base_url: str,
    check: HttpCheck,
    sent: Callable[[float, int], None] = lambda _at, _status: None,
) -> Observation:
    """One HTTP check through `base_url`; `sent` is told when (epoch seconds) and with what
    status (0: no answer) each request went, so that the metric gate can leave deployer's
    own requests out of users' counts.
    """
    name = f"GET {check.path}"
    url = base_url.rstrip("/") + check.path
    timeout = check.latency_ms / 1000 * 2 if check.latency_ms else DEFAULT_HTTP_TIMEOUT_S
    started = time.monotonic()
    try:
        # bandit B310: the URL is the load balancer's http(s) listener, built by deployer
        with urllib.request.urlopen(url, timeout=timeout) as response:  # nosec B310
            status, body = response.status, response.read(65536)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(65536)
    except (OSError, ValueError) as exc:
        sent(time.time(), 0)
        return Observation(GateKind.HTTP, name, None, f"unreadable: {exc}")
    # Counted when answered, as the load balancer counts it in its minute.
    sent(time.time(), status)
    elapsed_ms = (time.monotonic() - started) * 1000
    problems = []
    if status != check.expect_status:
        problems.append(f"status {status}, expected {check.expect_status}")
    if check.body_pattern and not re.search(check.body_pattern, body.decode(errors="replace")):
        problems.append(f"body does not match /{check.body_pattern}/")
    if check.latency_ms and elapsed_ms > check.latency_ms:
        problems.append(f"took {elapsed_ms:.0f} ms, budget {check.latency_ms} ms")
    detail = "; ".join(problems) or f"status {status} in {elapsed_ms:.0f} ms"
    return Observation(GateKind.HTTP, name, not problems, detail)


def observe_alarms(cloudwatch: CloudWatch, names: Sequence[str]) -> list[Observation]:
    """Each alarm's state; its evaluation window (seconds) is in the observation's evidence."""
    if not names:
        return []
    try:
        states = cloudwatch.alarm_states(names)
    except (ClientError, BotoCoreError) as exc:
        return [Observation(GateKind.ALARM, n, None, f"unreadable: {exc}") for n in names]
    result = []
    for name in names:
        found = states.get(name)
        if found is None:  # a missing alarm is unreadable: fail closed
            result.append(Observation(GateKind.ALARM, name, None, "MISSING: no such alarm"))
            continue
        # Any alarm in ALARM fails; INSUFFICIENT_DATA is not ALARM.
        detail = f"{found.state}: {found.reason}" if found.reason else found.state
        result.append(
            Observation(
                GateKind.ALARM,
                name,
                found.state != "ALARM",
                detail,
                evidence={"window_s": found.window_s},
            )
        )
    return result


def observe_targets_during_hold(
    elb: Elbv2,
    asg: AutoScaling,
    ec2: Ec2,
    green: Fleet,
    capacity: int,
    share: float,
    grace_s: float,
) -> Observation:
    """Target health as a hold judges it (core.health.assess_during_hold): Auto Scaling's
    view of the group is read only when a target is not healthy.
    """
    try:
        targets = elb.target_health(green.target_group_arn)
    except (ClientError, BotoCoreError) as exc:
        return Observation(GateKind.TARGET_HEALTH, "green", None, f"unreadable: {exc}")
    members: dict[str, Member] | None = {}
    desired = capacity
    if any(t.state is not TargetState.HEALTHY for t in targets) and green.asg_name:
        try:
            group, found = asg.members(green.asg_name)
            launched = ec2.launch_times([m.instance_id for m in found])
            members = {
                m.instance_id: replace(m, launched_at=launched.get(m.instance_id)) for m in found
            }
            desired = group
        except (ClientError, BotoCoreError):
            members = None  # judge by the targets' own states alone
    return assess_during_hold(targets, members, time.time(), grace_s, capacity, desired, share)


@dataclass(frozen=True)
class MetricLook:
    """One look of the metric gate: its policy, the statistic, deployer's own requests per
    minute, the looks per step (alpha is spent over them), whether the hold's deadline has
    come, and CloudWatch's minute and publication delay in this run's clock.
    """

    policy: MetricPolicy
    latency_statistic: str
    probes: Probes
    looks: int
    final: bool
    period_s: float
    delay_s: float


def observe_metrics(
    cloudwatch: CloudWatch,
    balancer: str,
    green: Fleet,
    blue: Fleet | None,
    window: MetricWindow,
    look: MetricLook,
) -> list[Observation]:
    """Green against blue from GetMetricData, judged by the gate rule on users' requests of
    settled minutes: one observation per part (error rate, latency), each with its verdict
    (pass, fail, continue) and numbers. Unreadable metrics fail closed.
    """
    series = {"green": dimensions(balancer, green), "balancer": {"LoadBalancer": balancer}}
    if blue is not None and blue.target_group_arn:
        series["blue"] = dimensions(balancer, blue)
    try:
        found = cloudwatch.periods(
            series,
            datetime.fromtimestamp(window.blue_since, tz=UTC),
            datetime.fromtimestamp(window.now, tz=UTC),
            look.latency_statistic,
        )
    except (ClientError, BotoCoreError) as exc:
        return [
            Observation(GateKind.METRIC, name, None, f"unreadable: {exc}")
            for name in ("error rate", "latency", "load balancer 5xx")
        ]
    done = settled(found["green"], window.now, look.period_s, look.delay_s)
    mine = [p for p in done if p.start >= window.green_since]
    green_periods = users_of(mine, look.probes)
    excluded = sum(look.probes.of(p.start)[0] for p in mine)
    blue_periods = (
        settled(found.get("blue", []), window.now, look.period_s, look.delay_s)
        if "blue" in series
        else None
    )
    first_and_unused = blue_periods is None and not with_requests(green_periods)
    if window.idle(blue_periods) or first_and_unused:
        detail = (
            "no user traffic to judge: a first release that no user has reached yet"
            if first_and_unused
            else f"no user traffic to judge: {blue.version if blue else 'blue'} answered no "
            "request in the last minutes"
        )
        return [
            Observation(
                GateKind.METRIC, name, True, detail, verdict="continue", evidence={"idle": True}
            )
            for name in ("error rate", "latency")
        ]
    inputs = rule_input(
        green_periods,
        blue_periods,
        look.policy,
        look.looks,
        look.final,
        look.policy.min_minute_requests,
    )
    result = evaluate_rule(inputs)
    connection_errors = int(sum(p.connection_errors for p in green_periods))
    return [
        *(
            Observation(
                GateKind.METRIC,
                j.metric,
                j.verdict is not Verdict.FAIL,
                j.detail,
                verdict=j.verdict.value,
                evidence={**j.evidence, "action": str(result["action"])},
            )
            for j in judgements(result, inputs, excluded, connection_errors)
        ),
        _balancer_errors(found.get("balancer", []), window, look),
    ]


def _balancer_errors(
    periods: Sequence[Period], window: MetricWindow, look: MetricLook
) -> Observation:
    """The 5xx the load balancer answered itself (HTTPCode_ELB_5XX_Count has no TargetGroup
    dimension) during the step, against the same balancer's minutes before it, by the same
    rule: only a failure counts (its PASS or CONTINUE never holds a step).
    """
    done = users_of(settled(periods, window.now, look.period_s, look.delay_s), look.probes)
    during = [p for p in done if p.start >= window.green_since]
    before = [p for p in done if p.start < window.green_since]
    inputs = rule_input(during, before, look.policy, look.looks, look.final, float("inf"))
    result = evaluate_rule(inputs)
    failed = result["errors"]["verdict"] == "FAIL"
    g, b = inputs["green"], inputs["blue"]
    detail = (
        f"the load balancer's own 5xx: {int(g['errors'])}/{int(g['requests'])} during the "
        f"step vs {int(b['errors'])}/{int(b['requests'])} before it"
    )
    return Observation(
        GateKind.METRIC,
        "load balancer 5xx",
        not failed,
        detail,
        verdict="fail" if failed else "pass",
        evidence={
            "step_requests": int(g["requests"]),
            "step_elb_5xx": int(g["errors"]),
            "before_requests": int(b["requests"]),
            "before_elb_5xx": int(b["errors"]),
        },
    )


def dimensions(balancer: str, fleet: Fleet) -> dict[str, str]:
    """The dimensions an ALB publishes a target group's metrics under."""
    return {"LoadBalancer": balancer, "TargetGroup": fleet.target_group_arn.rsplit(":", 1)[-1]}
