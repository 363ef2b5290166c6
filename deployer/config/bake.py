"""The artifact and the image: what is baked (base image, playbook, variables), how a builder
is reached over SSH, and how long images and artifacts are kept.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from deployer.config.base import CIDR_PATTERN, Strict

DEFAULT_BASE_AMI = (
    "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
)


class Artifact(Strict):
    source: str = Field(
        description="A local directory (packaged and uploaded to S3 at release time) "
        "or an s3://bucket/key.tar.gz URL."
    )

    @field_validator("source")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a directory or an s3:// URL")
        return value


class Ssh(Strict):
    """How deployer reaches a builder on AWS: SSH with a key pair and a security group made
    for that bake alone, and the builder's host key pinned from its console output.
    """

    user: str = Field(default="ec2-user", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    source_cidr: str = Field(
        default="auto",
        description="Who may reach the builder on port 22: a CIDR, or auto (this machine's "
        "public address, asked of public_ip_url).",
    )
    public_ip_url: str = Field(
        default="https://checkip.amazonaws.com",
        pattern=r"^https?://",
        description="Answers this machine's public IPv4 address (for source_cidr: auto).",
    )

    @field_validator("source_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        if value != "auto" and not re.match(CIDR_PATTERN, value):
            raise ValueError(f"'{value}' is neither auto nor a CIDR like 203.0.113.7/32")
        return value


class Bake(Strict):
    base_ami: str = Field(
        default=DEFAULT_BASE_AMI,
        pattern=r"^(ami-[0-9a-f]{8,17}|resolve:ssm:/[\w./-]+)$",
        description="An AMI id or resolve:ssm:<public parameter>.",
    )
    playbook: str = "playbooks/bake.yml"
    instance_type: str = Field(default="t3.small", pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
    variables: dict[str, str | int | bool] = Field(
        default_factory=dict,
        description="Extra variables for the bake playbook; they are part of the bake key.",
    )
    ssh: Ssh = Field(default_factory=Ssh, description="How deployer reaches a builder on AWS.")
    max_builder_minutes: int = Field(
        default=60,
        ge=10,
        le=1440,
        description="A builder shuts itself down (and terminates) after this, whatever happens.",
    )
    keep_images: int = Field(
        default=5, ge=1, le=100, description="Images of this app that `gc` keeps."
    )
    keep_artifacts_days: int = Field(
        default=30, ge=1, le=3650, description="Artifacts in S3 expire after this many days."
    )
