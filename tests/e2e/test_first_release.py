"""A team's first weeks on its own account, on the sandbox's aws profile: a builder left by a
killed bake ends itself, `destroy` removes an environment a killed bake littered, termination
protection comes and goes with `protected`, and an environment the account's Elastic IP quota
cannot hold is refused before anything is made. Checked through the API, as AWS would show it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from deployer.aws.poller import Poll, Poller
from deployer.sandbox import client, control
from deployer.sandbox.layout import Layout
from tests.conftest import REPO, copy_project
from tests.e2e.conftest import run, sandbox_client

pytestmark = pytest.mark.e2e
POLL = Poller(first_interval=0.2, max_interval=1.0)
SCALE = float(os.environ.get("DEPLOYER_SANDBOX_TIME_SCALE", "0.02"))
CONFIG = """\
app: first
environment: {env}
artifact: {{source: app}}
capacity: {{min: 1, desired: 1, max: 2}}
network: {{cidr: 10.{octet}.0.0/16, nat: {nat}}}
health_check: {{interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 120}}
strategy: {{kind: all_at_once, bake_seconds: 1}}
gates: {{interval_seconds: 0.5}}
protected: {protected}
"""
OCTETS = {"killed": 61, "one": 62, "two": 63, "three": 64, "infra": 65, "four": 66}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("first-release")
    copy_project(workdir)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    yield workdir, env
    control.down(Layout.for_workdir(workdir))


def configure(workdir, env_name, nat="single", protected=False):
    name = f"{env_name}.yaml"
    (workdir / name).write_text(
        CONFIG.format(
            env=env_name,
            octet=OCTETS[env_name],
            nat=nat,
            protected=str(protected).lower(),
        )
    )
    return name


def stacks_of(workdir, env_name):
    cfn = sandbox_client(workdir, "cloudformation")
    return [
        s["StackName"]
        for s in cfn.describe_stacks()["Stacks"]
        if s["StackName"].startswith(f"first-{env_name}-")
    ]


def builders(workdir):
    ec2 = sandbox_client(workdir, "ec2")
    filters = [{"Name": "tag:deployer:role", "Values": ["builder"]}]
    return [
        i for r in ec2.describe_instances(Filters=filters)["Reservations"] for i in r["Instances"]
    ]


def _booted(layout):
    planned = list(layout.hosts.glob("*/shutdown.json"))
    return Poll(bool(planned), "its user data has not run yet")


def test_a_killed_bakes_builder_ends_itself_and_destroy_leaves_nothing(project):
    workdir, env = project
    config = configure(workdir, "killed")
    # A builder shuts itself down after this (scaled: 12 s at the tests' 1/50), bake or not.
    limited = (workdir / config).read_text() + "bake: {max_builder_minutes: 10}\n"
    (workdir / config).write_text(limited)
    (workdir / "deployer.yaml").write_text(limited)
    build = workdir / "app" / "BUILD"
    build.write_text("a build of its own: it bakes, whatever images exist\n")
    layout = Layout.for_workdir(workdir)
    state, _ = control.up(layout)
    # This builder's own shutdown timer at the sandbox's time scale (the other bakes of the
    # module keep it unscaled: their playbooks run in real time).
    client.set_behaviours(state.endpoint, shutdown_time_scale=None)
    try:
        killed = subprocess.run(
            [sys.executable, "-m", "tests.e2e.kill_at", "wait:to run", "v1"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert killed.returncode == -9, killed.stderr
        POLL.until("the builder to boot", lambda: _booted(layout), 60)
    finally:
        client.set_behaviours(state.endpoint, shutdown_time_scale=1.0)
        build.unlink()
    (builder,) = builders(workdir)
    assert builder["State"]["Name"] in ("pending", "running")
    vpc = builder["VpcId"]

    # Nobody terminates it: its own user data does, after bake.max_builder_minutes (scaled).
    def ended():
        (now,) = [b for b in builders(workdir) if b["InstanceId"] == builder["InstanceId"]]
        return Poll(now["State"]["Name"] == "terminated", now["State"]["Name"], now)

    ended_builder = POLL.until("the builder to end itself", ended, 10 * 60 * SCALE + 60)
    assert ended_builder["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"

    ec2 = sandbox_client(workdir, "ec2")
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    leaked = [g for g in groups["SecurityGroups"] if g["GroupName"].startswith("deployer-bake-")]
    assert leaked  # the killed bake's security group is still in the VPC

    code, gone, stderr = run(workdir, env, "destroy", "--yes", config=config)
    assert code == 0, stderr
    assert stacks_of(workdir, "killed") == []
    assert vpc not in {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}
    left = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    assert left["SecurityGroups"] == []


def test_a_third_environment_that_would_pass_the_elastic_ip_quota_exits_5_before_any_change(
    project,
):
    workdir, env = project
    for name in ("one", "two"):  # each makes two NAT gateways, each with an Elastic IP
        code, _, stderr = run(
            workdir, env, "release", "v1", config=configure(workdir, name, nat="per_az")
        )
        assert code == 0, stderr
    addresses = len(sandbox_client(workdir, "ec2").describe_addresses()["Addresses"])
    assert addresses == 4  # of AWS's default 5 per Region
    # The test listener (an unreleased build) is open to where deployer runs, not to all.
    groups = sandbox_client(workdir, "ec2").describe_security_groups()["SecurityGroups"]
    test_port = [r for g in groups for r in g["IpPermissions"] if r.get("FromPort") == 8081]
    assert test_port and {ip["CidrIp"] for r in test_port for ip in r["IpRanges"]} == {
        "127.0.0.1/32"
    }
    # deployer's weights rule carries the app's tags: the deploy role changes only its own.
    elb, cfn = sandbox_client(workdir, "elbv2"), sandbox_client(workdir, "cloudformation")
    outputs = cfn.describe_stacks(StackName="first-two-service")["Stacks"][0]["Outputs"]
    listener = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "ListenerArn")
    rule = next(
        r for r in elb.describe_rules(ListenerArn=listener)["Rules"] if r["Priority"] == "1"
    )
    tags = elb.describe_tags(ResourceArns=[rule["RuleArn"]])["TagDescriptions"][0]["Tags"]
    assert {"Key": "deployer:app", "Value": "first"} in tags
    code, refused, _ = run(
        workdir, env, "release", "v1", config=configure(workdir, "three", nat="per_az")
    )
    assert code == 5
    message = refused["error"]["message"]
    assert "EC2-VPC Elastic IPs (ec2/L-0263D0A3)" in message
    assert "needs 2, 4 of 5 are in use" in message
    assert stacks_of(workdir, "three") == []
    assert len(sandbox_client(workdir, "ec2").describe_addresses()["Addresses"]) == addresses

    # The vCPUs a release starts beside what runs (two fleets of one t3.micro: 4), its new
    # fleet (2) and a builder (t3.small: 2), against Service Quotas' running On-Demand
    # standard vCPUs: 7 is short of 8.
    state = control.status(Layout.for_workdir(workdir))
    assert state is not None
    client.set_behaviours(state.endpoint, quotas={"vcpus": 7})
    try:
        code, refused, _ = run(workdir, env, "release", "v1", config=configure(workdir, "four"))
    finally:
        client.set_behaviours(state.endpoint, quotas={})
    assert code == 5
    message = refused["error"]["message"]
    assert "Running On-Demand Standard" in message and "(ec2/L-1216C47A)" in message
    assert "needs 4, 4 of 7 are in use (3 left)" in message
    assert stacks_of(workdir, "four") == []


def test_protected_comes_and_goes_and_destroy_then_removes_every_stack(project):
    workdir, env = project
    guarded = configure(workdir, "one", nat="per_az", protected=True)
    code, _, stderr = run(workdir, env, "release", "v1", config=guarded)
    assert code == 0, stderr
    cfn = sandbox_client(workdir, "cloudformation")
    described = {s["StackName"]: s for s in cfn.describe_stacks()["Stacks"]}
    assert described["first-one-service"]["EnableTerminationProtection"]
    assert described["first-one-network"]["EnableTerminationProtection"]
    code, refused, _ = run(workdir, env, "destroy", "--yes", config=guarded)
    assert code == 2 and "protected" in refused["error"]["message"]

    unguarded = configure(workdir, "one", nat="per_az", protected=False)
    code, _, stderr = run(workdir, env, "release", "v1", config=unguarded)
    assert code == 0, stderr
    described = {s["StackName"]: s for s in cfn.describe_stacks()["Stacks"]}
    assert not described["first-one-service"]["EnableTerminationProtection"]
    code, gone, stderr = run(workdir, env, "destroy", "--yes", config=unguarded)
    assert code == 0, stderr
    assert stacks_of(workdir, "one") == []


def test_status_of_a_first_release_killed_while_it_makes_the_network_shows_lock_and_stack(
    project,
):
    """Nothing is journalled yet (the record comes after the infra): status still says who
    holds the lock and which stack is being made, and what to do.
    """
    workdir, env = project
    config = configure(workdir, "infra")
    (workdir / "deployer.yaml").write_text((workdir / config).read_text())
    killed = subprocess.run(
        [sys.executable, "-m", "tests.e2e.kill_at", "wait:first-infra-network", "v1"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9, killed.stderr
    code, status, stderr = run(workdir, env, "status", config=config)
    assert code == 0, stderr
    assert status["last"] is None and status["in_flight"] is None  # nothing journalled
    assert status["lock"]  # the killed run still holds it (its lease has not run out)
    stacks = {s["stack"]: s["status"] for s in status["infra"]}
    assert "first-infra-network" in stacks
    if stacks["first-infra-network"].endswith("_IN_PROGRESS"):
        assert "first-infra-network" in status["advice"]
