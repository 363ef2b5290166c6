"""The steps of a release. Each takes the run's inputs, the journalled record and the live
state read just before it, acts through the adapters, and returns the next record. A step
keeps nothing in memory for the next one: what it learned is in the record it returns.

    bake -> fleet -> gate -> traffic step 1 .. n -> watch -> retire   (core.steps)

No step writes the journal: what a rerun must find goes through `run.checkpoint`, the loop's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from botocore.exceptions import BotoCoreError, ClientError

from deployer.bake.artifact import Artifact
from deployer.bake.baker import BakeRequest
from deployer.core.decide import failed_fleets, fleets_to_retire
from deployer.core.model import Fleet, LiveState, Phase, ReleaseRecord
from deployer.core.names import Version
from deployer.core.rollout import restore_weights, step_weights
from deployer.core.steps import PlannedStep
from deployer.errors import GateFailed, ReleaseFailed
from deployer.infra.stacks import Infra
from deployer.release.engine import Engine
from deployer.release.fleets import ensure_fleet, fleet_name
from deployer.release.gating import Gated, hold, verify, wait_until_ready


@dataclass(frozen=True)
class Run:
    """The inputs of one run of a release: the same for every step, never a step's result."""

    engine: Engine
    infra: Infra
    version: Version
    artifact: Artifact | None  # None: the image is in the record (a re-release)
    rebake: bool = False
    # The loop's: journal a step's progress before it acts on it (the loop is the only
    # writer of the journal; a step only hands it what a rerun must find).
    checkpoint: Callable[[ReleaseRecord], ReleaseRecord] = lambda record: record
    # deployer's own requests through the test listener in this run, (epoch seconds, status):
    # every step's gates see them all, since a step's first minute holds the gate's last ones.
    sent: list[tuple[float, int]] = field(default_factory=list)


StepFunction = Callable[[Run, ReleaseRecord, LiveState, PlannedStep], ReleaseRecord]


def bake_request(
    engine: Engine,
    version: Version,
    artifact: Artifact,
    infra: Infra,
    run_id: str,
    rebake: bool = False,
) -> BakeRequest:
    """What to bake for `version`, from the config; `run_id` names the builder's run."""
    bake = engine.spec.bake
    return BakeRequest(
        names=engine.names,
        version=version,
        artifact=artifact,
        bucket=engine.artifact_bucket,
        playbook=engine.loaded.resolve(bake.playbook),
        base_ami=bake.base_ami,
        instance_type=bake.instance_type,
        subnet_id=infra.builder_subnet_id,
        vpc_id=infra.vpc_id,
        app_port=engine.spec.instance.port,
        run_id=run_id,
        regions=engine.runtime.image_regions,
        variables=dict(bake.variables),
        max_builder_minutes=bake.max_builder_minutes,
        keep_artifacts_days=bake.keep_artifacts_days,
        source_cidr=engine.runtime.source_cidr,
        rebake=rebake,
    )


def _green(run: Run, record: ReleaseRecord, live: LiveState) -> Fleet:
    green = live.fleet_by_stack(record.fleet_stack)
    if green is None or not green.target_group_arn:
        raise ReleaseFailed(f"the fleet stack {record.fleet_stack} is gone; traffic was not moved")
    return green


def _blue(record: ReleaseRecord, live: LiveState) -> Fleet | None:
    return live.fleet_by_stack(record.previous_fleet) if record.previous_fleet else None


def gated_of(run: Run, record: ReleaseRecord, live: LiveState) -> Gated:
    green = _green(run, record, live)
    return Gated(run.engine, run.infra, green, record.capacity, _blue(record, live), run.sent)


def _production_url(run: Run) -> str:
    infra = run.infra
    return run.engine.runtime.url_for(infra.load_balancer_dns, infra.listener_port)


