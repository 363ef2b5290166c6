"""The EC2 builder path: Ansible and Fabric over SSH, against a real sshd on loopback, with
the builder's host key pinned from what its console printed: the right key is accepted, any
other refused, by Fabric and by Ansible alike.

.ci/run installs openssh-server; these tests start and stop their own sshd. Without sshd they
skip on a developer's machine, and fail under CI (CI=true), where it must be installed.
"""

import getpass
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from deployer.aws.poller import Poller
from deployer.aws.s3 import S3
from deployer.bake.artifact import package_directory
from deployer.bake.runner import BuilderAccess, run_playbook
from deployer.bake.ssh import wait_for_ssh
from deployer.core.hostkeys import console_text, host_keys_from_console, known_hosts
from deployer.errors import BakeFailed, PollTimeout
from tests.conftest import REPO, end, free_port

pytestmark = pytest.mark.integration
SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if SSHD is None:
        if os.environ.get("CI"):
            pytest.fail("sshd is missing: .ci/run must install openssh-server")
        pytest.skip("sshd is not installed (apt-get install openssh-server)")
    home = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / name)], check=True
        )
    (home / "authorized_keys").write_text((home / "client_key.pub").read_text())
    port = free_port()
    config = home / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {home / "host_key"}
AuthorizedKeysFile {home / "authorized_keys"}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PidFile {home / "sshd.pid"}
Subsystem sftp internal-sftp
""")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)
    log = home / "sshd.log"
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config), "-E", str(log)])
    access = BuilderAccess(
        host="127.0.0.1",
        connection="ssh",
        port=port,
        user=getpass.getuser(),
        private_key_file=str(home / "client_key"),
        known_hosts=str(pin(home, "127.0.0.1", port, home / "host_key.pub")),
        sandbox=True,
        name="i-0sshd",
    )
    try:
        wait_for_ssh(access, Poller(first_interval=0.05, max_interval=0.2), deadline_s=15)
        yield access, log
    finally:
        end(process)


def pin(home, host, port, public_key_file, name="known_hosts"):
    """What deployer does with a builder's console: the keys cloud-init printed, pinned."""
    key = " ".join(public_key_file.read_text().split()[:2])
    console = "Booting...\n" + console_text([key], prefix="<14>Nov 26 12:00:00 ec2: ")
    path = home / name
    path.write_text(known_hosts(host, port, host_keys_from_console(console)))
    return path


@pytest.fixture
def impostor(sshd, tmp_path):
    """The same builder address, but the known_hosts pins another key than the sshd's."""
    access, _ = sshd
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True
    )
    other = pin(tmp_path, access.host, access.port, tmp_path / "other.pub")
    return BuilderAccess(**{**access.__dict__, "known_hosts": str(other)})


def test_fabric_waits_for_ssh_and_reports_a_closed_port(sshd):
    access, log = sshd
    wait_for_ssh(access, Poller(first_interval=0.05, max_interval=0.2), deadline_s=5)
    assert "Accepted publickey" in log.read_text()
    closed = BuilderAccess(
        host="127.0.0.1",
        connection="ssh",
        port=free_port(),
        user="nobody",
        private_key_file=access.private_key_file,
    )
    started = time.monotonic()
    with pytest.raises(PollTimeout, match="ssh not ready"):
        wait_for_ssh(closed, Poller(first_interval=0.05, max_interval=0.2), deadline_s=1)
    assert time.monotonic() - started < 10


def test_the_bake_playbook_runs_over_ssh(sshd, sandbox_aws, tmp_path):
    access, log = sshd
    root = tmp_path / "builder-root"
    root.mkdir()
    artifact = package_directory(REPO / "examples" / "hello", tmp_path / "cache", "hello")
    s3 = S3(sandbox_aws)
    s3.ensure_bucket("artifacts")
    s3.upload(artifact.path, "artifacts", "hello.tar.gz", artifact.digest)
    lines = []
    (root / "home" / access.user / ".ssh").mkdir(parents=True)
    (root / "home" / access.user / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA x\n")
    stats = run_playbook(
        REPO / "playbooks" / "bake.yml",
        BuilderAccess(**{**access.__dict__, "root": str(root)}),
        {
            "app_name": "hello",
            "app_port": 8080,
            "artifact_digest": artifact.digest,
            "artifact_url": s3.presigned_get("artifacts", "hello.tar.gz"),
        },
        report=lines.append,
        sanitize=True,
    )
    assert stats["ok"]["builder"] > 5
    assert (root / f"opt/app/{artifact.digest[:16]}/run").is_file()  # the build, by digest
    assert f"ARTIFACT_DIGEST={artifact.digest}" in (root / "etc/deployer/app.env").read_text()
    assert log.read_text().count("Accepted publickey") >= 2  # Ansible came in over SSH
    assert not (root / "home" / access.user / ".ssh" / "authorized_keys").exists()  # sanitized


def test_fabric_refuses_a_builder_whose_host_key_is_not_the_pinned_one(impostor):
    with pytest.raises(BakeFailed, match="i-0sshd .* host key that is not the one on its console"):
        wait_for_ssh(impostor, Poller(first_interval=0.05, max_interval=0.2), deadline_s=10)


def test_ansible_refuses_a_builder_whose_host_key_is_not_the_pinned_one(impostor, tmp_path):
    with pytest.raises(BakeFailed, match="on i-0sshd") as caught:
        run_playbook(
            REPO / "playbooks" / "bake.yml",
            BuilderAccess(**{**impostor.__dict__, "root": str(tmp_path)}),
            {
                "app_name": "x",
                "app_port": 8080,
                "artifact_digest": "0" * 64,
                "artifact_url": "http://127.0.0.1:9/x",
            },
        )
    assert "host key has just been changed" in caught.value.message


def test_an_unreachable_builder_is_a_bake_failure_that_says_so(sshd, tmp_path):
    access, _ = sshd
    gone = BuilderAccess(**{**access.__dict__, "port": free_port(), "root": str(tmp_path)})
    with pytest.raises(BakeFailed, match="(?i)unreachable|connect"):
        run_playbook(
            REPO / "playbooks" / "bake.yml",
            gone,
            {
                "app_name": "x",
                "app_port": 8080,
                "artifact_digest": "0" * 64,
                "artifact_url": "http://127.0.0.1:9/x",
            },
        )


def test_the_ssh_host_key_is_kept_per_bake_not_in_the_users_known_hosts(sshd):
    known = Path.home() / ".ssh" / "known_hosts"
    before = known.read_text() if known.exists() else ""
    access, _ = sshd
    assert f"[127.0.0.1]:{access.port}" not in before
