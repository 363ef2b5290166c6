"""Value objects: what deployer observed, and what it records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum


class Phase(StrEnum):
    """Where a release is. Written to the journal before and after each step."""

    PREFLIGHT = "preflight"
    BAKE = "bake"
    FLEET = "fleet"
    GATE = "gate"
    SWITCH = "switch"
    STEP = "step"
    PAUSE = "pause"  # a canary step held until `deployer promote`
    WATCH = "watch"
    RETIRE = "retire"
    ROLLBACK = "rollback"
    DONE = "done"


class Outcome(StrEnum):
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NOOP = "noop"


class Kind(StrEnum):
    RELEASE = "release"
    ROLLBACK = "rollback"


class TargetState(StrEnum):
    """ELBv2 target health states (TargetHealth.State)."""

    INITIAL = "initial"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNUSED = "unused"
    DRAINING = "draining"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class TargetHealth:
    target_id: str
    state: TargetState
    reason: str = ""


@dataclass(frozen=True)
class Fleet:
    """One release's fleet stack (launch template + ASG + target group), as observed."""

    stack_name: str
    version: str
    digest: str
    image_id: str
    release_id: str
    stack_status: str
    target_group_arn: str = ""
    asg_name: str = ""
    desired: int = 0
    weight: int = 0
    bake_key: str = ""
    settings: str = ""
    alarms: tuple[str, ...] = ()  # the fleet stack's own alarms on its target group


@dataclass(frozen=True)
class Actor:
    user: str
    host: str
    ci_job: str = ""

    def __str__(self) -> str:
        where = f"{self.user}@{self.host}"
        return f"{where} ({self.ci_job})" if self.ci_job else where


@dataclass(frozen=True)
class LiveState:
    """The fleets of one app/environment and the production listener's weights, read from AWS."""

    fleets: tuple[Fleet, ...] = ()
    weights: Mapping[str, int] = field(default_factory=dict)

    def with_weights(self) -> LiveState:
        fleets = tuple(
            replace(f, weight=self.weights.get(f.target_group_arn, 0)) for f in self.fleets
        )
        return replace(self, fleets=fleets)

    @property
    def live_fleet(self) -> Fleet | None:
        """The fleet carrying most of the production traffic, or None before the first release."""
        carrying = [f for f in self.with_weights().fleets if f.weight > 0]
        return max(carrying, key=lambda f: f.weight) if carrying else None

    def fleet_for(self, version: str, digest: str) -> Fleet | None:
        for fleet in self.fleets:
            if fleet.version == version and fleet.digest == digest:
                return fleet
        return None

    def fleet_by_stack(self, stack_name: str) -> Fleet | None:
        return next((f for f in self.fleets if f.stack_name == stack_name), None)


@dataclass(frozen=True)
class ReleaseRecord:
    """One journal entry: a release or a rollback, from start to outcome."""

    release_id: str
    kind: Kind
    version: str
    started_at: str
    actor: Actor
    phase: Phase = Phase.PREFLIGHT
    outcome: Outcome = Outcome.IN_PROGRESS
    digest: str = ""
    bake_key: str = ""
    settings: str = ""
    images: Mapping[str, str] = field(default_factory=dict)
    fleet_stack: str = ""
    target_group_arn: str = ""
    previous_fleet: str = ""
    weights: Mapping[str, int] = field(default_factory=dict)
    prior_weights: Mapping[str, int] = field(default_factory=dict)
    step: int = -1
    capacity: int = 0  # green's desired size, decided when the release started
    image_reused: bool = False
    warm_switch: bool = False  # a rollback that is one listener change to a warm fleet
    table: str = ""  # the digest of the table of steps it runs (core.steps.table_digest)
    phase_done: bool = False
    finished_at: str = ""
    reason: str = ""
    cleanup: str = ""  # what could not be cleaned up after the outcome (needs a human)
    execution: str = ""  # the Step Functions execution running its traffic steps, if any
    pause_token: str = ""  # the execution's task token while it waits in a pause (promote)

    def at(self, phase: Phase, **changes: object) -> ReleaseRecord:
        """Entering `phase`: written before the step acts."""
        changes.setdefault("phase_done", False)
        return replace(self, phase=phase, **changes)  # type: ignore[arg-type]

    def done(self, **changes: object) -> ReleaseRecord:
        """The current phase completed: written after the step acted."""
        return replace(self, phase_done=True, **changes)  # type: ignore[arg-type]

    def finished(self, outcome: Outcome, when: str, reason: str = "") -> ReleaseRecord:
        return replace(self, outcome=outcome, finished_at=when, reason=reason)
