"""Target health as a gate observation. Fails closed: fewer targets than expected, or any
target that is not healthy, is not a pass.
"""

from __future__ import annotations

from collections.abc import Sequence

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
