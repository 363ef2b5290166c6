"""`deployer rollback` and `deployer abort`: traffic back to where it was, idempotently.

A rollback is one listener change to the fleet that was live before the current one, as the
journal says; if that fleet was retired, a re-release of its recorded image (no bake). Run
twice, the second changes nothing and says what is live. `abort` rolls back the release a
killed run left in flight; with nothing in flight it changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployer.core.decide import (
    Identity,
    RollbackDecision,
    decide_rollback,
    is_listener_rollback,
)
from deployer.core.health import assess_target_health
from deployer.core.model import Fleet, Kind, LiveState, Outcome, Phase, ReleaseRecord
from deployer.core.names import Version
from deployer.errors import BadInput, NothingToRollBackTo
from deployer.infra.stacks import Infra
from deployer.release.engine import Engine
from deployer.release.following import stop_running
from deployer.release.loop import abandon, release_from, switch_to_warm
from deployer.release.steps import ABORT_SIGNAL


@dataclass(frozen=True)
class OperatorResult:
    """What a rollback or an abort did: `changed` is False when it had nothing to do."""

    record: ReleaseRecord | None
    changed: bool
    message: str
    switch_seconds: float = 0.0


def rollback(
    engine: Engine, to_version: str | None, wait_s: float | None, force: bool = False
) -> OperatorResult:
    if to_version is not None:
        Version.parse(to_version)
    engine.check_reachable()
    settled = _already_there(engine, to_version)
    if settled is not None:  # read only: no lock taken, nothing journalled
        return settled
    take_over_from_aws(engine, "rolled back by `deployer rollback`")
    with engine.records.locked(wait_s):
        infra = engine.stacks.existing()
        if infra is None:
            raise NothingToRollBackTo("nothing has been released here yet; nothing was changed")
        inflight = engine.records.inflight()
        if inflight is not None and inflight.kind is Kind.ROLLBACK:
            return _resume(engine, infra, inflight)
        if inflight is not None:
            engine.report(
                f"rollback: release {inflight.release_id} of {inflight.version} is in "
                "flight; rolling it back is the rollback"
            )
            record = abandon(engine, inflight, infra, "rolled back by `deployer rollback`")
            return OperatorResult(
                record, True, f"rolled back the interrupted release of {record.version}"
            )
        live = engine.fleets.observe(infra)
        decision = decide_rollback(live, engine.journal.history(limit=200), to_version)
        if decision.noop:
            return _nothing_to_do(engine, live, decision)
        if decision.fleet is not None:
            return _switch_to(engine, infra, live, decision.fleet, force)
        assert decision.record is not None
        return _rerelease(engine, infra, decision.record)


def _abort_a_local_pause(engine: Engine) -> OperatorResult | None:
    """A release this machine or another runs, waiting in its pause, holds the lock: it is
    told to abort (a signal in the journal), rolls itself back, and abort says so. None when
    no live run waits in a pause (then abort takes the lock as usual).
    """
    inflight = engine.records.inflight()
    if (
        inflight is None
        or inflight.execution
        or inflight.phase is not Phase.PAUSE
        or engine.lock.holder_elsewhere() is None
    ):
        return None
    engine.report(f"abort: release {inflight.release_id} waits in its pause; telling it to abort")
    engine.journal.send_signal(inflight.release_id, ABORT_SIGNAL, engine.stamp())
    started = engine.clock()
    while engine.clock() - started < PAUSE_ANSWER_S:
        now = engine.journal.record(inflight.release_id)
        if now is not None and now.outcome is not Outcome.IN_PROGRESS:
            message = f"aborted release {now.release_id} of {now.version} during its pause"
            return OperatorResult(now, True, message)
        engine.sleep(0.5)
    return None  # the run did not answer: take the lock as usual (it may be gone)


PAUSE_ANSWER_S = 60.0


def take_over_from_aws(engine: Engine, why: str) -> None:
    """A release running in AWS is stopped first (it writes no more), and the lock it held
    freed, so that this command takes the lock and rolls the release back as journalled.
    """
    inflight = engine.records.inflight()
    if inflight is not None and inflight.execution:
        stop_running(engine, inflight, why)


def _resume(engine: Engine, infra: Infra, record: ReleaseRecord) -> OperatorResult:
    """A rollback a killed run left in flight: finish it, as the journal says it started.
    One to a warm fleet is its listener change again; a re-release continues at its step.
    """
    engine.report(
        f"rollback: rollback {record.release_id} to {record.version} was interrupted at "
        f"{record.phase.value}; finishing it"
    )
    if not is_listener_rollback(record):
        region = engine.runtime.aws.region
        wanted = Identity(record.version, record.digest, record.bake_key, record.settings)
        result = release_from(
            engine,
            infra,
            wanted,
            image_id=record.images.get(region, ""),
            kind=Kind.ROLLBACK,
            note=record.reason,
        )
        message = f"finished the interrupted re-release of {record.version}"
        return OperatorResult(result.record, True, message)
    live = engine.fleets.observe(infra)
    target = live.fleet_by_stack(record.fleet_stack)
    if target is None:
        raise NothingToRollBackTo(
            f"the interrupted rollback's fleet {record.fleet_stack} is gone; traffic is where "
            "it was left: run `deployer status`, then `deployer abort` to put it back or "
            f"`deployer release {record.version}`"
        )
    return _switched(engine, infra, live, target, record, journalled=True)


def _already_there(engine: Engine, to_version: str | None) -> OperatorResult | None:
    """Traffic is where the rollback would put it, and nothing is in flight: said without
    the lock (whose token would rise) and without a journal record.
    """
    infra = engine.stacks.existing()
    if infra is None or engine.records.inflight() is not None:
        return None
    live = engine.fleets.observe(infra)
    try:
        decision = decide_rollback(live, engine.journal.history(limit=200), to_version)
    except NothingToRollBackTo:
        return None  # said under the lock, as before
    return _nothing_to_do(engine, live, decision) if decision.noop else None


def _nothing_to_do(engine: Engine, live: LiveState, decision: RollbackDecision) -> OperatorResult:
    """Said, never journalled: history keeps showing what moved traffic."""
    current = live.live_fleet
    engine.report(f"rollback: {decision.reason}")
    record = engine.records.new(
        Kind.ROLLBACK,
        current.version if current else "-",
        fleet_stack=current.stack_name if current else "",
        phase=Phase.DONE,
    ).finished(Outcome.NOOP, engine.stamp(), decision.reason)
    return OperatorResult(record, False, decision.reason)


def _switch_to(
    engine: Engine, infra: Infra, live: LiveState, target: Fleet, force: bool
) -> OperatorResult:
    current = live.live_fleet
    health = assess_target_health(engine.elb.target_health(target.target_group_arn), target.desired)
    if not health.passed:
        if not force:
            raise BadInput(
                f"{target.version} ({target.stack_name}) is not healthy: {health.detail}. "
                "Traffic stays where it is; nothing was changed. Release a version, or "
                "`deployer rollback --force` to switch anyway."
            )
        engine.report(f"rollback: {target.version} is not healthy ({health.detail}); --force")
    record = engine.records.new(
        Kind.ROLLBACK,
        target.version,
        digest=target.digest,
        images={engine.runtime.aws.region: target.image_id},
        fleet_stack=target.stack_name,
        target_group_arn=target.target_group_arn,
        prior_weights=dict(live.weights),
        previous_fleet=current.stack_name if current else "",
        warm_switch=True,
    ).at(Phase.SWITCH)
    return _switched(engine, infra, live, target, record)


def _switched(
    engine: Engine,
    infra: Infra,
    live: LiveState,
    target: Fleet,
    record: ReleaseRecord,
    journalled: bool = False,
) -> OperatorResult:
    done = switch_to_warm(engine, infra, live, target, record, journalled)
    message = f"traffic is on {target.version} ({target.stack_name}), one listener change"
    engine.report(f"rollback: {message}")
    return OperatorResult(done, True, message, engine.phase_seconds["switch"])


def _rerelease(engine: Engine, infra: Infra, source: ReleaseRecord) -> OperatorResult:
    region = engine.runtime.aws.region
    image = source.images.get(region, "")
    if not image or not engine.ec2.image_exists(image):
        raise NothingToRollBackTo(
            f"the fleet of {source.version} was retired and its image {image or '(none)'} "
            f"is gone too; release it with `deployer release {source.version}`"
        )
    engine.report(
        f"rollback: the {source.version} fleet was retired; re-releasing it from its recorded "
        f"image {image} (no bake)"
    )
    wanted = Identity(source.version, source.digest, source.bake_key, engine.settings_digest())
    result = release_from(
        engine,
        infra,
        wanted,
        image_id=image,
        kind=Kind.ROLLBACK,
        note=f"re-released from {image}; its fleet had been retired",
    )
    return OperatorResult(result.record, True, f"re-released {source.version} from {image}")


def abort(engine: Engine, wait_s: float | None) -> OperatorResult:
    """Roll the in-flight release back on purpose; with none in flight, change nothing (and
    take no lock: its token would rise for nothing).
    """
    engine.check_reachable()
    if engine.records.inflight() is None:
        message = "no release is in flight; nothing to abort"
        engine.report(f"abort: {message}")
        return OperatorResult(None, False, message)
    take_over_from_aws(engine, "aborted by `deployer abort`")
    told = _abort_a_local_pause(engine)
    if told is not None:
        return told
    with engine.records.locked(wait_s):
        inflight = engine.records.inflight()
        infra = engine.stacks.existing()
        if inflight is None or infra is None:
            message = "no release is in flight; nothing to abort"
            engine.report(f"abort: {message}")
            return OperatorResult(None, False, message)
        record = abandon(engine, inflight, infra, "aborted by `deployer abort`")
        return OperatorResult(
            record, True, f"aborted release {record.release_id} of {record.version}"
        )
