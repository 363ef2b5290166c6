"""Use cases: release, rollback, status, history. Observe live state -> decide (core) -> act
(adapters) -> journal. Every step re-reads AWS rather than trusting memory.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from deployer.aws.autoscaling import AutoScaling
from deployer.aws.cloudformation import CloudFormation, Stack, StackFailed
from deployer.aws.dynamodb import Journal
from deployer.aws.ec2 import Ec2
from deployer.aws.elbv2 import Elbv2
from deployer.aws.poller import Poll, Poller, PollTimeout
from deployer.aws.s3 import S3
from deployer.aws.session import unreachable_as_error
from deployer.aws.ssm import Ssm
from deployer.bake.artifact import Artifact, S3Location, check_tarball, package_directory, sha256_of
from deployer.bake.baker import Baker, BakeRequest
from deployer.bake.runner import syntax_check
from deployer.config import LoadedConfig
from deployer.core.decide import (
    WARM_STACK_STATES,
    choose_rollback_target,
    fleets_to_retire,
    plan_release,
    switch_weights,
)
from deployer.core.health import Verdict, assess_target_health
from deployer.core.model import (
    Actor,
    Fleet,
    Kind,
    LiveState,
    Outcome,
    Phase,
    ReleaseRecord,
    TargetState,
)
from deployer.core.names import Names, Version
from deployer.errors import GateFailed, NeedsHuman, ReleaseFailed
from deployer.infra import STACK_DEADLINE_S, Infra, Templates, ensure_stack, lint_templates
from deployer.target import Runtime

Report = Callable[[str], None]


def actor_from_env() -> Actor:
    ci_job = next(
        (
            os.environ[k]
            for k in ("CI_JOB_URL", "GITHUB_RUN_ID", "BUILD_URL", "CI_JOB_ID")
            if os.environ.get(k)
        ),
        "",
    )
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(user=user, host=socket.gethostname(), ci_job=ci_job)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ReleaseResult:
    record: ReleaseRecord
    url: str
    reused_image: bool
    phase_seconds: dict[str, float] = field(default_factory=dict)


class Engine:
    def __init__(
        self,
        loaded: LoadedConfig,
        runtime: Runtime,
        poller: Poller,
        report: Report,
        workdir: Path,
        now: Callable[[], datetime] = utc_now,
        actor: Actor | None = None,
    ) -> None:
        self.loaded = loaded
        self.spec = loaded.spec
        self.runtime = runtime
        self.poller = poller
        self.report = report
        self.workdir = workdir
        self.now = now
        self.actor = actor or actor_from_env()
        self.names = Names(self.spec.app, self.spec.environment)
        aws = runtime.aws
        self.cfn = CloudFormation(aws, poller)
        self.ec2 = Ec2(aws, poller)
        self.elb = Elbv2(aws)
        self.asg = AutoScaling(aws)
        self.s3 = S3(aws)
        self.journal = Journal(aws, poller, self.names.scope)
        self.baker = Baker(self.ec2, Ssm(aws), self.s3, runtime.access_for, report)
        self.templates_dir = loaded.base_dir / "cloudformation"
        self.phase_seconds: dict[str, float] = {}

    # ---- release -------------------------------------------------------------------------

    def release(self, version_text: str) -> ReleaseResult:
        version = Version.parse(version_text)
        with self._timed("preflight"):
            artifact = self._preflight()
            self.journal.ensure_table()
        record = ReleaseRecord(
            release_id=self._new_id(),
            kind=Kind.RELEASE,
            version=version.text,
            started_at=self._stamp(),
            actor=self.actor,
            digest=artifact.digest,
        )
        with self._timed("infra"):
            infra = self._ensure_infra()
            live = self.observe(infra)
        green_name = self.names.fleet_stack(version, artifact.digest)
        plan = plan_release(
            live, version.text, artifact.digest, green_name, self.spec.capacity.desired
        )
        url = self.runtime.url_for(infra.load_balancer_dns, infra.listener_port)
        if plan.noop:
            self.report(f"release: {plan.reason}; nothing to do")
            done = record.finished(Outcome.NOOP, self._stamp(), plan.reason)
            self.journal.write(done.at(Phase.DONE, fleet_stack=plan.green_stack))
            image = plan.reuse_fleet.image_id if plan.reuse_fleet else ""
            return ReleaseResult(
                done.at(Phase.DONE, images={self.runtime.aws.region: image}),
                url,
                True,
                self.phase_seconds,
            )
        self.report(f"release: {plan.reason}")
        record = self._journal(
            record.at(Phase.BAKE, previous_fleet=plan.blue.stack_name if plan.blue else "")
        )
        green: Fleet | None = None
        try:
            with self._timed("bake"):
                baked = self.baker.bake_or_reuse(
                    self._bake_request(version, artifact, infra, record.release_id)
                )
            record = self._journal(
                record.at(Phase.FLEET, images={self.runtime.aws.region: baked.image_id})
            )
            with self._timed("fleet"):
                green = self._ensure_fleet(
                    plan.green_stack,
                    plan.reuse_fleet,
                    version,
                    artifact.digest,
                    baked.image_id,
                    plan.capacity,
                    infra,
                    record.release_id,
                )
            record = self._journal(
                record.at(
                    Phase.GATE,
                    fleet_stack=green.stack_name,
                    target_group_arn=green.target_group_arn,
                )
            )
            with self._timed("gate"):
                self._gate_target_health(green, plan.capacity)
        except (Exception, KeyboardInterrupt) as exc:
            self._fail_before_switch(record, green, exc)
            if isinstance(exc, KeyboardInterrupt | ReleaseFailed):
                raise
            raise ReleaseFailed(f"release failed: {exc}; traffic was not moved") from exc
        with self._timed("switch"):
            record = self._journal(record.at(Phase.SWITCH))
            keep_blue = plan.blue is not None and self.spec.rollback_window > 0
            weights = switch_weights(green, plan.blue if keep_blue else None)
            self._set_weights(infra, weights, record)
            self.report(
                f"switch: {version} takes all traffic"
                + (
                    f"; {plan.blue.version} stays warm at weight 0"
                    if keep_blue and plan.blue
                    else ""
                )
            )
        record = self._journal(record.at(Phase.RETIRE, weights=weights))
        with self._timed("retire"):
            keep = [green.stack_name] + ([plan.blue.stack_name] if keep_blue and plan.blue else [])
            retire_error = self._retire(self.observe(infra), keep)
        record = record.finished(Outcome.SUCCEEDED, self._stamp(), retire_error).at(Phase.DONE)
        self._journal(record)
        if retire_error:
            raise NeedsHuman(f"{version} is live, but retiring old fleets failed: {retire_error}")
        return ReleaseResult(record, url, baked.reused, self.phase_seconds)

    def _preflight(self) -> Artifact:
        """Everything that can be checked without changing anything: bad input exits 2 here."""
        lint_templates(self.templates_dir, self.runtime.aws.region)
        syntax_check(self.loaded.resolve(self.spec.bake.playbook))
        artifact = self._artifact()
        with unreachable_as_error(f"reach AWS ({self.runtime.description})"):
            self.account = self.runtime.aws.account_id()
        return artifact

    def _artifact(self) -> Artifact:
        source = self.spec.artifact.source
        cache = self.workdir / ".deployer" / "artifacts"
        if not source.startswith("s3://"):
            return package_directory(self.loaded.resolve(source), cache, source)
        location = S3Location.parse(source)
        cache.mkdir(parents=True, exist_ok=True)
        download = cache / "download.tar.gz"
        with unreachable_as_error(f"download {source}"):
            try:
                self.s3.download(location.bucket, location.key, download)
            except ClientError as exc:
                raise ReleaseFailed(f"artifact.source: cannot download {source}: {exc}") from None
        check_tarball(download, source)
        digest = sha256_of(download)
        final = cache / f"{digest}.tar.gz"
        download.replace(final)
        return Artifact(final, digest, source)

    def _bake_request(
        self, version: Version, artifact: Artifact, infra: Infra, release_id: str
    ) -> BakeRequest:
        bake = self.spec.bake
        return BakeRequest(
            names=self.names,
            version=version,
            artifact=artifact,
            bucket=f"deployer-artifacts-{self.account}-{self.runtime.aws.region}",
            playbook=self.loaded.resolve(bake.playbook),
            base_ami=bake.base_ami,
            instance_type=bake.instance_type,
            subnet_id=infra.builder_subnet_id,
            security_group_id=infra.builder_security_group_id,
            key_name=bake.ssh.key_pair if bake.ssh else None,
            app_port=self.spec.instance.port,
            release_id=release_id,
        )

    def _ensure_infra(self) -> Infra:
        templates = Templates.load(self.templates_dir)
        tags = self._tags()
        ssh = self.spec.bake.ssh
        network = ensure_stack(
            self.cfn,
            self.names.network_stack,
            templates["network"],
            {
                "AzCount": str(self.spec.azs),
                "BuilderSshCidr": ssh.allowed_cidr if ssh else "",
            },
            {**tags, "deployer:role": "network"},
            self.report,
        )
        service = ensure_stack(
            self.cfn,
            self.names.service_stack,
            templates["service"],
            {
                "VpcId": network.outputs["VpcId"],
                "SubnetIds": network.outputs["SubnetIds"],
                "AppPort": str(self.spec.instance.port),
            },
            {**tags, "deployer:role": "service"},
            self.report,
        )
        return Infra.from_outputs(network.outputs, service.outputs)

    def _existing_infra(self) -> Infra | None:
        network = self.cfn.describe(self.names.network_stack)
        service = self.cfn.describe(self.names.service_stack)
        if network is None or service is None or not service.outputs:
            return None
        return Infra.from_outputs(network.outputs, service.outputs)

    def _ensure_fleet(
        self,
        name: str,
        existing: Fleet | None,
        version: Version,
        digest: str,
        image_id: str,
        capacity: int,
        infra: Infra,
        release_id: str,
    ) -> Fleet:
        if existing is not None and existing.image_id == image_id:
            self.report(f"fleet: {name} already exists (an earlier run made it); reusing it")
            return existing
        stale = self.cfn.describe(name)
        if stale is not None:
            self.report(f"fleet: {name} is {stale.status}; replacing it")
            self._delete_stack(stale)
        cap = self.spec.capacity
        hc = self.spec.health_check
        parameters = {
            "ImageId": image_id,
            "InstanceType": self.spec.instance.type,
            "VpcId": infra.vpc_id,
            "SubnetIds": infra.subnet_ids,
            "InstanceSecurityGroupId": infra.instance_security_group_id,
            "AppPort": str(self.spec.instance.port),
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
            **self._tags(),
            "deployer:role": "fleet",
            "deployer:version": version.text,
            "deployer:digest": digest,
            "deployer:image": image_id,
            "deployer:release-id": release_id,
        }
        self.report(f"fleet: creating {name} ({capacity} x {self.spec.instance.type}, {image_id})")
        self.cfn.create(
            name,
            Templates.load(self.templates_dir)["fleet"],
            parameters,
            tags,
            token=f"{name}-{release_id}"[:128],
        )
        try:
            stack = self.cfn.wait_for(name, "CREATE_COMPLETE", STACK_DEADLINE_S)
        except StackFailed as exc:
            raise ReleaseFailed(f"fleet stack {name} failed: {exc.reason}") from None
        return self._fleet_of(stack)

    def _gate_target_health(self, green: Fleet, expected: int) -> None:
        deadline = self.spec.health_check.deadline_seconds

        def check() -> Poll[None]:
            verdict = assess_target_health(
                self.elb.target_health(green.target_group_arn), expected, deadline_passed=False
            )
            return Poll(verdict.verdict is Verdict.PASS, verdict.observation)

        try:
            self.poller.until(f"{green.version} targets to be healthy", check, deadline)
        except PollTimeout as exc:
            raise GateFailed(
                "target-health", f"{exc.last_status} after {deadline}s", "before switch"
            ) from None
        self.report(f"gate: all {expected} {green.version} targets are healthy")

    def _fail_before_switch(
        self, record: ReleaseRecord, green: Fleet | None, exc: BaseException
    ) -> None:
        """Traffic never moved. Remove green (if made), record why, and let the error go on."""
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        self.report(f"release failed: {reason}; traffic was not moved")
        cleanup = ""
        if green is not None:
            try:
                self.report(f"cleanup: deleting {green.stack_name}")
                stack = self.cfn.describe(green.stack_name)
                if stack is not None:
                    self._delete_stack(stack)
            except (ClientError, BotoCoreError, StackFailed, PollTimeout) as cleanup_exc:
                cleanup = f"; deleting {green.stack_name} failed: {cleanup_exc}"
        self._journal(record.finished(Outcome.FAILED, self._stamp(), reason + cleanup))
        if cleanup:
            raise NeedsHuman(
                f"{reason}{cleanup}. Traffic is unchanged; delete the stack by hand "
                "or rerun the release."
            ) from exc

    def _set_weights(self, infra: Infra, weights: dict[str, int], record: ReleaseRecord) -> None:
        try:
            self.elb.set_weights(infra.listener_arn, weights)
        except (ClientError, BotoCoreError) as exc:
            self._journal(
                record.finished(Outcome.FAILED, self._stamp(), f"listener change failed: {exc}")
            )
            raise NeedsHuman(
                f"the listener change failed: {exc}. Run `deployer status` to see "
                "where traffic goes."
            ) from None

    def _retire(self, live: LiveState, keep: list[str]) -> str:
        """Delete every fleet except `keep`. Returns what failed, or ''."""
        problems = []
        for fleet in fleets_to_retire(live, keep):
            if fleet.weight > 0 or fleet.target_group_arn in live.weights:
                continue  # still referenced by the listener: never delete a routed group
            self.report(f"retire: deleting {fleet.stack_name} ({fleet.version})")
            try:
                stack = self.cfn.describe(fleet.stack_name)
                if stack is not None:
                    self._delete_stack(stack)
            except (ClientError, BotoCoreError, StackFailed, PollTimeout) as exc:
                problems.append(f"{fleet.stack_name}: {exc}")
        return "; ".join(problems)

    def _delete_stack(self, stack: Stack) -> None:
        self.cfn.delete(stack.stack_id)
        self.cfn.wait_deleted(stack.stack_id, STACK_DEADLINE_S)

    # ---- rollback ------------------------------------------------------------------------

    def rollback(self, to_version: str | None) -> ReleaseRecord:
        if to_version is not None:
            Version.parse(to_version)
        with unreachable_as_error(f"reach AWS ({self.runtime.description})"):
            self.runtime.aws.account_id()
        infra = self._existing_infra()
        live = self.observe(infra) if infra else LiveState()
        history = self.journal.history()
        target = choose_rollback_target(live, history, to_version)
        assert infra is not None  # a warm target implies the service stack exists
        current = live.live_fleet
        healthy = [
            t
            for t in self.elb.target_health(target.target_group_arn)
            if t.state is TargetState.HEALTHY
        ]
        if not healthy:
            raise NeedsHuman(
                f"{target.version} ({target.stack_name}) has no healthy targets; "
                "traffic stays where it is. Release a version instead."
            )
        record = ReleaseRecord(
            release_id=self._new_id(),
            kind=Kind.ROLLBACK,
            version=target.version,
            started_at=self._stamp(),
            actor=self.actor,
            digest=target.digest,
            images={self.runtime.aws.region: target.image_id},
            fleet_stack=target.stack_name,
            target_group_arn=target.target_group_arn,
            previous_fleet=current.stack_name if current else "",
            phase=Phase.SWITCH,
        )
        self.journal.ensure_table()
        self._journal(record)
        weights = {arn: 0 for arn in live.weights}
        weights[target.target_group_arn] = 100
        started = time.monotonic()
        self._set_weights(infra, weights, record)
        self.phase_seconds["switch"] = time.monotonic() - started
        done = record.finished(
            Outcome.SUCCEEDED, self._stamp(), f"from {current.version if current else 'nothing'}"
        ).at(Phase.DONE, weights=weights)
        self._journal(done)
        self.report(f"rollback: traffic is on {target.version} ({target.stack_name})")
        return done

    # ---- observe -------------------------------------------------------------------------

    def observe(self, infra: Infra) -> LiveState:
        """The fleets of this app/environment and the listener's weights, read from AWS now."""
        fleets = []
        for stack in self.cfn.list_with_prefix(self.names.fleet_stack_prefix):
            if stack.tags.get("deployer:app") == self.names.app:
                fleets.append(self._fleet_of(stack))
        weights = self.elb.listener_weights(infra.listener_arn)
        return LiveState(tuple(fleets), weights).with_weights()

    def _fleet_of(self, stack: Stack) -> Fleet:
        asg_name = stack.outputs.get("AutoScalingGroupName", "")
        group = self.asg.describe(asg_name) if asg_name else None
        return Fleet(
            stack_name=stack.name,
            version=stack.tags.get("deployer:version", "?"),
            digest=stack.tags.get("deployer:digest", ""),
            image_id=stack.tags.get("deployer:image", ""),
            release_id=stack.tags.get("deployer:release-id", ""),
            stack_status=stack.status,
            target_group_arn=stack.outputs.get("TargetGroupArn", ""),
            asg_name=asg_name,
            desired=group.desired if group else 0,
        )

    def status(self) -> dict[str, Any]:
        infra = self._existing_infra()
        history = self.journal.history(limit=20)
        last = history[0] if history else None
        result: dict[str, Any] = {
            "app": self.names.app,
            "environment": self.names.environment,
            "target": self.runtime.description,
            "live_version": None,
            "url": None,
            "fleets": [],
            "last": _record_json(last) if last else None,
        }
        if infra is None:
            return result
        live = self.observe(infra)
        current = live.live_fleet
        result["live_version"] = current.version if current else None
        result["url"] = self.runtime.url_for(infra.load_balancer_dns, infra.listener_port)
        for fleet in sorted(live.fleets, key=lambda f: -f.weight):
            health = (
                self.elb.target_health(fleet.target_group_arn) if fleet.target_group_arn else []
            )
            result["fleets"].append(
                {
                    "version": fleet.version,
                    "stack": fleet.stack_name,
                    "weight": fleet.weight,
                    "desired": fleet.desired,
                    "image": fleet.image_id,
                    "status": fleet.stack_status,
                    "healthy": sum(1 for t in health if t.state is TargetState.HEALTHY),
                    "role": "live"
                    if fleet is current or (current and fleet.stack_name == current.stack_name)
                    else ("warm" if fleet.stack_status in WARM_STACK_STATES else "other"),
                }
            )
        return result

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        return [_record_json(r) for r in self.journal.history(limit)]

    # ---- helpers -------------------------------------------------------------------------

    def _journal(self, record: ReleaseRecord) -> ReleaseRecord:
        self.journal.write(record)
        return record

    def _tags(self) -> dict[str, str]:
        return {"deployer:app": self.names.app, "deployer:environment": self.names.environment}

    def _stamp(self) -> str:
        return self.now().strftime("%Y-%m-%dT%H:%M:%SZ")

    def _new_id(self) -> str:
        return f"{self.now().strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"

    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.phase_seconds[phase] = round(time.monotonic() - started, 3)


def _record_json(record: ReleaseRecord) -> dict[str, Any]:
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
        "reason": record.reason,
    }
