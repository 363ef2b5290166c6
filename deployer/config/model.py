"""deployer.yaml: pydantic models (extra="forbid"), loading with file/field/reason errors.

Relative paths in the file (artifact source, playbook, templates) are resolved against the
directory that holds the file, so `deployer -c path/to/deployer.yaml` works from anywhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deployer.errors import ConfigError

# Lower-case words joined by single hyphens: names of stacks and target groups derive from it,
# and ELBv2 refuses "--" and a trailing "-" in a target group's name.
NAME_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
NAME_MAX = 20
DEFAULT_BASE_AMI = (
    "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
)
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SandboxTarget(Strict):
    kind: Literal["sandbox"] = "sandbox"


REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d$"
SANDBOX_REGION = "us-east-1"  # the sandbox's one region (deployer.sandbox.layout.REGION)


class AwsTarget(Strict):
    kind: Literal["aws"]
    region: str | None = Field(
        default=None,
        pattern=REGION_PATTERN,
        description="Default: AWS_REGION, else AWS_DEFAULT_REGION, else the profile's region.",
    )
    profile: str | None = Field(
        default=None,
        description="Ignored (with a warning) when the environment holds credentials.",
    )


Target = Annotated[SandboxTarget | AwsTarget, Field(discriminator="kind")]


class Artifact(Strict):
    source: str = Field(
        description="A local directory (packaged and uploaded to S3 at release time) "
        "or an s3://bucket/key.tar.gz URL."
    )

    @field_validator("source")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a directory or an s3:// URL")
        return value


class Instance(Strict):
    type: str = Field(default="t3.micro", pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
    port: int = Field(default=8080, ge=1024, le=65535)
    volume_gb: int | None = Field(
        default=None,
        ge=1,
        le=16384,
        description="The root volume (gp3, encrypted) in GiB. Default: the image's own size.",
    )
    kms_key_id: str | None = Field(
        default=None,
        pattern=r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[A-Za-z0-9/_-]+|"
        r"alias/[A-Za-z0-9/_-]+|[0-9a-f-]{36}|mrk-[0-9a-f]{32})$",
        description="The KMS key that encrypts the root volume. Default: the account's EBS key.",
    )


class Capacity(Strict):
    min: int = Field(default=2, ge=0, le=100)
    desired: int = Field(default=2, ge=1, le=100)
    max: int = Field(default=4, ge=1, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Capacity:
        if not self.min <= self.desired <= self.max:
            raise ValueError(
                f"needs min <= desired <= max, got {self.min}/{self.desired}/{self.max}"
            )
        return self


class HealthCheck(Strict):
    path: str = Field(default="/healthz", pattern=r"^/[\x21-\x7e]*$")
    interval_seconds: int = Field(default=5, ge=5, le=300)
    timeout_seconds: int = Field(default=3, ge=2, le=120)
    healthy_threshold: int = Field(default=2, ge=2, le=10)
    unhealthy_threshold: int = Field(default=2, ge=2, le=10)
    deadline_seconds: int = Field(default=300, ge=10, le=3600)
    grace_seconds: int = Field(
        default=300,
        ge=0,
        le=7200,
        description="How long a new instance may fail the load balancer's health check before "
        "Auto Scaling replaces it (the group's HealthCheckGracePeriod).",
    )

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> HealthCheck:
        if self.timeout_seconds >= self.interval_seconds:
            raise ValueError("timeout_seconds must be less than interval_seconds (as on ELBv2)")
        return self


CIDR_PATTERN = r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/\d{1,2}$"


class Ssh(Strict):
    """How deployer reaches a builder on AWS: SSH with a key pair and a security group made
    for that bake alone, and the builder's host key pinned from its console output.
    """

    user: str = Field(default="ec2-user", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    source_cidr: str = Field(
        default="auto",
        description="Who may reach the builder on port 22: a CIDR, or auto (this machine's "
        "public address, asked of public_ip_url).",
    )
    public_ip_url: str = Field(
        default="https://checkip.amazonaws.com",
        pattern=r"^https?://",
        description="Answers this machine's public IPv4 address (for source_cidr: auto).",
    )

    @field_validator("source_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        if value != "auto" and not re.match(CIDR_PATTERN, value):
            raise ValueError(f"'{value}' is neither auto nor a CIDR like 203.0.113.7/32")
        return value


class Bake(Strict):
    base_ami: str = Field(
        default=DEFAULT_BASE_AMI,
        pattern=r"^(ami-[0-9a-f]{8,17}|resolve:ssm:/[\w./-]+)$",
        description="An AMI id or resolve:ssm:<public parameter>.",
    )
    playbook: str = "playbooks/bake.yml"
    instance_type: str = Field(default="t3.small", pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
    variables: dict[str, str | int | bool] = Field(
        default_factory=dict,
        description="Extra variables for the bake playbook; they are part of the bake key.",
    )
    ssh: Ssh = Field(default_factory=Ssh, description="How deployer reaches a builder on AWS.")
    max_builder_minutes: int = Field(
        default=60,
        ge=10,
        le=1440,
        description="A builder shuts itself down (and terminates) after this, whatever happens.",
    )
    keep_images: int = Field(
        default=5, ge=1, le=100, description="Images of this app that `gc` keeps."
    )
    keep_artifacts_days: int = Field(
        default=30, ge=1, le=3650, description="Artifacts in S3 expire after this many days."
    )


MAX_WEIGHT = 999  # ELBv2's limit for a target group weight in a forward action


class Strategy(Strict):
    kind: Literal["all_at_once", "canary"] = "all_at_once"
    steps: tuple[int, ...] = Field(
        default=(10, 50, 100),
        description="canary: green's weight at each step; blue gets (last step - weight). "
        "Integers 0-999, strictly ascending; the last step takes all traffic.",
    )
    bake_seconds: int = Field(default=60, ge=0, le=86400, description="How long each step holds.")
    test_listener_port: int = Field(
        default=8081, ge=1, le=65535, description="Carries no user traffic; green is checked here."
    )
    test_listener_cidr: str = Field(
        default="auto",
        description="Who may reach the test listener, where an unreleased build answers: auto "
        "(the address deployer runs from, asked of bake.ssh.public_ip_url) or a CIDR (your "
        "CI runners' egress, a VPN). A new address updates the service stack's rule.",
    )

    @field_validator("test_listener_cidr")
    @classmethod
    def _test_cidr(cls, value: str) -> str:
        if value != "auto" and not re.match(CIDR_PATTERN, value):
            raise ValueError(f"'{value}' is neither auto nor a CIDR like 203.0.113.7/32")
        if value.endswith("/0"):
            raise ValueError(f"'{value}' opens the test listener, an unreleased build, to all")
        return value

    on_failure: Literal["scale_to_zero", "delete"] = Field(
        default="scale_to_zero",
        description="What happens at once to a green fleet that failed a gate; the next "
        "release or `deployer gc` deletes it either way.",
    )
    watch_seconds: int = Field(
        default=0,
        ge=0,
        le=86400,
        description="After all traffic moved, keep evaluating every gate this long with the "
        "previous fleet warm at weight 0; a failure sends traffic back, as during a step.",
    )

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        if not steps:
            raise ValueError("needs at least one step")
        for weight in steps:
            if not 0 <= weight <= MAX_WEIGHT:
                raise ValueError(f"weight {weight} is outside 0-{MAX_WEIGHT} (the ELBv2 range)")
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)) or steps[-1] == 0:
            raise ValueError(f"must rise strictly to a last step above 0, got {list(steps)}")
        return steps


class HttpCheck(Strict):
    path: str = Field(default="/healthz", pattern=r"^/[\x21-\x7e]*$")
    expect_status: int = Field(default=200, ge=100, le=599)
    body_pattern: str | None = Field(
        default=None, description="A regular expression the body must contain."
    )
    latency_ms: int | None = Field(default=None, ge=1, le=60000)

    @field_validator("body_pattern")
    @classmethod
    def _regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return pattern


class DefaultAlarms(Strict):
    """The alarms every fleet stack makes on its own target group."""

    target_5xx_count: int = Field(
        default=5, ge=1, le=100000, description="5xx answers of green's targets per minute."
    )
    p99_seconds: float = Field(
        default=2.0, gt=0, le=60, description="p99 target response time over a minute."
    )
    unhealthy_hosts: int = Field(default=1, ge=1, le=100, description="Unhealthy targets.")


class MetricGates(Strict):
    """Green judged against blue from the load balancer's metrics (requests, target 5xx,
    target response time), on CloudWatch's clock. Blue is the baseline; a first release,
    with no blue, is held to absolute limits.
    """

    enabled: bool = True
    min_periods: int = Field(
        default=3,
        ge=1,
        le=60,
        description="Complete minute periods with requests a step needs before green can pass "
        "(a step holds until it has them, or for strategy.bake_seconds, whichever is longer).",
    )
    max_error_increase: float = Field(
        default=0.5,
        ge=0,
        le=100,
        description="Percentage points green's 5xx rate may exceed blue's before it can fail "
        "(it must also be significantly higher).",
    )
    max_latency_ratio: float = Field(
        default=1.5,
        ge=1,
        le=100,
        description="How many times slower than blue (per-period medians) green may be "
        "before it can fail (it must also be significantly slower).",
    )
    min_latency_increase_ms: int = Field(
        default=50,
        ge=0,
        le=60000,
        description="...and slower by at least this many milliseconds (a 1 ms app that takes "
        "2 ms is not slower for anyone).",
    )
    latency_statistic: Literal["Average", "p50", "p90", "p95", "p99"] = Field(
        default="p90", description="The per-period statistic of TargetResponseTime compared."
    )
    significance: float = Field(
        default=0.01, gt=0, le=0.2, description="The p-value below which a difference counts."
    )
    max_error_rate: float = Field(
        default=5.0,
        gt=0,
        le=100,
        description="With no previous fleet to compare with: the 5xx rate (percent) green "
        "must not be significantly above.",
    )
    max_latency_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="With no previous fleet to compare with: the median period's latency "
        "green must stay under.",
    )
    require_traffic: bool = Field(
        default=False,
        description="Fail a step that never gets enough requests to judge (default: say so "
        "and go on with the other gates).",
    )


class Gates(Strict):
    http: tuple[HttpCheck, ...] = Field(default_factory=lambda: (HttpCheck(),))
    metrics: MetricGates = Field(default_factory=MetricGates)
    alarms: tuple[str, ...] = Field(
        default=(),
        description="CloudWatch alarm names; any in ALARM fails the gate. Empty: the new "
        "fleet's own default alarms (5xx, p99 latency, unhealthy hosts).",
    )
    default_alarms: DefaultAlarms = Field(default_factory=DefaultAlarms)
    max_failures: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Failed observations a step tolerates before the gate fails.",
    )
    interval_seconds: float = Field(
        default=5,
        ge=0.1,
        le=300,
        description="How often gates are evaluated during waits and bake times.",
    )


class Lock(Strict):
    lease_seconds: int = Field(default=60, ge=3, le=3600)


class Verify(Strict):
    """The team's own checks: commands run on the machine running deployer, from the config
    file's folder, with DEPLOYER_URL, DEPLOYER_TEST_URL, DEPLOYER_VERSION,
    DEPLOYER_PREVIOUS_VERSION and DEPLOYER_STEP set. A non-zero exit or a timeout fails the
    release (exit 1, traffic back).
    """

    timeout_seconds: int = Field(default=300, ge=1, le=7200)
    before_traffic: tuple[str, ...] = Field(
        default=(),
        max_length=20,
        description="Against the test listener, after green passed its gates there and "
        "before any user traffic.",
    )
    after_step: tuple[str, ...] = Field(
        default=(),
        max_length=20,
        description="Against production, after each traffic step's hold.",
    )

    @field_validator("before_traffic", "after_step")
    @classmethod
    def _commands(cls, commands: tuple[str, ...]) -> tuple[str, ...]:
        import shlex

        for index, command in enumerate(commands):
            try:
                words = shlex.split(command)
            except ValueError as exc:
                raise ValueError(f"entry {index}: {exc}") from None
            if not words:
                raise ValueError(f"entry {index}: an empty command")
        return commands


def parse_duration(value: int | str) -> int:
    """Seconds from 3600, "3600", "90m", "1h" or "2d"."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    match = _DURATION.match(value.strip())
    if not match:
        raise ValueError(f"'{value}' is not a duration like 3600, 90m, 1h or 2d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class Network(Strict):
    cidr: str = Field(
        default="10.40.0.0/16",
        pattern=r"^\d{1,3}\.\d{1,3}\.0\.0/16$",
        description="The VPC's /16 (give each environment its own, so they can be peered).",
    )
    nat: Literal["single", "per_az"] = Field(
        default="single",
        description="One NAT gateway for the private subnets, or one per AZ (survives an AZ).",
    )

    vpc_id: str | None = Field(
        default=None,
        pattern=r"^vpc-[0-9a-f]{8,17}$",
        description="Bring your own network: a VPC made beforehand. deployer then makes no "
        "network stack; give public_subnet_ids and private_subnet_ids with it.",
    )
    public_subnet_ids: tuple[str, ...] = Field(
        default=(),
        description="Your subnets for the load balancer and the image builder: at least two "
        "AZs, each routing 0.0.0.0/0 to an internet gateway.",
    )
    private_subnet_ids: tuple[str, ...] = Field(
        default=(),
        description="Your subnets for the fleets (no public IPs): at least two AZs, each with "
        "a way out (a NAT gateway, or VPC endpoints for S3 and SSM).",
    )

    @field_validator("cidr")
    @classmethod
    def _octets(cls, cidr: str) -> str:
        if any(int(octet) > 255 for octet in cidr.split("/")[0].split(".")):
            raise ValueError(f"{cidr} is not an IPv4 network")
        return cidr

    @field_validator("public_subnet_ids", "private_subnet_ids")
    @classmethod
    def _subnets(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        for subnet in ids:
            if not re.match(r"^subnet-[0-9a-f]{8,17}$", subnet):
                raise ValueError(f"'{subnet}' is not a subnet id like subnet-0abc12345def67890")
        if len(set(ids)) != len(ids):
            raise ValueError(f"a subnet is given twice: {list(ids)}")
        return ids

    @model_validator(mode="after")
    def _own_or_ours(self) -> Network:
        given = {"public_subnet_ids", "private_subnet_ids"} & self.model_fields_set
        if self.vpc_id is None:
            if given:
                raise ValueError(f"{', '.join(sorted(given))} given without vpc_id")
            return self
        for field in ("public_subnet_ids", "private_subnet_ids"):
            if len(getattr(self, field)) < 2:
                raise ValueError(
                    f"{field}: with vpc_id, give at least two subnets (in two AZs or more)"
                )
        both = set(self.public_subnet_ids) & set(self.private_subnet_ids)
        if both:
            raise ValueError(f"{', '.join(sorted(both))} is both public and private")
        ours = {"cidr", "nat"} & self.model_fields_set
        if ours:
            raise ValueError(
                f"{', '.join(sorted(ours))} shape the network deployer makes; with vpc_id "
                "(your own network) leave them out"
            )
        return self

    @property
    def own(self) -> bool:
        """The operator's own VPC: deployer makes no network stack."""
        return self.vpc_id is not None

    def own_outputs(self) -> dict[str, str]:
        """The operator's network, in the network stack's output names."""
        return {
            "VpcId": self.vpc_id or "",
            "SubnetIds": ",".join(self.public_subnet_ids),
            "PrivateSubnetIds": ",".join(self.private_subnet_ids),
            "BuilderSubnetId": self.public_subnet_ids[0] if self.public_subnet_ids else "",
        }

    @property
    def prefix(self) -> str:
        return ".".join(self.cidr.split(".")[:2])


class Scaling(Strict):
    metric: Literal["cpu", "requests_per_target"] = Field(
        description="Target tracking on the group's average CPU (%) or on ALB requests per "
        "target (per minute)."
    )
    target: float = Field(gt=0, le=100000, description="The value the group keeps the metric at.")

    @model_validator(mode="after")
    def _cpu_is_a_percentage(self) -> Scaling:
        if self.metric == "cpu" and self.target > 100:
            raise ValueError(f"target: {self.target:g} is not a CPU percentage (1-100)")
        return self


class Tls(Strict):
    certificate_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$",
        description="An ACM certificate in the target's region: production is HTTPS on 443 "
        "and port 80 redirects to it.",
    )
    ssl_policy: str = Field(
        default="ELBSecurityPolicy-TLS13-1-2-2021-06",
        pattern=r"^ELBSecurityPolicy-[A-Za-z0-9-]+$",
        description="The listener's TLS policy (default: TLS 1.3 and 1.2 only).",
    )


class Alb(Strict):
    access_logs_bucket: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="An S3 bucket whose policy lets ELB deliver access logs to it.",
    )


