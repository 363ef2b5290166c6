"""Where deployer points: the embedded sandbox or a real AWS region. One code path for both;
only the endpoint, the credentials, the public URL and how a builder is reached differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer.aws.poller import Poll, Poller
from deployer.aws.session import AwsContext, make_context
from deployer.bake.runner import BuilderAccess
from deployer.config import AwsTarget, LoadedConfig
from deployer.errors import Unreachable


@dataclass
class Runtime:
    kind: str  # "sandbox" or "aws"
    aws: AwsContext
    url_for: Callable[[str, int], str]
    access_for: Callable[[dict[str, Any]], BuilderAccess]
    description: str


def open_target(
    loaded: LoadedConfig,
    workdir: Path,
    poller: Poller,
    report: Callable[[str], None],
    start_sandbox: bool = True,
) -> Runtime:
    target = loaded.spec.target
    if isinstance(target, AwsTarget):
        return _aws(loaded, target, poller)
    return _sandbox(workdir, poller, report, start_sandbox)


def _aws(loaded: LoadedConfig, target: AwsTarget, poller: Poller) -> Runtime:
    aws = make_context(target.region, target.profile)
    ssh = loaded.spec.bake.ssh
    assert ssh is not None  # the config model requires it for target kind aws

    def access_for(instance: dict[str, Any]) -> BuilderAccess:
        from deployer.bake.ssh import wait_for_ssh  # Fabric and paramiko: only for a bake

        address = instance.get("PublicIpAddress") or instance.get("PrivateIpAddress", "")
        access = BuilderAccess(
            host=address,
            connection="ssh",
            user=ssh.user,
            private_key_file=str(loaded.resolve(ssh.private_key_file)),
        )
        wait_for_ssh(access, poller)
        return access

    return Runtime(
        kind="aws",
        aws=aws,
        url_for=lambda dns, port: f"http://{dns}/" if port == 80 else f"http://{dns}:{port}/",
        access_for=access_for,
        description=f"aws {target.region}"
        + (f" (profile {target.profile})" if target.profile else ""),
    )


def _sandbox(workdir: Path, poller: Poller, report: Callable[[str], None], start: bool) -> Runtime:
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

    def url_for(dns: str, port: int) -> str:
        def check() -> Poll[str]:
            url = control.front_url(layout, dns, port)
            return Poll(url is not None, "front not yet up", url)

        return poller.until(f"the sandbox front for {dns}:{port}", check, 10)

    def access_for(instance: dict[str, Any]) -> BuilderAccess:
        instance_id = instance["InstanceId"]

        def check() -> Poll[dict[str, str]]:
            host = control.host_of(layout, instance_id)
            return Poll(host is not None, "host not booted", host)

        # A host boots for as long as an instance does on AWS (scaled): wait like for SSH.
        host = poller.until(f"sandbox host {instance_id} to boot", check, 600)
        return BuilderAccess(host=instance_id, connection="local", root=host["root"], sandbox=True)

    return Runtime(
        kind="sandbox",
        aws=aws,
        url_for=url_for,
        access_for=access_for,
        description=f"sandbox at {state.endpoint} (profile {state.profile})",
    )