def bake(run: Run, record: ReleaseRecord, live: LiveState, _: PlannedStep) -> ReleaseRecord:
    """The image: given (a re-release), made by an earlier run, reused, or baked now."""
    e, region = run.engine, run.engine.runtime.aws.region
    if record.images.get(region):
        return record
    if run.artifact is None:
        raise ReleaseFailed(f"no image is recorded for {record.version} in {region}")
    baked = e.baker.bake_or_reuse(
        bake_request(e, run.version, run.artifact, run.infra, record.release_id, run.rebake)
    )
    return replace(record, images=dict(baked.images), image_reused=baked.reused)


def fleet(run: Run, record: ReleaseRecord, live: LiveState, _: PlannedStep) -> ReleaseRecord:
    delete_failed_fleets(run.engine, live, {record.fleet_stack, record.previous_fleet})
    name = fleet_name(run.engine, record)
    if record.fleet_stack != name:  # journalled before the stack exists: a rerun finds it
        record = run.checkpoint(replace(record, fleet_stack=name))
    green = ensure_fleet(run.engine, run.infra, record)
    return replace(record, target_group_arn=green.target_group_arn)


def gate(run: Run, record: ReleaseRecord, live: LiveState, _: PlannedStep) -> ReleaseRecord:
    """Production traffic that a killed run had moved to green goes back first; then green
    must pass every gate on the test listener.
    """
    gated = gated_of(run, record, live)
    if live.weights.get(gated.green.target_group_arn, 0) > 0:
        run.engine.report("resume: traffic had moved to the new fleet; moving it back first")
        restore(run.engine, run.infra, record)
    wait_until_ready(gated)
    hooks = run.engine.spec.verify.before_traffic
    if hooks:
        previous = gated.blue.version if gated.blue else ""
        verify(gated, hooks, "before traffic", _production_url(run), previous)
    return record


def traffic(run: Run, record: ReleaseRecord, live: LiveState, step: PlannedStep) -> ReleaseRecord:
    """One listener change, journalled before it is made; then the step's hold."""
    assert step.traffic is not None
    e, gated = run.engine, gated_of(run, record, live)
    blue = live.fleet_by_stack(record.previous_fleet) if record.previous_fleet else None
    weights = step_weights(
        step.traffic, gated.green.target_group_arn, blue.target_group_arn if blue else None
    )
    record = run.checkpoint(replace(record, weights=weights))
    e.traffic.set_weights(run.infra.listener_arn, weights)
    e.report(
        f"traffic: {step.name} ({record.version} {step.traffic.green_weight}"
        + (f", {blue.version} {step.traffic.blue_weight})" if blue else ")")
    )
    total = step.traffic.green_weight + step.traffic.blue_weight
    hold(gated, step.traffic.hold_seconds, step.name, step.traffic.green_weight / total)
    hooks = e.spec.verify.after_step
    if hooks:
        verify(gated, hooks, step.name, _production_url(run), blue.version if blue else "")
    return record


def watch(run: Run, record: ReleaseRecord, live: LiveState, step: PlannedStep) -> ReleaseRecord:
    """After all traffic moved, blue still warm at weight 0: keep every gate watched."""
    run.engine.report(
        f"watch: every gate, for {step.hold_seconds:g}s, with the previous fleet warm"
    )
    hold(gated_of(run, record, live), step.hold_seconds, step.name, share=1.0)
    return record


def pause(run: Run, record: ReleaseRecord, live: LiveState, step: PlannedStep) -> ReleaseRecord:
    """The step before holds its traffic until `deployer promote` (the release goes on) or
    `deployer abort`; at the pause's timeout the release rolls back. Gates are not
    evaluated while it waits, on either executor: the step before it held until its
    verdict, and the step after it is gated again.
    """
    e = run.engine
    e.report(
        f"pause: {record.version} holds its traffic after step {step.after + 1}; `deployer "
        f"promote` goes on, `deployer abort` rolls back (and so does a wait over "
        f"{step.hold_seconds:g}s)"
    )
    waited_from = e.clock()
    while not e.journal.has_signal(record.release_id, promote_signal(step.after)):
        if e.journal.has_signal(record.release_id, ABORT_SIGNAL):
            raise ReleaseFailed("aborted by `deployer abort`")
        left = step.hold_seconds - (e.clock() - waited_from)
        if left <= 0:
            raise GateFailed("pause", f"not promoted within {step.hold_seconds:g}s", step.name)
        e.sleep(min(PAUSE_LOOK_S, left))
    e.report(f"pause: promoted; {record.version} goes on")
    return record


