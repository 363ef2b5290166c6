"""The engine: the adapters wired for one app/environment, and the owners of what a use case
acts on:

- records: the journal and the lock that fences it (deployer.release.records);
- traffic: listener weights (deployer.release.traffic);
- stacks: the network and service stacks (deployer.infra.specs);
- fleets: observe, retire, put aside (deployer.release.fleet_state).

The use cases live in deployer.release.loop (release) and deployer.ops (rollback, abort, gc,
status, history, plan). They re-read AWS at every step rather than trusting memory.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from deployer.aws.autoscaling import AutoScaling
from deployer.aws.cloudformation import CloudFormation
from deployer.aws.cloudwatch import CloudWatch
from deployer.aws.dynamodb import Journal
from deployer.aws.ec2 import Ec2
from deployer.aws.elbv2 import Elbv2
from deployer.aws.lease_lock import LeaseLock
from deployer.aws.poller import Poller, WaitStats
from deployer.aws.s3 import S3
from deployer.aws.session import unreachable_as_error
from deployer.aws.ssm import Ssm
from deployer.config.loading import LoadedConfig
from deployer.core.metrics import FLEET_ALARM_WINDOW_S
from deployer.core.model import Actor, ReleaseRecord
from deployer.core.names import Names
from deployer.core.settings import settings_digest
from deployer.infra.specs import EnvironmentStacks
from deployer.output.events import Events
from deployer.release.fleet_state import Fleets
from deployer.release.locking import LockClient
from deployer.release.records import Records
from deployer.release.traffic import Traffic
from deployer.target import Runtime

if TYPE_CHECKING:
    from deployer.bake.baker import Baker

Report = Callable[[str], None]
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
        self.names = Names(self.spec.app, self.spec.environment)
        aws = runtime.aws
        self.cfn = CloudFormation(
            aws, poller, on_event=report, role_arn=loaded.spec.cloudformation.role_arn
        )
        self.ec2 = Ec2(aws, poller)
        service = loaded.spec.service
        self.elb = Elbv2(
            aws,
            priority=service.rule_priority,
            owns_listeners=not service.own,
            tags=self.tags(),
        )
        self.asg = AutoScaling(aws)
        self.s3 = S3(aws, owner=lambda: self.account)  # ExpectedBucketOwner
        self.cloudwatch = CloudWatch(aws)
        self.journal = Journal(aws, poller, self.names.scope)
        self.lock = LockClient(
            LeaseLock(aws, self.names.scope), str(self.actor), self.spec.lock.lease_seconds, report
        )
        self.ssm = Ssm(aws)
        self.traffic = Traffic(self.elb, self.events)
        self.records = Records(
            aws,
            self.journal,
            self.lock,
            self.names,
            self.actor,
            self.events,
            self.now,
            self.stamp,
            self.traffic.labelled,
            self.spec.lock.lease_seconds,
            report,
        )
        self.records.on_write = lambda record: self.on_phase(record)
        self.stacks = EnvironmentStacks(
            self.spec,
            self.names,
            self.cfn,
            self.elb,
            loaded.base_dir / "cloudformation",
            lambda: self.artifact_bucket if self.account else "",
            runtime.caller_cidr,
            self.traffic.seen,
            report,
        )
        self.fleets = Fleets(
            self.names, self.cfn, self.asg, self.traffic, self.spec.strategy.on_failure, report
        )
        self.baker_deadline_s = BAKE_DEADLINE_S
        self.alarm_window_s = FLEET_ALARM_WINDOW_S  # the gating alarms' longest window
        self.templates_dir = self.stacks.templates_dir
        self.phase_seconds: dict[str, float] = {}
        self.waits: list[WaitStats] = []
        poller.on_wait = self.waits.append
        poller.count_calls = lambda: sum(aws.calls.values())
        self.account = ""
        self.gate_failed_at: float | None = None  # when a gate failure was detected (bench)
        self.on_phase: Callable[[ReleaseRecord], None] = lambda _record: None
        self.allow_short_credentials = False
        self.detach = False  # --detach: a release that runs in AWS is left running

    @cached_property
    def baker(self) -> Baker:
        """The bake's edges (ansible-runner, Fabric, keys): imported when a command bakes, so
        that `status` and a locked release never load them.
        """
        from deployer.bake.baker import Baker

        return Baker(
            self.ec2_in,
            self.ssm,
            self.s3,
            self.runtime.reach,
            lambda key: self.records.bake_lock(key, self.baker_deadline_s),
            self.records.bake_in_progress,
            self.report,
        )

    @property
    def replace_failed(self) -> bool:
        """--replace-failed: delete failed network/service stacks before making them again."""
        return self.stacks.replace_failed

    @replace_failed.setter
    def replace_failed(self, value: bool) -> None:
        self.stacks.replace_failed = value

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
        return settings_digest(self.ssm.settings(self.names.settings_path))

    def alarm_names(self) -> list[str]:
        """The CloudWatch alarms every gate evaluation reads."""
        return list(self.spec.gates.alarms)

    def tags(self) -> dict[str, str]:
        return self.names.tags

    def stamp(self) -> str:
        return self.now().strftime("%Y-%m-%dT%H:%M:%SZ")

    def _retried(self, operation: str, error: str, attempt: int) -> None:
        self.events.emit("aws_retry", operation=operation, error=error, attempt=attempt)

    @contextmanager
    def timed(self, phase: str, name: str = "") -> Iterator[None]:
        """Time a phase; a phase run several times (traffic steps) adds up. Each run of it
        is a phase_started and a phase_finished event.
        """
        started, cpu = time.monotonic(), time.process_time()
        name = name or phase
        self.events.emit("phase_started", phase=phase, name=name)
        outcome = "failed"
        try:
            yield
            outcome = "done"
        finally:
            took = time.monotonic() - started
            self.phase_seconds[phase] = round(self.phase_seconds.get(phase, 0.0) + took, 3)
            self.events.emit(
                "phase_finished",
                phase=phase,
                name=name,
                seconds=round(took, 3),
                cpu_s=round(time.process_time() - cpu, 3),
                outcome=outcome,
            )
