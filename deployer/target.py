"""Where deployer points: the embedded sandbox or a real AWS region. One code path for both;
only the endpoint, the credentials, the public URL and how a builder is reached differ.

The region is resolved here, not in the config (which holds only what deployer.yaml
declares): the sandbox's one region, or `target.region`, else the environment's, else the
profile's, as AWS's SDKs take it (deployer.aws.identity).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer.aws.ec2 import Ec2
from deployer.aws.identity import REGION_SOURCES, resolve
from deployer.aws.poller import Poll, Poller
from deployer.aws.session import AwsContext, make_context
from deployer.config.loading import LoadedConfig
from deployer.config.target import AwsTarget
from deployer.errors import BakeFailed, ConfigError, Unreachable
from deployer.sandbox.layout import REGION as SANDBOX_REGION

if TYPE_CHECKING:
    from deployer.bake.access import TemporaryAccess
    from deployer.bake.runner import BuilderAccess

# The bake's edges (keys, pinning, ansible-runner) are imported when a builder is reached:
# commands that never bake (`status`, a locked release) never load them.
Reach = Callable[[dict[str, Any], "TemporaryAccess"], "BuilderAccess"]


@dataclass(frozen=True)
class Placement:
    """Where a config's target acts: its region, the regions its image must exist in (the
    bake region first), and for AWS the profile the session uses (None: the default chain)
    and why a configured one was set aside.
    """

    kind: str  # "sandbox" or "aws"
    region: str
    image_regions: tuple[str, ...]
    profile: str | None = None
    warning: str = ""

    @property
    def label(self) -> str:
        """The target as a run's events name it: "sandbox" or "aws <region>"."""
        return f"aws {self.region}" if self.kind == "aws" else "sandbox"


def placement(loaded: LoadedConfig) -> Placement:
    """Resolve the target's region; a missing or contradicted one is a ConfigError naming the
    config file (exit 2, before anything starts). No call to AWS: the region comes from the
    file, the environment or the profile (~/.aws/config).
    """
    target = loaded.spec.target
    name = str(loaded.path)
    if not isinstance(target, AwsTarget):
        return Placement("sandbox", SANDBOX_REGION, _image_regions(loaded, SANDBOX_REGION))
    identity = resolve(target.region, target.profile)
    if identity.region is None:
        raise ConfigError(name, "target.region", f"no AWS region: set {REGION_SOURCES}")
    return Placement(
        "aws",
        identity.region,
        _image_regions(loaded, identity.region),
        identity.profile,
        identity.warning,
    )


def _image_regions(loaded: LoadedConfig, region: str) -> tuple[str, ...]:
    """`regions:`, whose first must be the target's (the image is baked there), or the
    target's region alone.
    """
    regions = loaded.spec.regions
    if regions and regions[0] != region:
        raise ConfigError(
            str(loaded.path),
            "(top level)",  # as when the model checked it: the message stays the same
            f"regions: the first region ({regions[0]}) is where the image is baked and "
            f"must be the target's ({region})",
        )
    return regions or (region,)


@dataclass
class Runtime:
    kind: str  # "sandbox" or "aws"
    aws: AwsContext
    image_regions: tuple[str, ...]  # where the image must exist, the bake region first
    url_for: Callable[[str, int], str]
    reach: Reach  # onto a running builder, through its temporary access
    source_cidr: Callable[[], str]  # who may reach a builder on port 22
    description: str
    # Real seconds per second of CloudWatch's clock: 1 on AWS; the sandbox runs its minutes
    # faster (DEPLOYER_SANDBOX_TIME_SCALE), and the gates wait on AWS's durations through it.
    cloudwatch_scale: float = 1.0

    def aws_seconds(self, modelled_s: float) -> float:
        """An AWS duration (a metric period, a publication delay) in real seconds here."""
        return modelled_s * self.cloudwatch_scale

    # This machine's address as the load balancer sees it: who may reach the test listener.
    caller_cidr: Callable[[], str] = lambda: "127.0.0.1/32"


def open_target(
    loaded: LoadedConfig,
    workdir: Path,
    poller: Poller,
    report: Callable[[str], None],
    start_sandbox: bool = True,
) -> Runtime:
    place = placement(loaded)
    if place.kind == "aws":
        return _aws(loaded, place, poller, report)
    return _sandbox(loaded, place, workdir, poller, report, start_sandbox)


