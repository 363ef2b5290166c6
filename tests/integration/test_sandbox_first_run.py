"""What a team meets on its first real run, reproduced by the sandbox (aws profile) so that a
test fails here where AWS would refuse: user data run as cloud-init runs it, EC2's default
quotas, termination protection, stack deletes that fail on what the stack does not own, and
STS's session limit. Each test fails on plain moto.

Everything goes through plain boto3 against the sandbox endpoint, as a user would.
"""

from __future__ import annotations

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from deployer.aws.poller import Poll, Poller
from deployer.bake.baker import user_data
from deployer.sandbox import client
from deployer.sandbox.layout import CREDENTIALS
from tests.conftest import REPO

pytestmark = pytest.mark.integration
BASE_AMI = "ami-0d27e0fb3bac4d724"
POLL = Poller(first_interval=0.1, max_interval=0.5)
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})
WORKFLOW = REPO / "examples" / "github-actions" / "release.yml"


@pytest.fixture
def aws(sandbox):
    _, state = sandbox
    client.set_behaviours(state.endpoint, shutdown_time_scale=None)  # timers scaled, as asked

    def make(service, config=None):
        return boto3.client(
            service,
            region_name=state.region,
            endpoint_url=state.endpoint,
            config=config,
            **CREDENTIALS,
        )

    return make


def code(exc_info):
    return exc_info.value.response["Error"]["Code"]


def state_of(ec2, instance_id):
    found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return found["State"]["Name"], found.get("StateReason", {}).get("Code", "")


def wait_state(ec2, instance_id, wanted, deadline_s):
    def check():
        try:
            state, reason = state_of(ec2, instance_id)
        except ClientError as exc:  # a new id is not found for a moment, as on EC2
            return Poll(False, str(exc))
        return Poll(state == wanted, state, (state, reason))

    return POLL.until(f"{instance_id} to be {wanted}", check, deadline_s)


# ---- user data, as cloud-init runs it ----------------------------------------------------------


def launch(ec2, script, behaviour):
    return ec2.run_instances(
        ImageId=BASE_AMI,
        MinCount=1,
        MaxCount=1,
        UserData=script,
        InstanceInitiatedShutdownBehavior=behaviour,
    )["Instances"][0]["InstanceId"]


def test_a_shutdown_in_user_data_terminates_the_instance_after_its_scaled_minutes(aws):
    ec2 = aws("ec2")
    builder = launch(ec2, "#!/bin/sh\nshutdown -h +1 'deployer: time is up'\n", "terminate")
    wait_state(ec2, builder, "running", 30)
    assert state_of(ec2, builder)[0] == "running"  # not at once: after 1 minute, scaled
    state, reason = wait_state(ec2, builder, "terminated", 60)
    assert reason == "Client.InstanceInitiatedShutdown"


def test_without_terminate_behaviour_an_instance_that_shuts_down_is_stopped(aws):
    ec2 = aws("ec2")
    instance = launch(ec2, "#!/bin/sh\nshutdown -h now\n", "stop")
    assert wait_state(ec2, instance, "stopped", 60)[1] == "Client.InstanceInitiatedShutdown"


def test_a_user_data_script_that_does_not_parse_never_arms_its_timer(aws, sandbox):
    layout, _ = sandbox
    ec2 = aws("ec2")
    broken = "#!/bin/sh\nshutdown -h now 'the builder's time is up'\n"  # the old quoting bug
    instance = launch(ec2, broken, "terminate")
    wait_state(ec2, instance, "running", 30)
    output = layout.host_root(instance) / "var/log/cloud-init-output.log"
    ran = lambda: Poll(output.is_file() and output.stat().st_size > 0, "no output")  # noqa: E731
    POLL.until("the script to run", ran, 30)
    assert "Unterminated quoted string" in output.read_text()
    assert state_of(ec2, instance)[0] == "running"
    ec2.terminate_instances(InstanceIds=[instance])


def test_the_builders_own_user_data_arms_its_timer(aws, sandbox):
    layout, state = sandbox
    ec2 = aws("ec2")
    builder = launch(ec2, user_data(10), "terminate")
    wait_state(ec2, builder, "running", 30)
    planned = layout.host_dir(builder) / "shutdown.json"
    POLL.until("the timer", lambda: Poll(planned.is_file(), "not armed"), 30)
    ec2.terminate_instances(InstanceIds=[builder])


# ---- stacks: termination protection, deletes as CloudFormation does them ------------------------

SMALL = """\
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.77.0.0/16}
  Group:
    Type: AWS::EC2::SecurityGroup
    Properties: {GroupDescription: the stack's own, VpcId: !Ref Vpc}
  Targets:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties: {VpcId: !Ref Vpc, Port: 80, Protocol: HTTP}
Outputs:
  VpcId: {Value: !Ref Vpc}
"""


def stack_status(cfn, stack_id):
    return cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]


