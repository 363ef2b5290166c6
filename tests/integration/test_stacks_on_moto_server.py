"""The templates, applied with our adapters to a moto server over HTTP."""

import shutil

import pytest

from deployer.aws.cloudformation import CloudFormation
from deployer.config.loading import load_config
from deployer.errors import BadInput
from deployer.infra.stacks import Infra, Templates, ensure_stack, lint_templates
from deployer.release.preflight import check_local
from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_the_templates_pass_cfn_lint():
    lint_templates(REPO / "cloudformation", "us-east-1")


def test_a_template_that_fails_cfn_lint_is_bad_input_naming_file_and_line(tmp_path):
    shutil.copytree(REPO / "cloudformation", tmp_path / "cfn")
    fleet = tmp_path / "cfn" / "fleet.yaml"
    fleet.write_text(
        fleet.read_text().replace(
            "Type: AWS::EC2::LaunchTemplate", "Type: AWS::EC2::LaunchTemplat", 1
        )
    )
    with pytest.raises(BadInput) as caught:
        lint_templates(tmp_path / "cfn", "us-east-1")
    assert "fleet.yaml:" in caught.value.message
    assert "E3006" in caught.value.message


def test_a_cfn_lint_warning_is_reported_and_never_stops_a_release(tmp_path):
    """A newer cfn-lint may add a warning rule; that must not turn every release into exit 2."""
    workdir = tmp_path / "project"
    shutil.copytree(REPO / "cloudformation", workdir / "cloudformation")
    shutil.copytree(REPO / "playbooks", workdir / "playbooks")
    shutil.copytree(REPO / "examples" / "hello", workdir / "app")
    fleet = workdir / "cloudformation" / "fleet.yaml"
    fleet.write_text(fleet.read_text().replace("Type: AWS::EC2::Image::Id", "Type: String", 1))
    (workdir / "deployer.yaml").write_text("app: lint\nartifact: {source: app}\n")
    loaded = load_config(workdir / "deployer.yaml")
    told: list[str] = []
    assert check_local(loaded, workdir, told.append) is not None
    assert [line for line in told if "W2506" in line and "fleet.yaml:" in line]
    again: list[str] = []
    check_local(loaded, workdir, again.append)
    assert again == told  # said on every run, not once and then cached away


def network_and_service(cfn, lines, **service_parameters):
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
            "OwnLoadBalancerSecurityGroupId": "",
            "TestListenerCidr": "203.0.113.7/32",  # where deployer runs; never 0.0.0.0/0
            **service_parameters,
        },
        {"deployer:app": "t"},
        lines.append,
    )
    return network, service


def self_signed_certificate() -> tuple[bytes, bytes]:
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hello.example.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    )


def test_with_a_certificate_production_is_https_on_443_and_80_redirects(aws, fast_poller):
    cert, key = self_signed_certificate()
    arn = aws.client("acm").import_certificate(Certificate=cert, PrivateKey=key)["CertificateArn"]
    cfn = CloudFormation(aws, fast_poller)
    network, service = network_and_service(cfn, [], CertificateArn=arn)
    infra = Infra.from_outputs(network.outputs, service.outputs)
    assert infra.listener_port == 443
    elb = aws.client("elbv2")
    listeners = {
        listener["Port"]: listener
        for listener in elb.describe_listeners(LoadBalancerArn=service.outputs["LoadBalancerArn"])[
            "Listeners"
        ]
    }
    production = listeners[443]
    assert production["ListenerArn"] == infra.listener_arn
    assert production["Protocol"] == "HTTPS"
    assert production["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert production["Certificates"][0]["CertificateArn"] == arn
    (redirect,) = listeners[80]["DefaultActions"]
    assert redirect["Type"] == "redirect"
    assert redirect["RedirectConfig"]["Protocol"] == "HTTPS"
    assert redirect["RedirectConfig"]["StatusCode"] == "HTTP_301"
    # (moto's CloudFormation ignores LoadBalancerAttributes: dropping invalid headers,
    # deletion protection and access logs are checked on the template by checkov in .ci/run.)


def test_network_and_service_come_up_across_two_azs_and_rerunning_changes_nothing(aws, fast_poller):
    cfn = CloudFormation(aws, fast_poller)
    lines = []
    network, service = network_and_service(cfn, lines)
    infra = Infra.from_outputs(network.outputs, service.outputs)
    subnets = aws.client("ec2").describe_subnets(SubnetIds=infra.subnet_ids.split(","))["Subnets"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    listener = aws.client("elbv2").describe_listeners(ListenerArns=[infra.listener_arn])
    assert listener["Listeners"][0]["DefaultActions"][0]["Type"] == "fixed-response"
    # Private subnets for the fleets, one per AZ, no public IPs, out through NAT, S3 inside.
    ec2 = aws.client("ec2")
    private = ec2.describe_subnets(SubnetIds=infra.private_subnet_ids.split(","))["Subnets"]
    assert len({s["AvailabilityZone"] for s in private}) == 2
    assert not any(s["MapPublicIpOnLaunch"] for s in private)
    # (moto does not list a template's subnet associations: the private tables are the VPC's
    # tables whose default route is a NAT gateway.)
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [infra.vpc_id]}])[
        "RouteTables"
    ]
    defaults = [
        r
        for t in tables
        for r in t["Routes"]
        if r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("NatGatewayId")
    ]
    assert len(defaults) == 2 and all(r.get("NatGatewayId") for r in defaults)
    assert len({r["NatGatewayId"] for r in defaults}) == 1  # nat: single
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [infra.vpc_id]}])[
        "VpcEndpoints"
    ]
    assert [e["ServiceName"] for e in endpoints] == ["com.amazonaws.us-east-1.s3"]

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


