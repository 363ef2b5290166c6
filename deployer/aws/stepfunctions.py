"""Step Functions adapter: the executions of the release state machine (its stack makes it).

Start is idempotent by name (the release id): a second start of the same release finds the
execution that exists, never starts another. History is read page by page, as AWS pages it
(1,000 events at most per call), from the last event the reader has seen.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws.session import AwsContext, error_code

RUNNING = "RUNNING"


@dataclass(frozen=True)
class Execution:
    arn: str
    status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE
    error: str = ""
    cause: str = ""

    @property
    def running(self) -> bool:
        return self.status == RUNNING


def execution_arn(machine_arn: str, name: str) -> str:
    """An execution's ARN from its state machine's and its name (AWS's documented form)."""
    return machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


class StepFunctions:
    def __init__(self, aws: AwsContext) -> None:
        self._aws = aws

    @property
    def _sfn(self) -> Any:
        return self._aws.client("stepfunctions")

    def start(self, machine_arn: str, name: str, given: dict[str, Any]) -> Execution:
        """Start the execution `name`, or find it if it was started before (a rerun, or a
        start whose answer was lost).
        """
        try:
            answer = self._sfn.start_execution(
                stateMachineArn=machine_arn, name=name, input=json.dumps(given)
            )
            return Execution(answer["executionArn"], RUNNING)
        except ClientError as exc:
            if error_code(exc) != "ExecutionAlreadyExists":
                raise
        found = self.describe(execution_arn(machine_arn, name))
        if found is None:
            raise RuntimeError(f"execution {name} exists and cannot be read")
        return found

    def describe(self, arn: str) -> Execution | None:
        try:
            answer = self._sfn.describe_execution(executionArn=arn)
        except ClientError as exc:
            if error_code(exc) == "ExecutionDoesNotExist":
                return None
            raise
        return Execution(
            arn, answer["status"], str(answer.get("error", "")), str(answer.get("cause", ""))
        )

    def history(self, arn: str, after_id: int = 0) -> Iterator[dict[str, Any]]:
        """The execution's events after event `after_id`, oldest first, every page."""
        pages = self._sfn.get_paginator("get_execution_history").paginate(
            executionArn=arn, includeExecutionData=True, PaginationConfig={"PageSize": 1000}
        )
        for page in pages:
            for event in page.get("events", []):
                if int(event["id"]) > after_id:
                    yield event

    def send_task_success(self, token: str) -> bool:
        """Resume the task waiting on `token`; False if that wait already ended."""
        try:
            self._sfn.send_task_success(taskToken=token, output="{}")
        except ClientError as exc:
            if error_code(exc) in ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken"):
                return False
            raise
        return True

    def stop(self, arn: str, cause: str) -> None:
        """Stop a running execution; one that already ended is left as it is."""
        try:
            self._sfn.stop_execution(executionArn=arn, error="Aborted", cause=cause[:32768])
        except ClientError as exc:
            if error_code(exc) not in ("ExecutionDoesNotExist", "ValidationException"):
                raise
