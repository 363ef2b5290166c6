"""`deployer logs`: a fleet's lines from the app/environment's log group (FilterLogEvents on
the fleet's streams, every page), interleaved by time, each named by its instance and version.
`--follow` asks again every few seconds for what came since, until Ctrl-C. Following `live`
(the default) follows what serves traffic: a green joins as it gets a weight, and leaves when
traffic goes back, each line named by its version.

It works for any version whose lines are within the group's retention, retired fleets too:
a version's streams are named after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from deployer.aws.logs import LogGroupMissing, Logs
from deployer.core.logstreams import (
    Line,
    checked_instance,
    interleaved,
    line_of,
    since_ms,
    stream_prefix,
)
from deployer.errors import BadInput
from deployer.ops.fleet_select import choose, observed
from deployer.release.engine import Engine

FOLLOW_INTERVAL_S = 2.0  # FilterLogEvents allows 5 calls a second per account and region
# Lines reach CloudWatch Logs after the time they carry (the agent flushes every 5 s, then
# ingestion): each ask of --follow looks this far back again and drops what it has shown.
FOLLOW_LOOKBACK_MS = 60_000
# How often following `live` reads which fleets take traffic (the stacks and the listener:
# a few Describe calls), so a green joins within this of its first weight.
SERVING_EVERY_S = 10.0


@dataclass(frozen=True)
class LogQuery:
    group: str
    version: str
    role: str
    fleet_stack: str
    prefix: str
    start_ms: int
    pattern: str

    def to_json(self) -> dict[str, Any]:
        return {
            "log_group": self.group,
            "version": self.version,
            "fleet": self.role,
            "fleet_stack": self.fleet_stack,
            "since": datetime.fromtimestamp(self.start_ms / 1000, UTC).isoformat(),
            "grep": self.pattern,
        }


def query_for(
    engine: Engine,
    selector: str,
    since: str,
    pattern: str | None,
    instance_id: str | None,
    now: datetime | None = None,
) -> LogQuery:
    """What to read; bad input (exit 2) before any AWS call."""
    start = since_ms(since, now or engine.now())
    checked_instance(instance_id)
    if pattern is not None and not pattern.strip():
        raise BadInput("--grep: give a filter pattern (a word, or an exact phrase in quotes)")
    choice = choose(engine, selector)
    return LogQuery(
        group=engine.names.log_group,
        version=choice.version,
        role=choice.role,
        fleet_stack=choice.fleet.stack_name if choice.fleet else "",
        prefix=stream_prefix(choice.version, instance_id),
        start_ms=start,
        pattern=pattern or "",
    )


def _lines(logs: Logs, query: LogQuery, start_ms: int) -> Iterator[tuple[str, Line]]:
    try:
        for event in logs.events(query.group, query.prefix, start_ms, pattern=query.pattern):
            line = line_of(event.timestamp_ms, event.stream, event.message)
            if line is not None:
                yield event.event_id or f"{event.stream}@{event.timestamp_ms}", line
    except LogGroupMissing:
        raise BadInput(
            f"the log group {query.group} does not exist: the service stack makes it (a "
            "release makes or updates the service stack)"
        ) from None


def read(engine: Engine, query: LogQuery) -> list[Line]:
    """Every line since the query's start, interleaved by time."""
    logs = Logs(engine.runtime.aws)
    return interleaved([line for _, line in _lines(logs, query, query.start_ms)])


def serving_versions(engine: Engine) -> list[str]:
    """The versions whose fleets take production traffic now (a canary: blue and green)."""
    live = observed(engine).with_weights()
    return sorted({f.version for f in live.fleets if f.weight > 0})


def follow(
    engine: Engine,
    query: LogQuery,
    show: Callable[[Line], None],
    interval_s: float = FOLLOW_INTERVAL_S,
    sleep: Callable[[float], None] = time.sleep,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    serving: Callable[[], list[str]] | None = None,
) -> int:
    """Show the lines since the start, then each new one as it comes, until Ctrl-C (or
    SIGTERM): that ends it normally. Returns how many lines were shown. With `serving` (the
    versions taking traffic), the versions followed are read again every SERVING_EVERY_S.
    """
    logs = Logs(engine.runtime.aws)
    seen: dict[str, int] = {}  # event id -> its time, for the lookback window
    shown = 0
    start = query.start_ms
    versions = [query.version]
    read_serving_at = now_ms() + SERVING_EVERY_S * 1000 if serving else None
    try:
        while True:
            asked_at = now_ms()
            if serving is not None and read_serving_at is not None and asked_at >= read_serving_at:
                versions = _changed(engine, versions, serving() or versions)
                read_serving_at = asked_at + SERVING_EVERY_S * 1000
            queries = [replace(query, version=v, prefix=stream_prefix(v)) for v in versions]
            fresh = [
                (key, line)
                for q in queries
                for key, line in _lines(logs, q, start)
                if key not in seen
            ]
            for key, line in sorted(fresh, key=lambda pair: pair[1].timestamp_ms):
                if key in seen:  # an A/A release: blue and green share a version's streams
                    continue
                seen[key] = line.timestamp_ms
                show(line)
                shown += 1
            start = max(query.start_ms, asked_at - FOLLOW_LOOKBACK_MS)
            for key in [k for k, t in seen.items() if t < start]:
                del seen[key]
            sleep(interval_s)
    except KeyboardInterrupt:
        return shown


def _changed(engine: Engine, before: list[str], now: list[str]) -> list[str]:
    for version in now:
        if version not in before:
            engine.report(f"logs: following {version} too: it takes traffic now")
    for version in before:
        if version not in now:
            engine.report(f"logs: no longer following {version}: it takes no traffic")
    return now
