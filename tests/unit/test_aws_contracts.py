"""Where moto differs from AWS, pin AWS's documented response shapes with botocore's Stubber.

- moto reports every target healthy; AWS reports unhealthy targets with a reason code.
- moto answers UpdateStack with no changes as UPDATE_COMPLETE; AWS raises ValidationError.
- moto emits no per-resource stack events; AWS names the resource that failed.
"""

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from deployer.aws.cloudformation import CloudFormation, StackFailed
from deployer.aws.elbv2 import NO_FLEET_ACTION, Elbv2
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


RULE = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/lb/1/2/3"
FORWARD = {
    "Type": "forward",
    "ForwardConfig": {
        "TargetGroups": [
            {"TargetGroupArn": TG, "Weight": 100},
            {"TargetGroupArn": BLUE, "Weight": 0},
        ],
        "TargetGroupStickinessConfig": {"Enabled": False},
    },
}
DEFAULT_RULE = {"RuleArn": RULE + "-default", "Priority": "default", "IsDefault": True}


def test_a_switch_is_one_modify_rule_on_deployer_s_own_rule():
    """The weights live in deployer's rule, so a stack update that rewrites the listener's
    default action (CloudFormation owns it) never touches them.
    """
    aws = context()
    elb = Elbv2(aws)
    ours = {"RuleArn": RULE, "Priority": "1", "Actions": [FORWARD]}
    with Stubber(aws.client("elbv2")) as stub:
        stub.add_response(
            "describe_rules", {"Rules": [ours, DEFAULT_RULE]}, {"ListenerArn": LISTENER}
        )
        stub.add_response("modify_rule", {"Rules": []}, {"RuleArn": RULE, "Actions": [FORWARD]})
        stub.add_response(
            "describe_rules", {"Rules": [ours, DEFAULT_RULE]}, {"ListenerArn": LISTENER}
        )
        elb.set_weights(LISTENER, {TG: 100, BLUE: 0})
        assert elb.listener_weights(LISTENER) == {TG: 100, BLUE: 0}
        stub.assert_no_pending_responses()


def test_the_first_switch_makes_the_rule_and_hands_the_default_action_back():
    """A listener from before the rule forwards in its default action: the rule is made
    first (no gap), then the default action goes back to the stack's 503.
    """
    aws = context()
    elb = Elbv2(aws)
    with Stubber(aws.client("elbv2")) as stub:
        stub.add_response("describe_rules", {"Rules": [DEFAULT_RULE]}, {"ListenerArn": LISTENER})
        stub.add_response(
            "create_rule",
            {"Rules": []},
            {
                "ListenerArn": LISTENER,
                "Priority": 1,
                "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["*"]}}],
                "Actions": [FORWARD],
            },
        )
        stub.add_response(
            "describe_listeners",
            {"Listeners": [{"ListenerArn": LISTENER, "DefaultActions": [FORWARD]}]},
            {"ListenerArns": [LISTENER]},
        )
        stub.add_response(
            "modify_listener",
            {"Listeners": []},
            {"ListenerArn": LISTENER, "DefaultActions": [NO_FLEET_ACTION]},
        )
        elb.set_weights(LISTENER, {TG: 100, BLUE: 0})
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


def test_with_a_service_role_every_stack_write_runs_under_it():
    role = "arn:aws:iam::123456789012:role/deployer-cfn"
    aws = context()
    cfn = CloudFormation(aws, InstantPoller(), role_arn=role)
    stack_id = "arn:aws:cloudformation:eu-west-1:123456789012:stack/svc/1"
    with Stubber(aws.client("cloudformation")) as stub:
        stub.add_response(
            "create_stack",
            {"StackId": stack_id},
            {
                "StackName": "svc",
                "TemplateBody": "{}",
                "Parameters": [],
                "Tags": [],
                "ClientRequestToken": "t",
                "OnFailure": "DELETE",
                "Capabilities": ["CAPABILITY_IAM"],
                "RoleARN": role,
            },
        )
        stub.add_response(
            "update_stack",
            {"StackId": stack_id},
            {
                "StackName": "svc",
                "TemplateBody": "{}",
                "Parameters": [],
                "Tags": [],
                "Capabilities": ["CAPABILITY_IAM"],
                "RoleARN": role,
            },
        )
        assert cfn.create("svc", "{}", {}, {}, token="t") == stack_id
        assert cfn.update("svc", "{}", {}, {}) is True
        stub.assert_no_pending_responses()


