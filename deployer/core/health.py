"""Health assessment: from observed target health to a gate verdict. Fails closed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from deployer.core.model import TargetHealth, TargetState


class Verdict(StrEnum):
    PASS = "pass"
    WAIT = "wait"
    FAIL = "fail"


@dataclass(frozen=True)
class GateResult:
    verdict: Verdict
    observation: str


def describe_targets(targets: Sequence[TargetHealth]) -> str:
    if not targets:
        return "no targets registered"
    parts = []
    for t in sorted(targets, key=lambda t: t.target_id):
        reason = f" ({t.reason})" if t.reason and t.state is not TargetState.HEALTHY else ""
        parts.append(f"{t.target_id} {t.state.value}{reason}")
    return ", ".join(parts)


def assess_target_health(
    targets: Sequence[TargetHealth], expected: int, deadline_passed: bool
) -> GateResult:
    """PASS when `expected` targets are registered and every one is healthy.

    Anything else is WAIT until the deadline, then FAIL. An unhealthy target is not failed
    at once: on ELBv2 a target that boots slowly goes initial -> unhealthy -> healthy.
    """
    healthy = [t for t in targets if t.state is TargetState.HEALTHY]
    summary = f"{len(healthy)}/{expected} healthy: {describe_targets(targets)}"
    if expected > 0 and len(healthy) >= expected and len(healthy) == len(targets):
        return GateResult(Verdict.PASS, summary)
    if deadline_passed:
        return GateResult(Verdict.FAIL, summary)
    return GateResult(Verdict.WAIT, summary)
