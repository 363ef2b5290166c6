"""The last lines of a failed green's instances, for the failure message: the app's own words
(`KeyError: 'DATABASE_URL'`) beside the gate's numbers.

Read after traffic went back (never before: the put-back comes first), from the streams of
the release's version (`<version>/<instance id>/app`), since the release started: one
DescribeLogStreams, then one GetLogEvents per instance, read backwards (its last lines, in one
call). Best effort: a log group that cannot be read leaves the message as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError

from deployer.aws.logs import LogGroupMissing, Logs
from deployer.core.logstreams import StreamName, stream_prefix

LAST_LINES = 20  # per instance, in --output json
MAX_INSTANCES = 10  # streams read for one failure
IN_MESSAGE = 3  # lines of the first instance in the human message
SOURCE = "app"


@dataclass(frozen=True)
class LastLines:
    version: str
    by_instance: Mapping[str, list[str]] = field(default_factory=dict)

    def sentence(self) -> str:
        """`Last lines from i-0abc: <line> | <line>`, or '' when there were none."""
        if not self.by_instance:
            return ""
        first = sorted(self.by_instance)[0]
        lines = [line.strip() for line in self.by_instance[first][-IN_MESSAGE:]]
        more = len(self.by_instance) - 1
        tail = (
            f" (and {more} more instance(s): `deployer logs {self.version}`)"
            if more
            else f" (`deployer logs {self.version}` shows more)"
        )
        return f"Last lines from {first}: " + " | ".join(lines) + tail

    def to_json(self) -> dict[str, object]:
        return {"version": self.version, "instances": dict(self.by_instance)}


def last_lines(
    logs: Logs, group: str, version: str, since_ms: int, limit: int = LAST_LINES
) -> LastLines:
    """The last `limit` lines of each instance's app stream of `version`, since `since_ms`."""
    prefix = stream_prefix(version)
    names = [n for n in logs.streams(group, prefix) if n.endswith(f"/{SOURCE}")]
    found: dict[str, list[str]] = {}
    for name in names[:MAX_INSTANCES]:
        stream = StreamName.parse(name)
        if stream is None:
            continue
        events = logs.last_events(group, name, since_ms, limit)
        if events:
            found[stream.instance_id] = [e.message.rstrip("\n") for e in events]
    return LastLines(version, found)


def for_failure(logs: Logs, group: str, version: str, started_at: str) -> LastLines | None:
    """What a failure message can quote; None when the group cannot be read (its lines are not
    worth failing the failure path for).
    """
    try:
        since = int(datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp() * 1000)
        found = last_lines(logs, group, version, since)
    except (ClientError, BotoCoreError, LogGroupMissing, ValueError):
        return None
    return found if found.by_instance else None
