"""A sandbox host's first boot, as cloud-init does it on EC2: a host key of its own, the key
pair's public key authorized, the per-instance state, the user data and its write_files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from deployer.bake.keys import new_ed25519, write_private
from deployer.sandbox import units

log = logging.getLogger("deployer.sandbox.hosts")


@dataclass(frozen=True)
class Launch:
    """What a running instance was launched with, as the data plane needs it."""

    image_id: str
    public_key: str = ""  # the key pair's public key: cloud-init authorizes it
    user_data: str = ""


HOST_KEY = Path("etc/ssh/ssh_host_ed25519_key")
CONFIGURE = Path("opt/deployer/configure/configure.yml")
BOOT_ENV = Path("etc/deployer/boot.env")
CLOUD_INSTANCE = Path("var/lib/cloud/instance")
DEFAULT_USER = "ec2-user"


def first_boot(root: Path, instance_id: str, launch: Launch) -> None:
    """What cloud-init does on an instance's first boot: a host key of its own (printed to
    the console), the key pair's public key authorized, the per-instance state and the user
    data recorded.
    """
    private, public = new_ed25519(f"root@{instance_id}")
    (root / HOST_KEY).parent.mkdir(parents=True, exist_ok=True)
    for old in (root / HOST_KEY).parent.glob("ssh_host_*"):
        old.unlink()
    write_private(root / HOST_KEY, private)
    (root / HOST_KEY).with_suffix(".pub").write_text(public + "\n")
    if launch.public_key:
        ssh_dir = root / "home" / DEFAULT_USER / ".ssh"
        ssh_dir.mkdir(parents=True, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(launch.public_key.strip() + "\n")
    state = root / CLOUD_INSTANCE
    state.mkdir(parents=True, exist_ok=True)
    (state / "instance-id").write_text(instance_id + "\n")
    (state / "user-data.txt").write_text(launch.user_data)
    write_cloud_config_files(root, launch.user_data)
    units.cloud_init_output(root, [" ".join(public.split()[:2])])


def write_cloud_config_files(root: Path, user_data: str) -> None:
    """cloud-config's write_files, under the host's root."""
    if not user_data.startswith("#cloud-config"):
        return
    try:
        document = yaml.safe_load(user_data) or {}
    except yaml.YAMLError:
        log.warning("user data is not valid cloud-config")
        return
    for item in document.get("write_files", []) or []:
        target = root / str(item.get("path", "")).lstrip("/")
        if not item.get("path"):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(str(item.get("content", "")))
