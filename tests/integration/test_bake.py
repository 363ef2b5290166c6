"""Baking for real: ansible-runner runs playbooks/bake.yml on a sandbox builder, then imaging."""

import shutil
import tarfile
from dataclasses import replace

import pytest

from deployer.aws.ec2 import Ec2
from deployer.aws.poller import Poller
from deployer.aws.s3 import S3
from deployer.aws.ssm import Ssm
from deployer.bake.artifact import package_directory, sha256_of
from deployer.bake.baker import Baker, BakeRequest
from deployer.bake.runner import BakeFailed
from deployer.core.names import Names, Version
from deployer.target import _sandbox
from tests.conftest import REPO

pytestmark = pytest.mark.integration
BASE = "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


@pytest.fixture
def baker_parts(sandbox, sandbox_aws):
    layout, _ = sandbox
    poller = Poller(first_interval=0.05, max_interval=0.3)
    runtime = _sandbox(layout.root.parent.parent, poller, lambda _l: None, start=False)
    ec2 = Ec2(sandbox_aws, poller)
    lines = []
    baker = Baker(ec2, Ssm(sandbox_aws), S3(sandbox_aws), runtime.access_for, lines.append)
    vpc = sandbox_aws.client("ec2").create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnet = sandbox_aws.client("ec2").create_subnet(VpcId=vpc, CidrBlock="10.7.1.0/24")["Subnet"][
        "SubnetId"
    ]
    group = sandbox_aws.client("ec2").create_security_group(
        GroupName="builders", Description="builders", VpcId=vpc
    )["GroupId"]
    return layout, baker, ec2, lines, (subnet, group), sandbox_aws


def request_for(
    tmp_path,
    network,
    version="v1",
    playbook=REPO / "playbooks" / "bake.yml",
    app=REPO / "examples" / "hello",
):
    artifact = package_directory(app, tmp_path / "cache", str(app))
    return BakeRequest(
        names=Names("hello", "test"),
        version=Version.parse(version),
        artifact=artifact,
        bucket="deployer-artifacts-test",
        playbook=playbook,
        base_ami=BASE,
        instance_type="t3.small",
        subnet_id=network[0],
        security_group_id=network[1],
        key_name=None,
        app_port=8080,
        release_id=f"r-{version}-{tmp_path.name[-6:]}",
    )


def running_builders(aws):
    described = aws.client("ec2").describe_instances(
        Filters=[
            {"Name": "tag:deployer:role", "Values": ["builder"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )
    return [i for r in described["Reservations"] for i in r["Instances"]]


def test_a_bake_installs_the_app_into_the_image_and_a_second_bake_reuses_it(tmp_path, baker_parts):
    layout, baker, ec2, lines, subnet, aws = baker_parts
    request = request_for(tmp_path, subnet)
    baked = baker.bake_or_reuse(request)
    assert not baked.reused
    image_root = layout.image_dir(baked.image_id)
    assert (image_root / "opt/app/current/run").is_file()
    assert "VERSION=v1" in (image_root / "etc/deployer/app.env").read_text()
    assert (image_root / "etc/systemd/system/hello.service").is_file()
    assert not (image_root / "opt/app/.artifacts").exists()
    tags = {
        t["Key"]: t["Value"]
        for t in aws.client("ec2").describe_images(ImageIds=[baked.image_id])["Images"][0]["Tags"]
    }
    assert tags["deployer:digest"] == request.artifact.digest
    assert tags["deployer:version"] == "v1"
    assert running_builders(aws) == []
    assert not any("X-Amz-Signature" in line for line in lines)  # the presigned URL stays secret

    again = baker.bake_or_reuse(request_for(tmp_path, subnet))
    assert again.reused and again.image_id == baked.image_id


def test_a_failing_playbook_is_a_bake_failure_and_the_builder_is_terminated(tmp_path, baker_parts):
    _, baker, _, _, subnet, aws = baker_parts
    playbooks = tmp_path / "playbooks"
    shutil.copytree(REPO / "playbooks", playbooks)
    tasks = playbooks / "roles/app/tasks/main.yml"
    tasks.write_text(
        tasks.read_text() + "\n- name: Break the bake\n  ansible.builtin.command: "
        "/bin/false\n  changed_when: false\n"
    )
    with pytest.raises(BakeFailed, match="task 'Break the bake'") as caught:
        baker.bake_or_reuse(request_for(tmp_path, subnet, "v-fail", playbooks / "bake.yml"))
    assert caught.value.exit_code == 1
    assert running_builders(aws) == []


def test_an_app_without_run_fails_the_contract_check_on_the_builder(tmp_path, baker_parts):
    _, baker, _, _, subnet, aws = baker_parts
    app = tmp_path / "app"
    shutil.copytree(REPO / "examples" / "hello", app)
    request = request_for(tmp_path, subnet, "v-norun", app=app)
    (app / "run").unlink()  # after packaging: the builder's own check must catch it
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x").write_text("x")
    with tarfile.open(request.artifact.path, "w:gz") as tar:
        tar.add(broken / "x", arcname="x")
    request = replace(
        request, artifact=replace(request.artifact, digest=sha256_of(request.artifact.path))
    )
    with pytest.raises(BakeFailed, match="no executable `run`"):
        baker.bake_or_reuse(request)
    assert running_builders(aws) == []


def test_ctrl_c_during_the_bake_still_terminates_the_builder(tmp_path, baker_parts):
    _, baker, _, _, subnet, aws = baker_parts

    def interrupted(_instance):
        raise KeyboardInterrupt

    baker._access_for = interrupted
    with pytest.raises(KeyboardInterrupt):
        baker.bake_or_reuse(request_for(tmp_path, subnet, "v-ctrl-c"))
    assert running_builders(aws) == []


def test_a_builder_left_by_a_killed_run_is_terminated_first(tmp_path, baker_parts):
    _, baker, ec2, lines, subnet, aws = baker_parts
    request = request_for(tmp_path, subnet, "v-left")
    leftover = ec2.run_builder(
        "ami-03c3da4cfa8e8943a",
        "t3.small",
        subnet[0],
        [subnet[1]],
        None,
        request.builder_tags,
        token="killed-run",
    )
    baker.bake_or_reuse(request)
    assert any(leftover in line and "left by an earlier run" in line for line in lines)
    assert running_builders(aws) == []
