"""The release use case: preflight -> lock -> infra -> bake or reuse -> fleet -> gates before
the switch -> traffic steps, each held and gated -> retire. Resumable: a rerun after a kill
finds the journal and the live state, and finishes or rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from deployer.aws.poller import Poll, PollTimeout
from deployer.aws.session import is_transient, unreachable_as_error
from deployer.bake.artifact import Artifact, S3Location, check_tarball, package_directory, sha256_of
from deployer.bake.baker import BakeRequest
from deployer.checks import CheckCache, check_playbook, check_templates
from deployer.core.decide import fleets_to_retire, green_capacity, plan_release
from deployer.core.gates import GateKind, Observation, judge
from deployer.core.model import Fleet, Kind, Outcome, Phase, ReleaseRecord
from deployer.core.names import Version
from deployer.core.rollout import Step, plan_steps, restore_weights, step_weights
from deployer.engine import Engine
from deployer.errors import (
    BadInput,
    DeployerError,
    GateFailed,
    NeedsHuman,
    ReleaseFailed,
    StackFailed,
)
from deployer.gates import observe_alarms, observe_http, observe_targets
from deployer.infra import STACK_DEADLINE_S, Infra, Templates, request_token


@dataclass
class ReleaseResult:
    record: ReleaseRecord
    url: str
    reused_image: bool
    phase_seconds: dict[str, float] = field(default_factory=dict)


def preflight(engine: Engine) -> Artifact:
    """Everything that can be checked without changing anything: bad input exits 2 here."""
    cache = CheckCache(engine.workdir / ".deployer" / "checks.json")
    check_templates(cache, engine.templates_dir, engine.runtime.aws.region)
    check_playbook(cache, engine.loaded.resolve(engine.spec.bake.playbook))
    artifact = package_artifact(engine)
    with unreachable_as_error(f"reach AWS ({engine.runtime.description})"):
        engine.account = engine.runtime.aws.account_id()
        missing = [
            n
            for n in engine.spec.gates.alarms
            if n not in engine.cloudwatch.alarm_states(engine.spec.gates.alarms)
        ]
    if missing:
        raise BadInput(f"gates.alarms: no CloudWatch alarm named {', '.join(missing)}")
    return artifact


def bake_request(
    engine: Engine, version: Version, artifact: Artifact, infra: Infra, run_id: str
) -> BakeRequest:
    """What to bake for `version`, from the config; `run_id` names the builder's run."""
    bake = engine.spec.bake
    return BakeRequest(
        names=engine.names,
        version=version,
        artifact=artifact,
        bucket=f"deployer-artifacts-{engine.account}-{engine.runtime.aws.region}",
        playbook=engine.loaded.resolve(bake.playbook),
        base_ami=bake.base_ami,
        instance_type=bake.instance_type,
        subnet_id=infra.builder_subnet_id,
        security_group_id=infra.builder_security_group_id,
        key_name=bake.ssh.key_pair if bake.ssh else None,
        app_port=engine.spec.instance.port,
        release_id=run_id,
    )


def package_artifact(engine: Engine) -> Artifact:
    source = engine.spec.artifact.source
    cache = engine.workdir / ".deployer" / "artifacts"
    if not source.startswith("s3://"):
        return package_directory(engine.loaded.resolve(source), cache, source)
    location = S3Location.parse(source)
    cache.mkdir(parents=True, exist_ok=True)
    download = cache / "download.tar.gz"
    with unreachable_as_error(f"download {source}"):
        engine.s3.download(location.bucket, location.key, download)
    check_tarball(download, source)
    digest = sha256_of(download)
    final = cache / f"{digest}.tar.gz"
    download.replace(final)
    return Artifact(final, digest, source)


