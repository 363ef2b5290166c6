"""Versions and the deterministic names derived from them.

Names are deterministic so that a rerun after a crash finds what the first run created
instead of creating it twice.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from deployer.errors import BadInput

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


@dataclass(frozen=True)
class Version:
    text: str

    @staticmethod
    def parse(text: str) -> Version:
        if not _VERSION.match(text):
            raise BadInput(
                f"version '{text}': must be 1-64 characters of letters, digits, '.', '_', '+' "
                "or '-', starting with a letter or digit (e.g. v1.2 or 2026.11.26-3)"
            )
        return Version(text)

    @property
    def slug(self) -> str:
        """The version as it may appear in a CloudFormation stack name."""
        return re.sub(r"[^A-Za-z0-9]+", "-", self.text).strip("-").lower()

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Names:
    """Every AWS name deployer creates for one app and environment."""

    app: str
    environment: str

    @property
    def scope(self) -> str:
        return f"{self.app}/{self.environment}"

    @property
    def prefix(self) -> str:
        return f"{self.app}-{self.environment}"

    @property
    def network_stack(self) -> str:
        return f"{self.prefix}-network"

    @property
    def service_stack(self) -> str:
        return f"{self.prefix}-service"

    @property
    def runner_stack(self) -> str:
        """The state machine that runs releases server-side (executor: stepfunctions)."""
        return f"{self.prefix}-runner"

    @property
    def log_group(self) -> str:
        """The CloudWatch Logs group of the app/environment (the service stack makes it)."""
        return f"/deployer/{self.app}/{self.environment}"

    @property
    def tags(self) -> dict[str, str]:
        """The tags every resource of this app/environment carries."""
        return {"deployer:app": self.app, "deployer:environment": self.environment}

    @property
    def settings_path(self) -> str:
        """The SSM Parameter Store path of the environment's settings (applied at boot)."""
        return f"/deployer/{self.app}/{self.environment}/"

    @property
    def fleet_stack_prefix(self) -> str:
        return f"{self.prefix}-fleet-"

    def fleet_stack(self, version: Version, fleet_id: str) -> str:
        """One stack per (version, image, settings): `fleet_id` is a digest of the last two."""
        return f"{self.fleet_stack_prefix}{version.slug}-{fleet_id[:8]}"

    def image_name(self, version: Version, digest: str) -> str:
        return f"deployer-{self.app}-{version.slug}-{digest[:12]}"

    def artifact_key(self, version: Version, digest: str) -> str:
        return f"{self.app}/{version.slug}/{digest}.tar.gz"


def new_run_id(at: datetime) -> str:
    """The id of a release, rollback, bake, exec or event stream: when it started (UTC, to the
    millisecond, digits only) and six random hex characters. Ids sort by time as strings; nothing
    parses them.
    """
    when = at.astimezone(UTC)
    return f"{when:%Y%m%dT%H%M%S}{when.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"
