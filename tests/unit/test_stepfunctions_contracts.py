"""Where moto's Step Functions is not AWS's, the adapter is held to AWS's documented shapes
with botocore's Stubber: GetExecutionHistory pages (moto answers one page), a second start
of the same name answers ExecutionAlreadyExists once the first has ended, and a task token
whose wait ended answers TaskTimedOut.
"""

from datetime import UTC, datetime

from botocore.stub import Stubber

from deployer.aws.stepfunctions import StepFunctions, execution_arn
from tests.unit.test_aws_contracts import context

MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:hello-prod-runner"
RUN = execution_arn(MACHINE, "20270115T080000000Z-abc123")


def event(n: int) -> dict:
    return {"id": n, "timestamp": datetime(2027, 1, 15, tzinfo=UTC), "type": "PassStateExited"}


def test_the_history_is_read_page_by_page_after_the_last_event_seen():
    aws = context()
    sfn = StepFunctions(aws)
    with Stubber(aws.client("stepfunctions")) as stub:
        asked = {"executionArn": RUN, "includeExecutionData": True, "maxResults": 1000}
        stub.add_response(
            "get_execution_history",
            {"events": [event(1), event(2)], "nextToken": "page-2"},
            asked,
        )
        stub.add_response(
            "get_execution_history", {"events": [event(3)]}, {**asked, "nextToken": "page-2"}
        )
        assert [e["id"] for e in sfn.history(RUN, after_id=1)] == [2, 3]
        stub.assert_no_pending_responses()


def test_a_second_start_of_an_ended_release_finds_its_execution_and_starts_none():
    aws = context()
    sfn = StepFunctions(aws)
    with Stubber(aws.client("stepfunctions")) as stub:
        stub.add_client_error(
            "start_execution", "ExecutionAlreadyExists", "Execution Already Exists: " + RUN
        )
        stub.add_response(
            "describe_execution",
            {
                "executionArn": RUN,
                "stateMachineArn": MACHINE,
                "status": "FAILED",
                "startDate": datetime(2027, 1, 15, tzinfo=UTC),
                "error": "GateFailed",
                "cause": "gate 'alarm hello-5xx' failed",
            },
            {"executionArn": RUN},
        )
        found = sfn.start(MACHINE, "20270115T080000000Z-abc123", {})
    assert (found.arn, found.status, found.error) == (RUN, "FAILED", "GateFailed")
    assert not found.running


def test_promoting_a_pause_that_already_ended_says_so():
    aws = context()
    sfn = StepFunctions(aws)
    with Stubber(aws.client("stepfunctions")) as stub:
        stub.add_client_error("send_task_success", "TaskTimedOut", "Task Timed Out")
        stub.add_response("send_task_success", {})
        assert sfn.send_task_success("token") is False
        assert sfn.send_task_success("token") is True
