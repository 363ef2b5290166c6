"""Gating a fleet: wait until it is ready on the test listener, and hold a traffic step while
every gate is evaluated. Observations come from deployer.gates; verdicts from core.

Fails closed: an unreadable probe is a failure. Fails fast: a fleet whose every target the
load balancer already reports broken (its health check answered with the wrong code) fails
then, not at the deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deployer.aws.poller import Poll, PollTimeout
from deployer.core.gates import GateKind, Observation, judge
from deployer.core.health import plainly_broken
from deployer.core.model import Fleet
from deployer.engine import Engine
from deployer.errors import GateFailed
from deployer.gates import observe_alarms, observe_http, observe_targets
from deployer.infra import Infra

BEFORE_SWITCH = "before switch"


@dataclass(frozen=True)
class Gated:
    """The fleet under gates, and how many healthy targets it must have."""

    engine: Engine
    infra: Infra
    green: Fleet
    expected: int

    @property
    def test_url(self) -> str:
        infra = self.infra
        return self.engine.runtime.url_for(infra.load_balancer_dns, infra.test_listener_port)

    def alarm_names(self, step: str) -> list[str]:
        """gates.alarms, else the new fleet's own alarms (5xx, p99, unhealthy hosts) once it
        takes traffic. Before the switch its targets may still be starting (unhealthy for a
        while, as on AWS): the target-health gate and its deadline judge them then.
        """
        configured = self.engine.alarm_names()
        if configured or step == BEFORE_SWITCH:
            return configured
        return list(self.green.alarms)

    def observe(self, step: str) -> list[Observation]:
        """Every gate, once; each observation is a gate_observation event."""
        e = self.engine
        seen = [
            observe_targets(e.elb, self.green.target_group_arn, self.expected),
            *[observe_http(self.test_url, check) for check in e.spec.gates.http],
            *observe_alarms(e.cloudwatch, self.alarm_names(step)),
        ]
        for o in seen:
            e.events.emit(
                "gate_observation",
                gate=o.gate,
                kind=o.kind.value,
                passed=o.passed,
                detail=o.detail,
                step=step,
                version=self.green.version,
            )
        return seen


def launch_failure(gated: Gated, health: list[Any]) -> str:
    """With no target registered, Auto Scaling's reason for the missing instances, if a
    launch failed (read only then).
    """
    if health or not gated.green.asg_name:
        return ""
    why = gated.engine.asg.launch_failure(gated.green.asg_name)
    return f"; Auto Scaling: {why}" if why else ""


def wait_until_ready(gated: Gated) -> None:
    """On the test listener, which carries no user traffic: every target healthy, the HTTP
    checks passing and no alarm firing, within the health-check deadline.
    """
    e = gated.engine
    e.set_weights(gated.infra.test_listener_arn, {gated.green.target_group_arn: 1})
    deadline = e.spec.health_check.deadline_seconds
    failures: dict[str, int] = {}

    def check() -> Poll[None]:
        targets, *others = gated.observe(BEFORE_SWITCH)
        alarms = [o for o in others if o.kind is GateKind.ALARM]
        verdict = judge(alarms, failures, e.spec.gates.max_failures)
        if verdict.failed:
            raise GateFailed(verdict.failed.gate, verdict.failed.detail, BEFORE_SWITCH)
        health = e.elb.target_health(gated.green.target_group_arn) if not targets.passed else []
        broken = plainly_broken(health, gated.expected)
        if broken:
            raise GateFailed(GateKind.TARGET_HEALTH.value, broken, BEFORE_SWITCH)
        if not targets.passed:
            return Poll(False, targets.detail + launch_failure(gated, health))
        verdict = judge(others, failures, e.spec.gates.max_failures)
        failures.update(verdict.failures)
        if verdict.failed:
            raise GateFailed(verdict.failed.gate, verdict.failed.detail, BEFORE_SWITCH)
        return Poll(
            all(o.passed for o in others),
            "checks failing: " + "; ".join(f"{o.gate}: {o.detail}" for o in others if not o.passed),
        )

    try:
        e.poller.until(
            f"{gated.green.version} to pass its gates",
            check,
            deadline,
            interval=e.spec.gates.interval_seconds,
        )
    except PollTimeout as exc:
        raise GateFailed(
            GateKind.TARGET_HEALTH.value, f"{exc.last_status} after {deadline}s", BEFORE_SWITCH
        ) from None
    e.report(
        f"gate: {gated.green.version} passed on the test listener "
        f"({gated.expected} targets healthy)"
    )


def hold(gated: Gated, seconds: float, step_name: str) -> None:
    """Evaluate every gate each interval for `seconds`; fail at the first failure beyond the
    tolerance. The gates are evaluated once more at the end, so a hold never passes unseen.
    """
    e = gated.engine
    ends = e.clock() + seconds
    failures: dict[str, int] = {}
    while True:
        verdict = judge(gated.observe(step_name), failures, e.spec.gates.max_failures)
        failures = dict(verdict.failures)
        if verdict.failed:
            e.gate_failed_at = e.clock()
            raise GateFailed(verdict.failed.gate, verdict.failed.detail, step_name)
        left = ends - e.clock()
        if left <= 0:
            return
        e.sleep(min(e.spec.gates.interval_seconds, left))
