"""Rollback, abort, gc, status, history, plan and unlock: the use cases besides release."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from deployer.aws.session import unreachable_as_error
from deployer.core.decide import (
    WARM_STACK_STATES,
    NothingToRollBackTo,
    choose_rollback_target,
    plan_release,
)
from deployer.core.model import Fleet, Kind, LiveState, Outcome, Phase, ReleaseRecord, TargetState
from deployer.core.names import Version
from deployer.core.rollout import plan_steps
from deployer.engine import Engine
from deployer.errors import BadInput, NeedsHuman
from deployer.infra import Infra
from deployer.locking import describe_holder, unlock
from deployer.release import Release, ReleaseResult, abandon, package_artifact


def _check_reachable(engine: Engine) -> None:
    with unreachable_as_error(f"reach AWS ({engine.runtime.description})"):
        engine.account = engine.runtime.aws.account_id()


def _infra_or_nothing(engine: Engine) -> Infra:
    infra = engine.existing_infra()
    if infra is None:
        raise NothingToRollBackTo("nothing has been released here yet")
    return infra


def rollback(engine: Engine, to_version: str | None, wait_s: float | None) -> ReleaseRecord:
    """Traffic to the previous warm fleet in one listener change, or, when that fleet was
    retired, a re-release from the image the journal recorded for it (no bake).
    """
    if to_version is not None:
        Version.parse(to_version)
    _check_reachable(engine)
    with engine.locked(wait_s):
        infra = _infra_or_nothing(engine)
        inflight = engine.inflight()
        if inflight is not None:
            engine.report(
                f"rollback: release {inflight.release_id} of {inflight.version} is in "
                "flight; rolling it back is the rollback"
            )
            return abandon(engine, inflight, infra, "rolled back by `deployer rollback`")
        live = engine.observe(infra)
        history = engine.journal.history(limit=200)
        try:
            target = choose_rollback_target(live, history, to_version)
        except NothingToRollBackTo:
            return _rerelease(engine, infra, live, history, to_version).record
        return _switch_to(engine, infra, live, target)


def _switch_to(engine: Engine, infra: Infra, live: LiveState, target: Fleet) -> ReleaseRecord:
    current = live.live_fleet
    healthy = [
        t
        for t in engine.elb.target_health(target.target_group_arn)
        if t.state is TargetState.HEALTHY
    ]
    if not healthy:
        raise NeedsHuman(
            f"{target.version} ({target.stack_name}) has no healthy targets; "
            "traffic stays where it is. Release a version instead."
        )
    record = engine.record(
        engine.new_record(
            Kind.ROLLBACK,
            target.version,
            digest=target.digest,
            images={engine.runtime.aws.region: target.image_id},
            fleet_stack=target.stack_name,
            target_group_arn=target.target_group_arn,
            prior_weights=dict(live.weights),
            previous_fleet=current.stack_name if current else "",
        ).at(Phase.SWITCH)
    )
    weights = {arn: 0 for arn in live.weights}
    weights[target.target_group_arn] = 100
    started = engine.clock()
    engine.switch_or_escalate(infra, weights, record, "the rollback's listener change")
    engine.phase_seconds["switch"] = round(engine.clock() - started, 3)
    engine.report(
        f"rollback: traffic is on {target.version} ({target.stack_name}), one listener change"
    )
    return engine.record(
        record.at(Phase.DONE, weights=weights)
        .done()
        .finished(
            Outcome.SUCCEEDED, engine.stamp(), f"from {current.version if current else 'nothing'}"
        )
    )


def _rerelease(
    engine: Engine,
    infra: Infra,
    live: LiveState,
    history: list[ReleaseRecord],
    to_version: str | None,
) -> ReleaseResult:
    region = engine.runtime.aws.region
    current = live.live_fleet
    released = [r for r in history if r.outcome is Outcome.SUCCEEDED and r.images.get(region)]
    if to_version is None:
        later = [r.fleet_stack for r in released]
        start = (
            later.index(current.stack_name) + 1 if current and current.stack_name in later else 0
        )
        candidates = [r for r in released[start:] if not current or r.version != current.version]
    else:
        candidates = [r for r in released if r.version == to_version]
    for record in candidates:
        image = record.images[region]
        if engine.ec2.image_exists(image):
            engine.report(
                f"rollback: the {record.version} fleet was retired; re-releasing it "
                f"from its recorded image {image} (no bake)"
            )
            return Release(engine).release(
                Version.parse(record.version),
                record.digest,
                infra,
                image_id=image,
                kind=Kind.ROLLBACK,
                note=f"re-released from {image}; its fleet had been retired",
            )
    wanted = to_version or "the previous version"
    raise NothingToRollBackTo(
        f"no warm fleet and no recorded image for {wanted}; "
        "release it with `deployer release VERSION`"
    )


def abort(engine: Engine, wait_s: float | None) -> ReleaseRecord:
    """Roll the in-flight release back on purpose."""
    _check_reachable(engine)
    with engine.locked(wait_s):
        inflight = engine.inflight()
        infra = engine.existing_infra()
        if inflight is None or infra is None:
            raise BadInput("no release is in flight; nothing was changed")
        return abandon(engine, inflight, infra, "aborted by `deployer abort`")


def _retired_since(fleet: Fleet, history: list[ReleaseRecord]) -> str:
    """When `fleet` stopped taking traffic (or failed), from the journal; '' if unknown."""
    times = [
        r.finished_at
        for r in history
        if r.finished_at
        and (
            (r.previous_fleet == fleet.stack_name and r.outcome is Outcome.SUCCEEDED)
            or (r.fleet_stack == fleet.stack_name and r.outcome is Outcome.FAILED)
        )
    ]
    return max(times) if times else ""


def gc(engine: Engine, wait_s: float | None) -> list[str]:
    """Retire fleets that left service more than rollback_window ago. Returns their stacks."""
    _check_reachable(engine)
    with engine.locked(wait_s):
        infra = engine.existing_infra()
        if infra is None:
            return []
        live = engine.observe(infra)
        current = live.live_fleet
        history = engine.journal.history(limit=200)
        now = engine.now()
        doomed = []
        for fleet in live.fleets:
            if current is not None and fleet.stack_name == current.stack_name:
                continue
            since = _retired_since(fleet, history)
            age = (
                (now - datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds()
                if since
                else float("inf")
            )
            if age >= engine.spec.rollback_window:
                doomed.append(fleet)
        if not doomed:
            return []
        gone = {f.target_group_arn for f in doomed}
        weights = {arn: w for arn, w in live.weights.items() if arn not in gone}
        if weights != dict(live.weights):
            engine.set_weights(infra.listener_arn, weights)
        problems = engine.retire(engine.observe(infra), doomed)
        if problems:
            raise NeedsHuman(f"gc: {problems}")
        return [f.stack_name for f in doomed]


def status(engine: Engine) -> dict[str, Any]:
    infra = engine.existing_infra()
    history = engine.journal.history(limit=20)
    holder = engine.lock.lock.current() if history else None
    inflight = next((r for r in history if r.outcome is Outcome.IN_PROGRESS), None)
    last = history[0] if history else None
    result: dict[str, Any] = {
        "app": engine.names.app,
        "environment": engine.names.environment,
        "target": engine.runtime.description,
        "live_version": None,
        "url": None,
        "fleets": [],
        "last": record_json(last) if last else None,
        "in_flight": record_json(inflight) if inflight else None,
        "lock": describe_holder(holder, engine.lock.clock()) if holder else None,
        "advice": _advice(last, inflight),
    }
    if infra is None:
        return result
    live = engine.observe(infra)
    current = live.live_fleet
    result["live_version"] = current.version if current else None
    result["url"] = engine.runtime.url_for(infra.load_balancer_dns, infra.listener_port)
    for fleet in sorted(live.fleets, key=lambda f: -f.weight):
        health = engine.elb.target_health(fleet.target_group_arn) if fleet.target_group_arn else []
        is_live = current is not None and fleet.stack_name == current.stack_name
        warm = fleet.stack_status in WARM_STACK_STATES and fleet.desired > 0
        result["fleets"].append(
            {
                "version": fleet.version,
                "stack": fleet.stack_name,
                "weight": fleet.weight,
                "desired": fleet.desired,
                "image": fleet.image_id,
                "status": fleet.stack_status,
                "healthy": sum(1 for t in health if t.state is TargetState.HEALTHY),
                "role": "live" if is_live else ("warm" if warm else "cold"),
            }
        )
    return result


def _advice(last: ReleaseRecord | None, inflight: ReleaseRecord | None) -> str:
    if inflight is not None:
        return (
            f"release {inflight.release_id} of {inflight.version} stopped at "
            f"{inflight.phase.value}: rerun `deployer release {inflight.version}` to finish "
            "it, or `deployer abort` to roll it back"
        )
    if last is not None and last.reason.startswith("needs a human"):
        return f"{last.reason}; check the listener, then `deployer rollback` or `deployer abort`"
    return ""


def history(engine: Engine, limit: int) -> list[dict[str, Any]]:
    return [record_json(r) for r in engine.journal.history(limit)]


def plan(engine: Engine, version_text: str) -> dict[str, Any]:
    """What `deployer release VERSION` would do now. Reads only; changes nothing."""
    version = Version.parse(version_text)
    artifact = package_artifact(engine)
    _check_reachable(engine)
    infra = engine.existing_infra()
    live = engine.observe(infra) if infra else LiveState()
    decided = plan_release(
        live,
        version.text,
        artifact.digest,
        engine.names.fleet_stack(version, artifact.digest),
        engine.spec.capacity.desired,
    )
    image = engine.ec2.find_image(
        {
            "deployer:app": engine.names.app,
            "deployer:version": version.text,
            "deployer:digest": artifact.digest,
        }
    )
    strategy = engine.spec.strategy
    steps = plan_steps(
        strategy.kind, strategy.steps, strategy.bake_seconds, has_blue=decided.blue is not None
    )
    retire = [
        f.stack_name
        for f in live.fleets
        if f.stack_name != decided.green_stack
        and (decided.blue is None or f.stack_name != decided.blue.stack_name)
    ]
    return {
        "version": version.text,
        "digest": artifact.digest,
        "noop": decided.noop,
        "reason": decided.reason,
        "creates_infra": infra is None,
        "image": image["ImageId"] if image else None,
        "bake": image is None and not decided.noop,
        "fleet_stack": decided.green_stack,
        "capacity": decided.capacity,
        "blue": decided.blue.version if decided.blue else None,
        "steps": []
        if decided.noop
        else [
            {
                "name": s.name,
                "green_weight": s.green_weight,
                "blue_weight": s.blue_weight,
                "hold_seconds": s.hold_seconds,
            }
            for s in steps
        ],
        "retire": [] if decided.noop else retire,
        "in_flight": record_json(inflight) if (inflight := engine.inflight()) else None,
    }


def unlock_scope(engine: Engine, lock_id: str) -> str:
    _check_reachable(engine)
    holder = unlock(engine.lock.lock, lock_id)
    return f"released {lock_id}, held by {holder.holder} since {holder.acquired_at}"


def record_json(record: ReleaseRecord) -> dict[str, Any]:
    return {
        "release_id": record.release_id,
        "kind": record.kind.value,
        "version": record.version,
        "outcome": record.outcome.value,
        "phase": record.phase.value,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "actor": str(record.actor),
        "digest": record.digest,
        "images": dict(record.images),
        "fleet_stack": record.fleet_stack,
        "previous_fleet": record.previous_fleet,
        "weights": dict(record.weights),
        "step": record.step,
        "reason": record.reason,
    }
