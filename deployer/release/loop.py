"""The release use case: preflight -> lock -> infra -> the table of steps (core.steps), run by
one loop that journals before and after each step.

A rerun after a kill is the same loop started at the journalled step; a rerun of another
version rolls the interrupted release back first. There is no second code path for resume.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from deployer.aws.session import AWS_ERRORS, is_transient, unreachable_as_error
from deployer.bake.artifact import Artifact
from deployer.core.decide import Identity, ReleasePlan, is_listener_rollback, plan_release
from deployer.core.model import Fleet, Kind, LiveState, Outcome, Phase, ReleaseRecord
from deployer.core.names import Version
from deployer.core.steps import PlannedStep, release_table, remaining, table_digest
from deployer.errors import DeployerError, NeedsHuman, PollTimeout, ReleaseFailed
from deployer.infra.stacks import Infra, Templates, fingerprint
from deployer.release.attached import attach, followed
from deployer.release.engine import Engine
from deployer.release.preflight import preflight
from deployer.release.result import ReleaseResult
from deployer.release.server_side import SERVER_PHASES, hand_over, runs_server_side
from deployer.release.steps import STEPS, Run, gated_of, reset_test_listener, restored_weights


class Release:
    def __init__(self, engine: Engine) -> None:
        self.e = engine

    def run(
        self, version_text: str, wait_s: float | None = None, rebake: bool = False
    ) -> ReleaseResult:
        version = Version.parse(version_text)
        with unreachable_as_error(f"reach AWS ({self.e.runtime.description})"):
            running = attach(self.e, version)
        if running is not None:
            return running
        if wait_s is None:  # before the preflight, so that the losers of a race hear it now
            with unreachable_as_error(f"reach AWS ({self.e.runtime.description})"):
                self.e.lock.refuse_if_held(self.e.stamp())
        with self.e.timed("preflight"):
            artifact = preflight(self.e)
        if not rebake:
            done = nothing_to_do(self.e, version, artifact)
            if done is not None:  # read only: no lock taken, nothing journalled
                return done
        with self.e.records.locked(wait_s):
            with self.e.timed("infra"):
                infra = self.e.stacks.ensure()
            wanted = identity(self.e, version, artifact)
            return release_from(self.e, infra, wanted, artifact=artifact, rebake=rebake)


def identity(engine: Engine, version: Version, artifact: Artifact) -> Identity:
    """What the fleet of this release will run: version, artifact, image inputs, settings."""
    from deployer.release.steps import bake_request

    request = bake_request(engine, version, artifact, Infra.nowhere(), "identity")
    return Identity(
        version.text,
        artifact.digest,
        engine.baker.inputs(request).key,
        engine.settings_digest(),
    )


def release_from(
    engine: Engine,
    infra: Infra,
    wanted: Identity,
    artifact: Artifact | None = None,
    image_id: str = "",
    kind: Kind = Kind.RELEASE,
    note: str = "",
    rebake: bool = False,
) -> ReleaseResult:
    """With the lock held: release `wanted`, baked from `artifact` or from `image_id`."""
    e = engine
    version = Version.parse(wanted.version)
    url = e.runtime.url_for(infra.load_balancer_dns, infra.listener_port)
    record = resume_or_supersede(e, infra, wanted)
    if record is None:
        live = e.fleets.observe(infra)
        plan = plan_release(live, wanted, e.spec.capacity.desired, force=rebake)
        if plan.noop:
            return _noop(e, plan, wanted, kind, url)
        e.report(f"release: {plan.reason}" + (f" ({note})" if note else ""))
        record = e.records.write(
            e.records.new(
                kind,
                version.text,
                digest=wanted.digest,
                bake_key=wanted.bake_key,
                settings=wanted.settings,
                capacity=plan.capacity,
                images={e.runtime.aws.region: image_id} if image_id else {},
                image_reused=bool(image_id),
                prior_weights=dict(live.weights),
                previous_fleet=plan.blue.stack_name if plan.blue else "",
                table=table_digest(table_of(e, has_blue=plan.blue is not None)),
                reason=note,
            ).at(Phase.BAKE)
        )
    record = run_steps(Run(e, infra, version, artifact, rebake, e.records.write), record)
    if record.execution:  # the rest runs in AWS: follow it, or leave it running
        return followed(e, record, infra, url)
    done = e.records.write(
        record.at(Phase.DONE).finished(Outcome.SUCCEEDED, e.stamp(), record.reason)
    )
    if done.cleanup:
        raise NeedsHuman(f"{done.version} is live, but cleanup failed: {done.cleanup}")
    e.report(f"release: {done.version} is live")
    return ReleaseResult(done, url, done.image_reused, e.phase_seconds)


def _noop(e: Engine, plan: ReleasePlan, wanted: Identity, kind: Kind, url: str) -> ReleaseResult:
    """Nothing to do is said, never journalled: `history` and `status` keep showing the
    release that made the live fleet.
    """
    e.report(f"release: {plan.reason}; nothing to do")
    fleet = plan.reuse_fleet
    record = e.records.new(
        kind,
        wanted.version,
        digest=wanted.digest,
        bake_key=wanted.bake_key,
        settings=wanted.settings,
        fleet_stack=fleet.stack_name if fleet else "",
        images={e.runtime.aws.region: fleet.image_id if fleet else ""},
        phase=Phase.DONE,
    ).finished(Outcome.NOOP, e.stamp(), plan.reason)
    return ReleaseResult(record, url, True, e.phase_seconds)


def nothing_to_do(engine: Engine, version: Version, artifact: Artifact) -> ReleaseResult | None:
    """A release of what is live, with the infra as deployer.yaml says and nothing in flight:
    told without the lock and without a journal write. Anything else: None (the lock and the
    loop decide again, from what they read under the lock).
    """
    infra = engine.stacks.existing()
    if infra is None or engine.records.inflight() is not None or not infra_as_configured(engine):
        return None
    wanted = identity(engine, version, artifact)
    plan = plan_release(engine.fleets.observe(infra), wanted, engine.spec.capacity.desired)
    if not plan.noop:
        return None
    url = engine.runtime.url_for(infra.load_balancer_dns, infra.listener_port)
    return _noop(engine, plan, wanted, Kind.RELEASE, url)


def infra_as_configured(engine: Engine) -> bool:
    """The network and service stacks are at rest with the templates and parameters
    deployer.yaml gives them (their fingerprint tag) and the termination protection it asks.
    """
    templates = Templates.load(engine.templates_dir)
    if engine.spec.network.own:
        outputs: Mapping[str, str] = engine.spec.network.own_outputs()
    else:
        network = engine.cfn.describe(engine.names.network_stack)
        if network is None:
            return False
        outputs = network.outputs
    for spec in engine.stacks.specs(outputs, templates):
        stack = engine.cfn.describe(spec.name)
        if (
            stack is None
            or stack.status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
            or stack.tags.get("deployer:fingerprint") != fingerprint(spec.body, spec.parameters)
            or stack.termination_protected != engine.spec.protected
        ):
            return False
    return True


def run_steps(run: Run, record: ReleaseRecord) -> ReleaseRecord:
    """The loop: for each remaining step, journal that it starts, observe, act, journal that
    it is done. Any failure puts traffic back and journals the failure, then says why.
    """
    e = run.engine
    table = table_of(e, has_blue=bool(record.previous_fleet))
    steps = remaining(table, record)
    if record.phase is not Phase.BAKE and steps:
        e.report(f"resume: continuing release {record.release_id} at {steps[0].name}")
    journalled = [record]  # the newest record written: a failure is journalled from it
    write = run.checkpoint

    def checkpoint(changed: ReleaseRecord) -> ReleaseRecord:
        journalled[0] = write(changed)
        return journalled[0]

    run = replace(run, checkpoint=checkpoint)
    try:
        for planned in steps:
            if planned.phase in SERVER_PHASES and e.spec.executor == "stepfunctions":
                if runs_server_side(e, record):
                    gated = gated_of(run, record, e.fleets.observe(run.infra))
                    return hand_over(run, record, gated, table)
                if planned.phase is Phase.STEP:  # said once
                    e.report("release: a first release, with no users yet, runs its step here")
            record = checkpoint(record.at(planned.phase, step=planned.index))
            with e.timed(planned.phase.value, planned.name):
                record = STEPS[planned.phase](run, record, e.fleets.observe(run.infra), planned)
            record = checkpoint(record.done())
    except (Exception, KeyboardInterrupt) as exc:
        # The newest record journalled (a step checkpoints the weights it sets before it
        # sets them): the failure is journalled on it, never on an older one.
        raise fail(run, journalled[0], exc) from exc
    return record


def table_of(engine: Engine, has_blue: bool) -> list[PlannedStep]:
    """The release's table of steps, from deployer.yaml's strategy."""
    s = engine.spec.strategy
    pauses = (s.pauses_after, s.pause_timeout)
    return release_table(s.kind, s.weights, s.bake_seconds, s.watch_seconds, has_blue, *pauses)


def fail(run: Run, record: ReleaseRecord, exc: BaseException) -> BaseException:
    """Put traffic back, journal the failure; the error to raise says what happened."""
    e = run.engine
    seen = e.clock()
    interrupted = isinstance(exc, KeyboardInterrupt)
    reason = "interrupted" if interrupted else str(exc)
    e.report(f"release failed: {reason}")
    try:  # traffic and the journal first; an interrupted bake's last cleanup after them
        put_back(e, run.infra, record, reason, wait=not interrupted)
    finally:
        e.baker.finish_deferred()
    if isinstance(exc, ReleaseFailed) and record.fleet_stack:
        explain(e, record, exc, seen)  # traffic is back first; then the app's own last words
    if is_transient(exc) or isinstance(exc, PollTimeout):
        return NeedsHuman(
            f"AWS stopped answering during {record.phase.value}: {exc}. Traffic is where it "
            f"was; rerun `deployer release {record.version}` once AWS answers."
        )
    if isinstance(exc, KeyboardInterrupt | DeployerError):
        return exc
    return ReleaseFailed(f"release failed: {exc}; traffic was not moved")


def explain(engine: Engine, record: ReleaseRecord, exc: ReleaseFailed, seen: float) -> None:
    """Add green's last log lines to the failure: in its message (so the outcome event and the
    step summary carry them) and, all of them, in --output json. They are read once the lines
    logged before the failure (seen at `seen`) have been shipped.
    """
    from deployer.aws.logs import Logs
    from deployer.release.green_logs import for_failure, shipped_after

    engine.sleep(max(0.0, shipped_after(seen, engine.runtime.aws_seconds) - engine.clock()))
    found = for_failure(
        Logs(engine.runtime.aws), engine.names.log_group, record.version, record.started_at
    )
    if found is None:
        return
    exc.message = f"{exc.message}. {found.sentence()}"
    exc.args = (exc.message,)
    exc.details = {**exc.details, "last_lines": found.to_json()}


def resume_or_supersede(engine: Engine, infra: Infra, wanted: Identity) -> ReleaseRecord | None:
    """A release left in progress by a killed run: continue it if it is this one (the loop
    starts at its journalled step), else roll it back.
    """
    inflight = engine.records.inflight()
    if inflight is None:
        return None
    same = not is_listener_rollback(inflight) and (
        inflight.version,
        inflight.digest,
        inflight.bake_key,
        inflight.settings,
    ) == (wanted.version, wanted.digest, wanted.bake_key, wanted.settings)
    table = table_digest(table_of(engine, has_blue=bool(inflight.previous_fleet)))
    if same and inflight.table not in ("", table):
        engine.report(
            f"resume: release {inflight.release_id} of {inflight.version} was started with "
            "another strategy (deployer.yaml's strategy changed since); rolling it back and "
            "starting again with today's"
        )
        abandon(engine, inflight, infra, "superseded: its strategy changed in deployer.yaml")
        return None
    if not same:
        abandon(engine, inflight, infra, f"superseded by a release of {wanted.version}")
        return None
    version = wanted.version
    state = "completed" if inflight.phase_done else "started"
    engine.report(
        f"resume: release {inflight.release_id} of {version} stopped at "
        f"{inflight.phase.value} ({state}); continuing from the live state"
    )
    return inflight


def abandon(engine: Engine, record: ReleaseRecord, infra: Infra, reason: str) -> ReleaseRecord:
    """Roll an in-flight release back: traffic as before it, its fleet put aside, journalled."""
    engine.report(f"abort: rolling back release {record.release_id} of {record.version} ({reason})")
    weights = restored_weights(engine, infra, record)
    if engine.elb.listener_weights(infra.listener_arn) != weights:
        switch_or_escalate(engine, infra, weights, record, "moving traffic back")
    done = put_back(engine, infra, record, reason)
    return done


# ---- compensation: traffic back, the new fleet put aside, journalled ----------------------


def switch_or_escalate(
    engine: Engine, infra: Infra, weights: dict[str, int], record: ReleaseRecord, doing: str
) -> None:
    """A listener change that must happen; if it cannot, a human must step in (exit 4)."""
    try:
        engine.traffic.set_weights(infra.listener_arn, weights)
    except AWS_ERRORS as exc:
        engine.records.write(
            record.finished(Outcome.FAILED, engine.stamp(), f"needs a human: {doing} failed: {exc}")
        )
        raise NeedsHuman(
            f"{doing} failed: {exc}. The listener may still send traffic to "
            f"{record.fleet_stack or 'the new fleet'}; run `deployer status`, then "
            "`deployer abort` (or `deployer rollback`) once AWS answers."
        ) from None


def put_back(
    engine: Engine, infra: Infra, record: ReleaseRecord, reason: str, wait: bool = True
) -> ReleaseRecord:
    """Traffic back to blue in one listener change (if it had moved), green put aside, the
    failure journalled. Blue was never scaled down, so it takes the load at once. Without
    `wait` (a cancelled job, seconds from being killed), a fleet being deleted is not waited
    for: the next release or `deployer gc` finds it.
    """
    # A rollback to a warm fleet made no fleet: the one it sent traffic to stays warm.
    made_a_fleet = not is_listener_rollback(record)
    try:
        live = engine.fleets.observe(infra)
        green = live.fleet_by_stack(record.fleet_stack) if record.fleet_stack else None
        if green is not None and green.target_group_arn in live.weights:
            record = engine.records.write(record.at(Phase.ROLLBACK))
            with engine.timed("rollback", "traffic back to the previous fleet"):
                weights = restored_weights(engine, infra, record)
                if engine.elb.listener_weights(infra.listener_arn) != weights:
                    doing = "moving traffic back to the previous fleet"
                    switch_or_escalate(engine, infra, weights, record, doing)
            if engine.gate_failed_at is not None:
                engine.phase_seconds["restore"] = round(engine.clock() - engine.gate_failed_at, 3)
            engine.report("rollback: traffic is back where it was before this release")
        problems = reset_test_listener(engine, infra)
        if green is not None and made_a_fleet:
            problems += engine.fleets.put_aside(green, wait)
        done = engine.records.write(
            record.finished(Outcome.FAILED, engine.stamp(), reason + problems)
        )
    except (*AWS_ERRORS, PollTimeout) as aws_failed:
        raise NeedsHuman(
            f"{reason}; then AWS failed while rolling back ({aws_failed}). The journal still "
            f"shows release {record.release_id} at {record.phase.value}: run `deployer status`, "
            f"then rerun `deployer release {record.version}` (it resumes) or `deployer abort` "
            "once AWS answers."
        ) from None
    if problems:
        raise NeedsHuman(
            f"{reason}{problems}. Traffic is on the previous fleet; clean up by hand or run "
            "`deployer gc`."
        )
    return done


def switch_to_warm(
    engine: Engine,
    infra: Infra,
    live: LiveState,
    target: Fleet,
    record: ReleaseRecord,
    journalled: bool = False,
) -> ReleaseRecord:
    """A rollback to a warm fleet: journalled at the switch (if a killed run had not), one
    listener change, journalled done. A rerun of `deployer rollback` resumes it here.
    """
    if not journalled:
        record = engine.records.write(record)
    current = live.fleet_by_stack(record.previous_fleet) if record.previous_fleet else None
    weights = {arn: 0 for arn in live.weights}
    weights[target.target_group_arn] = 100
    started = engine.clock()
    with engine.timed("switch", f"traffic to {target.version}"):
        switch_or_escalate(engine, infra, weights, record, "the rollback's listener change")
    engine.phase_seconds["switch"] = round(engine.clock() - started, 3)
    return engine.records.write(
        record.at(Phase.DONE, weights=weights)
        .done()
        .finished(
            Outcome.SUCCEEDED, engine.stamp(), f"from {current.version if current else 'nothing'}"
        )
    )
