"""The Fabric edge: wait until a new EC2 builder accepts SSH, with its host key pinned, and
has finished cloud-init. A builder that presents another host key than the one it printed on
its console is refused at once, naming it.
"""

from __future__ import annotations

import paramiko
from fabric import Connection
from paramiko.ssh_exception import BadHostKeyException, NoValidConnectionsError, SSHException

from deployer.aws.poller import Poll, Poller
from deployer.bake.runner import BuilderAccess
from deployer.errors import BakeFailed


def connection_for(access: BuilderAccess, timeout_s: float = 10) -> Connection:
    connection = Connection(
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
    if access.known_hosts:
        # Fabric accepts unknown host keys; we know the one key this builder may have.
        client = paramiko.SSHClient()
        client.load_host_keys(access.known_hosts)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        connection.client = client
    return connection


def wait_for_ssh(access: BuilderAccess, poller: Poller, deadline_s: float = 300) -> None:
    """Poll until `ssh builder true` works, then wait for cloud-init to finish."""

    def check() -> Poll[None]:
        try:
            with connection_for(access) as connection:
                connection.run("true", hide=True, in_stream=False)
            return Poll(True, "ssh ready")
        except BadHostKeyException as exc:
            raise BakeFailed(
                f"bake failed: {access.name} ({access.host}) presented a host key that is not "
                f"the one on its console ({exc.key.get_name()} "
                f"{exc.key.fingerprint}); refusing to connect"
            ) from None
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
