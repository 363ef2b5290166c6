"""The engine: adapters wired for one app/environment, and the steps every use case shares:
observe live state, write the (fenced) journal, change listener weights, retire fleets.

The use cases live in deployer.release.loop (release) and deployer.ops.operations (rollback, abort,
gc, status, history, plan). They re-read AWS at every step rather than trusting memory.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from deployer.aws.autoscaling import AutoScaling
from deployer.aws.cloudformation import CloudFormation, Stack
from deployer.aws.cloudwatch import CloudWatch
from deployer.aws.dynamodb import Fence, Journal, LeaseLock
from deployer.aws.ec2 import Ec2
from deployer.aws.elbv2 import Elbv2
from deployer.aws.poller import Poller, PollTimeout, WaitStats
from deployer.aws.s3 import S3
from deployer.aws.session import is_transient, unreachable_as_error
from deployer.aws.ssm import Ssm
from deployer.bake.baker import Baker
from deployer.config.loading import LoadedConfig
from deployer.core.model import Actor, Fleet, Kind, LiveState, Outcome, ReleaseRecord
from deployer.core.names import Names
from deployer.errors import BadInput, NeedsHuman, StackFailed
from deployer.infra.own_load_balancer import OwnLoadBalancer
from deployer.infra.stacks import STACK_DEADLINE_S, Infra, StackSpec, Templates, ensure_stack
from deployer.output.events import Events
from deployer.release.locking import LeaseLost, LockClient
from deployer.target import Runtime

Report = Callable[[str], None]
DEFAULT_TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
BAKE_DEADLINE_S = 3600.0  # a whole bake: builder, playbook, image, copies


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
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        events: Events | None = None,
    ) -> None:
        self.loaded = loaded
        self.spec = loaded.spec
        self.runtime = runtime
        self.poller = poller
        self.report = report
        self.workdir = workdir
        self.now = now
        self.clock = clock
        self.sleep = sleep
        self.actor = actor or actor_from_env()
        self.events = events or Events()
        poller.events = self.events if events is not None else poller.events
        runtime.aws.on_retry = self._retried
        self._versions: dict[str, str] = {}  # target group arn -> version, as fleets are seen
        self._listeners: dict[str, str] = {}  # listener arn -> "production" or "test"
        self._releases_seen: set[str] = set()
        self.names = Names(self.spec.app, self.spec.environment)
        aws = runtime.aws
        self.cfn = CloudFormation(
            aws, poller, on_event=report, role_arn=loaded.spec.cloudformation.role_arn
        )
        self.replace_failed = False  # --replace-failed: delete failed network/service stacks
        self.ec2 = Ec2(aws, poller)
        service = loaded.spec.service
        self.elb = Elbv2(
            aws,
            priority=service.rule_priority,
            owns_listeners=not service.own,
            tags=self.tags(),
        )
        self._own_load_balancer: OwnLoadBalancer | None = None
        self._caller_cidr: str | None = None
        self.asg = AutoScaling(aws)
        self.s3 = S3(aws, owner=lambda: self.account)  # ExpectedBucketOwner
        self.cloudwatch = CloudWatch(aws)
        self.journal = Journal(aws, poller, self.names.scope)
        self.lock = LockClient(
            LeaseLock(aws, self.names.scope), str(self.actor), self.spec.lock.lease_seconds, report
        )
        self.ssm = Ssm(aws)
        self.baker = Baker(
            self.ec2_in,
            self.ssm,
            self.s3,
            runtime.reach,
            self.bake_lock,
            self.bake_in_progress,
            report,
        )
        self.baker_deadline_s = BAKE_DEADLINE_S
        self.templates_dir = loaded.base_dir / "cloudformation"
        self.phase_seconds: dict[str, float] = {}
        self.phase_spans: dict[str, tuple[float, float]] = {}  # epoch start/end (bench/)
        self.waits: list[WaitStats] = []
        poller.on_wait = self.waits.append
        poller.count_calls = lambda: sum(aws.calls.values())
        self.fence: Fence | None = None
        self.account = ""
        self.gate_failed_at: float | None = None  # when a gate failure was detected (bench)
        self.on_phase: Callable[[ReleaseRecord], None] = lambda _record: None
        self.allow_short_credentials = False

    # ---- lock and journal ----------------------------------------------------------------

    @contextmanager
    def locked(self, wait_s: float | None) -> Iterator[Fence]:
        self.journal.ensure_table()
        with self.lock.held(self.stamp(), wait_s) as fence:
            self.fence = fence
            try:
                yield fence
            finally:
                self.fence = None

    def _bake_lock_client(self, bake_key: str) -> LockClient:
        scope = f"bake/{self.names.app}/{bake_key[:16]}"
        return LockClient(
            LeaseLock(self.runtime.aws, scope),
            str(self.actor),
            self.spec.lock.lease_seconds,
            self.report,
        )

    @contextmanager
    def bake_lock(self, bake_key: str) -> Iterator[Fence]:
        """One bake of an app and key at a time, across environments: the second one waits,
        then finds the image the first one made.
        """
        self.journal.ensure_table()
        client = self._bake_lock_client(bake_key)
        current = client.holder_elsewhere()
        if current is not None:
            self.report(f"bake: {current.holder} is baking the same image; waiting for it")
        with client.held(self.stamp(), self.baker_deadline_s) as fence:
            yield fence

    def bake_in_progress(self, bake_key: str) -> bool:
        """Whether a live run (not this one) holds the bake lock of `bake_key`."""
        return self._bake_lock_client(bake_key).holder_elsewhere() is not None

    def record(self, record: ReleaseRecord) -> ReleaseRecord:
        """Journal a transition, fenced by our lock: a run that lost its lease cannot write."""
        if not self.journal.write(record, self.fence):
            raise LeaseLost(
                f"the lock on {self.names.scope} was taken over; this run stops "
                f"without acting further (release {record.release_id})"
            )
        if record.release_id not in self._releases_seen:
            self._releases_seen.add(record.release_id)
            self.events.emit(
                "release",
                release_id=record.release_id,
                kind=record.kind.value,
                version=record.version,
                prior_weights={self.version_of(a): w for a, w in record.prior_weights.items()},
            )
        self.on_phase(record)
        return record

    def inflight(self) -> ReleaseRecord | None:
        """The newest release still in progress (its run was killed or is running)."""
        for record in self.journal.history(limit=20):
            if record.outcome is Outcome.IN_PROGRESS and record.kind is not Kind.ROLLBACK:
                return record
        return None

    def new_record(self, kind: Kind, version: str, **fields: object) -> ReleaseRecord:
        release_id = f"{self.now().strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
        return ReleaseRecord(
            release_id=release_id,
            kind=kind,
            version=version,
            started_at=self.stamp(),
            actor=self.actor,
            **fields,  # type: ignore[arg-type]
        )

    # ---- infra and live state ------------------------------------------------------------

    def infra_specs(
        self, network_outputs: Mapping[str, str], templates: Templates | None = None
    ) -> list[StackSpec]:
        """What the network and service stacks should be (the service's from the network's
        outputs): one description for ensure_infra and for the plan. With the operator's own
        network (network.vpc_id) there is no network stack, only the service.
        """
        templates = templates or Templates.load(self.templates_dir)
        specs = [] if self.spec.network.own else [self.network_spec(templates)]
        if self.spec.network.own:
            network_outputs = self.spec.network.own_outputs()
        return [*specs, self.service_spec(network_outputs, templates)]

    def network_spec(self, templates: Templates) -> StackSpec:
        network = self.spec.network
        return StackSpec(
            self.names.network_stack,
            templates["network"],
            {"AzCount": str(self.spec.azs), "CidrPrefix": network.prefix, "NatMode": network.nat},
            {**self.tags(), "deployer:role": "network"},
        )

    def service_spec(self, network_outputs: Mapping[str, str], templates: Templates) -> StackSpec:
        spec = self.spec
        return StackSpec(
            self.names.service_stack,
            templates["service"],
            {
                "VpcId": network_outputs.get("VpcId", ""),
                "SubnetIds": network_outputs.get("SubnetIds", ""),
                "AppPort": str(spec.instance.port),
                "TestListenerPort": str(spec.strategy.test_listener_port),
                "TestListenerCidr": self.test_listener_cidr(),
                "CertificateArn": spec.tls.certificate_arn if spec.tls else "",
                "SslPolicy": spec.tls.ssl_policy if spec.tls else DEFAULT_TLS_POLICY,
                "AccessLogsBucket": spec.alb.access_logs_bucket or "",
                "DeletionProtection": "true" if spec.protected else "false",
                "App": self.names.app,
                "Environment": self.names.environment,
                "SettingsPath": f"/deployer/{self.names.app}/{self.names.environment}/",
                "ArtifactBucket": self.artifact_bucket if self.account else "",
                "ArtifactPrefix": f"{self.names.app}/",
                "LogGroupName": self.names.log_group,
                "LogRetentionDays": str(spec.logs.retention_days),
                "LogKmsKeyArn": spec.logs.kms_key_arn or "",
                "PermissionsBoundaryArn": spec.cloudformation.boundary_arn,
                **self.own_load_balancer().parameters(),
            },
            {**self.tags(), "deployer:role": "service"},
        )

    def test_listener_cidr(self) -> str:
        """Who may reach the test listener (an unreleased build): strategy.test_listener_cidr,
        or this machine's address (auto), asked once per run.
        """
        configured = self.spec.strategy.test_listener_cidr
        if configured != "auto":
            return configured
        if self._caller_cidr is None:
            try:
                self._caller_cidr = self.runtime.caller_cidr()
            except BadInput as exc:
                raise BadInput(
                    f"strategy.test_listener_cidr: auto needs this machine's public address: "
                    f"{exc.message}; or set strategy.test_listener_cidr to the CIDR deployer "
                    "runs from (your CI runners' egress)"
                ) from None
        return self._caller_cidr

    def own_load_balancer(self) -> OwnLoadBalancer:
        """service.listener_arn: the operator's load balancer, read from ELB once per run
        (an empty one when deployer makes its own).
        """
        if self._own_load_balancer is None:
            service = self.spec.service
            if service.listener_arn is None or service.test_listener_arn is None:
                self._own_load_balancer = OwnLoadBalancer()
            else:
                self._own_load_balancer = OwnLoadBalancer.read(
                    self.elb, service.listener_arn, service.test_listener_arn
                )
        return self._own_load_balancer

    def ensure_infra(self) -> Infra:
        templates = Templates.load(self.templates_dir)
        made = []
        network_outputs: Mapping[str, str]
        if self.spec.network.own:
            network_outputs = self.spec.network.own_outputs()
        else:
            network_spec = self.network_spec(templates)
            network = ensure_stack(self.cfn, *network_spec, self.report, self.replace_failed)
            network_outputs, made = network.outputs, [network]
        service_spec = self.service_spec(network_outputs, templates)
        service = ensure_stack(self.cfn, *service_spec, self.report, self.replace_failed)
        for stack in (*made, service):  # protected: true turns it on, false turns it off
            if stack.termination_protected != self.spec.protected:
                state = "on" if self.spec.protected else "off"
                self.report(f"infra: turning {state} termination protection of {stack.name}")
                self.cfn.protect(stack.stack_id, self.spec.protected)
        infra = self._seen(Infra.from_outputs(network_outputs, service.outputs))
        for listener in (infra.listener_arn, infra.test_listener_arn):
            if self.elb.tag_weights_rule(listener):
                self.report(f"infra: tagged deployer's weights rule of {listener}")
        return infra

    def existing_infra(self) -> Infra | None:
        if self.spec.network.own:
            network_outputs: Mapping[str, str] | None = self.spec.network.own_outputs()
        else:
            network = self.cfn.describe(self.names.network_stack)
            network_outputs = network.outputs if network is not None else None
        service = self.cfn.describe(self.names.service_stack)
        if network_outputs is None or service is None or "ListenerArn" not in service.outputs:
            return None
        return self._seen(Infra.from_outputs(network_outputs, service.outputs))

    def _seen(self, infra: Infra) -> Infra:
        self._listeners[infra.listener_arn] = "production"
        self._listeners[infra.test_listener_arn] = "test"
        return infra

    def observe(self, infra: Infra) -> LiveState:
        """The fleets of this app/environment and the production weights, read from AWS now."""
        fleets = [
            self.fleet_of(stack)
            for stack in self.cfn.list_with_prefix(self.names.fleet_stack_prefix)
            if stack.tags.get("deployer:app") == self.names.app
        ]
        weights = self.elb.listener_weights(infra.listener_arn)
        return LiveState(tuple(fleets), weights).with_weights()

    def fleet_of(self, stack: Stack) -> Fleet:
        asg_name = stack.outputs.get("AutoScalingGroupName", "")
        group = self.asg.describe(asg_name) if asg_name else None
        if stack.outputs.get("TargetGroupArn"):
            self._versions[stack.outputs["TargetGroupArn"]] = stack.tags.get(
                "deployer:version", "?"
            )
        return Fleet(
            stack_name=stack.name,
            version=stack.tags.get("deployer:version", "?"),
            digest=stack.tags.get("deployer:digest", ""),
            image_id=stack.tags.get("deployer:image", ""),
            bake_key=stack.tags.get("deployer:bake-key", ""),
            settings=stack.tags.get("deployer:settings", ""),
            release_id=stack.tags.get("deployer:release-id", ""),
            stack_status=stack.status,
            target_group_arn=stack.outputs.get("TargetGroupArn", ""),
            asg_name=asg_name,
            desired=group.desired if group else 0,
            alarms=tuple(a for a in stack.outputs.get("GateAlarmNames", "").split(",") if a),
        )

    # ---- acting --------------------------------------------------------------------------

    def set_weights(self, listener_arn: str, weights: dict[str, int]) -> None:
        """One rule change (ModifyRule); transient AWS errors are retried, anything else raised."""
        from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

        @retry(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(5),
            wait=wait_exponential(multiplier=0.1, max=2),
            reraise=True,
        )
        def change() -> None:
            self.elb.set_weights(listener_arn, weights)

        change()
        self.events.emit(
            "weights_changed",
            listener=self._listeners.get(listener_arn, "production"),
            weights={self.version_of(arn): weight for arn, weight in weights.items()},
        )

    def version_of(self, target_group_arn: str) -> str:
        """The version a target group serves (its fleet's tag), else the group's name."""
        found = self._versions.get(target_group_arn)
        parts = target_group_arn.rsplit(":", 1)[-1].split("/")
        return found or (parts[1] if len(parts) > 1 else target_group_arn)

    def switch_or_escalate(
        self, infra: Infra, weights: dict[str, int], record: ReleaseRecord, doing: str
    ) -> None:
        """A listener change that must happen; if it cannot, a human must step in (exit 4)."""
        try:
            self.set_weights(infra.listener_arn, weights)
        except (ClientError, BotoCoreError) as exc:
            self.record(
                record.finished(
                    Outcome.FAILED, self.stamp(), f"needs a human: {doing} failed: {exc}"
                )
            )
            raise NeedsHuman(
                f"{doing} failed: {exc}. The listener may still send traffic to "
                f"{record.fleet_stack or 'the new fleet'}; run `deployer status`, then "
                "`deployer abort` (or `deployer rollback`) once AWS answers."
            ) from None

    def delete_fleet(self, stack_name: str, wait: bool = True) -> None:
        stack = self.cfn.describe(stack_name)
        if stack is not None:
            self.cfn.delete(stack.stack_id)
            if wait:
                self.cfn.wait_deleted(stack.stack_id, STACK_DEADLINE_S)

    def put_aside(self, fleet: Fleet, wait: bool = True) -> str:
        """A green fleet that failed: scale it to zero (its stack kept to look at until the
        next release or `deployer gc` deletes it) or delete it now (strategy.on_failure).
        """
        try:
            if self.spec.strategy.on_failure == "delete":
                self.report(f"cleanup: deleting {fleet.stack_name}")
                self.delete_fleet(fleet.stack_name, wait)
            elif fleet.asg_name:
                self.report(
                    f"cleanup: scaling {fleet.stack_name} to zero; its stack stays to look at "
                    "until the next release or `deployer gc` deletes it"
                )
                self.asg.scale_to_zero(fleet.asg_name)
        except (ClientError, BotoCoreError, StackFailed, PollTimeout) as exc:
            return f"; putting {fleet.stack_name} aside failed: {exc}"
        return ""

    def retire(self, live: LiveState, doomed: list[Fleet]) -> str:
        """Delete fleets no listener routes to. Returns what failed, or ''."""
        problems = []
        for fleet in doomed:
            if fleet.target_group_arn in live.weights:
                continue  # still in the listener's forward config: never delete a routed group
            self.report(f"retire: deleting {fleet.stack_name} ({fleet.version})")
            try:
                self.delete_fleet(fleet.stack_name)
            except (ClientError, BotoCoreError, StackFailed, PollTimeout) as exc:
                problems.append(f"{fleet.stack_name}: {exc}")
        return "; ".join(problems)

    # ---- helpers -------------------------------------------------------------------------

    def ec2_in(self, region: str) -> Ec2:
        return (
            self.ec2
            if region == self.runtime.aws.region
            else Ec2(self.runtime.aws.for_region(region), self.poller)
        )

    @property
    def artifact_bucket(self) -> str:
        return f"deployer-artifacts-{self.account}-{self.runtime.aws.region}"

    def check_reachable(self) -> None:
        """AWS answers and takes our credentials (exit 5 if not); records the account."""
        with unreachable_as_error(f"reach AWS ({self.runtime.description})"):
            self.account = self.runtime.aws.account_id()

    def settings_digest(self) -> str:
        """A digest of the environment's settings (SSM), applied to instances at boot."""
        from deployer.ops.settings import digest, settings_path

        return digest(self.ssm.settings(settings_path(self)))

    def alarm_names(self) -> list[str]:
        """The CloudWatch alarms every gate evaluation reads."""
        return list(self.spec.gates.alarms)

    def tags(self) -> dict[str, str]:
        return {"deployer:app": self.names.app, "deployer:environment": self.names.environment}

    def stamp(self) -> str:
        return self.now().strftime("%Y-%m-%dT%H:%M:%SZ")

    def _retried(self, operation: str, error: str, attempt: int) -> None:
        self.events.emit("aws_retry", operation=operation, error=error, attempt=attempt)

    @contextmanager
    def timed(self, phase: str, name: str = "") -> Iterator[None]:
        """Time a phase; a phase run several times (traffic steps) adds up. Each run of it
        is a phase_started and a phase_finished event.
        """
        started, wall = time.monotonic(), time.time()
        name = name or phase
        self.events.emit("phase_started", phase=phase, name=name)
        outcome = "failed"
        try:
            yield
            outcome = "done"
        finally:
            took = time.monotonic() - started
            self.phase_seconds[phase] = round(self.phase_seconds.get(phase, 0.0) + took, 3)
            first = self.phase_spans.get(phase, (wall, wall))[0]
            self.phase_spans[phase] = (first, time.time())
            self.events.emit(
                "phase_finished", phase=phase, name=name, seconds=round(took, 3), outcome=outcome
            )
