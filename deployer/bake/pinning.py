"""Pinning a builder's SSH host key: read it from the builder's console output (cloud-init
prints it at first boot), waiting as long as AWS needs, and keep it in a known_hosts file
that holds only that key. SSH (Fabric and Ansible) then refuses any other key.
"""

from __future__ import annotations

from pathlib import Path

from deployer.aws.ec2 import Ec2
from deployer.aws.poller import Poll, Poller
from deployer.core.hostkeys import host_keys_from_console, known_hosts

CONSOLE_DEADLINE_S = 1200  # GetConsoleOutput can lag a boot by minutes


def pin_host_keys(
    ec2: Ec2, instance_id: str, host: str, port: int, path: Path, poller: Poller
) -> list[str]:
    def check() -> Poll[list[str]]:
        keys = host_keys_from_console(ec2.console_output(instance_id))
        return Poll(bool(keys), "no host keys on its console yet", keys)

    keys = poller.until(f"the host key of {instance_id} on its console", check, CONSOLE_DEADLINE_S)
    path.write_text(known_hosts(host, port, keys))
    return keys