def event(
    stack_id, n, logical, status, reason="", kind="AWS::AutoScaling::AutoScalingGroup", age_s=0
):
    """A stack event n seconds into the operation (or `age_s` before it: history). The
    operation starts now, when the test makes its events (not when the module was imported:
    on a busy machine that may be minutes earlier, and the events would look like history).
    """
    return {
        "StackId": stack_id,
        "EventId": str(n),
        "StackName": "fleet",
        "Timestamp": datetime.now(UTC) + timedelta(seconds=n - age_s),
        "LogicalResourceId": logical,
        "ResourceType": kind,
        "ResourceStatus": status,
        **({"ResourceStatusReason": reason} if reason else {}),
    }


def test_a_create_that_failed_and_deleted_itself_names_the_resource_that_failed():
    """OnFailure=DELETE, as deployer creates stacks: CREATE_FAILED -> DELETE_IN_PROGRESS ->
    DELETE_COMPLETE, after which the name no longer resolves. The wait goes by stack id, sees
    the delete through, and reads the first failed resource from the events (newest first),
    not the resources cancelled because of it nor the stack's summary.
    """
    aws = context()
    cfn = CloudFormation(aws, InstantPoller())
    stack_id = "arn:aws:cloudformation:eu-west-1:1:stack/fleet/1"
    described = {"StackName": "fleet", "StackId": stack_id, "CreationTime": "2026-01-01T00:00:00Z"}
    stack_kind = "AWS::CloudFormation::Stack"
    summary = "The following resource(s) failed to create: [AutoScalingGroup]. "
    with Stubber(aws.client("cloudformation")) as stub:
        for status in ("CREATE_IN_PROGRESS", "DELETE_IN_PROGRESS", "DELETE_COMPLETE"):
            stub.add_response(
                "describe_stacks",
                {"Stacks": [{**described, "StackStatus": status}]},
                {"StackName": stack_id},
            )
        stub.add_response(
            "describe_stack_events",
            {
                "StackEvents": [
                    event(stack_id, 5, "fleet", "DELETE_COMPLETE", kind=stack_kind),
                    event(stack_id, 4, "fleet", "DELETE_IN_PROGRESS", summary, stack_kind),
                    event(stack_id, 3, "fleet", "CREATE_FAILED", summary, stack_kind),
                    event(
                        stack_id,
                        2,
                        "LaunchTemplate",
                        "CREATE_FAILED",
                        "Resource creation cancelled",
                        "AWS::EC2::LaunchTemplate",
                    ),
                    event(
                        stack_id,
                        1,
                        "AutoScalingGroup",
                        "CREATE_FAILED",
                        "You have requested more instances than your limit",
                    ),
                ]
            },
            {"StackName": stack_id},
        )
        with pytest.raises(StackFailed) as caught:
            cfn.wait_for(stack_id, "CREATE_COMPLETE", 60)
        stub.assert_no_pending_responses()
    assert caught.value.status == "DELETE_COMPLETE"
    assert caught.value.reason == (
        "AutoScalingGroup: You have requested more instances than your limit"
    )


def test_a_deleted_stack_is_unknown_by_name():
    """After a delete, DescribeStacks by name answers ValidationError 'does not exist'."""
    aws = context()
    cfn = CloudFormation(aws, InstantPoller())
    with Stubber(aws.client("cloudformation")) as stub:
        stub.add_client_error(
            "describe_stacks",
            service_error_code="ValidationError",
            service_message="Stack with id fleet does not exist",
            http_status_code=400,
        )
        assert cfn.describe("fleet") is None


def test_an_update_rolled_back_is_a_failure_naming_this_update_s_failed_resource():
    """UPDATE_ROLLBACK_COMPLETE is never success. The wait sees the rollback through (the next
    run then meets a stack at rest) and names the resource that failed in this update, not
    one that failed in an older operation.
    """
    aws = context()
    lines: list[str] = []
    cfn = CloudFormation(aws, InstantPoller(), on_event=lines.append)
    stack_id = "arn:aws:cloudformation:eu-west-1:1:stack/svc/1"
    described = {"StackName": "svc", "StackId": stack_id, "CreationTime": "2026-01-01T00:00:00Z"}
    events = {
        "StackEvents": [
            event(
                stack_id, 3, "svc", "UPDATE_ROLLBACK_COMPLETE", kind="AWS::CloudFormation::Stack"
            ),
            event(stack_id, 2, "Listener", "UPDATE_FAILED", "Certificate not found"),
            event(stack_id, 1, "Listener", "UPDATE_IN_PROGRESS"),
            event(stack_id, 9, "Alb", "CREATE_FAILED", "an old failure", age_s=86400),
        ]
    }
    with Stubber(aws.client("cloudformation")) as stub:
        for status in ("UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS"):
            stub.add_response("describe_stacks", {"Stacks": [{**described, "StackStatus": status}]})
            stub.add_response("describe_stack_events", events)
        stub.add_response(
            "describe_stacks",
            {"Stacks": [{**described, "StackStatus": "UPDATE_ROLLBACK_COMPLETE"}]},
        )
        stub.add_response("describe_stack_events", events)
        stub.add_response("describe_stack_events", events)  # the failure's reason
        with pytest.raises(StackFailed) as caught:
            cfn.wait_for(stack_id, "UPDATE_COMPLETE", 60)
        stub.assert_no_pending_responses()
    assert caught.value.status == "UPDATE_ROLLBACK_COMPLETE"
    assert caught.value.reason == "Listener: Certificate not found"
    assert "stack svc: Listener UPDATE_FAILED (Certificate not found)" in lines
    assert not any("an old failure" in line for line in lines)  # history is not streamed


