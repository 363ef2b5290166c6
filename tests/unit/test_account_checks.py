"""The account's side of a preflight, on AWS's documented shapes: the vCPUs a release starts
against the running On-Demand standard quota, and whether a customer-managed EBS key lets
Auto Scaling's service-linked role launch with it. Neither can be seen in the sandbox's
launches (it refuses none), so the adapters are pinned with botocore's Stubber.
"""

from __future__ import annotations

import json

import boto3
from botocore.stub import Stubber

from deployer.aws.ec2 import Ec2
from deployer.aws.kms import Kms
from deployer.aws.poller import Poller
from deployer.aws.session import AwsContext
from deployer.core.key_policy import auto_scaling_role, missing_for_launch
from deployer.core.quotas import QuotaUse, is_standard, release_vcpus, shortfalls, standard_vcpus

ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE = auto_scaling_role("aws", ACCOUNT)


def context() -> AwsContext:
    session = boto3.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="eu-west-1"
    )
    return AwsContext(session=session)


def test_standard_families_are_told_from_those_with_quotas_of_their_own():
    for standard in (
        "t3.micro",
        "m7i.large",
        "c6g.xlarge",
        "r6a.2xlarge",
        "i4i.large",
        "z1d.large",
    ):
        assert is_standard(standard), standard
    for other in ("g5.xlarge", "p4d.24xlarge", "inf2.xlarge", "trn1.2xlarge", "dl1.24xlarge",
                  "hpc7g.4xlarge", "mac2.metal", "x2iedn.xlarge", "u-6tb1.metal"):  # fmt: skip
        assert not is_standard(other), other


def test_a_release_that_would_pass_the_vcpu_quota_is_named_with_its_numbers():
    vcpus = {"t3.micro": 2, "t3.small": 2, "g5.xlarge": 4, "m5.large": 2}
    running = {"t3.micro": 4, "g5.xlarge": 3, "m5.large": 1}
    in_use = standard_vcpus(running, vcpus)
    assert in_use == 10  # the GPU instances count against a quota of their own
    need = release_vcpus(2, "t3.micro", "t3.small", vcpus)
    assert need == 6  # the new fleet (2 x 2) beside blue, and the builder (2)
    assert release_vcpus(2, "t3.micro", None, vcpus) == 4  # an image reused: no builder
    assert release_vcpus(2, "g5.xlarge", None, vcpus) == 0
    (short,) = shortfalls([QuotaUse("Standard vCPUs", "ec2/L-1216C47A", 14.0, in_use, need)])
    assert "ec2/L-1216C47A" in short and "needs 6, 10 of 14 are in use (4 left)" in short
    assert shortfalls([QuotaUse("Standard vCPUs", "ec2/L-1216C47A", 16.0, in_use, need)]) == []


def test_running_on_demand_instances_and_their_vcpus_are_read_across_pages():
    aws = context()
    client = aws.client("ec2")
    states = {"Filters": [{"Name": "instance-state-name", "Values": ["pending", "running"]}]}
    with Stubber(client) as stub:
        stub.add_response(
            "describe_instances",
            {
                "Reservations": [
                    {"Instances": [{"InstanceId": "i-1", "InstanceType": "t3.micro"}]},
                    {
                        "Instances": [
                            {"InstanceId": "i-2", "InstanceType": "t3.micro"},
                            {  # Spot counts against a quota of its own
                                "InstanceId": "i-3",
                                "InstanceType": "m5.large",
                                "InstanceLifecycle": "spot",
                            },
                        ]
                    },
                ],
                "NextToken": "page-2",
            },
            states,
        )
        stub.add_response(
            "describe_instances",
            {"Reservations": [{"Instances": [{"InstanceId": "i-4", "InstanceType": "c7g.large"}]}]},
            {**states, "NextToken": "page-2"},
        )
        stub.add_response(
            "describe_instance_types",
            {
                "InstanceTypes": [
                    {"InstanceType": "c7g.large", "VCpuInfo": {"DefaultVCpus": 2}},
                    {"InstanceType": "t3.micro", "VCpuInfo": {"DefaultVCpus": 2}},
                ]
            },
            {"InstanceTypes": ["c7g.large", "t3.micro"]},
        )
        ec2 = Ec2(aws, Poller())
        running = ec2.on_demand_types_running()
        assert dict(running) == {"t3.micro": 2, "c7g.large": 1}
        assert ec2.vcpus_of([*running, "t3.micro"]) == {"c7g.large": 2, "t3.micro": 2}


# AWS's "Required AWS KMS key policy for use with encrypted volumes" (Auto Scaling guide).
DOCUMENTED = [
    {
        "Sid": "Allow service-linked role use of the customer managed key",
        "Effect": "Allow",
        "Principal": {"AWS": [ROLE]},
        "Action": [
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
            "kms:DescribeKey",
        ],
        "Resource": "*",
    },
    {
        "Sid": "Allow attachment of persistent resources",
        "Effect": "Allow",
        "Principal": {"AWS": [ROLE]},
        "Action": ["kms:CreateGrant"],
        "Resource": "*",
        "Condition": {"Bool": {"kms:GrantIsForAWSResource": True}},
    },
]
ROOT_ONLY = {  # KMS's default key policy: IAM decides, and the role's IAM policy has no kms:
    "Sid": "Enable IAM User Permissions",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    "Action": "kms:*",
    "Resource": "*",
}


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_a_key_lets_auto_scaling_launch_only_by_its_policy_or_a_grant_to_the_role():
    assert missing_for_launch(policy(ROOT_ONLY, *DOCUMENTED), [], ROLE) == []
    assert missing_for_launch(policy(ROOT_ONLY), [], ROLE) == [
        "kms:CreateGrant",
        "kms:Decrypt",
        "kms:GenerateDataKeyWithoutPlaintext",
    ]
    assert missing_for_launch(policy(ROOT_ONLY, DOCUMENTED[0]), [], ROLE) == ["kms:CreateGrant"]
    grant = {"GranteePrincipal": ROLE, "Operations": ["Decrypt", "CreateGrant", "Encrypt"]}
    assert missing_for_launch(policy(ROOT_ONLY), [grant], ROLE) == []
    elsewhere = {**grant, "GranteePrincipal": f"arn:aws:iam::{ACCOUNT}:role/other"}
    assert missing_for_launch(policy(ROOT_ONLY), [elsewhere], ROLE) != []
    deny = {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}
    assert missing_for_launch(policy(ROOT_ONLY, *DOCUMENTED, deny), [], ROLE) == ["kms:Decrypt"]


def test_the_key_policy_and_grants_are_read_and_a_refusal_is_no_verdict():
    aws = context()
    client = aws.client("kms")
    with Stubber(client) as stub:
        stub.add_response(
            "get_key_policy",
            {"Policy": json.dumps(policy(ROOT_ONLY, *DOCUMENTED))},
            {"KeyId": KEY, "PolicyName": "default"},
        )
        stub.add_response(
            "list_grants",
            {"Grants": [{"GranteePrincipal": ROLE, "Operations": ["Decrypt"]}], "Truncated": False},
            {"KeyId": KEY},
        )
        stub.add_client_error(
            "get_key_policy", "AccessDeniedException", "not allowed", 400,
            expected_params={"KeyId": KEY, "PolicyName": "default"},
        )  # fmt: skip
        found = Kms(aws).policy_and_grants(KEY)
        assert found is not None
        read_policy, grants = found
        assert missing_for_launch(read_policy, grants, ROLE) == []
        assert Kms(aws).policy_and_grants(KEY) is None
