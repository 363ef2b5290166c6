"""CloudWatch Logs adapter: the app/environment's log group, read.

FilterLogEvents pages hold up to 10,000 events or 1 MB, and a page may be partly full or
empty while more follows: only a page without `nextToken` ends the search (botocore's
paginator follows the tokens). GetLogEvents read backwards from a stream's end gives its last
lines in one call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws.session import AwsContext, error_code


@dataclass(frozen=True)
class LogEvent:
    timestamp_ms: int
    stream: str
    message: str
    event_id: str = ""


@dataclass(frozen=True)
class LogStream:
    name: str
    created_ms: int


class LogGroupMissing(Exception):
    """The log group does not exist (yet, or any more)."""


class Logs:
    def __init__(self, aws: AwsContext) -> None:
        self._aws = aws

    @property
    def _logs(self) -> Any:
        return self._aws.client("logs")

    def events(
        self,
        group: str,
        stream_prefix: str,
        start_ms: int,
        end_ms: int | None = None,
        pattern: str = "",
    ) -> Iterator[LogEvent]:
        """Every event of the streams named `stream_prefix`... from `start_ms` (and to `end_ms`),
        matching the filter pattern if one is given, page after page.
        """
        request: dict[str, Any] = {"logGroupName": group, "startTime": start_ms}
        if stream_prefix:
            request["logStreamNamePrefix"] = stream_prefix
        if end_ms is not None:
            request["endTime"] = end_ms
        if pattern:
            request["filterPattern"] = pattern
        try:
            for page in self._logs.get_paginator("filter_log_events").paginate(**request):
                for event in page.get("events", []):
                    yield LogEvent(
                        int(event["timestamp"]),
                        str(event.get("logStreamName", "")),
                        str(event.get("message", "")),
                        str(event.get("eventId", "")),
                    )
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise LogGroupMissing(group) from None
            raise

    def streams(self, group: str, prefix: str) -> list[LogStream]:
        """The group's streams whose names start with `prefix`, with when each was created."""
        found: list[LogStream] = []
        try:
            pages = self._logs.get_paginator("describe_log_streams").paginate(
                logGroupName=group, logStreamNamePrefix=prefix
            )
            for page in pages:
                found.extend(
                    LogStream(str(s["logStreamName"]), int(s.get("creationTime", 0)))
                    for s in page.get("logStreams", [])
                )
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise LogGroupMissing(group) from None
            raise
        return found

    def last_events(self, group: str, stream: str, start_ms: int, limit: int) -> list[LogEvent]:
        """A stream's last `limit` events since `start_ms`, oldest first (one call)."""
        return self._events(group, stream, start_ms, limit, from_head=False)

    def first_events(self, group: str, stream: str, start_ms: int, limit: int) -> list[LogEvent]:
        """A stream's first `limit` events since `start_ms`, oldest first (one call)."""
        return self._events(group, stream, start_ms, limit, from_head=True)

    def _events(
        self, group: str, stream: str, start_ms: int, limit: int, from_head: bool
    ) -> list[LogEvent]:
        try:
            answer = self._logs.get_log_events(
                logGroupName=group,
                logStreamName=stream,
                startTime=start_ms,
                limit=limit,
                startFromHead=from_head,
            )
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return []
            raise
        return [
            LogEvent(int(e["timestamp"]), stream, str(e.get("message", "")))
            for e in answer.get("events", [])
        ]