def test_a_failed_network_stack_is_never_deleted_unasked():
    """ROLLBACK_COMPLETE (or DELETE_FAILED): exit 4 naming --replace-failed; no DeleteStack."""
    from deployer.infra.stacks import ensure_stack

    aws = context()
    cfn = CloudFormation(aws, InstantPoller())
    stack_id = "arn:aws:cloudformation:eu-west-1:1:stack/net/1"
    described = {"StackName": "net", "StackId": stack_id, "CreationTime": "2026-01-01T00:00:00Z"}
    with Stubber(aws.client("cloudformation")) as stub:
        stub.add_response(
            "describe_stacks", {"Stacks": [{**described, "StackStatus": "ROLLBACK_COMPLETE"}]}
        )
        stub.add_response("describe_stack_events", {"StackEvents": []})
        with pytest.raises(StackFailed) as caught:
            ensure_stack(cfn, "net", "{}", {}, {}, lambda _line: None)
        stub.assert_no_pending_responses()  # and nothing else was called: no delete
    assert "--replace-failed" in caught.value.message and caught.value.exit_code == 4


def test_update_rollback_failed_is_recovered_skipping_only_what_is_named():
    aws = context()
    cfn = CloudFormation(aws, InstantPoller())
    stack_id = "arn:aws:cloudformation:eu-west-1:1:stack/svc/1"
    described = {"StackName": "svc", "StackId": stack_id, "CreationTime": "2026-01-01T00:00:00Z"}
    with Stubber(aws.client("cloudformation")) as stub:
        stub.add_response(
            "describe_stacks", {"Stacks": [{**described, "StackStatus": "UPDATE_ROLLBACK_FAILED"}]}
        )
        stub.add_response("describe_stack_events", {"StackEvents": []})
        from deployer.infra.stacks import ensure_stack

        with pytest.raises(StackFailed) as caught:
            ensure_stack(cfn, "svc", "{}", {}, {}, lambda _line: None, replace_failed=True)
        assert "deployer infra recover" in caught.value.message
        stub.add_response(
            "continue_update_rollback",
            {},
            {"StackName": stack_id, "ResourcesToSkip": ["Listener"]},
        )
        cfn.continue_rollback(stack_id, ["Listener"])
        stub.assert_no_pending_responses()


def test_a_plan_reads_replacements_across_pages_and_deletes_its_change_set():
    """moto reports no Replacement and one page; AWS reports Replacement True|False|Conditional
    and pages long change sets with NextToken. The change set is deleted in every case.
    """
    aws = context()
    cfn = CloudFormation(aws, InstantPoller())
    arn = "arn:aws:cloudformation:eu-west-1:1:changeSet/deployer-plan-1/1"

    def change(logical, action, replacement=None):
        rc = {"Action": action, "LogicalResourceId": logical, "ResourceType": "AWS::X::Y"}
        return {
            "Type": "Resource",
            "ResourceChange": {**rc, **({"Replacement": replacement} if replacement else {})},
        }

    with Stubber(aws.client("cloudformation")) as stub:
        stub.add_response("create_change_set", {"Id": arn, "StackId": "s"})
        stub.add_response("describe_change_set", {"Status": "CREATE_PENDING"})
        stub.add_response(
            "describe_change_set",
            {
                "Status": "CREATE_COMPLETE",
                "Changes": [change("Alb", "Modify", "True"), change("Listener", "Modify", "False")],
                "NextToken": "page-2",
            },
        )
        stub.add_response(
            "describe_change_set",
            {
                "Status": "CREATE_COMPLETE",
                "Changes": [change("Old", "Remove"), change("Tg", "Modify", "Conditional")],
            },
            {"ChangeSetName": arn, "NextToken": "page-2"},
        )
        stub.add_response("delete_change_set", {}, {"ChangeSetName": arn})
        rows = cfn.preview("svc", "{}", {}, {}, "deployer-plan-1")
        stub.assert_no_pending_responses()
    assert [(r["resource"], r["action"]) for r in rows] == [
        ("Alb", "replace"),
        ("Listener", "modify"),
        ("Old", "remove"),
        ("Tg", "modify (may replace)"),
    ]