LISTENER_ARN = (
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:listener/app/[A-Za-z0-9-]+/"
    r"[0-9a-f]+/[0-9a-f]+$"
)


class Service(Strict):
    listener_arn: str | None = Field(
        default=None,
        pattern=LISTENER_ARN,
        description="Bring your own load balancer: its production listener. deployer then "
        "makes no load balancer and manages only the weights, in a rule of its own "
        "(rule_priority); give test_listener_arn and network.vpc_id with it.",
    )
    test_listener_arn: str | None = Field(
        default=None,
        pattern=LISTENER_ARN,
        description="A listener of your load balancer that carries no user traffic; deployer "
        "checks green through it.",
    )
    rule_priority: int = Field(
        default=1,
        ge=1,
        le=50000,
        description="The priority of deployer's weights rule on both listeners (every path). "
        "Your rules of a lower number still match first.",
    )

    @model_validator(mode="after")
    def _both_listeners(self) -> Service:
        if (self.listener_arn is None) != (self.test_listener_arn is None):
            raise ValueError("give listener_arn and test_listener_arn together")
        if self.listener_arn is not None and self.listener_arn == self.test_listener_arn:
            raise ValueError("test_listener_arn must not be the production listener")
        return self

    @property
    def own(self) -> bool:
        """The operator's own load balancer: deployer makes none."""
        return self.listener_arn is not None


