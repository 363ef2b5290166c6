"""Step Functions in the sandbox: moto runs state machines (the interpreter it took from
LocalStack), made to run deployer's the way AWS runs them. Each patch is named; the README's
sandbox section lists them.

1. `execute`: executions run (moto's config `stepfunctions.execute_state_machine`), set before
   any state machine is made, and the SDK integrations call the sandbox's own port, so a
   state machine's calls meet the same latency, throttling and outages as deployer's.
2. `sdk-service-names`: AWS names the load balancer service `elasticloadbalancingv2` in an
   `aws-sdk` Task; moto knows only boto3's `elbv2`.
3. `jsonata`: moto leaves JSONata unwired (LocalStack runs it on a JVM). The sandbox wires the
   engine the CLI judges with (jsonata-python), so the gate rule runs on both runners.
4. `stack-machines`: a state machine made by a CloudFormation stack lands in the backend that
   runs executions (moto's stack resource writes to the one that does not).
5. `scaled-waits`: a Wait state waits in AWS seconds; the sandbox's CloudWatch clock runs
   faster (its time scale), so Waits are scaled by it, as every other modelled wait is.
6. `signed-calls`: the integrations sign with the sandbox's credentials (moto's interpreter
   uses placeholder keys, which the sandbox's strict API refuses).
7. `stop-ends-callback-waits`: StopExecution ends an execution at once on AWS, a Task waiting
   on a task token included (a pause); moto's stop leaves that wait running until its timeout.
"""

from __future__ import annotations

import os
from typing import Any

from moto.core.config import default_user_config
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service,
    state_task_service_aws_sdk,
    state_task_service_dynamodb,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
from moto.stepfunctions.parser.asl.jsonata import jsonata as moto_jsonata
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from deployer.sandbox.patching import Patches

PATCHES = Patches()
SERVICE_NAMES = {"elasticloadbalancingv2": "elbv2"}


def _evaluate(expression: str) -> Any:
    import jsonata

    try:
        return jsonata.Jsonata(expression).evaluate(None)
    except Exception as exc:  # Step Functions' States.QueryEvaluationError
        raise moto_jsonata.JSONataException("States.QueryEvaluationError", str(exc)) from exc


def apply(port: int, cloudwatch_scale: float, credentials: dict[str, str]) -> None:
    os.environ["MOTO_PORT"] = str(port)
    default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True
    service = state_task_service.StateTaskService
    names = {**service._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES, **SERVICE_NAMES}

    def scaled_wait(self: Any, env: Any, wait_seconds: float) -> None:
        env.program_state_event.wait(max(0.0, wait_seconds * cloudwatch_scale))

    def signed_client(region: str, service: str, state_credentials: Any = None) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            region_name=region,
            endpoint_url=f"http://127.0.0.1:{port}",
            config=Config(retries={"max_attempts": 0, "total_max_attempts": 1}),
            **credentials,
        )

    def create_in_runner(
        resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **_: Any
    ) -> Any:
        properties = cloudformation_json["Properties"]
        backend = stepfunctions_parser_backends[account_id][region_name]
        return backend.create_state_machine(
            properties.get("StateMachineName", resource_name),
            properties.get("DefinitionString", ""),
            properties.get("RoleArn", ""),
        )

    def update_in_runner(
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        properties = cloudformation_json.get("Properties", {})
        backend = stepfunctions_parser_backends[account_id][region_name]
        original = original_resource
        backend.update_state_machine(
            original.arn,
            definition=properties.get("DefinitionString"),
            role_arn=properties.get("RoleArn"),
        )
        return backend.describe_state_machine(original.arn)

    def delete_in_runner(
        resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        backend = stepfunctions_parser_backends[account_id][region_name]
        backend.delete_state_machine(resource_name)

    PATCHES.add("sdk-service-names", service, "_SERVICE_NAME_SFN_TO_BOTO_OVERRIDES", names)
    PATCHES.add("jsonata", moto_jsonata, "_eval_jsonata", _evaluate)
    PATCHES.add("scaled-waits", wait_function.WaitFunction, "_wait_interval", scaled_wait)
    for module in (state_task_service_aws_sdk, state_task_service_dynamodb):
        PATCHES.add(f"signed-calls-{module.__name__}", module, "boto_client_for", signed_client)
    PATCHES.add(
        "stack-machines-create",
        StateMachine,
        "create_from_cloudformation_json",
        classmethod(lambda cls, *a, **k: create_in_runner(*a, **k)),
    )
    PATCHES.add(
        "stack-machines-update",
        StateMachine,
        "update_from_cloudformation_json",
        classmethod(lambda cls, *a, **k: update_in_runner(*a, **k)),
    )
    PATCHES.add(
        "stack-machines-delete",
        StateMachine,
        "delete_from_cloudformation_json",
        classmethod(lambda cls, *a, **k: delete_in_runner(*a, **k)),
    )
    original_stop = Environment.set_stop

    def stop_ending_callback_waits(self: Any, stop_date: Any, cause: Any, error: Any) -> None:
        original_stop(self, stop_date=stop_date, cause=cause, error=error)
        for endpoint in list(self.callback_pool_manager._pool.values()):
            endpoint.interrupt_all()

    original_error = Environment.set_error

    def error_unless_stopped(self: Any, error: Any) -> None:
        if not isinstance(self._program_state, ProgramStopped):  # a stopped one is ABORTED
            original_error(self, error=error)

    PATCHES.add("stop-ends-callback-waits", Environment, "set_stop", stop_ending_callback_waits)
    PATCHES.add("stop-ends-callback-waits-aborted", Environment, "set_error", error_unless_stopped)
    PATCHES.apply()


def restore() -> None:
    PATCHES.restore()
