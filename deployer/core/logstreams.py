"""The log group's streams and lines, as `deployer logs` reads them. Pure.

Each instance's CloudWatch agent writes streams named `<version>/<instance id>/<source>`
(app, configure, cloud-init), so one version's lines are the streams under `<version>/`, and
one instance's under `<version>/<instance id>/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from deployer.errors import BadInput

_SINCE = re.compile(r"^(\d+)([smhd])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")


@dataclass(frozen=True)
class StreamName:
    version: str
    instance_id: str
    source: str

    @staticmethod
    def parse(name: str) -> StreamName | None:
        parts = name.split("/")
        if len(parts) != 3 or not all(parts):
            return None
        return StreamName(*parts)


def stream_prefix(version: str, instance_id: str | None = None) -> str:
    return f"{version}/{instance_id}/" if instance_id else f"{version}/"


def since_ms(text: str, now: datetime) -> int:
    """`10m`, `90s`, `2h`, `1d` before `now`, or an ISO 8601 time (UTC unless it says),
    as CloudWatch Logs' milliseconds since the epoch.
    """
    value = text.strip()
    match = _SINCE.match(value)
    if match:
        return int(now.timestamp() * 1000) - int(match.group(1)) * _UNIT_MS[match.group(2)]
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(
            f"--since {text!r}: give a duration (90s, 10m, 2h, 1d) or a time (2026-11-26T10:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def checked_instance(instance_id: str | None) -> str | None:
    if instance_id is not None and not INSTANCE_ID.match(instance_id):
        raise BadInput(f"--instance {instance_id!r}: give an EC2 instance id (i-0abc...)")
    return instance_id


@dataclass(frozen=True)
class Line:
    """One log line, named by its instance and version."""

    timestamp_ms: int
    instance_id: str
    version: str
    source: str
    message: str

    @property
    def time(self) -> str:
        stamp = datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.timestamp_ms % 1000:03d}Z"

    def text(self) -> str:
        return f"{self.time} {self.instance_id} {self.version} {self.source:<10} {self.message}"

    def to_json(self) -> dict[str, str | int]:
        return {
            "time": self.time,
            "instance": self.instance_id,
            "version": self.version,
            "source": self.source,
            "message": self.message,
        }


def line_of(timestamp_ms: int, stream: str, message: str) -> Line | None:
    """A line of a stream the agent named, or None for any other stream of the group (Run
    Command's output, say).
    """
    name = StreamName.parse(stream)
    if name is None or not INSTANCE_ID.match(name.instance_id):
        return None
    return Line(timestamp_ms, name.instance_id, name.version, name.source, message.rstrip("\n"))


def interleaved(lines: list[Line]) -> list[Line]:
    """By time across instances; each stream keeps its own order (the sort is stable)."""
    return sorted(lines, key=lambda line: line.timestamp_ms)
