"""Session and endpoint factory. Counts API calls per service (for bench/) and maps errors.

The same code talks to AWS and to the sandbox; only the endpoint and credentials differ.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from deployer.aws.actions import ActionLog
from deployer.errors import Unreachable


def max_attempts() -> int:
    return max(1, int(os.environ.get("AWS_MAX_ATTEMPTS") or 10))


def retryable_error(response: Any, caught: Any) -> str:
    """What failed in an attempt that botocore's standard mode retries, or '' (it did not fail,
    or not in a way worth retrying).
    """
    if caught is not None:
        return type(caught).__name__ if isinstance(caught, ConnectionError) else ""
    if not response:
        return ""
    http, parsed = response
    code = str((parsed or {}).get("Error", {}).get("Code", ""))
    status = int(getattr(http, "status_code", 0) or 0)
    if code in TRANSIENT_CODES or status >= 500:
        return code or f"HTTP {status}"
    return ""


def retry_config(attempts: int | None = None) -> Config:
    """botocore's standard mode retries throttling, 5xx and connection errors with jittered
    exponential backoff (up to 20 s apart); 10 attempts ride out about a minute of trouble.
    AWS_MAX_ATTEMPTS, the SDKs' own setting, overrides that.
    """
    return Config(
        retries={"mode": "standard", "total_max_attempts": max(1, attempts or max_attempts())},
        connect_timeout=5,
        read_timeout=60,
    )


def probe_config() -> Config:
    """The first call of a run only asks "does AWS answer at all": it fails fast (exit 5)."""
    return retry_config(min(4, int(os.environ.get("AWS_MAX_ATTEMPTS") or 4)))


def s3_config(custom_endpoint: bool) -> Config:
    """SigV4 on the regional endpoint: S3 refuses SigV2 for buckets made after 2020-06-24,
    and botocore still presigns with SigV2 by default in most regions (us-east-1 included).
    A custom endpoint (the sandbox) is addressed by path; AWS by virtual host.
    """
    return retry_config().merge(
        Config(
            signature_version="s3v4",
            s3={
                "addressing_style": "path" if custom_endpoint else "virtual",
                "us_east_1_regional_endpoint": "regional",
            },
        )
    )


# Operation names that only read. Anything else changes something in AWS.
# An AWS call failed: botocore's errors, named once for the code above the adapters.
AWS_ERRORS = (ClientError, BotoCoreError)

READ_PREFIXES = (
    "Describe",
    "Get",
    "List",
    "Head",
    "Query",
    "Scan",
    "Validate",
    "Estimate",
    "Lookup",
    "Search",
    "Simulate",
    "BatchGet",
    "TransactGet",
)
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "Unavailable",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "RequestTimeout",
    }
)


def is_mutating(operation: str) -> bool:
    return not operation.startswith(READ_PREFIXES)


def is_transient(exc: BaseException) -> bool:
    """Worth asking again: throttling, a 5xx, or AWS not answering at all."""
    if isinstance(exc, ConnectionError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in TRANSIENT_CODES or int(status or 0) >= 500
    return False


@dataclass
class AwsContext:
    """boto3 clients for one region and endpoint, created once and shared by the adapters."""

    session: boto3.Session
    endpoint_url: str | None = None
    calls: Counter[str] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    mutations: Counter[str] = field(default_factory=Counter)
    requests: int = 0  # HTTP requests sent: calls plus botocore's retries of them
    _clients: dict[str, Any] = field(default_factory=dict)
    _regions: dict[str, AwsContext] = field(default_factory=dict)
    profile: str | None = None  # how the session was made, to make one in another region
    credentials: dict[str, str] | None = None
    # Told of every failed attempt botocore will retry: (operation, error, attempt).
    on_retry: Callable[[str, str, int], None] | None = None
    _identity: dict[str, str] | None = None

    def __post_init__(self) -> None:
        self.session.events.register("before-call", self._count)
        log = ActionLog()
        if log.path:
            self.session.events.register("before-parameter-build", log)
        self.session.events.register("before-send", self._count_request)
        self.session.events.register("needs-retry", self._retrying)

    def _retrying(
        self,
        operation: Any = None,
        attempts: int = 0,
        response: Any = None,
        caught_exception: Any = None,
        **_: Any,
    ) -> None:
        """An observer beside botocore's retry handler: it never decides, it only tells."""
        if self.on_retry is None or operation is None:
            return
        error = retryable_error(response, caught_exception)
        if error and attempts < max_attempts():
            service = operation.service_model.service_name
            self.on_retry(f"{service}.{operation.name}", error, attempts)

    def _count_request(self, **_: Any) -> None:
        self.requests += 1

    def _count(self, model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        self.calls[service] += 1
        self.operations[f"{service}.{model.name}"] += 1
        if is_mutating(model.name):
            self.mutations[f"{service}.{model.name}"] += 1

    def for_region(self, region: str) -> AwsContext:
        """The same credentials and endpoint in another region (calls are counted here)."""
        if region == self.region:
            return self
        if region not in self._regions:
            # A session of its own (sharing a botocore session would move this one's region),
            # made the same way; its calls are counted in this context's counters.
            other = make_context(region, self.profile, self.endpoint_url, self.credentials)
            other.calls, other.operations, other.mutations = (
                self.calls,
                self.operations,
                self.mutations,
            )
            other.on_retry = self.on_retry
            self._regions[region] = other
        return self._regions[region]

    @property
    def changes_begun(self) -> bool:
        """Whether this run has changed anything in AWS besides its own lock and journal."""
        return any(not op.startswith("dynamodb.") for op in self.mutations)

    @property
    def region(self) -> str:
        return str(self.session.region_name)

    def client(self, service: str, probe: bool = False) -> Any:
        """The shared client of `service`, created on first use. A `probe` client retries
        little: it asks whether AWS answers at all.
        """
        key = f"{service}:probe" if probe else service
        if key not in self._clients:
            if probe:
                config = probe_config()
            elif service == "s3":
                config = s3_config(self.endpoint_url is not None)
            else:
                config = retry_config()
            self._clients[key] = self.session.client(
                service, endpoint_url=self.endpoint_url, config=config
            )
        return self._clients[key]

    def account_id(self) -> str:
        return self.identity()["Account"]

    def identity(self) -> dict[str, str]:
        """Who the credentials are (GetCallerIdentity, asked once): Account, Arn, UserId."""
        if self._identity is None:
            with unreachable_as_error("check credentials"):
                answer = self.client("sts", probe=True).get_caller_identity()
            self._identity = {k: str(answer.get(k, "")) for k in ("Account", "Arn", "UserId")}
        return self._identity


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
    return AwsContext(
        session=session, endpoint_url=endpoint_url, profile=profile, credentials=credentials
    )


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
            "AccessDeniedException",
            "UnauthorizedOperation",
            "UnrecognizedClientException",
            "SignatureDoesNotMatch",
            "AuthFailure",
        }:
            raise Unreachable(f"cannot {doing}: {code}: {exc}") from None
        if is_transient(exc):
            raise Unreachable(f"cannot {doing}: AWS kept failing: {exc}") from None
        raise
    except BotoCoreError as exc:
        raise Unreachable(f"cannot {doing}: {exc}") from None
