"""How long a release will take on AWS's clock, step by step: what `deployer plan` prints.
Pure. Typical figures, not worst cases; each carries where it comes from.

- Stacks: a network stack with its NAT gateway about 4 minutes, a service stack with its
  load balancer and instance profile about 5 (CloudFormation event logs of such stacks; the
  same sources as the sandbox's latency table, deployer/sandbox/latency.py).
- A bake: the builder boots and is reachable in about half a minute, the playbook takes a
  couple of minutes, an 8 GiB image about 3 minutes; each copy to another region about 7.
- A fleet: its group in about 30 s, instances running and booted in about 25 s more, their
  registration 10 s; then one passed health check makes a new target healthy (ELB guide).
- A traffic step holds for bake_seconds, and as long as its gates need to have seen it:
  an alarm its evaluation window plus the publication delay; the metric gate min_periods
  complete minutes plus the delay (core.metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deployer.core.metrics import MetricPolicy, evidence_wait_s, longest_hold_s

NETWORK_CREATE_S = 240.0
SERVICE_CREATE_S = 300.0
STACK_UPDATE_S = 60.0
BAKE_S = 360.0  # builder 30 s, playbook about 2 min, image about 3 min
COPY_S = 420.0  # per other region
FLEET_S = 65.0  # group 30 s, instances 25 s, registration 10 s
RETIRE_S = 60.0  # an older fleet's group terminates its instances


@dataclass(frozen=True)
class PlannedTime:
    what: str
    seconds: float
    why: str


@dataclass(frozen=True)
class TimingInputs:
    stacks_to_create: Sequence[str]  # "network", "service"
    stacks_to_update: int
    bakes: bool
    regions: int
    health_interval_s: float
    steps: Sequence[tuple[str, float]]  # (name, bake_seconds)
    watch_s: float
    alarm_window_s: float  # the longest gating alarm's Period x EvaluationPeriods; 0: none
    metrics: MetricPolicy | None  # None: no metric gate
    retires: int


def typical_evidence_s(metrics: MetricPolicy) -> float:
    """With steady traffic: `min_periods` minutes, then one publication delay to settle (the
    deadline, evidence_wait_s, allows a second one for late minutes).
    """
    return evidence_wait_s(metrics) - metrics.publication_delay_s


def step_hold_s(hold_s: float, alarm_window_s: float, metrics: MetricPolicy | None) -> float:
    """How long a traffic step holds with steady traffic."""
    evidence = typical_evidence_s(metrics) if metrics is not None else None
    return longest_hold_s(hold_s, alarm_window_s, evidence)


def predict(t: TimingInputs) -> list[PlannedTime]:
    rows = []
    for stack in t.stacks_to_create:
        seconds = NETWORK_CREATE_S if stack == "network" else SERVICE_CREATE_S
        rows.append(PlannedTime(f"create {stack} stack", seconds, "CloudFormation, typical"))
    if t.stacks_to_update:
        rows.append(
            PlannedTime(
                "update stacks", STACK_UPDATE_S * t.stacks_to_update, "CloudFormation, typical"
            )
        )
    if t.bakes:
        rows.append(
            PlannedTime(
                "bake",
                BAKE_S + COPY_S * max(0, t.regions - 1),
                "builder, playbook, image" + (", copies" if t.regions > 1 else ""),
            )
        )
    rows.append(PlannedTime("fleet", FLEET_S, "group, instances, registration"))
    rows.append(PlannedTime("gate", t.health_interval_s, "one passed health check"))
    for name, hold_s in t.steps:
        held = step_hold_s(hold_s, t.alarm_window_s, t.metrics)
        rows.append(PlannedTime(name, held, _why(hold_s, held, t)))
    if t.watch_s:
        rows.append(PlannedTime("watch", t.watch_s, "strategy.watch_seconds"))
    if t.retires:
        rows.append(PlannedTime("retire", RETIRE_S, f"{t.retires} older fleet(s) deleted"))
    return rows


def _why(hold_s: float, held: float, t: TimingInputs) -> str:
    if held == hold_s:
        return "strategy.bake_seconds"
    if t.metrics is not None and held == typical_evidence_s(t.metrics):
        return (
            f"{t.metrics.min_periods} settled minutes of users' requests "
            f"({t.metrics.publication_delay_s:.0f}s to settle); a busy service's PASS comes "
            "then, a quiet one holds to its deadline"
        )
    return "the alarms' evaluation window, published"


def total_s(rows: Sequence[PlannedTime]) -> float:
    return sum(r.seconds for r in rows)
