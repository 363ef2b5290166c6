"""What AWS answers about failed launches and EBS keys, pinned on its documented response
shapes (botocore's Stubber): the sandbox's Auto Scaling never fails a launch, and its KMS
holds no customer-managed EBS key.
"""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
from botocore.stub import Stubber

from deployer.aws.autoscaling import AutoScaling
from deployer.aws.kms import Kms
from deployer.aws.session import AwsContext
from tests.cfn import load_template, statements
from tests.conftest import REPO

KMS_FAILURE = (
    "Instance became unhealthy while waiting for instance to be in InService state. "
    "Termination Reason: Client.InternalError: Client error on launch"
)


def context() -> AwsContext:
    session = boto3.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="eu-west-1"
    )
    return AwsContext(session=session)


def activity(status: str, message: str = "") -> dict:
    found = {
        "ActivityId": "a" * 36,
        "AutoScalingGroupName": "shop-prod-fleet-v2",
        "Cause": "At 2026-01-01T00:00:00Z an instance was started in response to a difference",
        "StartTime": datetime(2026, 1, 1, tzinfo=UTC),
        "StatusCode": status,
        "Description": "Launching a new EC2 instance",
    }
    if message:  # AWS leaves it out when there is nothing to say
        found["StatusMessage"] = message
    return found


def test_a_fleet_without_targets_shows_why_its_launch_failed():
    """A customer-managed EBS key the Auto Scaling service-linked role may not use: the
    gate said only '0/2 healthy: no targets registered'.
    """
    aws = context()
    with Stubber(aws.client("autoscaling")) as stub:
        stub.add_response(
            "describe_scaling_activities",
            {"Activities": [activity("Failed", KMS_FAILURE), activity("Successful")]},
            {"AutoScalingGroupName": "shop-prod-fleet-v2", "MaxRecords": 10},
        )
        stub.add_response(
            "describe_scaling_activities",
            {"Activities": [activity("Successful"), activity("Failed", KMS_FAILURE)]},
            {"AutoScalingGroupName": "shop-prod-fleet-v2", "MaxRecords": 10},
        )
        assert AutoScaling(aws).launch_failure("shop-prod-fleet-v2") == KMS_FAILURE
        assert AutoScaling(aws).launch_failure("shop-prod-fleet-v2") == ""  # recovered since


def test_only_a_customer_managed_key_needs_the_callers_kms_rights():
    aws = context()
    arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    with Stubber(aws.client("kms")) as stub:
        for manager in ("CUSTOMER", "AWS"):
            stub.add_response(
                "describe_key",
                {
                    "KeyMetadata": {
                        "KeyId": arn.rsplit("/", 1)[1],
                        "Arn": arn,
                        "KeyManager": manager,
                    }
                },
                {"KeyId": "alias/ebs"},
            )
        assert Kms(aws).customer_key_arn("alias/ebs") == arn
        assert Kms(aws).customer_key_arn("alias/ebs") is None


def test_the_deploy_role_grants_ebs_keys_through_ec2_and_external_artifacts_when_given():
    template = load_template(REPO / "cloudformation" / "deployer-iam.yaml")
    role = template["Resources"]["DeployRole"]
    always = {s["Sid"] for s in statements(role, conditional=False)}
    every = {s["Sid"]: s for s in statements(role)}
    assert {"TheEbsKeysThroughEc2", "TheArtifactSource"} <= set(every) - always
    keys = every["TheEbsKeysThroughEc2"]
    assert keys["Resource"] == "EbsKmsKeyArns"
    assert keys["Condition"]["StringLike"]["kms:ViaService"] == "ec2.*.amazonaws.com"
    assert every["TheArtifactSource"]["Action"] == "s3:GetObject"
    # The artifact bucket is the administrator's: the role may not rewrite its policy.
    bucket_actions = {
        action
        for s in every.values()
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        if action.startswith("s3:")
    }
    assert bucket_actions == {
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
    }
    assert "ArtifactBucket" in template["Resources"]
