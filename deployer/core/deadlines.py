"""A run's worst case: the sum of the deadlines of the phases it may go through. Credentials
that end before it could leave a release half-done, with the rollback itself refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployer.core.metrics import MetricPolicy, evidence_wait_s, longest_hold_s


@dataclass(frozen=True)
class Deadlines:
    stack_s: float  # one CloudFormation create, update or delete
    bake_s: float  # a whole bake (builder, playbook, image, copies)
    health_s: float  # the gate before the switch
    hold_s: float  # one traffic step: its longest hold (step_deadline_s)
    steps: int
    watch_s: float  # the watch's longest hold (0: no watch)
    hooks_s: float = 0.0  # every verify command at its timeout
    pauses_s: float = 0.0  # every pause waiting for `deployer promote` to its timeout


def step_deadline_s(hold_s: float, alarm_window_s: float, metrics: MetricPolicy | None) -> float:
    """The longest a traffic step (or the watch) holds: bake_seconds, the alarms' window
    published, and the metric gate's deadline for its evidence (core.metrics), whichever is
    last. A hold is never longer (release.gating.hold).
    """
    return longest_hold_s(hold_s, alarm_window_s, evidence_wait_s(metrics) if metrics else None)


def worst_case_seconds(d: Deadlines, bakes: bool = True) -> float:
    """Network and service stacks, the bake, the fleet stack, the gate, every step held to
    its deadline, every pause to its timeout, the watch, the verify hooks at their timeouts,
    and one more listener-and-stack change to roll back.
    """
    stacks = 3 * d.stack_s + d.stack_s  # network, service, fleet; and one retire or put-aside
    return (
        stacks
        + (d.bake_s if bakes else 0)
        + d.health_s
        + d.steps * d.hold_s
        + d.watch_s
        + d.hooks_s
        + d.pauses_s
    )


def short_by(expires_in_s: float, worst_case_s: float) -> float:
    """How many seconds too early the credentials end (0: they last)."""
    return max(0.0, worst_case_s - expires_in_s)
