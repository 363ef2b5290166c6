"""Access to a builder, made for one bake and removed after it: an ed25519 key pair whose
private half only exists in a 0600 file in a private temporary directory, and a security
group that lets in port 22 from one CIDR (by default this machine's public address).

How deployer then gets onto the builder is the runtime's `reach`: SSH with the host key
pinned from the console on AWS (deployer.target), the host's directory in the sandbox. A
second transport (SSM Session Manager, EC2 Instance Connect Endpoint) is another `reach`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from deployer.aws.ec2 import Ec2
from deployer.bake.keys import new_ed25519, write_private
from deployer.bake.watchdog import ACCESS_DIR_PREFIX, watchdog_for
from deployer.errors import BadInput

ACCESS_ROLE = "bake-access"


def public_cidr(url: str, timeout_s: float = 5.0) -> str:
    """This machine's public IPv4 address as a /32, asked of `url` (it answers the address)."""
    try:
        # http(s) only: config validates the scheme (bandit B310)
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310  # nosec B310
            text = answer.read(100).decode(errors="replace").strip()
    except OSError as exc:
        raise BadInput(
            f"bake.ssh.public_ip_url: {url} did not answer ({exc}); set bake.ssh.source_cidr "
            "to the CIDR that reaches the builder"
        ) from None
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise BadInput(
            f"bake.ssh.public_ip_url: {url} answered {text[:40]!r}, not an IPv4 address"
        ) from None
    return f"{address}/32"


@dataclass
class TemporaryAccess:
    """The key pair and the security group of one bake, and where its private key lives."""

    ec2: Ec2
    name: str  # deployer-bake-<app>-<run>: the key pair's and the group's name
    vpc_id: str
    source_cidr: Callable[[], str]
    tags: Mapping[str, str]
    report: Callable[[str], None]
    directory: Path = field(init=False)
    public_key: str = field(init=False, default="")
    key_made: bool = field(init=False, default=False)
    group_id: str = field(init=False, default="")

    def __post_init__(self) -> None:
        # A private (0700) directory: the private key and the pinned host key live here.
        self.directory = Path(tempfile.mkdtemp(prefix=ACCESS_DIR_PREFIX))
        self._watchdog: subprocess.Popen[bytes] | None = None

    @property
    def private_key_file(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    def create(self) -> None:
        # If deployer is killed, its watchdog removes the private key (and ends the ssh
        # processes using it); a killed watchdog's directory goes with the next bake's.
        self._watchdog = watchdog_for(self.directory)
        private, self.public_key = new_ed25519(self.name)
        write_private(self.private_key_file, private)
        tags = {**self.tags, "deployer:role": ACCESS_ROLE, "Name": self.name}
        self.ec2.import_key_pair(self.name, self.public_key, tags)
        self.key_made = True
        cidr = self.source_cidr()
        self.group_id = self.ec2.create_ssh_group(self.name, self.vpc_id, cidr, tags)
        self.report(f"bake: temporary key pair and security group {self.name} (ssh from {cidr})")

    def remove(self, keep_group: bool = False) -> str:
        """Remove what `create` made (the security group later, with `keep_group`: EC2 frees
        it only once the builder is gone); what AWS still holds is left to `deployer gc`.
        """
        problems = []
        shutil.rmtree(self.directory, ignore_errors=True)  # the private key, first
        if self._watchdog is not None:
            self._watchdog.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watchdog.wait(timeout=5)
            self._watchdog = None
        if self.key_made:
            try:
                self.ec2.delete_key_pair(self.name)
                self.key_made = False
            except (ClientError, BotoCoreError) as exc:
                problems.append(f"key pair {self.name}: {exc}")
        if self.group_id and not keep_group:
            try:
                self.ec2.delete_security_group(self.group_id)
                self.group_id = ""
            except (ClientError, BotoCoreError) as exc:
                problems.append(f"security group {self.group_id}: {exc}")
        if problems:
            self.report(f"bake: left for `deployer gc`: {'; '.join(problems)}")
        return "; ".join(problems)
