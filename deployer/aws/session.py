"""Session and endpoint factory. Counts API calls per service (for bench/) and maps errors.

The same code talks to AWS and to the sandbox; only the endpoint and credentials differ.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from deployer.errors import Unreachable

RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=60,
)


@dataclass
class AwsContext:
    """boto3 clients for one region and endpoint, created once and shared by the adapters."""

    session: boto3.Session
    endpoint_url: str | None = None
    calls: Counter[str] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    _clients: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.session.events.register("before-call", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.service_model.service_name] += 1
        self.operations[f"{model.service_model.service_name}.{model.name}"] += 1

    @property
    def region(self) -> str:
        return str(self.session.region_name)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, endpoint_url=self.endpoint_url, config=RETRY_CONFIG
            )
        return self._clients[service]

    def account_id(self) -> str:
        with unreachable_as_error("check credentials"):
            return str(self.client("sts").get_caller_identity()["Account"])


def make_context(
    region: str,
    profile: str | None = None,
    endpoint_url: str | None = None,
    credentials: dict[str, str] | None = None,
) -> AwsContext:
    try:
        session = boto3.Session(profile_name=profile, region_name=region, **(credentials or {}))
    except ProfileNotFound as exc:
        raise Unreachable(f"AWS profile: {exc}") from None
    return AwsContext(session=session, endpoint_url=endpoint_url)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


@contextmanager
def unreachable_as_error(doing: str) -> Iterator[None]:
    """Map 'cannot talk to AWS at all' to Unreachable (exit 5). Use only before any change."""
    try:
        yield
    except (EndpointConnectionError, NoCredentialsError, NoRegionError) as exc:
        raise Unreachable(f"cannot {doing}: {exc}") from None
    except ClientError as exc:
        code = error_code(exc)
        if code in {
            "InvalidClientTokenId",
            "ExpiredToken",
            "AccessDenied",
            "UnrecognizedClientException",
            "SignatureDoesNotMatch",
            "AuthFailure",
        }:
            raise Unreachable(f"cannot {doing}: {code}: {exc}") from None
        raise
    except BotoCoreError as exc:
        raise Unreachable(f"cannot {doing}: {exc}") from None
