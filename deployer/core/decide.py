"""Release and rollback decisions, made from observed live state. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deployer.core.model import Fleet, Kind, LiveState, Outcome, ReleaseRecord
from deployer.errors import BadInput

WARM_STACK_STATES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE"})


@dataclass(frozen=True)
class ReleasePlan:
    """What a release of one version would do, given the live state."""

    noop: bool
    green_stack: str
    capacity: int
    blue: Fleet | None
    reuse_fleet: Fleet | None
    reason: str


def plan_release(
    live: LiveState, version: str, digest: str, green_stack: str, configured_desired: int
) -> ReleasePlan:
    current = live.live_fleet
    if current is not None and current.version == version and current.digest == digest:
        return ReleasePlan(
            noop=True,
            green_stack=current.stack_name,
            capacity=current.desired,
            blue=None,
            reuse_fleet=current,
            reason=f"{version} ({digest[:12]}) is already live on {current.stack_name}",
        )
    capacity = green_capacity(current, configured_desired)
    existing = live.fleet_by_stack(green_stack)
    reuse = (
        existing if existing is not None and existing.stack_status in WARM_STACK_STATES else None
    )
    return ReleasePlan(
        noop=False,
        green_stack=green_stack,
        capacity=capacity,
        blue=current,
        reuse_fleet=reuse,
        reason=f"release {version} beside {current.version if current else 'nothing live'}",
    )


def green_capacity(blue: Fleet | None, configured_desired: int) -> int:
    """Size green like the live fleet, which may have been scaled since it was released."""
    return blue.desired if blue is not None and blue.desired > 0 else configured_desired


def fleets_to_retire(live: LiveState, keep: Sequence[str]) -> list[Fleet]:
    """Every fleet of this app/environment except the stacks named in `keep`."""
    return [f for f in live.fleets if f.stack_name not in keep]


def is_warm(fleet: Fleet) -> bool:
    """Ready to take traffic in one listener change: its stack is up and it has instances."""
    return fleet.stack_status in WARM_STACK_STATES and fleet.desired > 0


class NothingToRollBackTo(BadInput):
    pass


def choose_rollback_target(
    live: LiveState, history: Sequence[ReleaseRecord], to_version: str | None
) -> Fleet:
    """The fleet a rollback moves traffic to. `history` is newest first.

    Without --to: the release that was live before the current one, if its fleet is still warm.
    """
    current = live.live_fleet
    warm = [f for f in live.fleets if is_warm(f)]
    warm = [f for f in warm if current is None or f.stack_name != current.stack_name]
    if to_version is not None:
        for fleet in warm:
            if fleet.version == to_version:
                return fleet
        versions = ", ".join(sorted({f.version for f in warm})) or "none"
        raise NothingToRollBackTo(
            f"no warm fleet runs {to_version} (warm fleets: {versions}); "
            f"release it again with `deployer release {to_version}`"
        )
    released = [
        r
        for r in history
        if r.kind is Kind.RELEASE and r.outcome is Outcome.SUCCEEDED and r.fleet_stack
    ]
    order = [r.fleet_stack for r in released]
    start = order.index(current.stack_name) + 1 if current and current.stack_name in order else 0
    by_stack = {f.stack_name: f for f in warm}
    for stack in order[start:]:
        if stack in by_stack:
            return by_stack[stack]
    raise NothingToRollBackTo(
        "no previous fleet is warm (it was retired after the rollback window); "
        "release the version you want with `deployer release VERSION`"
    )