# What CloudWatch Logs accepts as a retention (PutRetentionPolicy, AWS::Logs::LogGroup).
LOG_RETENTION_DAYS: tuple[int, ...] = (
    *(1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731),
    *(1096, 1827, 2192, 2557, 2922, 3288, 3653),
)


class Logs(Strict):
    """The app/environment's log group (made by the service stack), which the instances'
    CloudWatch agent ships the app's output, the configure unit's log and cloud-init's to.
    """

    retention_days: int = Field(
        default=30,
        description="How long CloudWatch Logs keeps the lines: one of "
        + ", ".join(str(d) for d in LOG_RETENTION_DAYS)
        + ".",
    )
    kms_key_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$",
        description="A KMS key (its ARN) that encrypts the log group; its key policy must let "
        "logs.<region>.amazonaws.com use it. Default: CloudWatch Logs' own encryption.",
    )

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, days: int) -> int:
        if days not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"{days} is not a retention CloudWatch Logs offers: "
                + ", ".join(str(d) for d in LOG_RETENTION_DAYS)
            )
        return days


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

    @property
    def boundary_arn(self) -> str:
        """The instance role's boundary: given, or deployer-iam.yaml's beside its role."""
        if self.instance_role_boundary_arn:
            return self.instance_role_boundary_arn
        found = re.match(
            r"^arn:(?P<p>aws[a-z-]*):iam::(?P<a>\d{12}):role/deployer\.(?P<app>[a-z0-9-]+)"
            r"\.cloudformation$",
            self.role_arn or "",
        )
        if found is None:
            return ""
        policy = f"deployer.{found['app']}.instance-boundary"
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
    notify: tuple[str, ...] = Field(
        default=(),
        max_length=20,
        description="Apprise URLs told of a release's start, success and failure and of every "
        "rollback (slack://..., msteams://..., sns://..., json://host/path). `env:NAME` reads "
        "the URL from the environment variable NAME, so tokens stay out of the file.",
    )

    @field_validator("notify")
    @classmethod
    def _notify(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        if not entries:
            return entries
        from deployer.output.notify import invalid

        for index, entry in enumerate(entries):
            why = invalid(entry)
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

    @model_validator(mode="after")
    def _bake_region_first(self) -> DeployConfig:
        region = self.target_region
        if self.regions and self.regions[0] != region:
            raise ValueError(
                f"regions: the first region ({self.regions[0]}) is where the image is baked and "
                f"must be the target's ({region})"
            )
        return self

    @property
    def image_regions(self) -> tuple[str, ...]:
        """Where the image must exist: the bake region first."""
        return self.regions or (self.target_region,)

    @property
    def target_region(self) -> str:
        if isinstance(self.target, AwsTarget) and self.target.region:
            return self.target.region
        return SANDBOX_REGION


class LoadedConfig(BaseModel):
    """A validated config and the directory its relative paths are resolved against."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    path: Path
    spec: DeployConfig

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        candidate = Path(relative).expanduser()
        return candidate if candidate.is_absolute() else (self.base_dir / candidate).resolve()


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not str(p).startswith(("function-", "tagged-union["))]
    # Drop discriminator tags such as 'aws' in ('target', 'aws', 'region').
    if len(parts) >= 2 and parts[0] == "target" and parts[1] in ("aws", "sandbox"):
        parts.pop(1)
    return ".".join(parts) or "(top level)"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKey(key, seen[key], line)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first: int, again: int) -> None:
        super().__init__(f"{key!r} on lines {first} and {again}")
        self.key, self.first, self.again = key, first, again


def load_config(path: Path) -> LoadedConfig:
    """Read and validate deployer.yaml; every failure is a ConfigError naming file, field, why."""
    name = str(path)
    if not path.is_file():
        raise ConfigError(name, "", "file not found (pass -c PATH or run where deployer.yaml is)")
    try:
        text = path.read_text(encoding="utf-8")
        # bandit B506: _UniqueKeyLoader is a yaml.SafeLoader (no object construction)
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  # nosec B506
    except _DuplicateKey as dup:
        raise ConfigError(
            name,
            f"lines {dup.first} and {dup.again}",
            f"the key '{dup.key}' is given twice (YAML would silently keep the last one)",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(name, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(name, "", "must be a mapping of settings")
    _fill_region(name, raw)
    try:
        spec = DeployConfig.model_validate(raw)
    except ValidationError as exc:
        first, *rest = exc.errors()
        reason = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            reason = "unknown field"
        more = f" (and {len(rest)} more problem(s))" if rest else ""
        raise ConfigError(name, _field_path(first["loc"]), reason + more) from None
    return LoadedConfig(path=path.resolve(), spec=spec)


def _fill_region(name: str, raw: dict[str, Any]) -> None:
    """An AWS target without a region takes it as the SDKs do (deployer.aws.identity)."""
    target = raw.get("target")
    if not isinstance(target, dict) or target.get("kind") != "aws" or target.get("region"):
        return
    from deployer.aws.identity import REGION_SOURCES, resolve

    profile = target.get("profile") if isinstance(target.get("profile"), str) else None
    region = resolve(None, profile).region
    if region is None:
        raise ConfigError(name, "target.region", f"no AWS region: set {REGION_SOURCES}")
    raw["target"] = {**target, "region": region}


def json_schema() -> dict[str, Any]:
    return DeployConfig.model_json_schema()
