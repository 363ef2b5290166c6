"""Durability, as CI would meet it: runs killed with SIGKILL at each phase boundary and rerun,
and several pipelines releasing at once. Checked against the live AWS state (the sandbox).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from deployer.sandbox import control
from deployer.sandbox.layout import Layout
from tests.conftest import copy_project
from tests.e2e.conftest import sandbox_client, served

pytestmark = pytest.mark.e2e

CONFIG = """\
app: shop
environment: {env}
artifact: {{source: app}}
capacity: {{min: 1, desired: 1, max: 4}}
health_check: {{interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 120}}
strategy: {{kind: {kind}, steps: [50, 100], bake_seconds: {bake}}}
gates: {{interval_seconds: 0.5}}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("durability")
    copy_project(workdir)
    env = {
        **os.environ,
        "PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[2]),
        # An account whose EC2 quotas were raised: this module runs ten environments at once,
        # each with a VPC and an Elastic IP (AWS's defaults allow 5 of each per Region).
        "DEPLOYER_SANDBOX_BEHAVIOURS": json.dumps(
            {"quotas": {"vpcs": 20, "addresses": 20}, "shutdown_time_scale": 1.0}
        ),
    }
    yield workdir, env
    control.down(Layout.for_workdir(workdir))


def configure(workdir, env_name, bake=1, kind="canary"):
    (workdir / "deployer.yaml").write_text(CONFIG.format(env=env_name, bake=bake, kind=kind))


def cli(workdir, env, *args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "deployer", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def aws(workdir):
    return lambda service: sandbox_client(workdir, service)


def live_state(workdir, env_name):
    """What AWS says, not what deployer says: stacks, images, instances, listener."""
    client = aws(workdir)
    stacks = [
        s
        for s in client("cloudformation").describe_stacks()["Stacks"]
        if s["StackName"].startswith(f"shop-{env_name}-fleet-")
    ]
    versions = sorted(
        t["Value"] for s in stacks for t in s["Tags"] if t["Key"] == "deployer:version"
    )
    images = client("ec2").describe_images(
        Owners=["self"], Filters=[{"Name": "tag:deployer:app", "Values": ["shop"]}]
    )["Images"]
    builders = client("ec2").describe_instances(
        Filters=[
            {"Name": "tag:deployer:role", "Values": ["builder"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]
    return {
        "fleets": versions,
        "images": sorted(
            t["Value"] for i in images for t in i["Tags"] if t["Key"] == "deployer:bake-key"
        ),
        "builders": sum(len(r["Instances"]) for r in builders),
    }


BAKE_BOUNDARIES = ("bake", "wait:image")


def live_release(workdir, env) -> tuple[str, str]:
    """The environment's live version and URL, after a first release if it has none."""
    status = json.loads(cli(workdir, env, "status", "--output", "json").stdout)
    if not status.get("live_version"):
        first = cli(workdir, env, "release", "v1", "--output", "json")
        assert first.returncode == 0, first.stderr
        status = json.loads(cli(workdir, env, "status", "--output", "json").stdout)
    return status["live_version"], status["url"]


@pytest.mark.parametrize(
    "boundary",
    ["bake", "wait:image", "fleet", "gate", "step:done", "retire", "wait:-fleet-"],
)
def test_a_run_killed_at_a_phase_boundary_converges_when_rerun(project, boundary):
    """Killed at a phase boundary, or in the middle of a wait on AWS (the image becoming
    available, the fleet stack being created): one rerun finishes the release, with nothing
    duplicated and no builder left running. Two environments: one whose every release is a
    build of its own (it bakes), one whose releases reuse the image; each kill releases the
    next version over the one the kill before left live.
    """
    workdir, env = project
    env_name = "kill-bake" if boundary in BAKE_BOUNDARIES else "kill-release"
    configure(workdir, env_name)
    build = workdir / "app" / "BUILD"
    build.unlink(missing_ok=True)
    live, url = live_release(workdir, env)
    version = "v-" + "-".join(part for part in boundary.replace(":", "-").split("-") if part)
    if boundary in BAKE_BOUNDARIES:  # a build of its own, so it bakes
        build.write_text(version + "\n")

    killed = subprocess.run(
        [sys.executable, "-m", "tests.e2e.kill_at", boundary, version],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr

    rerun = cli(workdir, env, "release", version, "--output", "json")
    build.unlink(missing_ok=True)
    assert rerun.returncode == 0, rerun.stderr
    assert served(url) == {f"hello from {version}"}
    state = live_state(workdir, env_name)
    assert state["fleets"].count(version) == 1  # no duplicate fleet
    assert live in state["fleets"]  # the previous one warm for rollback
    assert len(set(state["images"])) == len(state["images"])  # no duplicate image of a build
    assert state["builders"] == 0
    history = json.loads(cli(workdir, env, "history", "--output", "json").stdout)["releases"]
    assert history[0]["version"] == version and history[0]["outcome"] == "succeeded"
    assert not any(r["outcome"] == "in_progress" for r in history)
    if boundary != "bake":
        assert "resume:" in rerun.stderr


def test_a_first_release_killed_while_its_network_is_created_converges(project):
    workdir, env = project
    configure(workdir, "kill-infra")
    killed = subprocess.run(
        [sys.executable, "-m", "tests.e2e.kill_at", "wait:-network", "v1"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr
    rerun = cli(workdir, env, "release", "v1", "--output", "json")
    assert rerun.returncode == 0, rerun.stderr
    assert served(json.loads(rerun.stdout)["url"]) == {"hello from v1"}
    stacks = aws(workdir)("cloudformation").describe_stacks()["Stacks"]
    networks = [s for s in stacks if s["StackName"] == "shop-kill-infra-network"]
    assert [s["StackStatus"] for s in networks] == ["CREATE_COMPLETE"]


def test_abort_rolls_an_interrupted_release_back(project):
    workdir, env = project
    configure(workdir, "abort")
    first = cli(workdir, env, "release", "v1", "--output", "json")
    url = json.loads(first.stdout)["url"]
    killed = subprocess.run(
        [sys.executable, "-m", "tests.e2e.kill_at", "step:done", "v2"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9
    assert "hello from v2" in served(url, 30)  # the killed run had sent v2 some traffic
    status = json.loads(cli(workdir, env, "status", "--output", "json").stdout)
    assert "deployer abort" in status["advice"]

    aborted = cli(workdir, env, "abort", "--output", "json")
    assert aborted.returncode == 0, aborted.stderr
    assert served(url, 20) == {"hello from v1"}
    history = json.loads(cli(workdir, env, "history", "--output", "json").stdout)["releases"]
    assert (history[0]["version"], history[0]["outcome"]) == ("v2", "failed")
    assert "aborted" in history[0]["reason"]
    again = cli(workdir, env, "abort")  # nothing in flight any more: a no-op, not an error
    assert again.returncode == 0 and "nothing to abort" in again.stdout
