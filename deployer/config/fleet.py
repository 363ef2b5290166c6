"""The fleet: its instances (type, port, root volume), capacity, health check and scaling."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from deployer.config.base import Strict


class Instance(Strict):
    type: str = Field(default="t3.micro", pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
    port: int = Field(default=8080, ge=1024, le=65535)
    volume_gb: int | None = Field(
        default=None,
        ge=1,
        le=16384,
        description="The root volume (gp3, encrypted) in GiB. Default: the image's own size.",
    )
    kms_key_id: str | None = Field(
        default=None,
        pattern=r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[A-Za-z0-9/_-]+|"
        r"alias/[A-Za-z0-9/_-]+|[0-9a-f-]{36}|mrk-[0-9a-f]{32})$",
        description="The KMS key that encrypts the root volume. Default: the account's EBS key.",
    )


class Capacity(Strict):
    min: int = Field(default=2, ge=0, le=100)
    desired: int = Field(default=2, ge=1, le=100)
    max: int = Field(default=4, ge=1, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Capacity:
        if not self.min <= self.desired <= self.max:
            raise ValueError(
                f"needs min <= desired <= max, got {self.min}/{self.desired}/{self.max}"
            )
        return self


class HealthCheck(Strict):
    path: str = Field(default="/healthz", pattern=r"^/[\x21-\x7e]*$")
    interval_seconds: int = Field(default=5, ge=5, le=300)
    timeout_seconds: int = Field(default=3, ge=2, le=120)
    healthy_threshold: int = Field(default=2, ge=2, le=10)
    unhealthy_threshold: int = Field(default=2, ge=2, le=10)
    deadline_seconds: int = Field(default=300, ge=10, le=3600)
    grace_seconds: int = Field(
        default=300,
        ge=0,
        le=7200,
        description="How long a new instance may fail the load balancer's health check before "
        "Auto Scaling replaces it (the group's HealthCheckGracePeriod).",
    )

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> HealthCheck:
        if self.timeout_seconds >= self.interval_seconds:
            raise ValueError("timeout_seconds must be less than interval_seconds (as on ELBv2)")
        return self


class Scaling(Strict):
    metric: Literal["cpu", "requests_per_target"] = Field(
        description="Target tracking on the group's average CPU (%) or on ALB requests per "
        "target (per minute)."
    )
    target: float = Field(gt=0, le=100000, description="The value the group keeps the metric at.")

    @model_validator(mode="after")
    def _cpu_is_a_percentage(self) -> Scaling:
        if self.metric == "cpu" and self.target > 100:
            raise ValueError(f"target: {self.target:g} is not a CPU percentage (1-100)")
        return self
