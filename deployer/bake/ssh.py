"""The Fabric edge: wait until a new EC2 builder accepts SSH and has finished cloud-init."""

from __future__ import annotations

from fabric import Connection
from paramiko.ssh_exception import NoValidConnectionsError, SSHException

from deployer.aws.poller import Poll, Poller
from deployer.bake.runner import BuilderAccess


def connection_for(access: BuilderAccess, timeout_s: float = 10) -> Connection:
    return Connection(
        host=access.host,
        user=access.user,
        port=access.port,
        connect_timeout=timeout_s,
        connect_kwargs={
            "key_filename": access.private_key_file,
            "allow_agent": False,
            "look_for_keys": False,
        },
    )


def wait_for_ssh(access: BuilderAccess, poller: Poller, deadline_s: float = 300) -> None:
    """Poll until `ssh builder true` works, then wait for cloud-init to finish."""

    def check() -> Poll[None]:
        try:
            with connection_for(access) as connection:
                connection.run("true", hide=True, in_stream=False)
            return Poll(True, "ssh ready")
        except (NoValidConnectionsError, SSHException, TimeoutError, OSError) as exc:
            return Poll(False, f"ssh not ready: {type(exc).__name__}")

    poller.until(f"ssh on {access.host}:{access.port}", check, deadline_s)
    with connection_for(access) as connection:
        # Absent on images without cloud-init; `|| true` keeps those working.
        connection.run(
            "command -v cloud-init >/dev/null && cloud-init status --wait >/dev/null || true",
            hide=True,
            in_stream=False,
            warn=True,
        )
