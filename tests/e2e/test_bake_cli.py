"""`deployer bake`, `plan`, `config` and `gc` as a user runs them on the sandbox: reuse by bake
key with no change at all, a playbook change noticed, kills that leave nothing behind, settings
that reach instances at boot without ever being printed, and image retention.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from deployer.bake.watchdog import OWNER_FILE, processes_using
from deployer.sandbox.layout import Layout
from tests.conftest import NO_IMAGE_CATALOG
from tests.e2e.conftest import sandbox_client, sandboxed_project

pytestmark = pytest.mark.e2e

CONFIG = """\
app: baker
environment: {env}
artifact: {{source: app}}
capacity: {{min: 1, desired: 1, max: 2}}
health_check: {{interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 60}}
strategy: {{bake_seconds: 1}}
gates: {{interval_seconds: 0.5}}
bake: {{keep_images: {keep}}}
rollback_window: {window}
"""
SECRET = "pw-Zq8vX2-never-printed"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    # The bake is the subject: this module's sandbox bakes for itself.
    with sandboxed_project(tmp_path_factory, "bakecli", **NO_IMAGE_CATALOG) as (workdir, env):
        yield workdir, env


@pytest.fixture(autouse=True)
def default_build(project):
    """Each test starts from the sample app's own build; `new_build` makes another."""
    yield
    (project[0] / "app" / "BUILD").unlink(missing_ok=True)


def new_build(workdir, label):
    """A build of its own (another artifact digest, so another bake key): a version name
    alone is a label given at boot, and never bakes again.
    """
    (workdir / "app" / "BUILD").write_text(label + "\n")


def configure(workdir, env_name="e1", keep=5, window="1h"):
    (workdir / "deployer.yaml").write_text(CONFIG.format(env=env_name, keep=keep, window=window))


