"""The permission preflight reads IAM's policy simulator the way AWS answers it: only a
definite refusal stops a run; what the simulator cannot settle is left open."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from deployer.aws.iam import Iam
from deployer.aws.session import AwsContext
from deployer.infra.permissions import definite, principal_of


@pytest.mark.parametrize(
    ("caller", "principal"),
    [
        (
            "arn:aws:sts::123456789012:assumed-role/deployer.hello.deploy/GitHubActions",
            "arn:aws:iam::123456789012:role/deployer.hello.deploy",
        ),
        ("arn:aws:iam::123456789012:user/ci", "arn:aws:iam::123456789012:user/ci"),
        ("arn:aws-cn:iam::123456789012:user/ops/ci", "arn:aws-cn:iam::123456789012:user/ops/ci"),
        ("arn:aws:iam::123456789012:root", None),
        ("arn:aws:sts::123456789012:federated-user/bob", None),
        ("not an arn", None),
    ],
)
def test_the_simulated_principal_is_the_callers_user_or_role(caller, principal):
    assert principal_of(caller) == principal


STAR = "*"
STACK = "arn:aws:cloudformation:eu-west-1:123456789012:stack/hello-prod-service/0"


@pytest.mark.parametrize(
    ("action", "resource", "result", "refused"),
    [
        # no statement allows it, on the very resource deployer will touch: missing
        ("cloudformation:CreateStack", STACK, {"EvalDecision": "implicitDeny"}, True),
        # an Allow conditioned on a key the context lacked: not settled
        (
            "cloudformation:CreateStack",
            STACK,
            {"EvalDecision": "implicitDeny", "MissingContextValues": ["aws:SourceIp"]},
            False,
        ),
        # on `*`, a policy scoped to ARNs does not match: not settled
        ("ec2:RunInstances", STAR, {"EvalDecision": "implicitDeny"}, False),
        # EC2's Describe calls take `*` only: missing for sure
        ("ec2:DescribeImages", STAR, {"EvalDecision": "implicitDeny"}, True),
        # DescribeAlarms shows composite alarms only to a grant on `*`: an alarm:* grant
        # (implicitDeny on `*`) is missing, for sure
        ("cloudwatch:DescribeAlarms", STAR, {"EvalDecision": "implicitDeny"}, True),
        # an explicit deny is one, on any resource...
        ("ec2:RunInstances", STAR, {"EvalDecision": "explicitDeny"}, True),
        # ...unless it hangs on a key the context lacked (a negated condition matches then)
        (
            "ec2:RunInstances",
            STAR,
            {"EvalDecision": "explicitDeny", "MissingContextValues": ["aws:SourceVpc"]},
            False,
        ),
    ],
)
def test_an_implicit_deny_refuses_only_when_it_is_definite(action, resource, result, refused):
    assert definite(action, resource, result) is refused


def test_the_simulator_is_asked_with_the_resource_and_deployers_context_keys():
    session = boto3.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="eu-west-1"
    )
    aws = AwsContext(session=session)
    role = "arn:aws:iam::123456789012:role/deployer.hello.deploy"
    with Stubber(aws.client("iam")) as stub:
        stub.add_response(
            "simulate_principal_policy",
            {
                "EvaluationResults": [
                    {
                        "EvalActionName": "cloudformation:CreateStack",
                        "EvalResourceName": STACK,
                        "EvalDecision": "explicitDeny",
                        "MatchedStatements": [{"SourcePolicyId": "deny-all"}],
                        "MissingContextValues": [],
                    }
                ],
                "IsTruncated": False,
            },
            {
                "PolicySourceArn": role,
                "ActionNames": ["cloudformation:CreateStack"],
                "ResourceArns": [STACK],
                "ContextEntries": [
                    {
                        "ContextKeyName": "aws:TagKeys",
                        "ContextKeyValues": ["deployer:app", "deployer:environment"],
                        "ContextKeyType": "stringList",
                    },
                    {
                        "ContextKeyName": "aws:RequestTag/deployer:app",
                        "ContextKeyValues": ["hello"],
                        "ContextKeyType": "string",
                    },
                ],
            },
        )
        (result,) = Iam(aws).simulate(
            role,
            ["cloudformation:CreateStack"],
            STACK,
            {
                "aws:TagKeys": ["deployer:app", "deployer:environment"],
                "aws:RequestTag/deployer:app": ["hello"],
            },
        )
    assert result["EvalDecision"] == "explicitDeny"


@pytest.mark.parametrize(
    ("service", "operation", "params", "actions"),
    [
        ("elbv2", "ModifyRule", {}, ["elasticloadbalancing:ModifyRule"]),
        ("cloudwatch", "DescribeAlarms", {}, ["cloudwatch:DescribeAlarms"]),
        ("s3", "HeadObject", {}, ["s3:GetObject"]),
        ("s3", "ListObjectsV2", {}, ["s3:ListBucket"]),
        (
            "dynamodb",
            "TransactWriteItems",
            {"TransactItems": [{"ConditionCheck": {}}, {"Put": {}}]},
            ["dynamodb:ConditionCheckItem", "dynamodb:PutItem"],
        ),
    ],
)
def test_each_call_is_logged_as_the_iam_actions_it_needs(service, operation, params, actions):
    from deployer.aws.actions import iam_actions

    assert iam_actions(service, operation, params) == actions


def test_a_listener_is_simulated_with_its_own_tags_not_deployers():
    from deployer.infra.permissions import with_resource_tags

    context = {
        "aws:RequestTag/deployer:app": ["hello"],
        "aws:ResourceTag/deployer:app": ["hello"],
        "aws:RequestedRegion": ["eu-west-1"],
    }
    assert with_resource_tags(context, {"team": "web"}) == {
        "aws:RequestTag/deployer:app": ["hello"],
        "aws:RequestedRegion": ["eu-west-1"],
        "aws:ResourceTag/team": ["web"],
    }


def test_exec_is_simulated_on_the_apps_instances_with_their_tag():
    from types import SimpleNamespace

    from deployer.infra.permissions import request_context

    engine = SimpleNamespace(
        tags=lambda: {"deployer:app": "hello", "deployer:environment": "prod"},
        runtime=SimpleNamespace(aws=SimpleNamespace(region="eu-west-1")),
        spec=SimpleNamespace(cloudformation=SimpleNamespace(role_arn=None)),
    )
    context = request_context(engine)  # type: ignore[arg-type]
    # the deploy role allows ssm:SendCommand on instances whose ssm:resourceTag says its app
    assert context["ssm:resourceTag/deployer:app"] == ["hello"]


def test_the_deploy_role_reads_gate_alarms_on_star_so_composite_ones_are_returned():
    from tests.cfn import load_template, statements
    from tests.conftest import REPO

    template = load_template(REPO / "cloudformation" / "deployer-iam.yaml")
    grants = [
        s
        for s in statements(template["Resources"]["DeployRole"])
        if "cloudwatch:DescribeAlarms"
        in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert grants and all(s["Resource"] == "*" for s in grants)