def wait_stack(cfn, stack_id, wanted, deadline_s=60):
    def check():
        status = stack_status(cfn, stack_id)
        return Poll(status == wanted or status.endswith("FAILED"), status, status)

    status = POLL.until(f"{stack_id} to be {wanted}", check, deadline_s)
    assert status == wanted
    return status


def test_a_protected_stack_refuses_delete_until_its_protection_is_turned_off(aws):
    cfn = aws("cloudformation")
    stack = cfn.create_stack(
        StackName="guarded", TemplateBody=SMALL, EnableTerminationProtection=True
    )["StackId"]
    wait_stack(cfn, stack, "CREATE_COMPLETE")
    assert cfn.describe_stacks(StackName=stack)["Stacks"][0]["EnableTerminationProtection"]
    with pytest.raises(ClientError) as refused:
        cfn.delete_stack(StackName="guarded")
    assert code(refused) == "ValidationError"
    assert "TerminationProtection is enabled" in str(refused.value)
    cfn.update_termination_protection(StackName="guarded", EnableTerminationProtection=False)
    assert not cfn.describe_stacks(StackName=stack)["Stacks"][0]["EnableTerminationProtection"]
    cfn.delete_stack(StackName="guarded")
    wait_stack(cfn, stack, "DELETE_COMPLETE")


def test_a_vpc_holding_a_foreign_security_group_fails_the_delete_until_it_is_gone(aws):
    cfn, ec2, elb = aws("cloudformation"), aws("ec2"), aws("elbv2")
    stack = cfn.create_stack(StackName="holds", TemplateBody=SMALL)["StackId"]
    wait_stack(cfn, stack, "CREATE_COMPLETE")
    vpc = cfn.describe_stacks(StackName=stack)["Stacks"][0]["Outputs"][0]["OutputValue"]
    leaked = ec2.create_security_group(GroupName="leaked", Description="x", VpcId=vpc)["GroupId"]
    cfn.delete_stack(StackName=stack)
    wait_stack(cfn, stack, "DELETE_FAILED")
    failed = [
        e
        for e in cfn.describe_stack_events(StackName=stack)["StackEvents"]
        if e["ResourceStatus"] == "DELETE_FAILED" and e["LogicalResourceId"] == "Vpc"
    ]
    assert failed and "has dependencies" in failed[0]["ResourceStatusReason"]
    POLL.until("the leaked group to go", lambda: _deleted(ec2, leaked), 30)
    cfn.delete_stack(StackName=stack)
    wait_stack(cfn, stack, "DELETE_COMPLETE")
    assert vpc not in {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}
    assert not [g for g in elb.describe_target_groups()["TargetGroups"] if g["VpcId"] == vpc]
    # Its outputs named resources now gone: listing every stack still answers.
    assert "holds" not in {s["StackName"] for s in cfn.describe_stacks()["Stacks"]}


def _deleted(ec2, group_id):
    try:
        ec2.delete_security_group(GroupId=group_id)
    except ClientError as exc:  # not visible yet, for a moment
        return Poll(False, str(exc))
    return Poll(True, "deleted")


def test_a_deleted_network_stack_leaves_nothing_and_lists_only_what_it_made(aws):
    cfn, ec2 = aws("cloudformation"), aws("ec2")
    body = (REPO / "cloudformation" / "network.yaml").read_text()
    parameters = {"AzCount": "2", "CidrPrefix": "10.78", "NatMode": "single"}
    stack = cfn.create_stack(
        StackName="net-once",
        TemplateBody=body,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )["StackId"]
    wait_stack(cfn, stack, "CREATE_COMPLETE")
    listed = cfn.describe_stack_resources(StackName=stack)["StackResources"]
    assert all(r.get("ResourceType") and r.get("PhysicalResourceId") for r in listed)
    assert "SubnetC" not in {r["LogicalResourceId"] for r in listed}  # AzCount 2: never made
    vpc = next(r["PhysicalResourceId"] for r in listed if r["LogicalResourceId"] == "Vpc")
    addresses = len(ec2.describe_addresses()["Addresses"])
    cfn.delete_stack(StackName=stack)
    wait_stack(cfn, stack, "DELETE_COMPLETE")
    assert vpc not in {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}
    assert len(ec2.describe_addresses()["Addresses"]) == addresses - 1
    assert not ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])[
        "RouteTables"
    ]
    assert not ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}]
    )["InternetGateways"]


BALANCER = """\
Parameters:
  Protected: {Type: String, AllowedValues: ["true", "false"]}
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.79.0.0/16}
  SubnetA:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.79.1.0/24, AvailabilityZone: us-east-1a}
  SubnetB:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.79.2.0/24, AvailabilityZone: us-east-1b}
  Balancer:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties:
      Subnets: [!Ref SubnetA, !Ref SubnetB]
      LoadBalancerAttributes:
        - {Key: deletion_protection.enabled, Value: !Ref Protected}
Outputs:
  Dns: {Value: !GetAtt Balancer.DNSName}
"""


