"""Where moto differs from AWS, pin AWS's documented response shapes with botocore's Stubber.

- moto reports every target healthy; AWS reports unhealthy targets with a reason code.
- moto answers UpdateStack with no changes as UPDATE_COMPLETE; AWS raises ValidationError.
- moto emits no per-resource stack events; AWS names the resource that failed.
"""

import boto3
import pytest
from botocore.stub import Stubber

from deployer.aws.cloudformation import CloudFormation, StackFailed
from deployer.aws.elbv2 import Elbv2
from deployer.aws.poller import Poller
from deployer.aws.session import AwsContext
from deployer.core.model import TargetState

TG = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/green/0123456789abcdef"
BLUE = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/blue/0123456789abcdef"
LISTENER = (
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/lb/50dc6c495c0c9188/f2f7dc8e"
)


def context():
    session = boto3.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="eu-west-1"
    )
    return AwsContext(session=session)


class InstantPoller(Poller):
    def __init__(self):
        super().__init__(clock=lambda: 0.0, sleep=lambda _s: None)


def test_unhealthy_targets_carry_state_reason_and_description():
    aws = context()
    elb = Elbv2(aws)
    with Stubber(aws.client("elbv2")) as stub:
        stub.add_response(
            "describe_target_health",
            {
                "TargetHealthDescriptions": [
                    {
                        "Target": {"Id": "i-0aaa", "Port": 8080},
                        "HealthCheckPort": "8080",
                        "TargetHealth": {
                            "State": "unhealthy",
                            "Reason": "Target.ResponseCodeMismatch",
                            "Description": "Health checks failed with these codes: [500]",
                        },
                    },
                    {
                        "Target": {"Id": "i-0bbb", "Port": 8080},
                        "TargetHealth": {"State": "healthy"},
                    },
                    {
                        "Target": {"Id": "i-0ccc", "Port": 8080},
                        "TargetHealth": {
                            "State": "initial",
                            "Reason": "Elb.RegistrationInProgress",
                        },
                    },
                ]
            },
            {"TargetGroupArn": TG},
        )
        health = elb.target_health(TG)
    assert [(h.target_id, h.state) for h in health] == [
        ("i-0aaa", TargetState.UNHEALTHY),
        ("i-0bbb", TargetState.HEALTHY),
        ("i-0ccc", TargetState.INITIAL),
    ]
    assert "ResponseCodeMismatch" in health[0].reason and "[500]" in health[0].reason


def test_switch_is_one_modify_listener_with_weighted_forward_config():
    aws = context()
    elb = Elbv2(aws)
    with Stubber(aws.client("elbv2")) as stub:
        stub.add_response(
            "modify_listener",
            {"Listeners": []},
            {
                "ListenerArn": LISTENER,
                "DefaultActions": [
                    {
                        "Type": "forward",
                        "ForwardConfig": {
                            "TargetGroups": [
                                {"TargetGroupArn": TG, "Weight": 100},
                                {"TargetGroupArn": BLUE, "Weight": 0},
                            ],
                            "TargetGroupStickinessConfig": {"Enabled": False},
                        },
                    }
                ],
            },
        )
        stub.add_response(
            "describe_listeners",
            {
                "Listeners": [
                    {
                        "ListenerArn": LISTENER,
                        "DefaultActions": [
                            {
                                "Type": "forward",
                                "ForwardConfig": {
                                    "TargetGroups": [
                                        {"TargetGroupArn": TG, "Weight": 100},
                                        {"TargetGroupArn": BLUE, "Weight": 0},
                                    ]
                                },
                            }
                        ],
                    }
                ]
            },
            {"ListenerArns": [LISTENER]},
        )
        elb.set_weights(LISTENER, {TG: 100, BLUE: 0})
        assert elb.listener_weights(LISTENER) == {TG: 100, BLUE: 0}
        stub.assert_no_pending_responses()


def test_update_with_nothing_to_change_is_not_an_error():
    aws = context()
    cfn = CloudFormation(aws, InstantPoller())
    with Stubber(aws.client("cloudformation")) as stub:
        stub.add_client_error(
            "update_stack",
            service_error_code="ValidationError",
            service_message="No updates are to be performed.",
            http_status_code=400,
        )
        assert cfn.update("svc", "{}", {}, {}) is False


def test_a_failed_create_names_the_resource_that_failed():
    aws = context()
    cfn = CloudFormation(aws, InstantPoller())
    stack = {
        "StackName": "fleet",
        "StackId": "arn:aws:cloudformation:eu-west-1:1:stack/fleet/1",
        "StackStatus": "ROLLBACK_COMPLETE",
        "CreationTime": "2026-01-01T00:00:00Z",
    }
    with Stubber(aws.client("cloudformation")) as stub:
        stub.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": "fleet"})
        stub.add_response(
            "describe_stack_events",
            {
                "StackEvents": [
                    {
                        "StackId": stack["StackId"],
                        "EventId": "3",
                        "StackName": "fleet",
                        "Timestamp": "2026-01-01T00:02:00Z",
                        "LogicalResourceId": "fleet",
                        "ResourceStatus": "ROLLBACK_COMPLETE",
                    },
                    {
                        "StackId": stack["StackId"],
                        "EventId": "2",
                        "StackName": "fleet",
                        "Timestamp": "2026-01-01T00:01:00Z",
                        "LogicalResourceId": "AutoScalingGroup",
                        "ResourceStatus": "CREATE_FAILED",
                        "ResourceStatusReason": "You have requested more instances than your limit",
                    },
                ]
            },
            {"StackName": "fleet"},
        )
        with pytest.raises(StackFailed) as caught:
            cfn.wait_for("fleet", "CREATE_COMPLETE", 60)
    assert "AutoScalingGroup: You have requested more instances" in caught.value.reason
