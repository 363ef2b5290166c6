"""The IAM action behind each API call, and the log of them a run can write.

With DEPLOYER_ACTION_LOG=FILE, every call a run makes appends its IAM action
(`elasticloadbalancing:ModifyRule`) to FILE, one per line: the facts from which a policy is
written or checked (tests/integration/test_iam_coverage.py checks cloudformation/deployer-iam.yaml
against them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

ACTION_LOG = "DEPLOYER_ACTION_LOG"

# boto3's service name -> the IAM prefix, where they differ.
IAM_PREFIX = {
    "elbv2": "elasticloadbalancing",
    "monitoring": "cloudwatch",
    "service-quotas": "servicequotas",
    "stepfunctions": "states",
}
# S3 API operations whose IAM action has another name.
S3_ACTIONS = {
    "HeadBucket": "ListBucket",
    "HeadObject": "GetObject",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "DeleteObjects": "DeleteObject",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "PutBucketEncryption": "PutEncryptionConfiguration",
    "GetBucketEncryption": "GetEncryptionConfiguration",
    "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
    "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
}
# Calls that need no permission at all.
UNCONDITIONAL = frozenset({"sts:GetCallerIdentity"})


def iam_action(service: str, operation: str) -> str:
    """`service` is boto3's name (elbv2), `operation` the API's (ModifyRule)."""
    prefix = IAM_PREFIX.get(service, service)
    if prefix == "s3":
        operation = S3_ACTIONS.get(operation, operation)
    return f"{prefix}:{operation}"


# A DynamoDB transaction is authorized item by item, as the single-item actions.
TRANSACT_ITEMS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}


def iam_actions(service: str, operation: str, params: Mapping[str, Any]) -> list[str]:
    """The IAM actions one call needs: one, except for DynamoDB's transactions."""
    if service == "dynamodb" and operation in ("TransactWriteItems", "TransactGetItems"):
        kinds = {kind for item in params.get("TransactItems", []) for kind in item}
        return sorted(TRANSACT_ITEMS[k] for k in kinds if k in TRANSACT_ITEMS)
    return [iam_action(service, operation)]


class ActionLog:
    """Appends each call's IAM actions to the file DEPLOYER_ACTION_LOG names (if it does).
    Registered on before-parameter-build, which sees the call's parameters.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path if path is not None else os.environ.get(ACTION_LOG, "")

    def __call__(self, model: Any, params: Mapping[str, Any], **_: Any) -> None:
        if not self.path:
            return
        actions = iam_actions(model.service_model.service_name, model.name, params)
        # One short O_APPEND write per call: lines of concurrent runs do not interleave.
        with open(self.path, "a", encoding="utf-8") as log:
            log.write("".join(f"{action}\n" for action in actions))


# What a bake makes (it may make the network and service stacks too: the builder runs there).
# The permission preflight asks the policy simulator about these; the IAM coverage test
# checks that a sandbox bake and release make no other.
BAKE_ACTIONS: frozenset[str] = frozenset(
    {
        "iam:SimulatePrincipalPolicy",  # the permission preflight, about its own role
        "iam:GetRole",
        "elasticloadbalancing:DescribeTags",  # ... and the listeners' tags, as they are
        "elasticloadbalancing:DescribeRules",  # the infra: deployer's weights rule, tagged
        "elasticloadbalancing:AddTags",  # (once, if it was made before rules were tagged)
        "dynamodb:CreateTable",
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "dynamodb:ConditionCheckItem",  # TransactWriteItems: a condition check and a put
        "cloudformation:DescribeStacks",
        "cloudformation:DescribeStackEvents",
        "cloudformation:CreateStack",
        "cloudformation:UpdateStack",
        "cloudformation:DeleteStack",  # --replace-failed
        "cloudformation:UpdateTerminationProtection",  # protected: true
        "cloudwatch:DescribeAlarms",
        "ec2:DescribeAvailabilityZones",
        "ec2:GetEbsEncryptionByDefault",  # a customer-managed default EBS key needs kms: rights
        "ec2:DescribeAddresses",  # the quotas a new network would pass: Elastic IPs ...
        "servicequotas:GetServiceQuota",  # ... and VPCs, against the account's quotas
        "ec2:DescribeVpcs",  # network.vpc_id: the operator's own network, checked
        "ec2:DescribeSubnets",
        "ec2:DescribeRouteTables",
        "ec2:DescribeVpcEndpoints",
        "ec2:DescribeImages",
        "ec2:DescribeInstances",  # ... the vCPUs running, against the account's quota
        "ec2:DescribeInstanceTypes",
        "ec2:DescribeKeyPairs",
        "ec2:DescribeSecurityGroups",
        "ec2:ImportKeyPair",
        "ec2:CreateSecurityGroup",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:RunInstances",
        "ec2:GetConsoleOutput",
        "ec2:CreateImage",
        "ec2:CopyImage",  # regions
        "ec2:TerminateInstances",
        "ec2:DeleteKeyPair",
        "ec2:DeleteSecurityGroup",
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "ssm:GetParameter",
        "ssm:GetParametersByPath",
    }
)
# Making the artifact bucket: only when no deployer-iam.yaml made it (MakeArtifactBucket) and
# the caller may (the sandbox, an administrator). The deploy role has none of these.
BUCKET_ACTIONS: frozenset[str] = frozenset(
    {
        "s3:CreateBucket",
        "s3:PutBucketPublicAccessBlock",
        "s3:PutEncryptionConfiguration",
        "s3:PutBucketPolicy",
        "s3:PutLifecycleConfiguration",
    }
)
# What a release makes: a bake, the stacks, the gates, the switch, retiring old fleets.
RELEASE_ACTIONS: frozenset[str] = BAKE_ACTIONS | frozenset(
    {
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeScalingActivities",  # why a fleet has no targets (a launch failed)
        "autoscaling:UpdateAutoScalingGroup",  # strategy.on_failure: scale_to_zero
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:DescribeTargetHealth",
        "cloudwatch:GetMetricData",  # the metric gate
        "elasticloadbalancing:CreateRule",
        "elasticloadbalancing:ModifyRule",
        "elasticloadbalancing:DeleteRule",
        "elasticloadbalancing:ModifyListener",
    }
)

# executor: stepfunctions: the release's execution started, followed, and stopped (abort).
SERVER_SIDE_ACTIONS: frozenset[str] = frozenset(
    {
        "states:StartExecution",
        "states:DescribeExecution",
        "states:GetExecutionHistory",
        "states:StopExecution",
    }
)
# `deployer promote`: a signal in the journal (local) or the pause's task token (stepfunctions).
PROMOTE_ACTIONS: frozenset[str] = frozenset(
    {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query", "states:SendTaskSuccess"}
)

# What `deployer exec` makes: the fleet found, the permission preflight, the command sent and
# followed, and the exec journalled.
EXEC_ACTIONS: frozenset[str] = frozenset(
    {
        "iam:SimulatePrincipalPolicy",
        "iam:GetRole",
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeRules",
        "cloudformation:DescribeStacks",
        "autoscaling:DescribeAutoScalingGroups",
        "ssm:SendCommand",
        "ssm:ListCommands",
        "ssm:ListCommandInvocations",
        "ssm:CancelCommand",  # on Ctrl-C
        "dynamodb:PutItem",
    }
)