def test_a_load_balancers_deletion_protection_holds_until_an_update_lifts_it(aws):
    cfn, elb = aws("cloudformation"), aws("elbv2")

    def protected_param(value):
        return [{"ParameterKey": "Protected", "ParameterValue": value}]

    stack = cfn.create_stack(
        StackName="alb", TemplateBody=BALANCER, Parameters=protected_param("true")
    )["StackId"]
    wait_stack(cfn, stack, "CREATE_COMPLETE")
    (balancer,) = elb.describe_load_balancers()["LoadBalancers"]
    arn = balancer["LoadBalancerArn"]
    attributes = elb.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
    assert {"Key": "deletion_protection.enabled", "Value": "true"} in attributes
    with pytest.raises(ClientError) as refused:
        elb.delete_load_balancer(LoadBalancerArn=arn)
    assert code(refused) == "OperationNotPermitted"

    cfn.update_stack(StackName="alb", TemplateBody=BALANCER, Parameters=protected_param("false"))
    wait_stack(cfn, stack, "UPDATE_COMPLETE")
    assert cfn.describe_stacks()["Stacks"]  # the outputs still resolve: the ALB was kept
    attributes = elb.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
    assert {"Key": "deletion_protection.enabled", "Value": "false"} in attributes
    cfn.delete_stack(StackName="alb")
    wait_stack(cfn, stack, "DELETE_COMPLETE")
    assert elb.describe_load_balancers()["LoadBalancers"] == []


# ---- EC2's default quotas ----------------------------------------------------------------------


def test_elastic_ips_and_vpcs_stop_at_the_default_quotas_with_ec2s_codes(aws):
    ec2, quotas = aws("ec2", NO_RETRIES), aws("service-quotas")
    made = []
    try:
        while len(ec2.describe_addresses()["Addresses"]) < 5:
            made.append(ec2.allocate_address(Domain="vpc")["AllocationId"])
        with pytest.raises(ClientError) as addresses:
            ec2.allocate_address(Domain="vpc")
        assert code(addresses) == "AddressLimitExceeded"
    finally:
        for allocation in made:
            ec2.release_address(AllocationId=allocation)
    vpcs = []
    try:
        while len(ec2.describe_vpcs()["Vpcs"]) < 5:  # the default VPC counts
            vpcs.append(ec2.create_vpc(CidrBlock=f"10.{90 + len(vpcs)}.0.0/16")["Vpc"]["VpcId"])
        with pytest.raises(ClientError) as more:
            ec2.create_vpc(CidrBlock="10.99.0.0/16")
        assert code(more) == "VpcLimitExceeded"
    finally:
        for vpc in vpcs:
            POLL.until("the VPC to go", lambda v=vpc: _vpc_deleted(ec2, v), 30)
    for service, quota in (("ec2", "L-0263D0A3"), ("vpc", "L-F678F1CE")):
        answer = quotas.get_service_quota(ServiceCode=service, QuotaCode=quota)["Quota"]
        assert answer["Value"] == 5.0


def _vpc_deleted(ec2, vpc_id):
    try:
        ec2.delete_vpc(VpcId=vpc_id)
    except ClientError as exc:
        return Poll(False, str(exc))
    return Poll(True, "deleted")


# ---- STS: the session a workflow asks for ---------------------------------------------------


def deploy_role(aws, app, max_session_seconds=None):
    cfn = aws("cloudformation")
    parameters = {
        "App": app,
        "GitHubRepository": "owner/repo",
        "MakeArtifactBucket": "false",
        **({"MaxSessionSeconds": str(max_session_seconds)} if max_session_seconds else {}),
    }
    stack = cfn.create_stack(
        StackName=f"deployer-iam-{app}",
        TemplateBody=(REPO / "cloudformation" / "deployer-iam.yaml").read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )["StackId"]
    wait_stack(cfn, stack, "CREATE_COMPLETE")
    return aws("iam").get_role(RoleName=f"deployer.{app}.deploy")["Role"]["Arn"]


def test_sts_refuses_a_session_longer_than_the_roles_maximum_as_the_workflow_asks_it(aws):
    asked = int(yaml.safe_load(WORKFLOW.read_text())["env"]["SESSION_SECONDS"])
    sts = aws("sts", NO_RETRIES)

    def assume(role_arn, seconds):
        return sts.assume_role_with_web_identity(
            RoleArn=role_arn,
            RoleSessionName="deployer-1",
            WebIdentityToken="a-github-oidc-token",
            DurationSeconds=seconds,
        )

    role = deploy_role(aws, "sts")  # the template as shipped: its maximum fits the workflow
    assert assume(role, asked)["Credentials"]["AccessKeyId"]
    with pytest.raises(ClientError) as refused:
        assume(role, asked + 1)
    assert code(refused) == "ValidationError"
    assert "MaxSessionDuration" in str(refused.value)
    # The first review's blocker: a 7200 s role and a workflow asking for 14400 s.
    old = deploy_role(aws, "old", max_session_seconds=7200)
    with pytest.raises(ClientError):
        assume(old, asked)
