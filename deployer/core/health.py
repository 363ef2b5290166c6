"""Target health as a gate observation. Fails closed: fewer targets than expected, or any
target that is not healthy, is not a pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from deployer.core.gates import GateKind, Observation
from deployer.core.model import TargetHealth, TargetState


def describe_targets(targets: Sequence[TargetHealth]) -> str:
    if not targets:
        return "no targets registered"
    parts = []
    for t in sorted(targets, key=lambda t: t.target_id):
        reason = f" ({t.reason})" if t.reason and t.state is not TargetState.HEALTHY else ""
        parts.append(f"{t.target_id} {t.state.value}{reason}")
    return ", ".join(parts)


def assess_target_health(targets: Sequence[TargetHealth], expected: int) -> Observation:
    """Passes when `expected` targets are registered and every one of them is healthy.

    On ELBv2 a target that boots slowly goes initial -> unhealthy -> healthy, so callers
    wait on this until a deadline before the switch, and fail at once after it.
    """
    healthy = [t for t in targets if t.state is TargetState.HEALTHY]
    passed = expected > 0 and len(healthy) >= expected and len(healthy) == len(targets)
    detail = f"{len(healthy)}/{expected} healthy: {describe_targets(targets)}"
    return Observation(GateKind.TARGET_HEALTH, "green", passed, detail)


# A reason that means the app answered, and answered wrong: not a target still booting.
DEFINITE_FAILURES = frozenset({"Target.ResponseCodeMismatch"})


def plainly_broken(targets: Sequence[TargetHealth], expected: int) -> str:
    """Why the fleet is broken beyond waiting for, or "" when it may yet become healthy.

    The load balancer marks a target unhealthy after `unhealthy_threshold` failed checks in a
    row; when every expected target is unhealthy because its health check answered with the
    wrong status code, the build is broken and waiting out the deadline only delays the news.
    A timeout or a refused connection may be a target still booting, so it is not definite.
    """
    if expected <= 0 or len(targets) < expected:
        return ""
    if all(
        t.state is TargetState.UNHEALTHY and t.reason.split(":")[0] in DEFINITE_FAILURES
        for t in targets
    ):
        return f"every target fails its health check: {describe_targets(targets)}"
    return ""


# ---- during a hold: a fleet that grows, shrinks or heals is not failing ----------------------

# Asked of Auto Scaling: an instance it is taking out (and replacing, when below desired).
LEAVING = ("Terminating", "Detaching", "EnteringStandby", "Standby", "Warmed")
IN_TRANSITION = frozenset({TargetState.INITIAL, TargetState.DRAINING})


@dataclass(frozen=True)
class Member:
    """An instance of the fleet's Auto Scaling group, as Auto Scaling sees it."""

    instance_id: str
    lifecycle: str  # InService, Pending, Pending:Wait, Terminating, ...
    healthy: bool  # HealthStatus: Auto Scaling replaces an Unhealthy one
    launched_at: float | None = None  # epoch seconds (EC2 LaunchTime)


def in_transition(
    target: TargetHealth, members: Mapping[str, Member] | None, now: float, grace_s: float
) -> str:
    """Why a target that is not healthy is not a failure yet, or "" when it is one.
    `members` None: Auto Scaling could not be read, so only the target's own state counts.
    """
    if target.state in IN_TRANSITION:
        return target.state.value
    if members is None:
        return ""
    member = members.get(target.target_id)
    if member is None:
        return "leaving its group"
    if member.lifecycle.startswith(LEAVING) or not member.healthy:
        return "being replaced by Auto Scaling"
    if member.lifecycle.startswith("Pending"):
        return "starting"
    if member.launched_at is not None and now - member.launched_at < grace_s:
        return "within its health-check grace period"
    return ""


def needed_healthy(capacity: int, desired_now: int, share: float, coming: int) -> int:
    """How many healthy targets a traffic step needs: its share of the fleet's size (the size
    Auto Scaling keeps now, when it scaled in), less the targets on their way, at least one.
    """
    size = min(capacity, desired_now) if desired_now > 0 else capacity
    wanted = max(1, math.ceil(size * share - 1e-9))
    return max(1, wanted - coming)


def assess_during_hold(
    targets: Sequence[TargetHealth],
    members: Mapping[str, Member] | None,
    now: float,
    grace_s: float,
    capacity: int,
    desired_now: int,
    share: float,
) -> Observation:
    """Target health while a step holds. Not failures: a new target still `initial`, a target
    Auto Scaling is replacing (or taking out), one within the health-check grace period.
    Failures: a target unhealthy for a definite reason, or fewer healthy targets than the
    step needs.
    """
    healthy = [t for t in targets if t.state is TargetState.HEALTHY]
    waiting = {
        t.target_id: why
        for t in targets
        if t.state is not TargetState.HEALTHY and (why := in_transition(t, members, now, grace_s))
    }
    broken = [
        t for t in targets if t.state is not TargetState.HEALTHY and t.target_id not in waiting
    ]
    needed = needed_healthy(capacity, desired_now, share, len(waiting))
    detail = f"{len(healthy)}/{needed} healthy needed: {describe_targets(targets)}"
    if waiting:
        detail += "; not counted against it: " + ", ".join(
            f"{i} ({why})" for i, why in sorted(waiting.items())
        )
    passed = not broken and len(healthy) >= needed
    return Observation(GateKind.TARGET_HEALTH, "green", passed, detail)
