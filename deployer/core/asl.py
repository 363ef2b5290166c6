"""The Amazon States Language pieces of deployer's state machine (core.state_machine): the
SDK integrations it may call, JSONata expressions, and the Task states it repeats (a fenced
journal write, the lock released, the weights rule changed), each with AWS's retry advice.
Pure.
"""

from __future__ import annotations

from typing import Any

RULE_ARN_SDK = "arn:aws:states:::aws-sdk:elasticloadbalancingv2:modifyRule"
TARGET_HEALTH_SDK = "arn:aws:states:::aws-sdk:elasticloadbalancingv2:describeTargetHealth"
METRICS_SDK = "arn:aws:states:::aws-sdk:cloudwatch:getMetricData"
ALARMS_SDK = "arn:aws:states:::aws-sdk:cloudwatch:describeAlarms"
UPDATE_ITEM = "arn:aws:states:::dynamodb:updateItem"
# A pause: the task token written into the journal item, waited on until `deployer promote`.
PAUSE_SDK = "arn:aws:states:::aws-sdk:dynamodb:updateItem.waitForTaskToken"
RESOURCES = (RULE_ARN_SDK, TARGET_HEALTH_SDK, METRICS_SDK, ALARMS_SDK, UPDATE_ITEM, PAUSE_SDK)

FENCED = "DynamoDB.ConditionalCheckFailedException"
FENCED_SDK = "DynamoDb.ConditionalCheckFailedException"  # as an aws-sdk Task names it


def x(expression: str) -> str:
    return "{% " + " ".join(expression.split()) + " %}"


def retry() -> list[dict[str, Any]]:
    """Throttling and 5xx of the services called: backoff with full jitter, as AWS asks;
    a fenced journal write is never retried.
    """
    return [
        {"ErrorEquals": [FENCED], "MaxAttempts": 0},
        {
            "ErrorEquals": ["States.TaskFailed", "States.Timeout"],
            "IntervalSeconds": 2,
            "BackoffRate": 2.0,
            "MaxAttempts": 5,
            "MaxDelaySeconds": 30,
            "JitterStrategy": "FULL",
        },
    ]


def journal(next_state: str, on_error: str) -> dict[str, Any]:
    """Write `$record` into the release's journal item, while it is still in progress."""
    return {
        "Type": "Task",
        "Resource": UPDATE_ITEM,
        "Arguments": {
            "TableName": x("$in.journal.table"),
            "Key": x("$in.journal.key"),
            "UpdateExpression": "SET #record = :record, #outcome = :outcome",
            "ConditionExpression": "#outcome = :running",
            "ExpressionAttributeNames": {"#record": "record", "#outcome": "outcome"},
            "ExpressionAttributeValues": {
                ":record": {"S": x("$string($record)")},
                ":outcome": {"S": x("$record.outcome")},
                ":running": {"S": "in_progress"},
            },
        },
        "Retry": retry(),
        "Catch": [
            {"ErrorEquals": [FENCED], "Next": "Fenced"},
            {"ErrorEquals": ["States.ALL"], "Next": on_error},
        ],
        "Next": next_state,
    }


def release_lock(next_state: str) -> dict[str, Any]:
    """Free the lock the CLI handed over, if this execution still holds it."""
    return {
        "Type": "Task",
        "Resource": UPDATE_ITEM,
        "Arguments": {
            "TableName": x("$in.lock.table"),
            "Key": x("$in.lock.key"),
            "UpdateExpression": "REMOVE lock_id, holder, #host, pid, acquired_at, #exp",
            "ConditionExpression": "lock_id = :id",
            "ExpressionAttributeNames": {"#host": "host", "#exp": "expires"},
            "ExpressionAttributeValues": {":id": {"S": x("$in.lock.lock_id")}},
        },
        "Retry": retry(),
        # A lock already taken over (an abort) or gone is no reason to fail the ending.
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": next_state}],
        "Next": next_state,
    }


def set_weights(weights: str, next_state: str, on_error: str) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": RULE_ARN_SDK,
        "Arguments": {
            "RuleArn": x("$in.rule_arn"),
            "Actions": x(
                f"""[{{"Type": "forward", "ForwardConfig": {{
                    "TargetGroups": $append([], $each({weights}, function($w, $arn) {{
                        {{"TargetGroupArn": $arn, "Weight": $w}} }})),
                    "TargetGroupStickinessConfig": {{"Enabled": false}} }} }}]"""
            ),
        },
        "Retry": retry(),
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": on_error}],
        "Next": next_state,
    }
