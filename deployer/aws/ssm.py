"""SSM adapter: public parameters such as the latest Amazon Linux AMI id, and an
environment's settings (Parameter Store, under /deployer/<app>/<environment>/).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws.session import AwsContext, error_code
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
