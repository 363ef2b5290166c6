"""A run's worst case: the sum of the deadlines of the phases it may go through. Credentials
that end before it could leave a release half-done, with the rollback itself refused.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Deadlines:
    stack_s: float  # one CloudFormation create, update or delete
    bake_s: float  # a whole bake (builder, playbook, image, copies)
    health_s: float  # the gate before the switch
    hold_s: float  # one traffic step
    steps: int
    watch_s: float


def worst_case_seconds(d: Deadlines, bakes: bool = True) -> float:
    """Network and service stacks, the bake, the fleet stack, the gate, every step held,
    the watch, and one more listener-and-stack change to roll back.
    """
    stacks = 3 * d.stack_s + d.stack_s  # network, service, fleet; and one retire or put-aside
    return stacks + (d.bake_s if bakes else 0) + d.health_s + d.steps * d.hold_s + d.watch_s


def short_by(expires_in_s: float, worst_case_s: float) -> float:
    """How many seconds too early the credentials end (0: they last)."""
    return max(0.0, worst_case_s - expires_in_s)
