"""The `target:` section: the embedded sandbox, or an AWS account and region.

Only what deployer.yaml declares lives here. The region deployer acts in (the sandbox's, or
one taken from the environment or the profile as the AWS SDKs do) is resolved where the
target is wired: deployer.target.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from deployer.config.base import REGION_PATTERN, Strict


class SandboxTarget(Strict):
    kind: Literal["sandbox"] = "sandbox"


class AwsTarget(Strict):
    kind: Literal["aws"]
    region: str | None = Field(
        default=None,
        pattern=REGION_PATTERN,
        description="Default: AWS_REGION, else AWS_DEFAULT_REGION, else the profile's region.",
    )
    profile: str | None = Field(
        default=None,
        description="Ignored (with a warning) when the environment holds credentials.",
    )


Target = Annotated[SandboxTarget | AwsTarget, Field(discriminator="kind")]