PAUSE_LOOK_S = 1.0
ABORT_SIGNAL = "abort"


def promote_signal(after: int) -> str:
    return f"promote-{after}"


def retire(run: Run, record: ReleaseRecord, live: LiveState, _: PlannedStep) -> ReleaseRecord:
    """Green takes all traffic; blue stays warm at weight 0 for the rollback window; every
    other fleet is deleted. What could not be cleaned up is kept in the record.
    """
    e, green = run.engine, _green(run, record, live)
    blue = live.fleet_by_stack(record.previous_fleet) if record.previous_fleet else None
    keep_blue = blue is not None and e.spec.rollback_window > 0
    final = {green.target_group_arn: 100}
    if keep_blue and blue is not None:
        final[blue.target_group_arn] = 0
    if live.weights != final:
        e.traffic.set_weights(run.infra.listener_arn, final)
    problems = reset_test_listener(e, run.infra)
    keep = [green.stack_name] + ([blue.stack_name] if keep_blue and blue else [])
    after = e.fleets.observe(run.infra)
    problems += e.fleets.retire(after, fleets_to_retire(after, keep))
    if keep_blue and blue is not None:
        e.report(f"release: {blue.version} stays warm for {e.spec.rollback_window}s")
    return replace(record, weights=final, cleanup=problems.removeprefix("; "))


def delete_failed_fleets(engine: Engine, live: LiveState, keep: set[str]) -> None:
    """Fleets earlier failed releases put aside go as this release starts its own (not
    waited for: CloudFormation deletes them while this release goes on), so that failures in
    a row never pile up cold fleets.
    """
    for doomed in failed_fleets(live, engine.journal.history(limit=50), keep - {""}):
        engine.report(f"fleet: deleting {doomed.stack_name}, put aside by a failed release")
        try:
            engine.fleets.delete(doomed.stack_name, wait=False)
        except (ClientError, BotoCoreError) as exc:  # the next release or gc tries again
            engine.report(f"fleet: deleting {doomed.stack_name} failed ({exc}); gc retries it")


STEPS: dict[Phase, StepFunction] = {
    Phase.BAKE: bake,
    Phase.FLEET: fleet,
    Phase.GATE: gate,
    Phase.STEP: traffic,
    Phase.PAUSE: pause,
    Phase.WATCH: watch,
    Phase.RETIRE: retire,
}


# ---- failures ----------------------------------------------------------------------------------


def reset_test_listener(engine: Engine, infra: Infra) -> str:
    try:
        engine.traffic.set_weights(infra.test_listener_arn, {})
    except (ClientError, BotoCoreError) as exc:  # best effort; reported to the caller
        return f"; resetting the test listener failed: {exc}"
    return ""


def restored_weights(engine: Engine, infra: Infra, record: ReleaseRecord) -> dict[str, int]:
    """The production listener as before the release, with the new fleet gone from it."""
    existing = {f.target_group_arn for f in engine.fleets.observe(infra).fleets}
    weights = {
        arn: w
        for arn, w in restore_weights(record.prior_weights, record.target_group_arn).items()
        if arn in existing
    }
    return weights


def restore(engine: Engine, infra: Infra, record: ReleaseRecord) -> None:
    """Put the production listener back as it was before the release (one rule change)."""
    weights = restored_weights(engine, infra, record)
    if engine.elb.listener_weights(infra.listener_arn) != weights:
        engine.traffic.set_weights(infra.listener_arn, weights)