def test_a_fleet_stack_is_created_with_imdsv2_encrypted_disks_and_deleted_cleanly(aws, fast_poller):
    cfn = CloudFormation(aws, fast_poller)
    network, service = network_and_service(cfn, [])
    infra = Infra.from_outputs(network.outputs, service.outputs)
    cfn.create(
        "t-fleet-v1",
        Templates.load(REPO / "cloudformation")["fleet"],
        {
            "ImageId": "ami-03c3da4cfa8e8943a",
            "VpcId": infra.vpc_id,
            "SubnetIds": infra.private_subnet_ids,
            "InstanceSecurityGroupId": infra.instance_security_group_id,
            "DesiredCapacity": "2",
            "Version": "v1",
            "Digest": "d" * 64,
            "VolumeGb": "20",
            "GraceSeconds": "420",
            "ScalingMetric": "requests_per_target",
            "ScalingTarget": "250",
            "LoadBalancerFullName": service.outputs["LoadBalancerFullName"],
        },
        {"deployer:app": "t"},
        token="t-fleet-v1-1",
    )
    stack = cfn.wait_for("t-fleet-v1", "CREATE_COMPLETE", 60)
    template = aws.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=stack.outputs["LaunchTemplateId"]
    )["LaunchTemplateVersions"][0]
    assert template["LaunchTemplateData"]["MetadataOptions"]["HttpTokens"] == "required"
    (root,) = template["LaunchTemplateData"]["BlockDeviceMappings"]
    assert root["DeviceName"] == "/dev/xvda"
    assert {k: root["Ebs"][k] for k in ("VolumeType", "Encrypted", "VolumeSize")} == {
        "VolumeType": "gp3",
        "Encrypted": True,
        "VolumeSize": 20,
    }
    group = aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[stack.outputs["AutoScalingGroupName"]]
    )["AutoScalingGroups"][0]
    assert len(group["Instances"]) == 2
    instances = aws.client("ec2").describe_instances(
        InstanceIds=[i["InstanceId"] for i in group["Instances"]]
    )["Reservations"]
    assert not [i for r in instances for i in r["Instances"] if i.get("PublicIpAddress")]
    assert group["TargetGroupARNs"] == [stack.outputs["TargetGroupArn"]]
    assert group["HealthCheckGracePeriod"] == 420
    # moto's CloudFormation has no AWS::AutoScaling::ScalingPolicy: the policy's template is
    # checked by cfn-lint (its ResourceLabel is lb-full-name/tg-full-name, as AWS documents).
    cfn.delete(stack.stack_id)
    cfn.wait_deleted(stack.stack_id, 60)
    assert cfn.describe("t-fleet-v1") is None
    assert (
        aws.client("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[stack.outputs["AutoScalingGroupName"]]
        )["AutoScalingGroups"]
        == []
    )


def test_instances_get_a_least_privilege_role_of_their_app_and_environment(aws, fast_poller):
    cfn = CloudFormation(aws, fast_poller)
    _, service = network_and_service(
        cfn,
        [],
        SettingsPath="/deployer/shop/prod/",
        ArtifactBucket="deployer-artifacts-123456789012-us-east-1",
        ArtifactPrefix="shop/",
    )
    iam = aws.client("iam")
    profile_name = service.outputs["InstanceProfileArn"].rsplit("/", 1)[-1]
    (role,) = iam.get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]["Roles"]
    # moto's CloudFormation does not attach ManagedPolicyArns: read them from the template.
    from cfnlint.decode import decode_str

    template, _ = decode_str((REPO / "cloudformation" / "service.yaml").read_text())
    managed = template["Resources"]["InstanceRole"]["Properties"]["ManagedPolicyArns"]
    assert [m["Fn::Sub"].rsplit("/", 1)[-1] for m in managed] == [
        "AmazonSSMManagedInstanceCore",
        "CloudWatchAgentServerPolicy",
    ]
    (name,) = iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    document = iam.get_role_policy(RoleName=role["RoleName"], PolicyName=name)["PolicyDocument"]
    if isinstance(document, str):  # moto keeps a CloudFormation policy as a Python repr
        import ast

        document = ast.literal_eval(document)
    grants = {s["Sid"]: s for s in document["Statement"]}
    assert grants["ItsOwnSettings"]["Resource"] == [
        "arn:aws:ssm:us-east-1:123456789012:parameter/deployer/shop/prod/*",
        "arn:aws:ssm:us-east-1:123456789012:parameter/deployer/shop/prod",
    ]
    assert grants["ItsArtifacts"]["Action"] == "s3:GetObject"
    assert grants["ItsArtifacts"]["Resource"] == (
        "arn:aws:s3:::deployer-artifacts-123456789012-us-east-1/shop/*"
    )
    every_action = [
        a
        for s in document["Statement"]
        for a in [s["Action"]]
        for a in (a if isinstance(a, list) else [a])
    ]
    assert not [
        a for a in every_action if not a.startswith(("ssm:Get", "kms:Decrypt", "s3:GetObject"))
    ]