def cli(workdir, env, *args, stdin=None):
    done = subprocess.run(
        [sys.executable, "-m", "deployer", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=600,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def json_of(done):
    return json.loads(done.stdout)


def left_after(workdir, within_s: float = 60.0) -> list[str]:
    """Builders still running, bake keys and groups still there after `within_s` (a group can
    go only once its instance has terminated): empty when a bake left nothing.
    """
    deadline = time.monotonic() + within_s
    while leftovers(workdir) and time.monotonic() < deadline:
        time.sleep(1)
    return leftovers(workdir)


def leftovers(workdir) -> list[str]:
    ec2 = sandbox_client(workdir, "ec2")
    running = ec2.describe_instances(
        Filters=[
            {"Name": "tag:deployer:role", "Values": ["builder"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]
    access = [{"Name": "tag:deployer:role", "Values": ["bake-access"]}]
    keys = ec2.describe_key_pairs(Filters=access)["KeyPairs"]
    groups = ec2.describe_security_groups(Filters=access)["SecurityGroups"]
    return [
        *(i["InstanceId"] for r in running for i in r["Instances"]),
        *(k["KeyName"] for k in keys),
        *(g["GroupId"] for g in groups),
    ]


def test_a_second_bake_reuses_the_image_and_changes_nothing(project):
    workdir, env = project
    configure(workdir)
    new_build(workdir, "v5")
    first = cli(workdir, env, "bake", "v5", "--output", "json")
    assert first.returncode == 0, first.stderr
    baked = json_of(first)
    assert not baked["reused"] and baked["mutating_calls"] > 0
    again = json_of(cli(workdir, env, "bake", "v5", "--output", "json"))
    assert again["reused"] and again["mutating_calls"] == 0
    assert (again["image_id"], again["bake_key"]) == (baked["image_id"], baked["bake_key"])
    assert again["images"] == {"us-east-1": baked["image_id"]}
    assert left_after(workdir) == []


def test_a_changed_playbook_file_is_named_by_plan_and_bakes_a_new_image(project):
    workdir, env = project
    configure(workdir)
    new_build(workdir, "v5")
    before = json_of(cli(workdir, env, "bake", "v5", "--output", "json"))
    role = workdir / "playbooks/roles/app/defaults/main.yml"
    original = role.read_text()
    try:
        role.write_text(original + "# a new default changes the image\n")
        plan = json_of(cli(workdir, env, "plan", "v5", "--output", "json"))
        assert plan["bake"] and plan["bake_changed"] == ["the playbooks"]
        after = json_of(cli(workdir, env, "bake", "v5", "--output", "json"))
        assert not after["reused"] and after["image_id"] != before["image_id"]
    finally:
        role.write_text(original)


def kill_bake_when(workdir, env, version, marker):
    """Start `deployer bake VERSION`; SIGKILL it once its progress shows `marker`."""
    run = subprocess.Popen(
        [sys.executable, "-m", "deployer", "bake", version],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert run.stderr is not None
    for line in run.stderr:
        if marker in line:
            run.send_signal(signal.SIGKILL)
            break
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL, f"never saw {marker!r}"
    return run.pid


def wait_until_ready(workdir, version, within_s: float = 300.0) -> None:
    """Until no image of `version` is pending."""
    ec2 = sandbox_client(workdir, "ec2")
    mine = [{"Name": "tag:deployer:version", "Values": [version]}]
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        images = ec2.describe_images(Owners=["self"], Filters=mine)["Images"]
        if all(i["State"] != "pending" for i in images):
            return
        time.sleep(1)
    raise AssertionError(f"an image of {version} is still pending after {within_s}s")


def bake_dirs_of(pid):
    found = []
    for directory in Path(tempfile.gettempdir()).glob("deployer-bake-*"):
        try:
            if int((directory / OWNER_FILE).read_text()) == pid:
                found.append(directory)
        except (OSError, ValueError):
            continue
    return found


@pytest.mark.parametrize(
    ("version", "marker"), [("v6", "bake: Unpack the artifact"), ("v7", "waiting for image")]
)
def test_a_killed_bake_leaves_no_playbook_running_and_a_rerun_converges(project, version, marker):
    workdir, env = project
    configure(workdir)
    new_build(workdir, version)
    pid = kill_bake_when(workdir, env, version, marker)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not any(processes_using(d) for d in bake_dirs_of(pid)):
            break
        time.sleep(0.2)
    assert not any(processes_using(d) for d in bake_dirs_of(pid))  # no ansible-playbook
    # An image the killed run left pending is finished by EC2 all the same: the rerun then
    # finds it ready, and must still end the builder and access the killed run left.
    wait_until_ready(workdir, version)
    rerun = cli(workdir, env, "bake", version, "--output", "json")
    assert rerun.returncode == 0, rerun.stderr
    assert bake_dirs_of(pid) == []  # its private dir (the presigned URL in it) is gone
    assert left_after(workdir) == [], rerun.stderr
    # The rerun says all it ended: the builder, and the key pair and security group.
    assert "terminating builders left by an earlier run" in rerun.stderr
    assert "deleted the temporary key pair(s)" in rerun.stderr
    assert "security group(s) sg-" in rerun.stderr


def test_settings_reach_new_instances_at_boot_and_a_secret_is_never_printed(project):
    workdir, env = project
    configure(workdir, "cfg")
    assert cli(workdir, env, "config", "set", "GREETING", "hello-from-ssm").returncode == 0
    done = cli(workdir, env, "config", "set", "DB_PASSWORD", "--secure", "--stdin", stdin=SECRET)
    assert done.returncode == 0, done.stderr
    listed = cli(workdir, env, "config", "list", "--output", "json")
    assert {s["key"]: s["value"] for s in json_of(listed)["settings"]} == {
        "DB_PASSWORD": "(secure)",
        "GREETING": "hello-from-ssm",
    }
    release = cli(workdir, env, "release", "v1", "--output", "json")
    assert release.returncode == 0, release.stderr
    environments = app_environments(workdir, json_of(release)["fleet_stack"])
    assert environments and all(e["GREETING"] == "hello-from-ssm" for e in environments)
    assert all(e["DB_PASSWORD"] == SECRET for e in environments)

    history = cli(workdir, env, "history", "--output", "json")
    status = cli(workdir, env, "status", "--output", "json")
    outputs = [listed, release, history, status]
    assert not any(SECRET in o.stdout + o.stderr for o in outputs)
    assert SECRET not in (workdir / ".deployer/sandbox/daemon.log").read_text()
    configure_logs = list(
        (workdir / ".deployer/sandbox/hosts").glob("*/root/var/log/deployer/configure.log")
    )
    assert configure_logs  # where the configure unit's output goes (its unit says)
    for log in configure_logs:
        assert SECRET not in log.read_text()
    revealed = cli(workdir, env, "config", "get", "DB_PASSWORD", "--reveal")
    assert revealed.stdout.strip() == SECRET

    assert cli(workdir, env, "config", "set", "GREETING", "changed").returncode == 0
    plan = json_of(cli(workdir, env, "plan", "v1", "--output", "json"))
    assert not plan["noop"] and "the settings changed" in plan["reason"] and not plan["bake"]


def older_images(workdir, count):
    """Images of this app made through the EC2 API (gc reads only their tags and dates): what
    earlier builds would have left, without baking them.
    """
    ec2 = sandbox_client(workdir, "ec2")
    for n in range(count):
        image = ec2.register_image(Name=f"deployer-baker-old-{n}", RootDeviceName="/dev/xvda")
        tags = [
            {"Key": "deployer:app", "Value": "baker"},
            {"Key": "deployer:bake-key", "Value": f"an-older-build-{n}"},
        ]
        deadline = time.monotonic() + 30
        while True:  # a new image id may answer NotFound for a moment, as on AWS
            try:
                ec2.create_tags(Resources=[image["ImageId"]], Tags=tags)
                break
            except ClientError as exc:
                if "NotFound" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def app_environments(workdir, fleet_stack):
    """The environment of each running app process of a fleet, read from /proc."""
    asg = sandbox_client(workdir, "autoscaling")
    cfn = sandbox_client(workdir, "cloudformation")
    outputs = cfn.describe_stacks(StackName=fleet_stack)["Stacks"][0]["Outputs"]
    group = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "AutoScalingGroupName")
    described = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])
    found = []
    for instance in described["AutoScalingGroups"][0]["Instances"]:
        pid_file = Layout.for_workdir(workdir).host_dir(instance["InstanceId"]) / "app.pid"
        pid = int(pid_file.read_text())
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        found.append(dict(item.decode().split("=", 1) for item in raw if b"=" in item))
    return found


def test_gc_keeps_images_in_use_and_the_newest_and_removes_the_rest(project):
    workdir, env = project
    configure(workdir, "gc", keep=1, window="0")
    assert cli(workdir, env, "sandbox", "up").returncode == 0
    older_images(workdir, 2)
    release = cli(workdir, env, "release", "g3", "--output", "json")
    assert release.returncode == 0, release.stdout + release.stderr
    released = json_of(release)
    in_use = released["images"]["us-east-1"]
    planned = json_of(cli(workdir, env, "gc", "--dry-run", "--output", "json"))
    doomed = {i["image"] for i in planned["images"]}
    assert in_use not in doomed and doomed
    done = json_of(cli(workdir, env, "gc", "--output", "json"))
    assert {i["image"] for i in done["images"]} == doomed
    ec2 = sandbox_client(workdir, "ec2")
    left = {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    assert in_use in left and not doomed & left
    snapshots = [s for i in done["images"] for s in i["snapshots"]]
    assert (
        snapshots
        and not ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": snapshots}])[
            "Snapshots"
        ]
    )
    assert json_of(cli(workdir, env, "gc", "--output", "json"))["changed"] is False
