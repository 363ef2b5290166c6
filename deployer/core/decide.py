"""Release and rollback decisions, made from observed live state. Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from deployer.core.model import Fleet, Kind, LiveState, Outcome, ReleaseRecord
from deployer.errors import NothingToRollBackTo

WARM_STACK_STATES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE"})


@dataclass(frozen=True)
class Identity:
    """What a fleet runs: a release of the same identity as the live fleet changes nothing."""

    version: str
    digest: str  # the artifact
    bake_key: str = ""  # the image's inputs
    settings: str = ""  # the environment's settings (SSM), applied at boot

    def matches(self, fleet: Fleet) -> bool:
        return (
            fleet.version == self.version
            and fleet.digest == self.digest
            and fleet.bake_key == self.bake_key
            and fleet.settings == self.settings
        )

    def differences(self, fleet: Fleet) -> list[str]:
        pairs = [
            ("the version", fleet.version, self.version),
            ("the artifact", fleet.digest, self.digest),
            ("the image's inputs", fleet.bake_key, self.bake_key),
            ("the settings", fleet.settings, self.settings),
        ]
        return [name for name, was, wanted in pairs if was != wanted]


@dataclass(frozen=True)
class ReleasePlan:
    """What a release of one version would do, given the live state."""

    noop: bool
    capacity: int
    blue: Fleet | None
    reuse_fleet: Fleet | None
    reason: str


def plan_release(
    live: LiveState, wanted: Identity, configured_desired: int, force: bool = False
) -> ReleasePlan:
    """`force` (a rebake): a new release even when the live fleet is the same."""
    current = live.live_fleet
    if current is not None and wanted.matches(current) and not force:
        return ReleasePlan(
            noop=True,
            capacity=current.desired,
            blue=None,
            reuse_fleet=current,
            reason=f"{wanted.version} ({wanted.digest[:12]}) is already live on "
            f"{current.stack_name}",
        )
    capacity = green_capacity(current, configured_desired)
    live_stack = current.stack_name if current is not None else ""
    warm = [
        f
        for f in live.fleets
        if wanted.matches(f) and f.stack_status in WARM_STACK_STATES and f.stack_name != live_stack
    ]
    changed = wanted.differences(current) if current is not None else []
    why = f" ({', '.join(changed)} changed)" if current is not None and changed else ""
    return ReleasePlan(
        noop=False,
        capacity=capacity,
        blue=current,
        reuse_fleet=None if force else next(iter(warm), None),
        reason=f"release {wanted.version} beside "
        f"{current.version if current else 'nothing live'}{why}",
    )


def fleet_id(image_id: str, settings: str) -> str:
    """What makes one fleet stack of a version differ from another: its image and settings."""
    return hashlib.sha256(f"{image_id}\0{settings}".encode()).hexdigest()


def green_capacity(blue: Fleet | None, configured_desired: int) -> int:
    """Size green like the live fleet, which may have been scaled since it was released."""
    return blue.desired if blue is not None and blue.desired > 0 else configured_desired


def fleets_to_retire(live: LiveState, keep: Sequence[str]) -> list[Fleet]:
    """Every fleet of this app/environment except the stacks named in `keep`."""
    return [f for f in live.fleets if f.stack_name not in keep]


def failed_fleets(
    live: LiveState, history: Sequence[ReleaseRecord], keep: Collection[str]
) -> list[Fleet]:
    """Fleets a failed release put aside (the newest record of each says FAILED), routed to
    by no listener weight and not named in `keep`. They are never rolled back to, so the
    next release or `deployer gc` deletes them at once: only the fleet that was live before
    the current one waits out the rollback window.
    """
    newest: dict[str, ReleaseRecord] = {}
    for record in history:  # newest first
        newest.setdefault(record.fleet_stack, record)

    def put_aside(stack: str) -> bool:
        record = newest.get(stack)
        # a failed rollback to a warm fleet made no fleet: that fleet stays warm
        return (
            record is not None
            and record.outcome is Outcome.FAILED
            and not (is_listener_rollback(record))
        )

    return [
        f
        for f in live.fleets
        if put_aside(f.stack_name)
        and f.stack_name not in keep
        and not live.weights.get(f.target_group_arn)
    ]


def is_warm(fleet: Fleet) -> bool:
    """Ready to take traffic in one listener change: its stack is up and it has instances."""
    return fleet.stack_status in WARM_STACK_STATES and fleet.desired > 0


@dataclass(frozen=True)
class RollbackDecision:
    """What `deployer rollback` does: nothing (`noop`), switch the listener to a warm `fleet`,
    or re-release a retired version from the image its `record` names.
    """

    reason: str
    noop: bool = False
    fleet: Fleet | None = None
    record: ReleaseRecord | None = None


def made_live_by(current: Fleet, history: Sequence[ReleaseRecord]) -> ReleaseRecord | None:
    """The newest successful release or rollback that put `current` live."""
    for record in history:
        if record.outcome is Outcome.SUCCEEDED and record.fleet_stack == current.stack_name:
            return record
    return None


def _released(history: Sequence[ReleaseRecord], stack: str, version: str) -> ReleaseRecord | None:
    """The newest successful record of a fleet (by stack, else by version) with its image."""
    for record in history:
        if record.outcome is Outcome.SUCCEEDED and record.images and record.fleet_stack == stack:
            return record
    for record in history:
        if record.outcome is Outcome.SUCCEEDED and record.images and record.version == version:
            return record
    return None


def decide_rollback(
    live: LiveState, history: Sequence[ReleaseRecord], to_version: str | None
) -> RollbackDecision:
    """Where `deployer rollback [--to VERSION]` sends traffic. `history` is newest first.

    Without --to: back to the fleet that was live before the current one, as the journal
    says. A rollback is not undone by another plain rollback: run twice, it changes nothing.
    """
    current = live.live_fleet
    current_stack = current.stack_name if current is not None else ""
    warm = [f for f in live.fleets if is_warm(f) and f.stack_name != current_stack]
    if to_version is not None:
        if current is not None and current.version == to_version:
            return RollbackDecision(f"{to_version} is live already; nothing was changed", noop=True)
        for fleet in sorted(warm, key=lambda f: f.release_id, reverse=True):
            if fleet.version == to_version:
                return RollbackDecision(f"to {to_version}, warm on {fleet.stack_name}", fleet=fleet)
        record = _released(history, "", to_version)
        if record is None:
            raise NothingToRollBackTo(
                f"no warm fleet runs {to_version} and no release of it is recorded; "
                f"release it with `deployer release {to_version}`"
            )
        return RollbackDecision(f"to {to_version}, whose fleet was retired", record=record)
    if current is None:
        raise NothingToRollBackTo("nothing is live here; there is nothing to roll back")
    cause = made_live_by(current, history)
    if cause is not None and cause.kind is Kind.ROLLBACK:
        return RollbackDecision(
            f"{current.version} is live already: rollback {cause.release_id} put it back. "
            "Nothing was changed (a rollback is not undone by another). To go elsewhere, "
            "run `deployer rollback --to VERSION` or release a version",
            noop=True,
        )
    previous = cause.previous_fleet if cause is not None else ""
    if not previous:
        raise NothingToRollBackTo(
            f"{current.version} is the first release recorded here; there is nothing before it"
        )
    for fleet in warm:
        if fleet.stack_name == previous:
            return RollbackDecision(f"to {fleet.version}, warm on {fleet.stack_name}", fleet=fleet)
    record = _released(history, previous, "")
    if record is None:
        raise NothingToRollBackTo(
            f"the fleet before {current.version} ({previous}) is gone and no image is recorded "
            "for it; release the version you want with `deployer release VERSION`"
        )
    return RollbackDecision(f"to {record.version}, whose fleet was retired", record=record)


def in_flight(history: Sequence[ReleaseRecord]) -> ReleaseRecord | None:
    """The newest release or rollback a run left in progress (newest first): the one
    definition `status`, a rerun, `rollback`, `abort` and `gc` share.
    """
    return next((r for r in history if r.outcome is Outcome.IN_PROGRESS), None)


def is_listener_rollback(record: ReleaseRecord) -> bool:
    """A rollback that is one listener change to a warm fleet: it made no fleet, so failing
    or aborted it never puts that fleet aside (a re-release of a retired fleet did make one).
    """
    return record.kind is Kind.ROLLBACK and record.warm_switch
