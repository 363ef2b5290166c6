"""Gating a fleet: wait until it is ready on the test listener, and hold a traffic step while
every gate is evaluated. Observations come from deployer.release.probes; verdicts from core.

Fails closed: an unreadable probe is a failure. Fails fast: a fleet whose every target the
load balancer already reports broken (its health check answered with the wrong code) fails
then, not at the deadline. Holds as long as the evidence needs: CloudWatch publishes a
minute's metrics a minute or so after it closed, so a step gated on metrics or alarms holds
until they can have seen it (core.metrics), not merely for strategy.bake_seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from deployer.aws.poller import Poll
from deployer.config.strategy import MetricGates
from deployer.core.gate_inputs import Probes, looks_per_step
from deployer.core.gates import GateKind, Observation, judge
from deployer.core.health import plainly_broken
from deployer.core.metrics import (
    BASELINE_S,
    PERIOD_S,
    MetricPolicy,
    MetricWindow,
    alarm_wait_s,
    evidence_wait_s,
)
from deployer.core.model import Fleet
from deployer.errors import GateFailed, PollTimeout
from deployer.infra.stacks import Infra
from deployer.release.engine import Engine
from deployer.release.probes import (
    MetricLook,
    observe_alarms,
    observe_http,
    observe_metrics,
    observe_targets,
    observe_targets_during_hold,
)
from deployer.release.verify import hook_env, run_hook

BEFORE_SWITCH = "before switch"


def metric_policy(metrics: MetricGates) -> MetricPolicy:
    return MetricPolicy(
        min_periods=metrics.min_periods,
        max_error_increase=metrics.max_error_increase,
        max_latency_ratio=metrics.max_latency_ratio,
        min_latency_increase_s=metrics.min_latency_increase_ms / 1000,
        significance=metrics.significance,
        max_error_rate=metrics.max_error_rate,
        max_latency_seconds=metrics.max_latency_seconds,
        on_inconclusive="rollback" if metrics.require_traffic else metrics.on_inconclusive,
        publication_delay_s=float(metrics.publication_delay_seconds),
        min_minute_requests=float(metrics.min_minute_requests),
    )


@dataclass(frozen=True)
class Gated:
    """The fleet under gates, how many healthy targets it must have, and its baseline."""

    engine: Engine
    infra: Infra
    green: Fleet
    expected: int
    blue: Fleet | None = None
    # deployer's own requests through the test listener (to green): (epoch seconds, status)
    sent: list[tuple[float, int]] = field(default_factory=list)

    def _sent(self, at: float, status: int) -> None:
        self.sent.append((at, status))

    def probes_by_minute(self, period_s: float) -> Probes:
        counted = Probes(period_s)
        for at, status in self.sent:
            counted.record(at, status)
        return counted

    @property
    def test_url(self) -> str:
        infra = self.infra
        return self.engine.runtime.url_for(infra.load_balancer_dns, infra.test_listener_port)

    def alarm_names(self, step: str) -> list[str]:
        """gates.alarms, else the new fleet's own alarms (5xx, p99) once it takes traffic.
        Before the switch its targets may still be starting (unhealthy for a while, as on
        AWS): the target-health gate and its deadline judge them then.
        """
        configured = self.engine.alarm_names()
        if configured or step == BEFORE_SWITCH:
            return configured
        return list(self.green.alarms)

    def observe_before_switch(self) -> list[Observation]:
        """Every gate of the test listener, once: all targets healthy, HTTP, alarms."""
        e = self.engine
        return self.emit(
            BEFORE_SWITCH,
            [
                observe_targets(e.elb, self.green.target_group_arn, self.expected),
                *[observe_http(self.test_url, check, self._sent) for check in e.spec.gates.http],
                *observe_alarms(e.cloudwatch, self.alarm_names(BEFORE_SWITCH)),
            ],
        )

    def observe_during(
        self, step: str, share: float, window: MetricWindow, looks: int = 1, final: bool = False
    ) -> list[Observation]:
        """Every gate while a step holds, once: target health as a hold judges it, HTTP,
        alarms, and green's metrics against blue's (`looks`: how many the step may take;
        `final`: the hold's deadline has come).
        """
        e = self.engine
        metrics = e.spec.gates.metrics
        seen = [
            observe_targets_during_hold(
                e.elb,
                e.asg,
                e.ec2,
                self.green,
                self.expected,
                share,
                e.spec.health_check.grace_seconds,
            ),
            *[observe_http(self.test_url, check, self._sent) for check in e.spec.gates.http],
            *observe_alarms(e.cloudwatch, self.alarm_names(step)),
        ]
        if metrics.enabled:
            period_s = e.runtime.aws_seconds(PERIOD_S)
            look = MetricLook(
                metric_policy(metrics),
                metrics.latency_statistic,
                self.probes_by_minute(period_s),
                looks,
                final,
                period_s,
                e.runtime.aws_seconds(metrics.publication_delay_seconds),
            )
            seen += observe_metrics(
                e.cloudwatch,
                self.infra.load_balancer_full_name,
                self.green,
                self.blue,
                window,
                look,
            )
        return self.emit(step, seen)

    def emit(self, step: str, seen: list[Observation]) -> list[Observation]:
        """Each observation is a gate_observation event."""
        for o in seen:
            extra = {"verdict": o.verdict, "evidence": dict(o.evidence)} if o.verdict else {}
            self.engine.events.emit(
                "gate_observation",
                gate=o.gate,
                kind=o.kind.value,
                passed=o.passed,
                detail=o.detail,
                step=step,
                version=self.green.version,
                **extra,
            )
        return seen


def gate_failed(observation: Observation, step: str) -> GateFailed:
    return GateFailed(observation.gate, observation.detail, step, dict(observation.evidence))


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
    e.traffic.set_weights(gated.infra.test_listener_arn, {gated.green.target_group_arn: 1})
    deadline = e.spec.health_check.deadline_seconds
    failures: dict[str, int] = {}

    def check() -> Poll[None]:
        targets, *others = gated.observe_before_switch()
        alarms = [o for o in others if o.kind is GateKind.ALARM]
        verdict = judge(alarms, failures, e.spec.gates.max_failures)
        if verdict.failed:
            raise gate_failed(verdict.failed, BEFORE_SWITCH)
        health = e.elb.target_health(gated.green.target_group_arn) if not targets.passed else []
        broken = plainly_broken(health, gated.expected)
        if broken:
            raise GateFailed(GateKind.TARGET_HEALTH.value, broken, BEFORE_SWITCH)
        if not targets.passed:
            return Poll(False, targets.detail + launch_failure(gated, health))
        verdict = judge(others, failures, e.spec.gates.max_failures)
        failures.update(verdict.failures)
        if verdict.failed:
            raise gate_failed(verdict.failed, BEFORE_SWITCH)
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


@dataclass(frozen=True)
class HoldPlan:
    """How long a step holds, in this run's clock: at least `minimum_s` (bake_seconds, and
    the alarms' windows), and until the metric evidence is in or `evidence_s` has passed.
    """

    minimum_s: float
    evidence_s: float


def evidence_s(gated: Gated, seconds: float) -> float:
    """How long (this run's clock) a step may hold for its metric evidence: its deadline."""
    metrics = gated.engine.spec.gates.metrics
    if not metrics.enabled:
        return seconds
    return max(seconds, gated.engine.runtime.aws_seconds(evidence_wait_s(metric_policy(metrics))))


def hold_plan(gated: Gated, seconds: float, alarms: list[Observation]) -> HoldPlan:
    runtime = gated.engine.runtime
    windows = [float(o.evidence.get("window_s", 0.0)) for o in alarms]
    alarm_s = runtime.aws_seconds(alarm_wait_s(max(windows))) if windows else 0.0
    return HoldPlan(minimum_s=max(seconds, alarm_s), evidence_s=evidence_s(gated, seconds))


def hold(gated: Gated, seconds: float, step_name: str, share: float) -> None:
    """Evaluate every gate each interval until the step has held long enough and the
    metric rule has a verdict (PASS ends the step once its minimum has passed, FAIL at
    once); fail at the first failure beyond the tolerance. At the deadline a verdict still
    CONTINUE is inconclusive, and gates.metrics.on_inconclusive decides. The gates are
    evaluated once more at the end, so a hold never passes unseen.

    `share`: green's share of production traffic in this step (1.0 for the watch).
    """
    e = gated.engine
    started, started_at = e.clock(), time.time()
    metrics = e.spec.gates.metrics
    period_s = e.runtime.aws_seconds(PERIOD_S)
    deadline_s = evidence_s(gated, seconds)
    looks = looks_per_step(deadline_s, period_s)  # alpha is spent over the step's looks
    plan: HoldPlan | None = None
    failures: dict[str, int] = {}
    said_waiting = False
    while True:
        window = MetricWindow.for_step(
            started_at, time.time(), period_s, e.runtime.aws_seconds(BASELINE_S)
        )
        final = e.clock() - started >= deadline_s
        observed = gated.observe_during(step_name, share, window, looks, final)
        if plan is None:
            plan = hold_plan(gated, seconds, [o for o in observed if o.kind is GateKind.ALARM])
        verdict = judge(observed, failures, e.spec.gates.max_failures)
        failures = dict(verdict.failures)
        if verdict.failed:
            e.gate_failed_at = e.clock()
            raise gate_failed(with_error_rate(verdict.failed, observed), step_name)
        waiting = [o for o in observed if o.verdict == "continue" and not o.evidence.get("idle")]
        held = e.clock() - started
        if held >= plan.minimum_s and (not waiting or final):
            if waiting:
                inconclusive(gated, waiting, step_name, metrics.on_inconclusive_effective)
            return
        if waiting and held >= plan.minimum_s and not said_waiting:
            e.report(
                f"gate: {step_name} holds for the metrics' evidence (a verdict needs "
                f"{metrics.min_periods} settled minute(s) with users' requests, or a failure; "
                f"up to {plan.evidence_s - held:.0f}s more)"
            )
            said_waiting = True
        left = (plan.evidence_s if waiting else plan.minimum_s) - held
        e.sleep(max(0.0, min(e.spec.gates.interval_seconds, left)))


def with_error_rate(failed: Observation, observed: list[Observation]) -> Observation:
    """A failure of another gate, told with green's error rate against blue's beside it, so
    that nobody has to open CloudWatch to see how green served its users.
    """
    if failed.kind is GateKind.METRIC:
        return failed
    rate = next((o for o in observed if o.kind is GateKind.METRIC and o.name == "error rate"), None)
    if rate is None:
        return failed
    if rate.evidence.get("idle") or not rate.evidence.get("green_requests"):
        return replace(
            failed,
            detail=f"{failed.detail} (error rate: no users' requests to green in a settled "
            "minute yet)",
        )
    return replace(
        failed,
        detail=f"{failed.detail} (error rate: {rate.detail})",
        evidence={**failed.evidence, "error_rate": dict(rate.evidence)},
    )


def verify(gated: Gated, commands: tuple[str, ...], step: str, url: str, previous: str) -> None:
    """Run the team's hooks (verify: in deployer.yaml) one by one; the first that fails is
    a gate failure naming the command, its exit status and its last lines.
    """
    e = gated.engine
    spec = e.spec.verify
    for command in commands:
        e.report(f"verify: {command} ({step})")

        def said(line: str, command: str = command) -> None:
            e.report(f"verify: {command}: {line}")

        result = run_hook(
            command,
            e.loaded.base_dir,
            hook_env(url, gated.test_url, gated.green.version, previous, step),
            spec.timeout_seconds,
            on_line=said,
            aws_credentials=spec.aws_credentials,
        )
        (observation,) = gated.emit(step, [result.observation(spec.timeout_seconds)])
        if not observation.passed:
            raise gate_failed(observation, step)


def inconclusive(gated: Gated, waiting: list[Observation], step: str, policy: str) -> None:
    """The step held as long as its evidence could need, and the rule still says CONTINUE:
    say so plainly, with the numbers, then roll back or go on, as gates.metrics says.
    """
    rate = next((o for o in waiting if o.name == "error rate"), waiting[0])
    detail = f"inconclusive: {rate.detail}"
    e = gated.engine
    e.events.emit(
        "gate_observation",
        gate=f"{GateKind.METRIC.value} {rate.name}",
        kind=GateKind.METRIC.value,
        passed=policy != "rollback",
        detail=detail,
        step=step,
        version=gated.green.version,
        verdict="inconclusive",
        evidence={**dict(rate.evidence), "on_inconclusive": policy},
    )
    if policy == "rollback":
        raise GateFailed(
            f"{GateKind.METRIC.value} {rate.name}",
            detail + " (gates.metrics.on_inconclusive: rollback)",
            step,
            dict(rate.evidence),
        )
    e.report(f"gate: {step}: {detail}; proceeding (gates.metrics.on_inconclusive: proceed)")
