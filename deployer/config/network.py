"""The network and the load balancer: the VPC deployer makes or the operator's own, TLS,
access logs, and the operator's own load balancer (its listeners and deployer's rule on them).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from deployer.config.base import Strict


class Network(Strict):
    cidr: str = Field(
        default="10.40.0.0/16",
        pattern=r"^\d{1,3}\.\d{1,3}\.0\.0/16$",
        description="The VPC's /16 (give each environment its own, so they can be peered).",
    )
    nat: Literal["single", "per_az"] = Field(
        default="single",
        description="One NAT gateway for the private subnets, or one per AZ (survives an AZ).",
    )

    vpc_id: str | None = Field(
        default=None,
        pattern=r"^vpc-[0-9a-f]{8,17}$",
        description="Bring your own network: a VPC made beforehand. deployer then makes no "
        "network stack; give public_subnet_ids and private_subnet_ids with it.",
    )
    public_subnet_ids: tuple[str, ...] = Field(
        default=(),
        description="Your subnets for the load balancer and the image builder: at least two "
        "AZs, each routing 0.0.0.0/0 to an internet gateway.",
    )
    private_subnet_ids: tuple[str, ...] = Field(
        default=(),
        description="Your subnets for the fleets (no public IPs): at least two AZs, each with "
        "a way out (a NAT gateway, or VPC endpoints for S3 and SSM).",
    )

    @field_validator("cidr")
    @classmethod
    def _octets(cls, cidr: str) -> str:
        if any(int(octet) > 255 for octet in cidr.split("/")[0].split(".")):
            raise ValueError(f"{cidr} is not an IPv4 network")
        return cidr

    @field_validator("public_subnet_ids", "private_subnet_ids")
    @classmethod
    def _subnets(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        for subnet in ids:
            if not re.match(r"^subnet-[0-9a-f]{8,17}$", subnet):
                raise ValueError(f"'{subnet}' is not a subnet id like subnet-0abc12345def67890")
        if len(set(ids)) != len(ids):
            raise ValueError(f"a subnet is given twice: {list(ids)}")
        return ids

    @model_validator(mode="after")
    def _own_or_ours(self) -> Network:
        given = {"public_subnet_ids", "private_subnet_ids"} & self.model_fields_set
        if self.vpc_id is None:
            if given:
                raise ValueError(f"{', '.join(sorted(given))} given without vpc_id")
            return self
        for field in ("public_subnet_ids", "private_subnet_ids"):
            if len(getattr(self, field)) < 2:
                raise ValueError(
                    f"{field}: with vpc_id, give at least two subnets (in two AZs or more)"
                )
        both = set(self.public_subnet_ids) & set(self.private_subnet_ids)
        if both:
            raise ValueError(f"{', '.join(sorted(both))} is both public and private")
        ours = {"cidr", "nat"} & self.model_fields_set
        if ours:
            raise ValueError(
                f"{', '.join(sorted(ours))} shape the network deployer makes; with vpc_id "
                "(your own network) leave them out"
            )
        return self

    @property
    def own(self) -> bool:
        """The operator's own VPC: deployer makes no network stack."""
        return self.vpc_id is not None

    def own_outputs(self) -> dict[str, str]:
        """The operator's network, in the network stack's output names."""
        return {
            "VpcId": self.vpc_id or "",
            "SubnetIds": ",".join(self.public_subnet_ids),
            "PrivateSubnetIds": ",".join(self.private_subnet_ids),
            "BuilderSubnetId": self.public_subnet_ids[0] if self.public_subnet_ids else "",
        }

    @property
    def prefix(self) -> str:
        return ".".join(self.cidr.split(".")[:2])


class Tls(Strict):
    certificate_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$",
        description="An ACM certificate in the target's region: production is HTTPS on 443 "
        "and port 80 redirects to it.",
    )
    ssl_policy: str = Field(
        default="ELBSecurityPolicy-TLS13-1-2-2021-06",
        pattern=r"^ELBSecurityPolicy-[A-Za-z0-9-]+$",
        description="The listener's TLS policy (default: TLS 1.3 and 1.2 only).",
    )


class Alb(Strict):
    access_logs_bucket: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="An S3 bucket whose policy lets ELB deliver access logs to it.",
    )


LISTENER_ARN = (
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:listener/app/[A-Za-z0-9-]+/"
    r"[0-9a-f]+/[0-9a-f]+$"
)


class Service(Strict):
    listener_arn: str | None = Field(
        default=None,
        pattern=LISTENER_ARN,
        description="Bring your own load balancer: its production listener. deployer then "
        "makes no load balancer and manages only the weights, in a rule of its own "
        "(rule_priority); give test_listener_arn and network.vpc_id with it.",
    )
    test_listener_arn: str | None = Field(
        default=None,
        pattern=LISTENER_ARN,
        description="A listener of your load balancer that carries no user traffic; deployer "
        "checks green through it.",
    )
    rule_priority: int = Field(
        default=1,
        ge=1,
        le=50000,
        description="The priority of deployer's weights rule on both listeners (every path). "
        "Your rules of a lower number still match first.",
    )

    @model_validator(mode="after")
    def _both_listeners(self) -> Service:
        if (self.listener_arn is None) != (self.test_listener_arn is None):
            raise ValueError("give listener_arn and test_listener_arn together")
        if self.listener_arn is not None and self.listener_arn == self.test_listener_arn:
            raise ValueError("test_listener_arn must not be the production listener")
        return self

    @property
    def own(self) -> bool:
        """The operator's own load balancer: deployer makes none."""
        return self.listener_arn is not None
