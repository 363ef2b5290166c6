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