def _aws(
    loaded: LoadedConfig, place: Placement, poller: Poller, report: Callable[[str], None]
) -> Runtime:
    if place.warning:
        report(f"warning: {place.warning}")
    region = place.region
    aws = make_context(region, place.profile)
    ssh = loaded.spec.bake.ssh

    def reach(instance: dict[str, Any], access: TemporaryAccess) -> BuilderAccess:
        from deployer.bake.pinning import pin_host_keys
        from deployer.bake.runner import BuilderAccess
        from deployer.bake.ssh import wait_for_ssh  # Fabric and paramiko: only for a bake

        instance_id = instance["InstanceId"]
        address = instance.get("PublicIpAddress") or instance.get("PrivateIpAddress", "")
        pin_host_keys(Ec2(aws, poller), instance_id, address, 22, access.known_hosts, poller)
        builder = BuilderAccess(
            host=address,
            connection="ssh",
            user=ssh.user,
            private_key_file=str(access.private_key_file),
            known_hosts=str(access.known_hosts),
            name=instance_id,
        )
        wait_for_ssh(builder, poller)
        return builder

    def source_cidr() -> str:
        return _public_cidr(ssh.public_ip_url) if ssh.source_cidr == "auto" else ssh.source_cidr

    return Runtime(
        kind="aws",
        aws=aws,
        image_regions=place.image_regions,
        url_for=aws_url,
        reach=reach,
        source_cidr=source_cidr,
        caller_cidr=lambda: _public_cidr(ssh.public_ip_url),
        description=f"aws {region}" + (f" (profile {place.profile})" if place.profile else ""),
    )


def aws_url(dns: str, port: int) -> str:
    """The load balancer's URL: HTTPS on 443 (with a certificate), else HTTP."""
    if port == 443:
        return f"https://{dns}/"
    return f"http://{dns}/" if port == 80 else f"http://{dns}:{port}/"


def _sandbox(
    loaded: LoadedConfig,
    place: Placement,
    workdir: Path,
    poller: Poller,
    report: Callable[[str], None],
    start: bool,
) -> Runtime:
    """The sandbox; `start` starts it with the profile DEPLOYER_SANDBOX_PROFILE names."""
    from deployer.sandbox import control  # only the sandbox target needs moto installed
    from deployer.sandbox.layout import CREDENTIALS, Layout

    layout = Layout.for_workdir(workdir)
    if start:
        state, started = control.up(layout)
        if started:
            report(
                f"sandbox: started at {state.endpoint}, profile {state.profile} "
                f"(state in {layout.root})"
            )
    else:
        found = control.status(layout)
        if found is None:
            raise Unreachable("the sandbox is not running (start it with `deployer sandbox up`)")
        state = found
    aws = make_context(state.region, endpoint_url=state.endpoint, credentials=CREDENTIALS)
    ssh = loaded.spec.bake.ssh

    def url_for(dns: str, port: int) -> str:
        def check() -> Poll[str]:
            url = control.front_url(layout, dns, port)
            return Poll(url is not None, "front not yet up", url)

        return poller.until(f"the sandbox front for {dns}:{port}", check, 10)

    def reach(instance: dict[str, Any], access: TemporaryAccess) -> BuilderAccess:
        from deployer.bake.pinning import pin_host_keys
        from deployer.bake.runner import BuilderAccess

        """The builder's directory. Its host key is still pinned from its console, as on AWS:
        the key the host holds must be the one the API printed.
        """
        instance_id = instance["InstanceId"]

        def check() -> Poll[dict[str, str]]:
            host = control.host_of(layout, instance_id)
            return Poll(host is not None, "host not booted", host)

        # A host boots for as long as an instance does on AWS (scaled): wait like for SSH.
        host = poller.until(f"sandbox host {instance_id} to boot", check, 600)
        ec2 = Ec2(aws, poller)
        keys = pin_host_keys(ec2, instance_id, host["ip"], 22, access.known_hosts, poller)
        held = Path(host["root"]) / "etc/ssh/ssh_host_ed25519_key.pub"
        if held.is_file() and " ".join(held.read_text().split()[:2]) not in keys:
            raise BakeFailed(f"bake failed: {instance_id} holds a host key not on its console")
        return BuilderAccess(
            host=instance_id,
            connection="local",
            root=host["root"],
            user=ssh.user,
            sandbox=True,
            name=instance_id,
        )

    def source_cidr() -> str:
        return "127.0.0.1/32" if ssh.source_cidr == "auto" else ssh.source_cidr

    return Runtime(
        kind="sandbox",
        aws=aws,
        image_regions=place.image_regions,
        url_for=url_for,
        reach=reach,
        source_cidr=source_cidr,
        description=f"sandbox at {state.endpoint} (profile {state.profile})",
        cloudwatch_scale=state.cloudwatch_time_scale or state.time_scale,
    )


def _public_cidr(url: str) -> str:
    from deployer.bake.access import public_cidr

    return public_cidr(url)