class Release:
    def __init__(self, engine: Engine) -> None:
        self.e = engine

    def run(self, version_text: str, wait_s: float | None = None) -> ReleaseResult:
        version = Version.parse(version_text)
        with self.e.timed("preflight"):
            artifact = preflight(self.e)
        with self.e.locked(wait_s):
            with self.e.timed("infra"):
                infra = self.e.ensure_infra()
            return self.release(version, artifact.digest, infra, artifact=artifact)

    def release(
        self,
        version: Version,
        digest: str,
        infra: Infra,
        artifact: Artifact | None = None,
        image_id: str | None = None,
        kind: Kind = Kind.RELEASE,
        note: str = "",
    ) -> ReleaseResult:
        """With the lock held: release `version` (baked from `artifact`, or from `image_id`)."""
        e = self.e
        url = e.runtime.url_for(infra.load_balancer_dns, infra.listener_port)
        record = self._resume_or_supersede(version, digest, infra)
        live = e.observe(infra)  # after any resume or supersede has changed it
        green_name = e.names.fleet_stack(version, digest)
        if record is None:
            plan = plan_release(live, version.text, digest, green_name, e.spec.capacity.desired)
            if plan.noop:
                e.report(f"release: {plan.reason}; nothing to do")
                image = plan.reuse_fleet.image_id if plan.reuse_fleet else ""
                done = e.record(
                    e.new_record(
                        kind,
                        version.text,
                        digest=digest,
                        fleet_stack=plan.green_stack,
                        images={e.runtime.aws.region: image},
                        phase=Phase.DONE,
                    ).finished(Outcome.NOOP, e.stamp(), plan.reason)
                )
                return ReleaseResult(done, url, True, e.phase_seconds)
            e.report(f"release: {plan.reason}" + (f" ({note})" if note else ""))
            record = e.record(
                e.new_record(
                    kind,
                    version.text,
                    digest=digest,
                    prior_weights=dict(live.weights),
                    previous_fleet=plan.blue.stack_name if plan.blue else "",
                    reason=note,
                ).at(Phase.BAKE)
            )
        blue = live.fleet_by_stack(record.previous_fleet) if record.previous_fleet else None
        capacity = green_capacity(blue, e.spec.capacity.desired)
        green: Fleet | None = (
            live.fleet_by_stack(record.fleet_stack) if record.fleet_stack else None
        )
        reused = True
        try:
            if record.phase is not Phase.RETIRE:
                if image_id is None:
                    with e.timed("bake"):
                        assert artifact is not None
                        baked = e.baker.bake_or_reuse(
                            bake_request(e, version, artifact, infra, record.release_id)
                        )
                    image_id, reused = baked.image_id, baked.reused
                record = e.record(record.at(Phase.FLEET, images={e.runtime.aws.region: image_id}))
                with e.timed("fleet"):
                    green = self._ensure_fleet(
                        green_name, version, digest, image_id, capacity, infra, record
                    )
                record = e.record(
                    record.done(
                        fleet_stack=green.stack_name, target_group_arn=green.target_group_arn
                    )
                )
                record = e.record(record.at(Phase.GATE))
                with e.timed("gate"):
                    self._gate_before_switch(green, capacity, infra)
                record = e.record(record.done())
                with e.timed("steps"):
                    record = self._steps(record, green, blue, capacity, infra)
        except (Exception, KeyboardInterrupt) as exc:
            self._fail(record, infra, green, exc)
            if isinstance(exc, KeyboardInterrupt | DeployerError):
                raise
            if is_transient(exc) or isinstance(exc, PollTimeout):
                raise NeedsHuman(
                    f"AWS stopped answering during {record.phase.value}: {exc}. Traffic is where "
                    f"it was; rerun `deployer release {version}` once AWS answers."
                ) from exc
            raise ReleaseFailed(f"release failed: {exc}; traffic was not moved") from exc
        assert green is not None
        return self._finish(record, green, blue, infra, url, reused)

    # ---- resume --------------------------------------------------------------------------

    def _resume_or_supersede(
        self, version: Version, digest: str, infra: Infra
    ) -> ReleaseRecord | None:
        """A release left in progress by a killed run: continue it if it is this one, else
        roll it back. Traffic that had moved to its fleet goes back first: its gates are
        unproven for this run.
        """
        e = self.e
        inflight = e.inflight()
        if inflight is None:
            return None
        if inflight.version != version.text or inflight.digest != digest:
            abandon(e, inflight, infra, f"superseded by a release of {version}")
            return None
        state = "completed" if inflight.phase_done else "started"
        e.report(
            f"resume: release {inflight.release_id} of {version} stopped at "
            f"{inflight.phase.value} ({state}); continuing from the live state"
        )
        if inflight.phase in (Phase.SWITCH, Phase.STEP, Phase.ROLLBACK):
            if e.elb.listener_weights(infra.listener_arn).get(inflight.target_group_arn, 0) > 0:
                e.report("resume: traffic had moved to the new fleet; moving it back first")
            self._restore(inflight, infra, "moving traffic back before resuming")
            return e.record(inflight.at(Phase.GATE))
        return inflight

    # ---- steps ---------------------------------------------------------------------------

    def _ensure_fleet(
        self,
        name: str,
        version: Version,
        digest: str,
        image_id: str,
        capacity: int,
        infra: Infra,
        record: ReleaseRecord,
    ) -> Fleet:
        e = self.e
        existing = e.cfn.describe(name)
        if existing is not None and existing.status == "DELETE_IN_PROGRESS":
            e.cfn.wait_deleted(existing.stack_id, STACK_DEADLINE_S)
            existing = None
        if existing is not None and existing.status == "CREATE_IN_PROGRESS":
            try:
                existing = e.cfn.wait_for(existing.stack_id, "CREATE_COMPLETE", STACK_DEADLINE_S)
            except StackFailed:
                existing = None  # it failed and deleted itself: make it again
        if existing is not None:
            fleet = e.fleet_of(existing)
            if (
                existing.status == "CREATE_COMPLETE"
                and fleet.image_id == image_id
                and fleet.desired == capacity
            ):
                e.report(f"fleet: {name} exists already (an earlier run made it); reusing it")
                return fleet
            e.report(
                f"fleet: {name} is {existing.status} with {fleet.desired} instances; replacing it"
            )
            e.delete_fleet(name)
        spec = e.spec
        cap, hc = spec.capacity, spec.health_check
        parameters = {
            "ImageId": image_id,
            "InstanceType": spec.instance.type,
            "VpcId": infra.vpc_id,
            "SubnetIds": infra.subnet_ids,
            "InstanceSecurityGroupId": infra.instance_security_group_id,
            "AppPort": str(spec.instance.port),
            "DesiredCapacity": str(capacity),
            "MinSize": str(min(cap.min, capacity)),
            "MaxSize": str(max(cap.max, capacity)),
            "HealthCheckPath": hc.path,
            "HealthCheckIntervalSeconds": str(hc.interval_seconds),
            "HealthCheckTimeoutSeconds": str(hc.timeout_seconds),
            "HealthyThresholdCount": str(hc.healthy_threshold),
            "UnhealthyThresholdCount": str(hc.unhealthy_threshold),
            "Version": version.text,
            "Digest": digest,
        }
        tags = {
            **e.tags(),
            "deployer:role": "fleet",
            "deployer:version": version.text,
            "deployer:digest": digest,
            "deployer:image": image_id,
            "deployer:release-id": record.release_id,
        }
        e.report(f"fleet: creating {name} ({capacity} x {spec.instance.type}, {image_id})")
        stack_id = e.cfn.create(
            name,
            Templates.load(e.templates_dir)["fleet"],
            parameters,
            tags,
            token=request_token(name),
        )
        try:
            stack = e.cfn.wait_for(stack_id, "CREATE_COMPLETE", STACK_DEADLINE_S)
        except StackFailed as exc:
            raise ReleaseFailed(f"fleet stack {name} failed: {exc.reason}") from None
        return e.fleet_of(stack)

    def _observe(self, green: Fleet, expected: int, test_url: str) -> list[Observation]:
        e = self.e
        return [
            observe_targets(e.elb, green.target_group_arn, expected),
            *[observe_http(test_url, check) for check in e.spec.gates.http],
            *observe_alarms(e.cloudwatch, e.spec.gates.alarms),
        ]

    def _gate_before_switch(self, green: Fleet, expected: int, infra: Infra) -> None:
        """On the test listener, which carries no user traffic: every target healthy, the
        HTTP checks passing and no alarm firing, within the health-check deadline.
        """
        e = self.e
        e.set_weights(infra.test_listener_arn, {green.target_group_arn: 1})
        test_url = e.runtime.url_for(infra.load_balancer_dns, infra.test_listener_port)
        deadline = e.spec.health_check.deadline_seconds
        failures: dict[str, int] = {}

        def check() -> Poll[None]:
            targets, *others = self._observe(green, expected, test_url)
            alarms = [o for o in others if o.kind is GateKind.ALARM]
            verdict = judge(alarms, failures, e.spec.gates.max_failures)
            if verdict.failed:
                raise GateFailed(verdict.failed.gate, verdict.failed.detail, "before switch")
            if not targets.passed:
                return Poll(False, targets.detail)
            verdict = judge(others, failures, e.spec.gates.max_failures)
            failures.update(verdict.failures)
            if verdict.failed:
                raise GateFailed(verdict.failed.gate, verdict.failed.detail, "before switch")
            return Poll(
                all(o.passed for o in others),
                "checks failing: "
                + "; ".join(f"{o.gate}: {o.detail}" for o in others if not o.passed),
            )

        try:
            e.poller.until(f"{green.version} to pass its gates", check, deadline)
        except PollTimeout as exc:
            raise GateFailed(
                GateKind.TARGET_HEALTH.value,
                f"{exc.last_status} after {deadline}s",
                "before switch",
            ) from None
        e.report(f"gate: {green.version} passed on the test listener ({expected} targets healthy)")

    def _steps(
        self,
        record: ReleaseRecord,
        green: Fleet,
        blue: Fleet | None,
        expected: int,
        infra: Infra,
    ) -> ReleaseRecord:
        e = self.e
        strategy = e.spec.strategy
        test_url = e.runtime.url_for(infra.load_balancer_dns, infra.test_listener_port)
        for step in plan_steps(
            strategy.kind, strategy.steps, strategy.bake_seconds, has_blue=blue is not None
        ):
            weights = step_weights(
                step, green.target_group_arn, blue.target_group_arn if blue else None
            )
            record = e.record(record.at(Phase.STEP, step=step.index, weights=weights))
            e.set_weights(infra.listener_arn, weights)
            record = e.record(record.done())
            e.report(
                f"traffic: {step.name} ({green.version} {step.green_weight}"
                + (f", {blue.version} {step.blue_weight})" if blue else ")")
            )
            self._hold(step, green, expected, test_url)
        return record

    def _hold(self, step: Step, green: Fleet, expected: int, test_url: str) -> None:
        """Evaluate every gate each interval for the step's bake time; fail at the first
        failure beyond the tolerance.
        """
        e = self.e
        ends = e.clock() + step.hold_seconds
        failures: dict[str, int] = {}
        while True:
            verdict = judge(
                self._observe(green, expected, test_url), failures, e.spec.gates.max_failures
            )
            failures = dict(verdict.failures)
            if verdict.failed:
                e.gate_failed_at = e.clock()
                raise GateFailed(verdict.failed.gate, verdict.failed.detail, step.name)
            left = ends - e.clock()
            if left <= 0:
                return
            e.sleep(min(e.spec.gates.interval_seconds, left))

    # ---- endings -------------------------------------------------------------------------

    def _restore(self, record: ReleaseRecord, infra: Infra, doing: str) -> None:
        e = self.e
        existing = {f.target_group_arn for f in e.observe(infra).fleets}
        weights = {
            arn: w
            for arn, w in restore_weights(record.prior_weights, record.target_group_arn).items()
            if arn in existing
        }
        if e.elb.listener_weights(infra.listener_arn) != weights:
            e.switch_or_escalate(infra, weights, record, doing)

    def _fail(
        self, record: ReleaseRecord, infra: Infra, green: Fleet | None, exc: BaseException
    ) -> None:
        """Traffic back to blue in one listener change (if it had moved), green put aside,
        the failure journalled. Blue was never scaled down, so it takes the load at once.
        """
        e = self.e
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        e.report(f"release failed: {reason}")
        try:
            record, problems = self._put_back(record, infra, green)
            e.record(record.finished(Outcome.FAILED, e.stamp(), reason + problems))
        except (ClientError, BotoCoreError, PollTimeout) as aws_failed:
            raise NeedsHuman(
                f"{reason}; then AWS failed while rolling back ({aws_failed}). The journal "
                f"still shows release {record.release_id} at {record.phase.value}: run "
                f"`deployer status`, then rerun `deployer release {record.version}` (it resumes) "
                "or `deployer abort` once AWS answers."
            ) from exc
        if problems:
            raise NeedsHuman(
                f"{reason}{problems}. Traffic is on the previous fleet; clean up "
                "by hand or run `deployer gc`."
            ) from exc

    def _put_back(
        self, record: ReleaseRecord, infra: Infra, green: Fleet | None
    ) -> tuple[ReleaseRecord, str]:
        e = self.e
        moved = green is not None and green.target_group_arn in e.elb.listener_weights(
            infra.listener_arn
        )
        if moved:
            record = e.record(record.at(Phase.ROLLBACK))
            self._restore(record, infra, "moving traffic back to the previous fleet")
            if e.gate_failed_at is not None:
                e.phase_seconds["restore"] = round(e.clock() - e.gate_failed_at, 3)
            e.report("rollback: traffic is back where it was before this release")
        problems = reset_test_listener(e, infra)
        if green is not None:
            problems += e.put_aside(green)
        return record, problems

    def _finish(
        self,
        record: ReleaseRecord,
        green: Fleet,
        blue: Fleet | None,
        infra: Infra,
        url: str,
        reused: bool,
    ) -> ReleaseResult:
        e = self.e
        record = e.record(record.at(Phase.RETIRE))
        keep_blue = blue is not None and e.spec.rollback_window > 0
        final = {green.target_group_arn: 100}
        if keep_blue and blue is not None:
            final[blue.target_group_arn] = 0
        with e.timed("retire"):
            if e.elb.listener_weights(infra.listener_arn) != final:
                e.set_weights(infra.listener_arn, final)
            problems = reset_test_listener(e, infra)
            keep = [green.stack_name] + ([blue.stack_name] if keep_blue and blue else [])
            live = e.observe(infra)
            problems += e.retire(live, fleets_to_retire(live, keep))
        record = e.record(
            record.at(Phase.DONE, weights=final).finished(Outcome.SUCCEEDED, e.stamp(), problems)
        )
        if problems:
            raise NeedsHuman(f"{record.version} is live, but cleanup failed: {problems}")
        e.report(
            f"release: {record.version} is live"
            + (
                f"; {blue.version} stays warm for {e.spec.rollback_window}s"
                if keep_blue and blue
                else ""
            )
        )
        return ReleaseResult(record, url, reused, e.phase_seconds)


def reset_test_listener(engine: Engine, infra: Infra) -> str:
    try:
        engine.set_weights(infra.test_listener_arn, {})
    except Exception as exc:  # noqa: BLE001 - best effort; reported to the caller
        return f"; resetting the test listener failed: {exc}"
    return ""


def abandon(engine: Engine, record: ReleaseRecord, infra: Infra, reason: str) -> ReleaseRecord:
    """Roll an in-flight release back: traffic as before it, its fleet put aside, journalled."""
    engine.report(f"abort: rolling back release {record.release_id} of {record.version} ({reason})")
    Release(engine)._restore(record, infra, "moving traffic back to the previous fleet")
    problems = reset_test_listener(engine, infra)
    green = engine.observe(infra).fleet_by_stack(record.fleet_stack) if record.fleet_stack else None
    if green is not None:
        problems += engine.put_aside(green)
    done = engine.record(
        record.at(Phase.DONE).finished(Outcome.FAILED, engine.stamp(), reason + problems)
    )
    if problems:
        raise NeedsHuman(f"release {record.release_id} was rolled back, but{problems}")
    return done
