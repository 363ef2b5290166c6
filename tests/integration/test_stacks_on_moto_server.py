"""The templates, applied with our adapters to a moto server over HTTP."""

import shutil

import pytest

from deployer.aws.cloudformation import CloudFormation
from deployer.errors import BadInput
from deployer.infra import Infra, Templates, ensure_stack, lint_templates
from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_the_templates_pass_cfn_lint():
    lint_templates(REPO / "cloudformation", "us-east-1")


def test_a_template_that_fails_cfn_lint_is_bad_input_naming_file_and_line(tmp_path):
    shutil.copytree(REPO / "cloudformation", tmp_path / "cfn")
    fleet = tmp_path / "cfn" / "fleet.yaml"
    fleet.write_text(fleet.read_text().replace("Type: AWS::EC2::Image::Id", "Type: String", 1))
    with pytest.raises(BadInput) as caught:
        lint_templates(tmp_path / "cfn", "us-east-1")
    assert "fleet.yaml:" in caught.value.message
    assert "W2506" in caught.value.message


def network_and_service(cfn, lines):
    templates = Templates.load(REPO / "cloudformation")
    network = ensure_stack(
        cfn,
        "t-network",
        templates["network"],
        {"AzCount": "2", "BuilderSshCidr": ""},
        {"deployer:app": "t"},
        lines.append,
    )
    service = ensure_stack(
        cfn,
        "t-service",
        templates["service"],
        {
            "VpcId": network.outputs["VpcId"],
            "SubnetIds": network.outputs["SubnetIds"],
            "AppPort": "8080",
        },
        {"deployer:app": "t"},
        lines.append,
    )
    return network, service


def test_network_and_service_come_up_across_two_azs_and_rerunning_changes_nothing(aws, fast_poller):
    cfn = CloudFormation(aws, fast_poller)
    lines = []
    network, service = network_and_service(cfn, lines)
    infra = Infra.from_outputs(network.outputs, service.outputs)
    subnets = aws.client("ec2").describe_subnets(SubnetIds=infra.subnet_ids.split(","))["Subnets"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    listener = aws.client("elbv2").describe_listeners(ListenerArns=[infra.listener_arn])
    assert listener["Listeners"][0]["DefaultActions"][0]["Type"] == "fixed-response"

    writes_before = sum(
        n
        for op, n in aws.operations.items()
        if op.startswith("cloudformation.") and "Describe" not in op
    )
    network_and_service(cfn, lines)
    writes_after = sum(
        n
        for op, n in aws.operations.items()
        if op.startswith("cloudformation.") and "Describe" not in op
    )
    assert writes_after == writes_before
    assert lines == ["infra: creating t-network", "infra: creating t-service"]


def test_a_fleet_stack_is_created_with_imdsv2_and_deleted_cleanly(aws, fast_poller):
    cfn = CloudFormation(aws, fast_poller)
    network, service = network_and_service(cfn, [])
    infra = Infra.from_outputs(network.outputs, service.outputs)
    cfn.create(
        "t-fleet-v1",
        Templates.load(REPO / "cloudformation")["fleet"],
        {
            "ImageId": "ami-03c3da4cfa8e8943a",
            "VpcId": infra.vpc_id,
            "SubnetIds": infra.subnet_ids,
            "InstanceSecurityGroupId": infra.instance_security_group_id,
            "DesiredCapacity": "2",
            "Version": "v1",
            "Digest": "d" * 64,
        },
        {"deployer:app": "t"},
        token="t-fleet-v1-1",
    )
    stack = cfn.wait_for("t-fleet-v1", "CREATE_COMPLETE", 60)
    template = aws.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=stack.outputs["LaunchTemplateId"]
    )["LaunchTemplateVersions"][0]
    assert template["LaunchTemplateData"]["MetadataOptions"]["HttpTokens"] == "required"
    group = aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[stack.outputs["AutoScalingGroupName"]]
    )["AutoScalingGroups"][0]
    assert len(group["Instances"]) == 2
    assert group["TargetGroupARNs"] == [stack.outputs["TargetGroupArn"]]

    cfn.delete(stack.stack_id)
    cfn.wait_deleted(stack.stack_id, 60)
    assert cfn.describe("t-fleet-v1") is None
    assert (
        aws.client("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[stack.outputs["AutoScalingGroupName"]]
        )["AutoScalingGroups"]
        == []
    )
