"""SSM adapter: public parameters such as the latest Amazon Linux AMI id."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from deployer.aws.session import AwsContext, error_code
from deployer.errors import BadInput

SSM_PREFIX = "resolve:ssm:"


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
