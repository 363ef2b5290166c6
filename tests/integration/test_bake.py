"""Baking for real on the sandbox (`aws` profile): ansible-runner runs playbooks/bake.yml on a
builder reached through a key pair and a security group made for that bake, whose host key is
pinned from its console; then imaging, copies to the other regions, and cleanup on every exit.
"""

import shutil
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from deployer.aws.lease_lock import LeaseLock
from deployer.aws.poller import Poll, Poller
from deployer.bake.artifact import package_directory, sha256_of
from deployer.bake.baker import BakeRequest
from deployer.bake.runner import BuilderAccess, run_playbook
from deployer.config.loading import load_config
from deployer.core.names import Names, Version
from deployer.errors import BakeFailed
from deployer.release.baking import bake_plan
from deployer.release.engine import Engine
from deployer.release.locking import LockClient
from deployer.target import open_target
from tests.conftest import REPO, copy_project

pytestmark = pytest.mark.integration
IMAGE_CATALOG = False  # the bake is the subject: this sandbox bakes for itself
BASE = "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


@pytest.fixture(scope="module")
def engine(sandbox, tmp_path_factory):
    layout, _ = sandbox
    workdir = layout.root.parent.parent
    copy_project(workdir)
    (workdir / "deployer.yaml").write_text(
        "app: hello\nenvironment: bake\nartifact: {source: app}\nregions: [us-east-1, eu-west-1]\n"
    )
    loaded = load_config(workdir / "deployer.yaml")
    lines: list[str] = []
    poller = Poller(report=lines.append, first_interval=0.05, max_interval=0.5)
    runtime = open_target(loaded, workdir, poller, lines.append, start_sandbox=False)
    engine = Engine(loaded, runtime, poller, lines.append, workdir)
    engine.journal.ensure_table()
    engine.check_reachable()
    engine.lines = lines  # type: ignore[attr-defined]
    engine.layout = layout  # type: ignore[attr-defined]
    ec2 = runtime.aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.7.1.0/24")["Subnet"]["SubnetId"]
    engine.network = (vpc, subnet)  # type: ignore[attr-defined]
    return engine


def request_for(
    engine,
    tmp_path,
    version="v1",
    playbook=None,
    app=REPO / "examples" / "hello",
    regions=("us-east-1",),
):
    artifact = package_directory(app, tmp_path / "cache", str(app))
    vpc, subnet = engine.network
    return BakeRequest(
        names=Names("hello", "bake"),
        version=Version.parse(version),
        artifact=artifact,
        bucket=engine.artifact_bucket,
        playbook=playbook or engine.loaded.resolve("playbooks/bake.yml"),
        base_ami=BASE,
        instance_type="t3.small",
        subnet_id=subnet,
        vpc_id=vpc,
        app_port=8080,
        run_id=f"r-{version}-{tmp_path.name[-6:]}",
        regions=regions,
        max_builder_minutes=30,
    )


