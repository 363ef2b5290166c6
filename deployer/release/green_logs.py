"""The last lines of a failed green's instances, for the failure message: the app's own words
(`KeyError: 'DATABASE_URL'`) beside the gate's numbers.

Read after traffic went back (never before: the put-back comes first), and no sooner than one
agent flush after the failure was seen: the CloudWatch agent sends a file's new lines every
`force_flush_interval` (5 s, our playbook's setting), and CloudWatch Logs ingests them a moment
later, so the line that explains a failure reaches the group after the failure. Read from the
streams of the release's version (`<version>/<instance id>/app`) created since the release
started (green's: an A/A release's blue runs the same version, its streams are older): one
DescribeLogStreams, then per instance one GetLogEvents read backwards (its last lines, a line
repeated in a row shown once with its count: `Connection refused ×20`) and one read from the
stream's start (its first error line since boot, which twenty copies of a later line would
hide). Best effort: a log group that cannot be read leaves the message as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby

from botocore.exceptions import BotoCoreError, ClientError

from deployer.aws.logs import LogGroupMissing, Logs
from deployer.core.logstreams import StreamName, stream_prefix

LAST_LINES = 20  # per instance, in --output json, repeats collapsed
READ_LINES = 100  # read backwards to fill LAST_LINES once repeats are collapsed
FIRST_SCAN = 500  # lines from the stream's start searched for its first error
MAX_INSTANCES = 10  # streams read for one failure
IN_MESSAGE = 3  # lines of the first instance in the human message
SOURCE = "app"
# Words with which a failing app says so (Python, Java, Go, Node, syslog levels).
FAILURE_WORDS = re.compile(r"\b(ERROR|\w*Error|\w*Exception|Traceback|FATAL|CRITICAL|panic)\b")
AGENT_FLUSH_S = 5.0  # force_flush_interval in cloudformation/fleet.yaml's agent configuration
INGESTION_S = 5.0  # from PutLogEvents to GetLogEvents, with room for a slow call
MIN_WAIT_S = 1.0  # real seconds, however fast the target's clock: a flush is a network call


def shipped_after(failure_seen: float, aws_seconds: Callable[[float], float]) -> float:
    """When (on the monotonic clock) the lines logged before a failure seen at `failure_seen`
    have reached the log group.
    """
    return failure_seen + max(aws_seconds(AGENT_FLUSH_S + INGESTION_S), MIN_WAIT_S)


def collapsed(lines: list[str]) -> list[str]:
    """Lines repeated in a row, once each with their count: `refused ×20`."""
    runs = [(line, len(list(same))) for line, same in groupby(lines)]
    return [line if count == 1 else f"{line} ×{count}" for line, count in runs]


@dataclass(frozen=True)
class LastLines:
    version: str
    by_instance: Mapping[str, list[str]] = field(default_factory=dict)
    # Each instance's first line since boot that says it failed (when it has one).
    first_errors: Mapping[str, str] = field(default_factory=dict)

    def sentence(self) -> str:
        """`Last lines from i-0abc: <line> | <line>`, the instance's first error since boot
        when those lines do not show it; that the app logged nothing, when it did not.
        """
        if not self.by_instance:
            return (
                f"{self.version}'s app logged nothing since the release started "
                f"(`deployer logs {self.version}` shows its boot)"
            )
        first = self.most_telling()
        lines = [line.strip() for line in self.by_instance[first][-IN_MESSAGE:]]
        more = len(self.by_instance) - 1
        tail = (
            f" (and {more} more instance(s): `deployer logs {self.version}`)"
            if more
            else f" (`deployer logs {self.version}` shows more)"
        )
        error = self.first_errors.get(first, "").strip()
        since_boot = (
            f"; its first error since boot: {error}"
            if error and not any(line.startswith(error) for line in lines)
            else ""
        )
        return f"Last lines from {first}: " + " | ".join(lines) + since_boot + tail

    def most_telling(self) -> str:
        """The instance to quote: the first (by id) whose last lines say it failed, since the
        request that failed the gate reached only one of them; else the first.
        """
        ordered = sorted(self.by_instance)
        telling = [
            i
            for i in ordered
            if i in self.first_errors
            or any(FAILURE_WORDS.search(line) for line in self.by_instance[i])
        ]
        return (telling or ordered)[0]

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "instances": dict(self.by_instance),
            "first_errors": dict(self.first_errors),
        }


def last_lines(
    logs: Logs, group: str, version: str, since_ms: int, limit: int = LAST_LINES
) -> LastLines:
    """The last `limit` lines (repeats collapsed) of each instance's app stream of `version`,
    since `since_ms`, and each stream's first error line.
    """
    prefix = stream_prefix(version)
    names = [
        s.name
        for s in logs.streams(group, prefix)
        if s.name.endswith(f"/{SOURCE}") and s.created_ms >= since_ms
    ]
    found: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for name in names[:MAX_INSTANCES]:
        stream = StreamName.parse(name)
        if stream is None:
            continue
        events = logs.last_events(group, name, since_ms, READ_LINES)
        if not events:
            continue
        found[stream.instance_id] = collapsed([e.message.rstrip("\n") for e in events])[-limit:]
        head = logs.first_events(group, name, since_ms, FIRST_SCAN)
        error = next((e.message.rstrip("\n") for e in head if FAILURE_WORDS.search(e.message)), "")
        if error:
            errors[stream.instance_id] = error
    return LastLines(version, found, errors)


def for_failure(logs: Logs, group: str, version: str, started_at: str) -> LastLines | None:
    """What a failure message can quote (no lines: the app logged nothing, said so); None
    when the group cannot be read (its lines are not worth failing the failure path for).
    """
    try:
        since = int(datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp() * 1000)
        found = last_lines(logs, group, version, since)
    except (ClientError, BotoCoreError, LogGroupMissing, ValueError):
        return None
    return found
