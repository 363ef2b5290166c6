"""deployer.yaml as a whole: the root model tying the sections together, with the checks that
span sections, and the settings of no section of their own (the lock, CloudFormation's role).

Each section lives in its own module: target, bake, fleet, network, strategy, observability.
Loading the file (and its errors naming file, field and reason) is deployer.config.loading.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from deployer.config.bake import Artifact, Bake
from deployer.config.base import NAME_MAX, NAME_PATTERN, REGION_PATTERN, Strict, parse_duration
from deployer.config.fleet import Capacity, HealthCheck, Instance, Scaling
from deployer.config.network import Alb, Network, Service, Tls
from deployer.config.observability import NOTIFY_MAX, Logs, notify_entry_problem
from deployer.config.strategy import Gates, Strategy, Verify
from deployer.config.target import SandboxTarget, Target


class Lock(Strict):
    lease_seconds: int = Field(default=60, ge=3, le=3600)


class CloudFormationSettings(Strict):
    role_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$",
        description="A service role the stacks run under (cloudformation/deployer-iam.yaml "
        "makes one): the deploy role then needs no rights on what the templates make, only "
        "iam:PassRole on this role.",
    )
    instance_role_boundary_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:iam::\d{12}:policy/[A-Za-z0-9+=,.@_/-]{1,512}$",
        description="The permissions boundary of the instance role the service stack makes "
        "(deployer-iam.yaml's InstanceRoleBoundaryArn; its service role makes roles only under "
        "it). Default: derived from role_arn when that is deployer-iam.yaml's.",
    )

    runner_role_boundary_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:iam::\d{12}:policy/[A-Za-z0-9+=,.@_/-]{1,512}$",
        description="The permissions boundary of the release state machine's role (executor: "
        "stepfunctions; deployer-iam.yaml's RunnerRoleBoundaryArn). Default: derived from "
        "role_arn when that is deployer-iam.yaml's.",
    )

    @property
    def boundary_arn(self) -> str:
        """The instance role's boundary: given, or deployer-iam.yaml's beside its role."""
        return self.instance_role_boundary_arn or self._beside_role("instance-boundary")

    @property
    def runner_boundary_arn(self) -> str:
        """The runner role's boundary: given, or deployer-iam.yaml's beside its role."""
        return self.runner_role_boundary_arn or self._beside_role("runner-boundary")

    def _beside_role(self, name: str) -> str:
        found = re.match(
            r"^arn:(?P<p>aws[a-z-]*):iam::(?P<a>\d{12}):role/deployer\.(?P<app>[a-z0-9-]+)"
            r"\.cloudformation$",
            self.role_arn or "",
        )
        if found is None:
            return ""
        policy = f"deployer.{found['app']}.{name}"
        return f"arn:{found['p']}:iam::{found['a']}:policy/{policy}"


class DeployConfig(Strict):
    app: str = Field(
        pattern=NAME_PATTERN,
        max_length=NAME_MAX,
        description="Lower-case words joined by single hyphens; used in stack names.",
    )
    environment: str = Field(default="default", pattern=NAME_PATTERN, max_length=NAME_MAX)
    target: Target = Field(default_factory=SandboxTarget)
    artifact: Artifact
    instance: Instance = Field(default_factory=Instance)
    capacity: Capacity = Field(default_factory=Capacity)
    azs: int = Field(default=2, ge=2, le=3, description="Availability Zones the fleet spans.")
    network: Network = Field(default_factory=Network)
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    rollback_window: int = Field(
        default=3600, description="Seconds (or 90m, 1h, 2d) the previous fleet stays warm."
    )
    bake: Bake = Field(default_factory=Bake)
    regions: tuple[str, ...] = Field(
        default=(),
        description="Regions the image is copied to; the first is where it is baked (the "
        "target's region). Default: the target's region alone.",
    )
    strategy: Strategy = Field(default_factory=Strategy)
    gates: Gates = Field(default_factory=Gates)
    verify: Verify = Field(default_factory=Verify)
    lock: Lock = Field(default_factory=Lock)
    scaling: Scaling | None = Field(
        default=None,
        description="Target-tracking scaling between capacity.min and capacity.max; every "
        "new fleet gets the same. Default: none (the group stays at its desired capacity).",
    )
    tls: Tls | None = None
    alb: Alb = Field(default_factory=Alb)
    cloudformation: CloudFormationSettings = Field(default_factory=CloudFormationSettings)
    logs: Logs = Field(default_factory=Logs)
    service: Service = Field(default_factory=Service)
    protected: bool = Field(
        default=False,
        description="Turn on the load balancer's deletion protection and the network and "
        "service stacks' termination protection.",
    )
    executor: Literal["local", "stepfunctions"] = Field(
        default="local",
        description="Who runs a release's traffic steps, gates, watch and restore: `local`, "
        "this process; `stepfunctions`, a Step Functions state machine (the runner stack), "
        "so that the release outlives the CI job. Override with --executor.",
    )
    notify: tuple[str, ...] = Field(
        default=(),
        max_length=NOTIFY_MAX,
        description="Apprise URLs told of a release's start, success and failure and of every "
        "rollback (slack://..., msteams://..., sns://..., json://host/path). `env:NAME` reads "
        "the URL from the environment variable NAME, so tokens stay out of the file.",
    )

    @field_validator("notify")
    @classmethod
    def _notify(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        for index, entry in enumerate(entries):
            why = notify_entry_problem(entry)
            if why:  # the URL itself is not echoed: it may hold a token
                raise ValueError(f"entry {index}: {why}")
        return entries

    @field_validator("regions")
    @classmethod
    def _regions(cls, regions: tuple[str, ...]) -> tuple[str, ...]:
        for region in regions:
            if not re.match(REGION_PATTERN, region):
                raise ValueError(f"'{region}' is not a region name like eu-west-1")
        if len(set(regions)) != len(regions):
            raise ValueError(f"a region is given twice: {list(regions)}")
        return regions

    @field_validator("rollback_window", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("must be seconds or a duration like 90m, 1h, 2d")
        return parse_duration(value)

    @model_validator(mode="after")
    def _final_hold_sees_a_gate(self) -> DeployConfig:
        if self.strategy.bake_seconds < self.gates.interval_seconds:
            raise ValueError(
                f"strategy.bake_seconds ({self.strategy.bake_seconds}) is shorter than one gate "
                f"interval (gates.interval_seconds {self.gates.interval_seconds:g}): the final "
                "step would take all traffic before a gate has looked at it"
            )
        return self

    @model_validator(mode="after")
    def _server_side_has_no_local_hooks(self) -> DeployConfig:
        problem = server_side_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _own_load_balancer(self) -> DeployConfig:
        if not self.service.own:
            return self
        if not self.network.own:
            raise ValueError(
                "service.listener_arn: your own load balancer needs your own network: give "
                "network.vpc_id (the load balancer's VPC) and its subnets"
            )
        if self.tls is not None or self.alb.access_logs_bucket:
            raise ValueError(
                "tls and alb shape the load balancer deployer makes; with service.listener_arn "
                "(your own) set them on yours"
            )
        return self


def server_side_problem(spec: DeployConfig) -> str:
    """Why `spec` cannot run server-side (executor: stepfunctions), or ''."""
    if spec.executor == "stepfunctions" and spec.verify.after_step:
        return (
            "verify.after_step: hooks run on this machine, and with executor: stepfunctions "
            "the traffic steps run in AWS, where they cannot; use verify.before_traffic, or "
            "executor: local"
        )
    return ""