def leftovers(engine):
    """Builders still running, and temporary key pairs and security groups, by the API."""
    ec2 = engine.runtime.aws.client("ec2")
    builders = ec2.describe_instances(
        Filters=[
            {"Name": "tag:deployer:role", "Values": ["builder"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]
    access = [{"Name": "tag:deployer:role", "Values": ["bake-access"]}]
    return {
        "builders": [i["InstanceId"] for r in builders for i in r["Instances"]],
        "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=access)["KeyPairs"]],
        "groups": [
            g["GroupId"] for g in ec2.describe_security_groups(Filters=access)["SecurityGroups"]
        ],
    }


NOTHING_LEFT = {"builders": [], "key_pairs": [], "groups": []}
PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGHc3uPlOdBBqmZ9hbHLnwJ3m4/6l/3nZpqEUvPAjmqX killed"
)


def tags_of(engine, image_id, region="us-east-1"):
    ec2 = engine.runtime.aws.for_region(region).client("ec2")
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    return {t["Key"]: t["Value"] for t in image["Tags"]}, image


def test_a_bake_makes_a_clean_tagged_image_in_every_region_and_a_second_reuses_it(engine, tmp_path):
    request = request_for(engine, tmp_path, regions=("us-east-1", "eu-west-1"))
    baked = engine.baker.bake_or_reuse(request)
    assert not baked.reused and set(baked.images) == {"us-east-1", "eu-west-1"}

    root = engine.layout.image_dir(baked.image_id)
    assert (root / "opt/app/current/run").is_file()
    # The image holds the build, not a version name: instances get VERSION at boot.
    app_env = (root / "etc/deployer/app.env").read_text()
    assert f"ARTIFACT_DIGEST={request.artifact.digest}" in app_env and "\nVERSION=" not in app_env
    # The image neither trusts the bake's key nor keeps host keys or cloud-init's state.
    assert not (root / "home/ec2-user/.ssh/authorized_keys").exists()
    assert not list((root / "etc/ssh").glob("ssh_host_*"))
    assert not (root / "var/lib/cloud/instance").exists()

    tags, image = tags_of(engine, baked.image_id)
    assert tags["deployer:bake-key"] == baked.bake_key
    assert tags["deployer:digest"] == request.artifact.digest
    snapshot = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    snapshots = engine.runtime.aws.client("ec2").describe_snapshots(SnapshotIds=[snapshot])
    snapshot_tags = {t["Key"]: t["Value"] for t in snapshots["Snapshots"][0]["Tags"]}
    assert snapshot_tags["deployer:bake-key"] == baked.bake_key
    copy_tags, copy = tags_of(engine, baked.images["eu-west-1"], "eu-west-1")
    assert copy_tags["deployer:bake-key"] == baked.bake_key
    copy_snapshot = copy["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    copied = engine.runtime.aws.for_region("eu-west-1").client("ec2")
    copied_snapshot = copied.describe_snapshots(SnapshotIds=[copy_snapshot])["Snapshots"][0]
    assert {t["Key"]: t["Value"] for t in copied_snapshot["Tags"]}["deployer:app"] == "hello"
    # Everything is tagged as it is made (the copy too): no untagged moment, no CreateTags.
    assert "ec2.CreateTags" not in engine.runtime.aws.mutations

    assert leftovers(engine) == NOTHING_LEFT
    assert not any("X-Amz-Signature" in line for line in engine.lines)  # the URL stays secret

    again = engine.baker.bake_or_reuse(
        request_for(engine, tmp_path, regions=("us-east-1", "eu-west-1"))
    )
    assert again.reused and again.images == baked.images


def test_a_changed_playbook_file_bakes_a_new_image_and_plan_says_why(engine, tmp_path):
    first = engine.baker.bake_or_reuse(request_for(engine, tmp_path, "v2"))
    playbooks = tmp_path / "playbooks"
    shutil.copytree(REPO / "playbooks", playbooks)
    template = playbooks / "templates/app.env.j2"
    template.write_text(template.read_text() + "# a comment changes the image\n")
    changed = request_for(engine, tmp_path, "v2", playbooks / "bake.yml")
    assert engine.baker.inputs(changed).key != first.bake_key
    second = engine.baker.bake_or_reuse(changed)
    assert not second.reused and second.image_id != first.image_id

    # `plan` with the original playbooks: the image exists; with the changed ones, it says so.
    assert not bake_plan(engine, Version.parse("v2"), changed.artifact)["bake"]
    config = tmp_path / "deployer.yaml"
    config.write_text(
        f"app: hello\nenvironment: bake\nartifact: {{source: {REPO / 'examples/hello'}}}\n"
        f"bake: {{playbook: {playbooks / 'bake.yml'}}}\n"
    )
    other = Engine(load_config(config), engine.runtime, engine.poller, print, tmp_path)
    assert bake_plan(other, Version.parse("v2"), changed.artifact)["bake"] is False
    template.write_text(template.read_text() + "# and again\n")
    plan = bake_plan(other, Version.parse("v2"), changed.artifact)
    assert plan["bake"] and plan["changed"] == ["the playbooks"]


def test_a_failing_task_names_task_and_builder_and_leaves_nothing(engine, tmp_path):
    playbooks = tmp_path / "playbooks"
    shutil.copytree(REPO / "playbooks", playbooks)
    tasks = playbooks / "roles/app/tasks/main.yml"
    tasks.write_text(
        tasks.read_text() + "\n- name: Break the bake\n  ansible.builtin.command: "
        "/bin/false\n  changed_when: false\n"
    )
    with pytest.raises(BakeFailed, match=r"task 'Break the bake' on i-[0-9a-f]+") as caught:
        engine.baker.bake_or_reuse(request_for(engine, tmp_path, "v-fail", playbooks / "bake.yml"))
    assert caught.value.exit_code == 1
    assert leftovers(engine) == NOTHING_LEFT


def test_an_app_without_run_fails_the_contract_check_on_the_builder(engine, tmp_path):
    app = tmp_path / "app"
    shutil.copytree(REPO / "examples" / "hello", app)
    request = request_for(engine, tmp_path, "v-norun", app=app)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x").write_text("x")
    with tarfile.open(request.artifact.path, "w:gz") as tar:
        tar.add(broken / "x", arcname="x")
    request = replace(
        request, artifact=replace(request.artifact, digest=sha256_of(request.artifact.path))
    )
    with pytest.raises(BakeFailed, match="no executable `run`"):
        engine.baker.bake_or_reuse(request)
    assert leftovers(engine) == NOTHING_LEFT


def test_ctrl_c_during_the_bake_ends_the_builder_and_its_access(engine, tmp_path):
    """A cancelled CI job has seconds left: the builder is terminated and the key pair and
    private key removed at once; waiting for the builder to end (before its security group
    can go) comes after traffic and the journal (finish_deferred), never before.
    """
    seen = {}

    def interrupted(_instance, access):
        seen["directory"] = access.directory
        raise KeyboardInterrupt

    reach = engine.baker._reach
    engine.baker._reach = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            engine.baker.bake_or_reuse(
                replace(request_for(engine, tmp_path, "v-ctrl-c"), rebake=True)
            )
    finally:
        engine.baker._reach = reach
    left = leftovers(engine)
    assert left["builders"] == [] and left["key_pairs"] == []
    assert not seen["directory"].exists()  # the private key is gone already
    assert len(left["groups"]) == 1  # the only thing left for after the restore
    engine.baker.finish_deferred()
    assert leftovers(engine) == NOTHING_LEFT


def test_a_rerun_that_reuses_a_killed_runs_image_ends_its_builder_and_access(engine, tmp_path):
    """Killed on another runner after its image became available: the rerun reuses the image
    and ends what the killed run left, once that run's lease on the bake lock runs out,
    however soon the rerun starts.
    """
    request = request_for(engine, tmp_path, "v-rerun")
    key = engine.baker.bake_or_reuse(request).bake_key
    owner = {"deployer:app": "hello", "deployer:bake-key": key}
    ec2 = engine.ec2
    access = {**owner, "deployer:role": "bake-access"}
    ec2.import_key_pair("killed-run-key", PUBLIC_KEY, access)
    group = ec2.create_ssh_group("killed-run-group", engine.network[0], "127.0.0.1/32", access)
    builder = ec2.run_builder(
        "ami-0d27e0fb3bac4d724",
        "t3.small",
        engine.network[1],
        [group],
        "killed-run-key",
        {**owner, "deployer:role": "builder"},
        token="killed-run-builder",
    )
    killed_elsewhere = LockClient(
        LeaseLock(engine.runtime.aws, f"bake/hello/{key[:16]}"), "ci@other", 2.0, print
    )
    killed_elsewhere.host = "another-runner"
    killed_elsewhere.acquire(engine.stamp(), None)  # and never released: the run was killed
    again = engine.baker.bake_or_reuse(replace(request, run_id="rerun"))
    assert again.reused
    left = leftovers(engine)
    assert builder not in left["builders"]
    assert "killed-run-key" not in left["key_pairs"] and group not in left["groups"]


def test_a_killed_bakes_private_key_goes_with_it(tmp_path):
    """The access directory (the bake's private key) has a watchdog: deployer killed with
    SIGKILL, the directory is removed within a second or so.
    """
    script = (
        "import os, signal, tempfile\n"
        "from pathlib import Path\n"
        "from deployer.bake.watchdog import ACCESS_DIR_PREFIX, watchdog_for\n"
        f"d = Path(tempfile.mkdtemp(prefix=ACCESS_DIR_PREFIX, dir={str(tmp_path)!r}))\n"
        "(d / 'id_ed25519').write_text('secret')\n"
        "watchdog_for(d)\n"
        "print(d, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=False
    )
    directory = Path(done.stdout.strip())
    assert done.returncode == -9 and directory.name.startswith("deployer-access-")
    Poller(first_interval=0.1, max_interval=0.2).until(
        "the watchdog", lambda: Poll(not directory.exists(), "still there"), 10
    )


def test_leftovers_of_a_killed_bake_go_whatever_their_version_but_not_a_live_bake(engine, tmp_path):
    ec2 = engine.ec2
    dead = ec2.run_builder(
        "ami-0d27e0fb3bac4d724",
        "t3.small",
        engine.network[1],
        [],
        None,
        {"deployer:role": "builder", "deployer:app": "hello", "deployer:bake-key": "k-dead"},
        token="killed-run-1",
    )
    busy_key = "k-busy" + "0" * 20
    live = ec2.run_builder(
        "ami-0d27e0fb3bac4d724",
        "t3.small",
        engine.network[1],
        [],
        None,
        {"deployer:role": "builder", "deployer:app": "hello", "deployer:bake-key": busy_key},
        token="other-environment-1",
    )
    other_environment = engine.records._bake_lock_client(busy_key)
    other_environment.host = "another-runner"
    with other_environment.held(engine.stamp(), None):
        ended = engine.baker.end_leftovers("hello", "us-east-1")
    assert dead in ended and live not in ended
    ec2.terminate([live])


def test_the_bake_playbook_changes_nothing_when_run_again(tmp_path):
    root = tmp_path / "host"
    root.mkdir()
    artifact = package_directory(REPO / "examples" / "hello", tmp_path / "cache", "hello")
    served = tmp_path / "served.tar.gz"
    shutil.copy(artifact.path, served)
    access = BuilderAccess(host="local", connection="local", root=str(root), sandbox=True)
    variables = {
        "app_name": "hello",
        "app_port": 8080,
        "artifact_digest": artifact.digest,
        "artifact_url": served.as_uri(),
    }
    run_playbook(REPO / "playbooks" / "bake.yml", access, variables)
    stats = run_playbook(REPO / "playbooks" / "bake.yml", access, variables)
    assert not stats.get("changed"), stats
