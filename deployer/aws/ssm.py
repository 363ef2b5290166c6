"""SSM adapter: public parameters such as the latest Amazon Linux AMI id, an environment's
settings (Parameter Store, under /deployer/<app>/<environment>/), and Run Command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws.session import AwsContext, error_code
from deployer.core.execs import InstanceResult, count_of
from deployer.errors import BadInput

SSM_PREFIX = "resolve:ssm:"


@dataclass(frozen=True)
class Setting:
    name: str  # the key, without the path
    secure: bool
    version: int
    value: str | None  # None for a SecureString that was not asked for decrypted


class Ssm:
    def __init__(self, aws: AwsContext) -> None:
        self._aws = aws

    @property
    def _ssm(self) -> Any:
        return self._aws.client("ssm")

    def resolve_image(self, base_ami: str) -> str:
        """An AMI id as given, or the value of the SSM parameter after `resolve:ssm:`."""
        if not base_ami.startswith(SSM_PREFIX):
            return base_ami
        name = base_ami.removeprefix(SSM_PREFIX)
        try:
            return str(self._ssm.get_parameter(Name=name)["Parameter"]["Value"])
        except ClientError as exc:
            if error_code(exc) == "ParameterNotFound":
                raise BadInput(f"bake.base_ami: SSM parameter {name} does not exist") from None
            raise

    def settings(self, path: str, decrypt: bool = False) -> list[Setting]:
        """Every parameter directly under `path` (one level), with its version."""
        found = []
        pages = self._ssm.get_paginator("get_parameters_by_path").paginate(
            Path=path, Recursive=False, WithDecryption=decrypt
        )
        for page in pages:
            for parameter in page["Parameters"]:
                secure = parameter.get("Type") == "SecureString"
                found.append(
                    Setting(
                        name=parameter["Name"].removeprefix(path),
                        secure=secure,
                        version=int(parameter.get("Version", 0)),
                        value=parameter["Value"] if decrypt or not secure else None,
                    )
                )
        return sorted(found, key=lambda s: s.name)

    def get(self, name: str, decrypt: bool) -> Setting | None:
        try:
            parameter = self._ssm.get_parameter(Name=name, WithDecryption=decrypt)["Parameter"]
        except ClientError as exc:
            if error_code(exc) == "ParameterNotFound":
                return None
            raise
        secure = parameter.get("Type") == "SecureString"
        return Setting(
            name=name.rsplit("/", 1)[-1],
            secure=secure,
            version=int(parameter.get("Version", 0)),
            value=parameter["Value"] if decrypt or not secure else None,
        )

    def put(self, name: str, value: str, secure: bool) -> int:
        """Create or overwrite; returns the new version."""
        answer = self._ssm.put_parameter(
            Name=name,
            Value=value,
            Type="SecureString" if secure else "String",
            Overwrite=True,
        )
        return int(answer.get("Version", 0))

    def delete(self, name: str) -> bool:
        try:
            self._ssm.delete_parameter(Name=name)
        except ClientError as exc:
            if error_code(exc) == "ParameterNotFound":
                return False
            raise
        return True


# ---- Run Command ---------------------------------------------------------------------------

SHELL_DOCUMENT = "AWS-RunShellScript"
OUTPUT_INLINE_MAX = 2_500  # ListCommandInvocations' plugin Output holds at most this much
MAX_DELIVERY_TIMEOUT_S = 2_592_000


@dataclass(frozen=True)
class CommandState:
    """A command's aggregate state (ListCommands)."""

    status: str
    details: str
    targets: int
    completed: int
    errors: int


class RunCommand:
    """SSM Run Command: a shell script sent to instances chosen by their tags."""

    def __init__(self, aws: AwsContext) -> None:
        self._aws = aws

    @property
    def _ssm(self) -> Any:
        return self._aws.client("ssm")

    def send(
        self,
        script: str,
        tags: dict[str, str],
        max_concurrency: str,
        max_errors: str,
        timeout_s: int,
        log_group: str,
        comment: str,
        expected: int,
    ) -> str:
        """Send `script` (AWS-RunShellScript) to the instances carrying every tag; its whole
        output goes to `log_group`. Returns the command id.

        The delivery timeout covers the batches MaxConcurrency makes wait for each other.
        """
        concurrency = count_of(max_concurrency, max(expected, 1), 1)
        batches = max(1, math.ceil(max(expected, 1) / concurrency))
        answer = self._ssm.send_command(
            DocumentName=SHELL_DOCUMENT,
            Targets=[{"Key": f"tag:{key}", "Values": [value]} for key, value in tags.items()],
            Parameters={"commands": [script], "executionTimeout": [str(timeout_s)]},
            MaxConcurrency=max_concurrency,
            MaxErrors=max_errors,
            TimeoutSeconds=min(MAX_DELIVERY_TIMEOUT_S, max(30, timeout_s * batches + 60)),
            CloudWatchOutputConfig={
                "CloudWatchLogGroupName": log_group,
                "CloudWatchOutputEnabled": True,
            },
            Comment=comment[:100],
        )
        return str(answer["Command"]["CommandId"])

    def state(self, command_id: str) -> CommandState:
        command = self._ssm.list_commands(CommandId=command_id)["Commands"][0]
        return CommandState(
            status=str(command.get("Status", "")),
            details=str(command.get("StatusDetails", "")),
            targets=int(command.get("TargetCount", 0)),
            completed=int(command.get("CompletedCount", 0)),
            errors=int(command.get("ErrorCount", 0)),
        )

    def results(self, command_id: str) -> list[InstanceResult]:
        """Each instance's invocation, with the output Run Command answers inline (50 to a
        page). Where it was cut, the whole output is in the log group's streams named here.
        """
        found: list[InstanceResult] = []
        pages = self._ssm.get_paginator("list_command_invocations").paginate(
            CommandId=command_id, Details=True
        )
        for page in pages:
            for invocation in page.get("CommandInvocations", []):
                plugins = invocation.get("CommandPlugins") or [{}]
                output = str(plugins[0].get("Output", ""))
                instance_id = str(invocation["InstanceId"])
                stream = f"{command_id}/{instance_id}/aws-runShellScript"
                found.append(
                    InstanceResult(
                        instance_id=instance_id,
                        status=str(invocation.get("Status", "")),
                        exit_code=int(plugins[0].get("ResponseCode", -1)),
                        output=output,
                        truncated=len(output) >= OUTPUT_INLINE_MAX,
                        stdout_stream=f"{stream}/stdout",
                        stderr_stream=f"{stream}/stderr",
                    )
                )
        return found

    def cancel(self, command_id: str) -> None:
        self._ssm.cancel_command(CommandId=command_id)
